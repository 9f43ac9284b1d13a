"""Guarded deployment end to end on the devstack: real endpoints, real traffic, real alarms, real rollback.

The operators run as Airflow runs them (``execute``; on deferral the trigger runs to its event, then the
resume method), against the devstack's SageMaker service and moto (CloudWatch, S3, SNS, SQS). The models
are tiny script-mode models whose prediction is ``sum(row) * scale``, so a response tells which model
served it.

The registry records the champion (``ModelLifeCycle``) as deployments end: after the canary rollback the
champion is unchanged, ``deploy_model``'s ``latest`` never picks the rolled-back version, ``batch_score``'s
transform scores with the champion, and a model trained on a backfilled (older) window is not approved over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import tarfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from ml_lifecycle.builders.endpoint import endpoint_config_request, model_name, production_variant
from ml_lifecycle.operators.approval import ResolveModelPackageOperator
from ml_lifecycle.operators.batch import BatchTransformJobOperator
from ml_lifecycle.operators.champion import CHAMPION, RETIRED, ROLLED_BACK
from ml_lifecycle.operators.deploy import ROLLBACK_XCOM_KEY, GuardedEndpointDeployOperator
from ml_lifecycle.operators.traffic import StepwiseTrafficShiftOperator
from tests.e2e.own_config import own_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: This module's own endpoint and model package group (other modules of the session have theirs).
ENDPOINT = "fraud-deploy-e2e"
GROUP = "fraud-detector-deploy-e2e"
SCALE_MODEL = """
import json, os

def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as fh:
        return json.load(fh)

def input_fn(data, content_type):
    return [[float(x) for x in line.split(",")] for line in data.strip().splitlines()]

def predict_fn(rows, model):
    return [sum(row) * model["scale"] for row in rows]

def output_fn(prediction, accept):
    return "\\n".join(str(p) for p in prediction), "text/csv"
"""


class TI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}
        self.dag_id, self.task_id, self.run_id, self.try_number, self.map_index = (
            "deploy_model", "deploy_guarded", "manual__e2e", 1, -1,
        )  # fmt: skip

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def context(ti: TI) -> dict[str, Any]:
    return {"ti": ti, "task_instance": ti, "run_id": ti.run_id, "dag": SimpleNamespace(dag_id=ti.dag_id)}


def run(op: Any, ctx: dict[str, Any]) -> Any:
    """execute, then (like the triggerer + worker) run each deferral's trigger and resume until done."""

    async def first_event(trigger: Any) -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("trigger ended without an event")

    try:
        return op.execute(ctx)
    except TaskDeferred as deferred:
        pending = deferred
    while True:
        event = asyncio.run(first_event(pending.trigger))
        try:
            return getattr(op, pending.method_name)(ctx, event=event, **(pending.kwargs or {}))
        except TaskDeferred as deferred:
            pending = deferred


def deploy(arn: str) -> tuple[Any, TI]:
    ti = TI()
    op = GuardedEndpointDeployOperator(
        task_id="deploy_guarded", model_package_arn=arn, aws_conn_id="aws_default", poll_interval=1
    )
    return run(op, context(ti)), ti


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The ``local`` config naming this module's endpoint and model package group."""
    with own_config(tmp_path_factory.mktemp("config"), endpoint=ENDPOINT, group=GROUP) as config:
        yield config


@pytest.fixture(scope="module")
def aws(devstack: Any, cfg: Any) -> Iterator[SimpleNamespace]:
    """Clients, bucket, topic (with a queue subscribed) and model package group; the endpoints go at the end.

    The endpoints are deleted after the module, so their model servers do not run through later tests.
    """
    s3 = devstack.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=cfg.storage.bucket)
    sns, sqs = devstack.client("sns"), devstack.client("sqs")
    topic = sns.create_topic(Name=cfg.notifications.sns_topic_arn.rsplit(":", 1)[1])["TopicArn"]
    queue = sqs.create_queue(QueueName="e2e-deploy-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    sm = devstack.client("sagemaker")
    with contextlib.suppress(sm.exceptions.ClientError):
        sm.create_model_package_group(ModelPackageGroupName=GROUP)
    yield SimpleNamespace(
        cfg=cfg, s3=s3, sm=sm, sqs=sqs, queue=queue, cloudwatch=devstack.client("cloudwatch"),
        runtime=devstack.client("sagemaker-runtime"), url=devstack.sagemaker_url,
    )  # fmt: skip
    for endpoint in (ENDPOINT, STEPWISE_ENDPOINT):
        with contextlib.suppress(sm.exceptions.ClientError):
            sm.delete_endpoint(EndpointName=endpoint)


def register(aws: SimpleNamespace, scale: float, window_end: str = "2026-02-01T00:00:00+00:00") -> str:
    """An Approved model package version of the scale model, trained (its lineage says) up to ``window_end``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in {"model.json": json.dumps({"scale": scale}), "code/inference.py": SCALE_MODEL}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    key = f"e2e/models/scale-{scale}/model.tar.gz"
    bucket = aws.cfg.storage.bucket
    aws.s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return aws.sm.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"dag_id": "train_model", "dag_run_id": f"e2e-{scale}", "window_end": window_end},
        InferenceSpecification={
            "Containers": [
                {
                    "Image": aws.cfg.sagemaker.images.inference,
                    "ModelDataUrl": f"s3://{bucket}/{key}",
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    },
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


def predictions(aws: SimpleNamespace, n: int = 40) -> Counter:
    """What ``n`` requests of the row ``1,2`` return (``3.0`` = scale 1, ``6.0`` = scale 2, ...)."""
    seen: Counter = Counter()
    for _ in range(n):
        try:
            seen[
                aws.runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"1,2", ContentType="text/csv")["Body"]
                .read()
                .decode()
            ] += 1
        except aws.runtime.exceptions.ModelError:
            seen["error"] += 1
    return seen


class Traffic:
    """Background requests while a deployment shifts traffic."""

    def __init__(self, aws: SimpleNamespace) -> None:
        self.aws, self.stop_event, self.seen = aws, threading.Event(), Counter()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            self.seen.update(predictions(self.aws, 1))
            time.sleep(0.02)

    def stop(self) -> Counter:
        self.stop_event.set()
        self.thread.join(timeout=30)
        return self.seen


def control(url: str, method: str, path: str, payload: Any = None) -> Any:
    request = urllib.request.Request(
        url + path, data=json.dumps(payload).encode() if payload is not None else None, method=method
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def lifecycle(aws: SimpleNamespace, *arns: str) -> list[tuple[str, str] | None]:
    """``(Stage, StageStatus)`` of each package as ``ListModelPackages`` shows it (what the AWS CLI prints)."""
    pages = aws.sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=GROUP)
    listed = {s["ModelPackageArn"]: s.get("ModelLifeCycle") for page in pages for s in page["ModelPackageSummaryList"]}
    return [(listed[a]["Stage"], listed[a]["StageStatus"]) if listed[a] else None for a in arns]


def notifications(aws: SimpleNamespace) -> list[dict[str, Any]]:
    messages = aws.sqs.receive_message(QueueUrl=aws.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_first_deployment_then_canary_then_alarm_rollback(aws: SimpleNamespace) -> None:
    # 1. first deployment: the endpoint is created and serves the model's predictions
    v1 = register(aws, scale=1.0)
    first, _ = deploy(v1)
    assert first["action"] == "created"
    assert predictions(aws) == Counter({"3.0": 40})
    assert lifecycle(aws, v1) == [CHAMPION], "the first deployment makes its model the champion"

    # 2. a second approved model goes through the canary to 100 %
    v2 = register(aws, scale=2.0)
    traffic = Traffic(aws)
    second, _ = deploy(v2)
    during = traffic.stop()
    assert second["action"] == "updated" and second["strategy"] == aws.cfg.deployment.strategy
    assert second["previous_endpoint_config_name"] == first["endpoint_config_name"]
    assert aws.sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == second["endpoint_config_name"]
    assert predictions(aws) == Counter({"6.0": 40})
    assert during["3.0"] and during["6.0"], f"both models served while the canary baked: {during}"
    assert lifecycle(aws, v1, v2) == [RETIRED, CHAMPION]
    notifications(aws)  # drop anything earlier

    # 3. a bad model: its fleet answers 500 (fault injection on its endpoint config) and trips the alarm
    v3 = register(aws, scale=3.0, window_end="2026-02-15T00:00:00+00:00")
    package = aws.sm.describe_model_package(ModelPackageName=v3)
    green = endpoint_config_request(
        aws.cfg,
        variants=[production_variant(aws.cfg, model=model_name(aws.cfg, package), variant_name=second["variant_name"])],
        version=package["ModelPackageVersion"],
    )["EndpointConfigName"]
    control(aws.url, "POST", "/_devstack/hosting/faults", {
        "variant_errors": [{"endpoint": ENDPOINT, "variant": second["variant_name"], "config": green, "status": 500}],
    })  # fmt: skip
    traffic = Traffic(aws)
    started = time.monotonic()
    try:
        with pytest.raises(AirflowFailException) as failure:
            deploy(v3)
    finally:
        during = traffic.stop()
        control(aws.url, "DELETE", "/_devstack/hosting/faults")
    elapsed = time.monotonic() - started

    message = str(failure.value)
    rate_alarm = f"{ENDPOINT}-{second['variant_name']}-5xx-rate"
    assert "ROLLED BACK" in message and rate_alarm in message
    assert second["endpoint_config_name"] in message
    assert during["error"], "the canary fleet returned errors while it took traffic"
    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert description["EndpointConfigName"] == second["endpoint_config_name"]
    assert rate_alarm in description.get("FailureReason", "")
    assert predictions(aws) == Counter({"6.0": 40}), "the previous model serves 100 % after the rollback"
    notes = notifications(aws)
    rollback_notes = [n for n in notes if "rolled back" in n.get("Subject", "").lower()]
    assert rollback_notes, f"no rollback notification among {[n.get('Subject') for n in notes]}"
    assert rate_alarm in rollback_notes[0]["Message"]
    # the registry: the champion is unchanged, the failed package is marked so nothing picks it again
    assert lifecycle(aws, v1, v2, v3) == [RETIRED, CHAMPION, ROLLED_BACK]
    assert rate_alarm in aws.sm.describe_model_package(ModelPackageName=v3)["ModelLifeCycle"]["StageDescription"]
    print(f"rollback detected {elapsed:.1f} s after the update started; traffic during it: {dict(during)}")


def test_rerun_on_the_served_model_is_a_noop(aws: SimpleNamespace) -> None:
    served = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    versions = aws.sm.list_model_packages(ModelPackageGroupName=GROUP, SortBy="CreationTime", SortOrder="Ascending")
    arns = [p["ModelPackageArn"] for p in versions["ModelPackageSummaryList"]]
    result, ti = deploy(arns[1])  # the model that serves after the rollback
    assert result["action"] == "unchanged"
    assert ROLLBACK_XCOM_KEY not in ti.pushed
    assert aws.sm.describe_endpoint(EndpointName=ENDPOINT)["LastModifiedTime"] == served["LastModifiedTime"]
    assert result["champion"]["changed"] is False and result["champion"]["retired"] == []


def versions(aws: SimpleNamespace) -> list[str]:
    """The group's version ARNs, oldest first."""
    listed = aws.sm.list_model_packages(ModelPackageGroupName=GROUP, SortBy="CreationTime", SortOrder="Ascending")
    return [p["ModelPackageArn"] for p in listed["ModelPackageSummaryList"]]


def resolve(fallback: str) -> dict[str, Any]:
    """The ``resolve`` task of ``deploy_model`` (``latest_deployable``) or ``batch_score`` (``champion``), run with
    ``latest`` and no asset event (a run from the UI or the schedule)."""
    op = ResolveModelPackageOperator(
        task_id="resolve", model_package_arn="latest", fallback=fallback, aws_conn_id="aws_default"
    )
    return op.execute(context(TI()))


def test_after_the_rollback_latest_skips_it_and_batch_scoring_uses_the_champion(aws: SimpleNamespace) -> None:
    _v1, v2, v3 = versions(aws)[:3]
    assert lifecycle(aws, v2, v3) == [CHAMPION, ROLLED_BACK], "set by the rollback test above"

    # deploy_model's latest: v3 is the newest Approved version, but it rolled back
    deploy_latest = resolve("latest_deployable")
    assert (deploy_latest["model_package_arn"], deploy_latest["source"]) == (v2, "latest_approved")

    # batch_score: the champion, scored for real by a batch transform job (v2 multiplies by 2; v3 by 3)
    scored = resolve("champion")
    assert (scored["model_package_arn"], scored["source"]) == (v2, "champion")
    bucket = aws.cfg.storage.bucket
    aws.s3.put_object(Bucket=bucket, Key="e2e/champion-batch/input/part-0.csv", Body=b"1,2\n2,2\n")
    ti = TI()
    ti.dag_id, ti.run_id = "batch_score", "scheduled__2026-02-20T00:00:00+00:00"
    transform = BatchTransformJobOperator(
        task_id="transform", model_package_arn=scored["model_package_arn"], aws_conn_id="aws_default",
        input_uri=f"s3://{bucket}/e2e/champion-batch/input/", output_uri=f"s3://{bucket}/e2e/champion-batch/output/",
        interval_start="2026-02-20T00:00:00+00:00", poll_interval=1,
    )  # fmt: skip
    job = run(transform, {**context(ti), "dag": SimpleNamespace(dag_id="batch_score")})
    assert job["status"] == "Completed" and job["model_package_arn"] == v2
    out = aws.s3.get_object(Bucket=bucket, Key="e2e/champion-batch/output/part-0.csv.out")["Body"].read().decode()
    assert out.split() == ["6.0", "8.0"], "scored by the champion (scale 2)"

    # a newer approval (not deployed yet) is what deploy_model's latest deploys; scoring stays on the champion
    v4 = register(aws, scale=4.0, window_end="2026-02-22T00:00:00+00:00")
    assert resolve("latest_deployable")["model_package_arn"] == v4
    assert resolve("champion")["model_package_arn"] == v2


def test_a_backfilled_window_is_not_approved_over_the_champion(aws: SimpleNamespace) -> None:
    from airflow.providers.common.compat.sdk import AirflowSkipException

    from ml_lifecycle.assets import approved_model_asset, approved_model_uri
    from ml_lifecycle.operators.registry import ModelRegistrationOperator, PublishApprovedModelOperator

    champion = versions(aws)[1]
    assert lifecycle(aws, champion) == [CHAMPION]
    cfg, bucket = aws.cfg, aws.cfg.storage.bucket
    backfill_date = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)  # the champion's window ends 2026-02-01
    ti = TI()
    ti.dag_id, ti.task_id, ti.run_id = "train_model", "register", "backfill__2026-01-20T00:00:00+00:00"
    ctx = {
        **context(ti),
        "dag": SimpleNamespace(dag_id="train_model"),
        "logical_date": backfill_date,
        "dag_run": SimpleNamespace(run_after=backfill_date),
        "params": {"window_days": 28},
        "outlet_events": defaultdict(lambda: SimpleNamespace(extra=None)),
    }
    gate = {
        "decision": "passed", "passed": True, "reason": "all checks passed", "metrics": {"auc": 0.99},
        "gate_uri": f"s3://{bucket}/e2e/backfill/gate.json", "evaluation_uri": f"s3://{bucket}/e2e/backfill/evaluation.json",
    }  # fmt: skip
    registration = ModelRegistrationOperator(
        task_id="register", model_uri=f"s3://{bucket}/e2e/models/scale-9.0/model.tar.gz",
        image_uri=cfg.sagemaker.images.inference, package_group_name=GROUP, aws_conn_id="aws_default",
        dataset_uri=f"s3://{bucket}/e2e/backfill/dataset/", approval="auto", gate=gate,
    ).execute(ctx)  # fmt: skip

    package = aws.sm.describe_model_package(ModelPackageName=registration["model_package_arn"])
    assert package["ModelApprovalStatus"] == "PendingManualApproval", "never auto-approved over a newer champion"
    assert package["CustomerMetadataProperties"]["window_end"] == "2026-01-20T00:00:00+00:00", "with its window"
    assert champion in package["ApprovalDescription"] and "older than the champion" in package["ApprovalDescription"]
    publish = PublishApprovedModelOperator(
        task_id="publish_approval", pointer_uri=approved_model_uri(cfg), registration=registration,
        outlets=[approved_model_asset(cfg)], aws_conn_id="aws_default",
    )  # fmt: skip
    with pytest.raises(AirflowSkipException, match="PendingManualApproval"):
        publish.execute(ctx)
    assert ctx["outlet_events"] == {}, "no approved-model asset event"
    assert resolve("champion")["model_package_arn"] == champion and lifecycle(aws, champion) == [CHAMPION]


STEPWISE_ENDPOINT = "fraud-stepwise-e2e"


def shift(arn: str) -> tuple[Any, TI]:
    ti = TI()
    op = StepwiseTrafficShiftOperator(
        task_id="deploy_stepwise", model_package_arn=arn, endpoint_name=STEPWISE_ENDPOINT, aws_conn_id="aws_default",
        percentages=[10, 50, 100], bake_seconds=4, poll_interval=1,
    )  # fmt: skip
    return run(op, context(ti)), ti


def stepwise_predictions(aws: SimpleNamespace, n: int = 40) -> Counter:
    seen: Counter = Counter()
    for _ in range(n):
        try:
            body = aws.runtime.invoke_endpoint(EndpointName=STEPWISE_ENDPOINT, Body=b"1,2", ContentType="text/csv")
            seen[body["Body"].read().decode()] += 1
        except aws.runtime.exceptions.ModelError:
            seen["error"] += 1
    return seen


class StepwiseTraffic(Traffic):
    def _loop(self) -> None:
        while not self.stop_event.is_set():
            self.seen.update(stepwise_predictions(self.aws, 1))
            time.sleep(0.02)


def test_stepwise_shift_checks_each_step_and_returns_all_traffic_on_a_breach(aws: SimpleNamespace) -> None:
    """On its own endpoint, but in the same model package group: its deployments take the champion over."""
    v1 = register(aws, scale=5.0)
    created, _ = shift(v1)  # no endpoint yet: created on the new model alone
    assert created["action"] == "created"
    assert stepwise_predictions(aws) == Counter({"15.0": 40})

    v2 = register(aws, scale=6.0)
    traffic = StepwiseTraffic(aws)
    shifted, _ = shift(v2)
    traffic.stop()
    assert shifted["action"] == "shifted"
    assert [round(c["percent"]) for c in shifted["checks"]] == [10, 50, 100]
    assert all(c["invocations"] > 0 and not c["breaches"] for c in shifted["checks"]), shifted["checks"]
    assert shifted["retired_variant"] == created["variant_name"]
    assert stepwise_predictions(aws) == Counter({"18.0": 40})
    assert lifecycle(aws, v1, v2) == [RETIRED, CHAMPION], "the model at 100 % after the last step is the champion"

    v3 = register(aws, scale=7.0)
    version = aws.sm.describe_model_package(ModelPackageName=v3)["ModelPackageVersion"]
    bad_variant = f"{aws.cfg.sagemaker.name_prefix}-v{version}"
    control(aws.url, "POST", "/_devstack/hosting/faults", {
        "variant_errors": [{"endpoint": STEPWISE_ENDPOINT, "variant": bad_variant, "status": 500}],
    })  # fmt: skip
    traffic = StepwiseTraffic(aws)
    try:
        with pytest.raises(AirflowFailException) as failure:
            shift(v3)
    finally:
        during = traffic.stop()
        control(aws.url, "DELETE", "/_devstack/hosting/faults")
    assert "ROLLED BACK at 10%" in str(failure.value) and "5XX error rate" in str(failure.value)
    assert during["error"], "the new variant answered errors during its 10 % step"
    description = aws.sm.describe_endpoint(EndpointName=STEPWISE_ENDPOINT)
    weights = {v["VariantName"]: v["CurrentWeight"] for v in description["ProductionVariants"]}
    assert weights == {shifted["variant_name"]: 1.0}, "the failed variant was removed"
    assert description["EndpointConfigName"] == shifted["endpoint_config_name"], "back on the previous config"
    assert stepwise_predictions(aws) == Counter({"18.0": 40}), "all traffic is back on the previous model"
    assert lifecycle(aws, v2, v3) == [CHAMPION, ROLLED_BACK], "the champion is unchanged; the failed one is marked"
    assert resolve("latest_deployable")["model_package_arn"] == v2
