"""UpdateEndpoint blue/green deployments on the devstack: traffic shifting, baking, alarm rollback."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.devstack.hosting_support import (
    control,
    create_model,
    eventually,
    put_scale_model,
    variant,
    wait_endpoint,
)

pytestmark = pytest.mark.integration


def _config(sm: Any, s3: Any, bucket: str, unique_name: Any, scale: float, fail: bool = False, count: int = 2) -> str:
    model = unique_name("model")
    create_model(sm, model, put_scale_model(s3, bucket, f"{model}/model.tar.gz", scale, fail=fail))
    cfg = unique_name("cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[variant("AllTraffic", model, count=count)])
    return cfg


def _endpoint(sm: Any, cfg: str, unique_name: Any) -> str:
    name = unique_name("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    assert wait_endpoint(sm, name)["EndpointStatus"] == "InService"
    return name


def _error_alarm(cloudwatch: Any, name: str, endpoint: str) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}],
        Statistic="Sum",
        Period=10,
        EvaluationPeriods=1,
        Threshold=0.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )


class Traffic:
    """Invokes an endpoint continuously in a thread and records what answered."""

    def __init__(self, runtime: Any, endpoint: str) -> None:
        self.runtime = runtime
        self.endpoint = endpoint
        self.results: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                body = self.runtime.invoke_endpoint(EndpointName=self.endpoint, Body=b"1", ContentType="text/csv")
                self.results.append(body["Body"].read().decode())
            except ClientError as exc:
                self.results.append(exc.response["Error"]["Code"])
            time.sleep(0.02)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.results


def _watch(sm: Any, name: str, seen: list[dict[str, Any]], stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            seen.append(sm.describe_endpoint(EndpointName=name))
            time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _statuses(desc: dict[str, Any]) -> set[str]:
    return {
        s["Status"]
        for v in desc.get("PendingDeploymentSummary", {}).get("ProductionVariants", [])
        for s in v.get("VariantStatus", [])
    }


def test_canary_update_whose_new_variant_fails_rolls_back_on_alarm(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any, cloudwatch: Any
) -> None:
    blue = _config(sm, s3, bucket, unique_name, scale=1.0)
    green = _config(sm, s3, bucket, unique_name, scale=2.0, fail=True)
    name = _endpoint(sm, blue, unique_name)
    alarm = unique_name("errors")
    _error_alarm(cloudwatch, alarm, name)
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                "WaitIntervalInSeconds": 60,
            },
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": 600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},
    }
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    watcher = _watch(sm, name, seen, stop)

    started = time.monotonic()
    sm.update_endpoint(EndpointName=name, EndpointConfigName=green, DeploymentConfig=deployment)
    eventually(lambda: any(_statuses(d) & {"Baking"} for d in seen), timeout=30, interval=0.05)
    traffic = Traffic(runtime, name)
    desc = wait_endpoint(sm, name, timeout=60, until=("InService",))
    elapsed = time.monotonic() - started
    stop.set()
    watcher.join()
    during = traffic.stop()

    assert elapsed < 60, "the rollback must come from the alarm, not from the end of the canary bake"
    assert desc["EndpointConfigName"] == blue
    assert alarm in desc["FailureReason"]
    assert desc["LastDeploymentConfig"] == deployment
    assert "PendingDeploymentSummary" not in desc
    assert "ModelError" in during, "the canary fleet served some requests during the bake"
    statuses = {
        s["Status"]
        for d in seen
        for v in d.get("PendingDeploymentSummary", {}).get("ProductionVariants", [])
        for s in v.get("VariantStatus", [])
    }
    assert {"ActivatingTraffic", "Baking"} <= statuses
    assert any(d["EndpointStatus"] == "Updating" and d["EndpointConfigName"] == blue for d in seen)
    canary = next(
        s["StatusMessage"]
        for d in seen
        for v in d.get("PendingDeploymentSummary", {}).get("ProductionVariants", [])
        for s in v.get("VariantStatus", [])
        if s["Status"] == "ActivatingTraffic"
    )
    assert canary == "Activating traffic on canary capacity of 1 instance(s)."
    alarm_desc = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]
    assert alarm_desc["StateValue"] == "ALARM"
    assert alarm_desc["StateReason"].startswith("Threshold Crossed: 1 datapoint [")
    after = [
        runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="text/csv")["Body"].read() for _ in range(30)
    ]
    assert after == [b"1.0"] * 30, "after the rollback the previous config serves 100 % of the traffic"


@pytest.mark.parametrize(
    ("routing", "expected_steps"),
    [
        pytest.param({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 1}, 1, id="all-at-once"),
        pytest.param(
            {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50}, "WaitIntervalInSeconds": 1},
            2,
            id="linear-50",
        ),
    ],
)
def test_successful_update_moves_to_new_config(
    fast: Any,
    sm: Any,
    s3: Any,
    bucket: str,
    unique_name: Any,
    runtime: Any,
    cloudwatch: Any,
    routing: dict[str, Any],
    expected_steps: int,
) -> None:
    blue = _config(sm, s3, bucket, unique_name, scale=1.0)
    green = _config(sm, s3, bucket, unique_name, scale=5.0)
    name = _endpoint(sm, blue, unique_name)
    alarm = unique_name("errors")
    _error_alarm(cloudwatch, alarm, name)
    deployment = {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": 1},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},
    }
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    watcher = _watch(sm, name, seen, stop)

    sm.update_endpoint(EndpointName=name, EndpointConfigName=green, DeploymentConfig=deployment)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    with pytest.raises(ClientError) as busy:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=blue)
    desc = wait_endpoint(sm, name, timeout=60, until=("InService",))
    stop.set()
    watcher.join()

    assert busy.value.response["Error"]["Message"] == (
        f'Cannot update in-progress endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}".'
    )
    assert desc["EndpointConfigName"] == green
    assert "FailureReason" not in desc
    assert desc["LastDeploymentConfig"] == deployment
    activations = {
        s["StatusMessage"]
        for d in seen
        for v in d.get("PendingDeploymentSummary", {}).get("ProductionVariants", [])
        for s in v.get("VariantStatus", [])
        if s["Status"] == "ActivatingTraffic"
    }
    assert len(activations) == expected_steps
    assert any(
        "(TerminationWaitInSeconds)" in s["StatusMessage"]
        for d in seen
        for v in d.get("PendingDeploymentSummary", {}).get("ProductionVariants", [])
        for s in v.get("VariantStatus", [])
    )
    assert runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="text/csv")["Body"].read() == b"5.0"


def test_update_without_deployment_config_is_all_at_once(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any
) -> None:
    blue = _config(sm, s3, bucket, unique_name, scale=1.0, count=1)
    green = _config(sm, s3, bucket, unique_name, scale=3.0, count=1)
    name = _endpoint(sm, blue, unique_name)

    sm.update_endpoint(EndpointName=name, EndpointConfigName=green)
    desc = wait_endpoint(sm, name, timeout=60, until=("InService",))

    assert desc["EndpointConfigName"] == green
    assert "LastDeploymentConfig" not in desc
    assert runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="text/csv")["Body"].read() == b"3.0"


def test_update_whose_new_fleet_cannot_start_keeps_old_config(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any
) -> None:
    blue = _config(sm, s3, bucket, unique_name, scale=1.0, count=1)
    model = unique_name("missing-artifact")
    create_model(sm, model, f"s3://{bucket}/does/not/exist.tar.gz")
    green = unique_name("cfg")
    sm.create_endpoint_config(EndpointConfigName=green, ProductionVariants=[variant("AllTraffic", model)])
    name = _endpoint(sm, blue, unique_name)

    sm.update_endpoint(EndpointName=name, EndpointConfigName=green)
    desc = eventually(
        lambda: (d := sm.describe_endpoint(EndpointName=name))["EndpointStatus"] == "InService" and d, timeout=60
    )

    assert desc["EndpointConfigName"] == blue
    assert "Failed to download model data" in desc["FailureReason"]
    assert runtime.invoke_endpoint(EndpointName=name, Body=b"2", ContentType="text/csv")["Body"].read() == b"2.0"


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        pytest.param(
            {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 75}, "WaitIntervalInSeconds": 0},
            "CanarySize must be less than or equal to 50%",
            id="canary-too-large",
        ),
        pytest.param(
            {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 5}, "WaitIntervalInSeconds": 0},
            "LinearStepSize must be 10-50%",
            id="linear-step-too-small",
        ),
        pytest.param({"Type": "CANARY", "WaitIntervalInSeconds": 0}, "CanarySize must be specified", id="no-canary"),
    ],
)
def test_invalid_deployment_configs_are_rejected(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, routing: dict[str, Any], message: str
) -> None:
    blue = _config(sm, s3, bucket, unique_name, scale=1.0, count=1)
    green = _config(sm, s3, bucket, unique_name, scale=2.0, count=1)
    name = _endpoint(sm, blue, unique_name)

    with pytest.raises(ClientError) as caught:
        sm.update_endpoint(
            EndpointName=name,
            EndpointConfigName=green,
            DeploymentConfig={"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing}},
        )

    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert message in caught.value.response["Error"]["Message"]
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"


def test_rollback_alarm_must_exist(fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    blue = _config(sm, s3, bucket, unique_name, scale=1.0, count=1)
    green = _config(sm, s3, bucket, unique_name, scale=2.0, count=1)
    name = _endpoint(sm, blue, unique_name)

    with pytest.raises(ClientError) as caught:
        sm.update_endpoint(
            EndpointName=name,
            EndpointConfigName=green,
            DeploymentConfig={"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "no-such-alarm"}]}},
        )

    assert "no-such-alarm" in caught.value.response["Error"]["Message"]


def _latency_alarm(cloudwatch: Any, name: str, endpoint: str, bound_ms: float, **extra: Any) -> None:
    """The product's latency guard: p99 ModelLatency of the variant (old and new fleet together)."""
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/SageMaker",
        MetricName="ModelLatency",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}],
        ExtendedStatistic="p99",
        Unit="Microseconds",
        Period=10,
        EvaluationPeriods=1,
        DatapointsToAlarm=1,
        Threshold=bound_ms * 1000.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        **extra,
    )


def test_canary_whose_new_variant_is_slow_is_rolled_back_by_the_p99_latency_alarm_alone(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any, cloudwatch: Any
) -> None:
    blue = _config(sm, s3, bucket, unique_name, scale=1.0)
    green = _config(sm, s3, bucket, unique_name, scale=2.0)
    name = _endpoint(sm, blue, unique_name)
    latency, errors = unique_name("latency-p99"), unique_name("errors")
    _latency_alarm(cloudwatch, latency, name, bound_ms=1500)
    _error_alarm(cloudwatch, errors, name)
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                "WaitIntervalInSeconds": 60,
            },
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": 600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": errors}, {"AlarmName": latency}]},
    }
    # the new fleet answers correctly, only slowly: 2.5 s per request, above the 1.5 s p99 bound
    slow = {"variant_latency": [{"endpoint": name, "variant": "AllTraffic", "config": green, "seconds": 2.5}]}
    control(fast, "POST", "/_devstack/hosting/faults", slow)
    try:
        started = time.monotonic()
        sm.update_endpoint(EndpointName=name, EndpointConfigName=green, DeploymentConfig=deployment)
        traffic = Traffic(runtime, name)
        desc = wait_endpoint(sm, name, timeout=60, until=("InService",))
        elapsed = time.monotonic() - started
        during = traffic.stop()
    finally:
        control(fast, "DELETE", "/_devstack/hosting/faults")

    assert elapsed < 60, "the rollback must come from the latency alarm, not from the end of the canary bake"
    assert desc["EndpointConfigName"] == blue
    assert latency in desc["FailureReason"] and errors not in desc["FailureReason"]
    assert "2.0" in during, "the slow canary fleet answered (correctly) during the bake"
    assert not [r for r in during if r not in ("1.0", "2.0")], f"no request failed: {set(during)}"
    states = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNames=[latency, errors])["MetricAlarms"]}
    assert states[errors]["StateValue"] != "ALARM"
    fired = states[latency]
    assert fired["StateValue"] == "ALARM"
    assert fired["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [")
    assert "was greater than the threshold (1500000.0)" in fired["StateReason"]
    reason_data = json.loads(fired["StateReasonData"])
    assert reason_data["statistic"] == "p99" and reason_data["unit"] == "Microseconds"
    assert reason_data["recentDatapoints"][0] >= 2_500_000
    history = cloudwatch.describe_alarm_history(AlarmName=latency, HistoryItemType="StateUpdate")
    summaries = [h["HistorySummary"] for h in history["AlarmHistoryItems"]]
    assert any(s.endswith("to ALARM") for s in summaries), summaries
    after = [
        runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="text/csv")["Body"].read() for _ in range(10)
    ]
    assert after == [b"1.0"] * 10, "after the rollback the previous config serves 100 % of the traffic"


def test_rollback_alarm_the_devstack_cannot_evaluate_is_refused(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, cloudwatch: Any
) -> None:
    blue = _config(sm, s3, bucket, unique_name, scale=1.0, count=1)
    green = _config(sm, s3, bucket, unique_name, scale=2.0, count=1)
    name = _endpoint(sm, blue, unique_name)
    alarm = unique_name("searched")
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[{"Id": "e1", "Expression": "SEARCH('{AWS/SageMaker} ModelLatency', 'p99', 60)", "ReturnData": True}],
    )

    with pytest.raises(ClientError) as caught:
        sm.update_endpoint(
            EndpointName=name,
            EndpointConfigName=green,
            DeploymentConfig={"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]}},
        )

    message = caught.value.response["Error"]["Message"]
    assert alarm in message and "SEARCH" in message
    assert sm.describe_endpoint(EndpointName=name)["EndpointConfigName"] == blue
