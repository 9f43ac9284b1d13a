"""Fault: the new model's canary fleet answers correctly but slowly, and only its latency alarm fires.

The new fleet's answers take 3 s (the local config's p99 bound is 2000 ms); no request fails. Expected:
the p99 ``ModelLatency`` alarm the deployment creates goes into ALARM (evaluated from the raw latencies as
CloudWatch evaluates a percentile), SageMaker's guardrails roll the canary back, the ``deploy_guarded`` task
fails with ``AirflowFailException`` naming the latency alarm (not the 5XX one) and the previous model serves
100 % of the requests.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from tests.faults.conftest import (
    ENDPOINT,
    SAMPLE_ROW,
    deploy_context,
    deploy_operator,
    fail_task,
    hosting_faults,
)
from tests.faults.deploy_checks import assert_previous_model_serves_everything

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: seconds the new fleet takes per answer: above the local config's 2000 ms p99 bound
SLOW_SECONDS = 3.0


class Traffic:
    """Requests in the background while the deployment shifts traffic (what production would send).

    Records each answer, and for a failed request when and why it failed.
    """

    def __init__(self, aws: SimpleNamespace) -> None:
        self.aws, self.stop_event, self.seen = aws, threading.Event(), Counter()
        self.failures: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        runtime = self.aws.runtime
        while not self.stop_event.is_set():
            try:
                answer = runtime.invoke_endpoint(
                    EndpointName=ENDPOINT, Body=SAMPLE_ROW, ContentType="text/csv", Accept="text/csv"
                )
                self.seen[answer["Body"].read().decode().strip()] += 1
            except runtime.exceptions.ModelError as exc:
                self.seen["error"] += 1
                self.failures.append((time.time(), str(exc)))
            self.stop_event.wait(0.02)

    def stop(self) -> Counter:
        self.stop_event.set()
        self.thread.join(timeout=60)
        return self.seen


def test_slow_canary_is_rolled_back_by_the_p99_latency_alarm_alone(
    aws: SimpleNamespace, packages: Any, previous_model: dict[str, Any], cfg: Any
) -> None:
    from ml_lifecycle.builders.endpoint import (
        alarm_names,
        endpoint_config_request,
        model_name,
        production_variant,
    )
    from ml_lifecycle.operators.deploy import ROLLBACK_XCOM_KEY

    assert cfg.deployment.max_latency_p99_ms < SLOW_SECONDS * 1000
    arn = packages(note="canary-latency")
    package = aws.sm.describe_model_package(ModelPackageName=arn)
    variant = previous_model["variant_name"]
    green = endpoint_config_request(
        cfg,
        variants=[production_variant(cfg, model=model_name(cfg, package), variant_name=variant)],
        version=package["ModelPackageVersion"],
    )["EndpointConfigName"]
    errors_alarm, latency_alarm = alarm_names(ENDPOINT, variant)
    ctx = deploy_context("faults__latency_during_canary")

    slow = {"variant_latency": [{"endpoint": ENDPOINT, "variant": variant, "config": green, "seconds": SLOW_SECONDS}]}
    with hosting_faults(aws.url, slow):
        traffic = Traffic(aws)
        try:
            error = fail_task(deploy_operator(arn), ctx, AirflowFailException)
        finally:
            during = traffic.stop()

    message = str(error)
    assert "ROLLED BACK" in message and latency_alarm in message
    assert f"the endpoint serves {previous_model['endpoint_config_name']}, not {green}" in message
    assert not traffic.failures, f"no request failed, the canary was only slow: {traffic.failures}"
    assert during[previous_model["answer"]], f"the endpoint kept answering during the canary: {during}"
    evidence = ctx["ti"].pushed[ROLLBACK_XCOM_KEY]
    assert evidence["fired_alarms"] == [latency_alarm], evidence["fired_alarms"]
    assert latency_alarm in evidence["failure_reason"] and errors_alarm not in evidence["failure_reason"]
    fired = next(a for a in evidence["alarms"] if a["name"] == latency_alarm)
    assert fired["state_reason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [")
    bound = float(cfg.deployment.max_latency_p99_ms) * 1000.0
    assert f"was greater than the threshold ({bound!r})" in fired["state_reason"]
    assert fired["went_into_alarm"], "DescribeAlarmHistory shows the transition to ALARM"
    assert_previous_model_serves_everything(aws, previous_model, rolled_back=arn)
