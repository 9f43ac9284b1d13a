from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import boto3
import pytest
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from ml_lifecycle.builders.endpoint import (
    alarm_names,
    alarm_requests,
    endpoint_config_request,
    model_request,
    production_variant,
    scaling_requests,
)
from ml_lifecycle.config import load_config
from ml_lifecycle.operators.champion import CHAMPION, ROLLED_BACK
from ml_lifecycle.operators.deploy import ROLLBACK_XCOM_KEY
from ml_lifecycle.operators.traffic import StepwiseTrafficShiftOperator, parse_percentages, variant_share
from tests.unit.operators._hosting_fakes import (
    AWS_CONNECTION,
    FakeSageMaker,
    FakeTI,
    aws,
    context,
    notifications,
    package,
)

ENDPOINT = "fraud-detector-local"
NEW = "fraud-v2"
__all__ = ["aws"]


def serving_v1(fake: FakeSageMaker) -> str:
    """An endpoint serving model version 1 on variant AllTraffic."""
    cfg = load_config()
    fake.add_package(package(1))
    model = model_request(cfg, package(1))
    fake.models[model["ModelName"]] = model
    config = endpoint_config_request(
        cfg, variants=[production_variant(cfg, model=model["ModelName"], variant_name="AllTraffic")], version=1
    )
    fake.configs[config["EndpointConfigName"]] = config
    fake.serve(ENDPOINT, config["EndpointConfigName"])
    return config["EndpointConfigName"]


def alarms_of(aws) -> set[str]:
    return {a["AlarmName"] for a in aws.cloudwatch.describe_alarms(AlarmNamePrefix=f"{ENDPOINT}-")["MetricAlarms"]}


def scaled_variants() -> dict[str, int]:
    """Variant -> number of scaling policies, of every variant of the endpoint registered for auto-scaling."""
    client = boto3.client("application-autoscaling")
    targets = client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    prefix = f"endpoint/{ENDPOINT}/variant/"
    return {
        t["ResourceId"].removeprefix(prefix): len(
            client.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=t["ResourceId"])[
                "ScalingPolicies"
            ]
        )
        for t in targets
        if t["ResourceId"].startswith(prefix)
    }


def autoscale(variant: str) -> None:
    """What the ``autoscale`` task does for ``variant``: a scalable target and its target-tracking policy."""
    target, policy = scaling_requests(load_config(), endpoint=ENDPOINT, variant=variant)
    client = boto3.client("application-autoscaling")
    client.register_scalable_target(**target)
    client.put_scaling_policy(**policy)


def old_alarms() -> None:
    """The serving variant's rollback alarms, as the deployment that put it there left them."""
    for request in alarm_requests(load_config(), endpoint=ENDPOINT, variant="AllTraffic"):
        boto3.client("cloudwatch").put_metric_alarm(**request)


def put_traffic(variant: str, invocations: int, errors: int, latency_us: float) -> None:
    now = dt.datetime.now(dt.UTC)
    dims = [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": variant}]
    boto3.client("cloudwatch").put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": now, "Value": invocations},
            {"MetricName": "Invocation5XXErrors", "Dimensions": dims, "Timestamp": now, "Value": errors},
            {"MetricName": "ModelLatency", "Dimensions": dims, "Timestamp": now, "Value": latency_us},
        ],
    )


def make(fake, **kwargs):
    kwargs.setdefault("model_package_arn", package(2)["ModelPackageArn"])
    kwargs.setdefault("percentages", [10, 50, 100])
    kwargs.setdefault("bake_seconds", 0)
    op = StepwiseTrafficShiftOperator(task_id="shift", aws_conn_id="aws_default", **kwargs)
    op.__dict__["hook"] = SimpleNamespace(
        conn=fake,
        conn_region_name="us-east-1",
        conn_partition="aws",
        conn_config=AWS_CONNECTION,
        s3_hook=S3Hook(aws_conn_id="aws_default"),
    )
    return op


def drive(op, ctx, traffic=None, limit=20):
    """Run the operator like Airflow does: execute, then resume after every deferral until it returns."""
    shares = []
    try:
        return op.execute(ctx), shares
    except TaskDeferred as deferred:
        pending = deferred
    for _ in range(limit):
        share = variant_share(op.sagemaker.describe_endpoint(EndpointName=ENDPOINT), NEW)
        shares.append(round(share * 100))
        if traffic and share > 0:
            traffic(share)
        event = {"status": "success", "endpoint_name": ENDPOINT, "settled_at": dt.datetime.now(dt.UTC).isoformat()}
        event["settled_at"] = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()
        try:
            return op.execute_complete(ctx, event=event, **pending.kwargs), shares
        except TaskDeferred as deferred:
            pending = deferred
    raise AssertionError(f"no result after {limit} resumptions; shares seen {shares}")


def test_healthy_model_goes_10_50_100_and_the_old_variant_is_retired(aws):
    fake = FakeSageMaker()
    serving_v1(fake)
    fake.add_package(package(2))

    result, _shares = drive(make(fake), context(), traffic=lambda share: put_traffic(NEW, 100, 0, 20_000))

    assert [w[NEW] for w in fake.calls_named("update_weights")] == [0.1, 0.5, 1.0]
    assert [round(c["percent"]) for c in result["checks"]] == [10, 50, 100]
    assert result["retired_variant"] == "AllTraffic"
    assert result["action"] == "shifted"
    endpoint = fake.endpoints[ENDPOINT]
    assert [v["VariantName"] for v in endpoint["ProductionVariants"]] == [NEW]
    assert endpoint["EndpointConfigName"] == result["endpoint_config_name"]
    assert fake.calls_named("update_weights")[0] == {"AllTraffic": 0.9, NEW: 0.1}
    json.dumps(result)
    # marked the champion only once the new model serves 100 %: after the last weight change
    [mark] = fake.calls_named("mark_lifecycle")
    assert (mark["arn"], mark["Stage"], mark["StageStatus"]) == (package(2)["ModelPackageArn"], *CHAMPION)
    assert fake.calls.index(("mark_lifecycle", mark)) > max(
        i for i, (name, _) in enumerate(fake.calls) if name in ("update_weights", "update_endpoint")
    )

    again, _ = drive(make(fake), context())
    assert again["action"] == "unchanged"
    assert len(fake.calls_named("mark_lifecycle")) == 1, "a re-run leaves the champion's record as it is"


@pytest.mark.parametrize(
    ("errors", "latency_us", "expected"),
    [
        pytest.param(30, 20_000, "5XX error rate 0.3000 (30/100)", id="error-rate"),
        pytest.param(0, 2_500_000, "model latency", id="latency"),
    ],
)
def test_breach_returns_all_traffic_to_the_old_variant_and_fails_naming_it(aws, errors, latency_us, expected):
    fake = FakeSageMaker()
    old_config = serving_v1(fake)
    old_alarms()
    fake.add_package(package(2))
    ti = FakeTI()

    with pytest.raises(AirflowFailException) as failure:
        drive(make(fake), context(ti), traffic=lambda share: put_traffic(NEW, 100, errors, latency_us))

    assert expected in str(failure.value)
    assert "at 10%" in str(failure.value)
    description = fake.endpoints[ENDPOINT]
    assert description["EndpointConfigName"] == old_config, "back on the config served before the shift"
    assert [(v["VariantName"], v["CurrentWeight"]) for v in description["ProductionVariants"]] == [("AllTraffic", 1.0)]
    assert fake.calls_named("update_endpoint")[-1]["EndpointConfigName"] == old_config
    evidence = ti.pushed[ROLLBACK_XCOM_KEY]
    assert evidence["breaches"] and evidence["serving_variant"] == "AllTraffic"
    assert evidence["cleanup"] == "done" and evidence["serving_endpoint_config"] == old_config
    assert evidence["removed"]["variants"] == [NEW]
    assert set(evidence["removed"]["alarms"]) == set(alarm_names(ENDPOINT, NEW))
    assert alarms_of(aws) == set(alarm_names(ENDPOINT, "AllTraffic")), "the failed variant's alarms are gone"
    assert evidence["alarms"], "the alarms' states were read before they were deleted"
    [note] = notifications(aws)
    assert "rolled back" in note["Subject"].lower()
    assert f"Removed: variant {NEW}" in note["Message"]


def test_retiring_the_old_variant_deregisters_its_scaling_and_deletes_its_alarms(aws):
    fake = FakeSageMaker()
    serving_v1(fake)
    fake.add_package(package(2))
    autoscale("AllTraffic")
    old_alarms()

    result, _shares = drive(make(fake), context(), traffic=lambda share: put_traffic(NEW, 100, 0, 20_000))

    assert [v["VariantName"] for v in fake.endpoints[ENDPOINT]["ProductionVariants"]] == [NEW]
    assert scaled_variants() == {}, "the retired variant's scalable target and policy are gone"
    assert alarms_of(aws) == set(alarm_names(ENDPOINT, NEW))
    assert result["removed"] == {
        "variants": ["AllTraffic"],
        "scalable_targets": [f"endpoint/{ENDPOINT}/variant/AllTraffic"],
        "alarms": sorted(alarm_names(ENDPOINT, "AllTraffic")),
    }


def test_rollback_removes_the_failed_variant_and_keeps_the_champions_scaling(aws):
    fake = FakeSageMaker()
    old_config = serving_v1(fake)
    fake.add_package(package(2))
    autoscale("AllTraffic")
    ti = FakeTI()

    def traffic(share: float) -> None:
        autoscale(NEW)  # e.g. someone registered the new variant while it took traffic
        put_traffic(NEW, 100, 40, 20_000)

    with pytest.raises(AirflowFailException) as failure:
        drive(make(fake), context(ti), traffic=traffic)

    description = fake.endpoints[ENDPOINT]
    assert (description["EndpointConfigName"], [v["VariantName"] for v in description["ProductionVariants"]]) == (
        old_config,
        ["AllTraffic"],
    )
    assert scaled_variants() == {"AllTraffic": 1}, "the champion keeps its scaling; the failed variant's is gone"
    evidence = ti.pushed[ROLLBACK_XCOM_KEY]
    assert evidence["removed"]["scalable_targets"] == [f"endpoint/{ENDPOINT}/variant/{NEW}"]
    assert f"endpoint/{ENDPOINT}/variant/{NEW}" in str(failure.value)
    [mark] = fake.calls_named("mark_lifecycle")
    assert (mark["arn"], mark["Stage"], mark["StageStatus"]) == (package(2)["ModelPackageArn"], *ROLLED_BACK)
    assert "5XX error rate" in mark["StageDescription"] and evidence["marked_rolled_back"] is True


def test_a_retry_after_the_worker_died_mid_cleanup_finishes_it_without_a_second_update(aws):
    fake = FakeSageMaker()
    old_config = serving_v1(fake)
    fake.add_package(package(2))
    op, ctx = make(fake), context()
    pending = None
    try:
        op.execute(ctx)
    except TaskDeferred as deferred:
        pending = deferred
    for _ in range(10):  # run until the clean-up's UpdateEndpoint is issued, then the worker dies
        if "rollback_update" in pending.kwargs["progress"]:
            break
        put_traffic(NEW, 100, 50, 20_000)
        event = {"status": "success", "settled_at": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()}
        try:
            op.execute_complete(ctx, event=event, **pending.kwargs)
        except TaskDeferred as deferred:
            pending = deferred
    assert "rollback_update" in pending.kwargs["progress"], pending.kwargs
    updates = len(fake.calls_named("update_endpoint"))

    retry_ti = FakeTI()
    retry_ti.try_number = 2
    with pytest.raises(AirflowFailException, match="ROLLED BACK at 10%"):
        drive(make(fake), context(retry_ti))

    assert len(fake.calls_named("update_endpoint")) == updates, "no second config change"
    assert [w for w in fake.calls_named("update_weights") if w[NEW] > 0] == [{"AllTraffic": 0.9, NEW: 0.1}], (
        "the retry never shifted traffic to the failed variant again"
    )
    assert fake.endpoints[ENDPOINT]["EndpointConfigName"] == old_config
    evidence = retry_ti.pushed[ROLLBACK_XCOM_KEY]
    assert evidence["cleanup"] == "done" and evidence["removed"]["variants"] == [NEW]
    assert alarms_of(aws) == set()
    stored = json.loads(
        aws.s3.get_object(Bucket=evidence["evidence_uri"].split("/")[2], Key=evidence["evidence_uri"].split("/", 3)[3])[
            "Body"
        ].read()
    )
    assert stored["cleanup"] == "done"


def test_resumes_from_the_endpoint_weights_after_a_restart(aws):
    fake = FakeSageMaker()
    serving_v1(fake)
    fake.add_package(package(2))
    with pytest.raises(TaskDeferred):
        make(fake).execute(context())  # adds the weight-0 variant
    with pytest.raises(TaskDeferred):
        make(fake).execute_complete(context(), event={"status": "success"}, progress={"checks": []})  # 10 %
    assert variant_share(fake.endpoints[ENDPOINT], NEW) == pytest.approx(0.1)

    # a fresh task (worker restarted, memory lost) re-bakes 10 % and goes on; it never restarts from 0
    result, shares = drive(make(fake), context(), traffic=lambda share: put_traffic(NEW, 50, 0, 10_000))
    assert shares[0] == 10
    assert [w for w in shares if w][:2] == [10, 50]
    assert result["retired_variant"] == "AllTraffic"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param("10,50,100", [10.0, 50.0, 100.0], id="csv"),
        pytest.param("[25, 75]", [25.0, 75.0, 100.0], id="json-100-appended"),
        pytest.param([100], [100.0], id="single"),
    ],
)
def test_percentages_are_parsed(given, expected):
    assert parse_percentages(given) == expected


@pytest.mark.parametrize("given", [pytest.param("50,10", id="decreasing"), pytest.param([0, 50], id="zero")])
def test_bad_percentages_are_rejected(given):
    with pytest.raises(AirflowFailException):
        parse_percentages(given)
