"""Fault: the new model's canary fleet answers 5XX while it takes traffic, and its alarm fires.

Expected: SageMaker's deployment guardrails roll back (all traffic back to the previous fleet); the
``deploy_guarded`` task fails with ``AirflowFailException`` (no retry) whose message says ``ROLLED BACK``
and names the alarm that fired and the config that still serves; the evidence (alarm states and reasons,
FailureReason) is in XCom key ``rollback`` and in S3; a "Deployment rolled back" notification names the
alarm; the previous model serves 100 % of the requests.
"""

from __future__ import annotations

import threading
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from tests.faults.conftest import (
    ENDPOINT,
    deploy_context,
    deploy_operator,
    fail_task,
    hosting_faults,
    notifications,
    s3_json,
    served,
)
from tests.faults.deploy_checks import assert_previous_model_serves_everything, endpoint_configs_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class Traffic:
    """Requests in the background while the deployment shifts traffic (what production would send)."""

    def __init__(self, aws: SimpleNamespace) -> None:
        self.aws, self.stop_event, self.seen = aws, threading.Event(), Counter()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            self.seen.update(served(self.aws, 1))
            self.stop_event.wait(0.02)

    def stop(self) -> Counter:
        self.stop_event.set()
        self.thread.join(timeout=30)
        return self.seen


def test_alarm_during_canary_rolls_back_and_the_previous_model_serves(
    aws: SimpleNamespace, packages: Any, previous_model: dict[str, Any], cfg: Any
) -> None:
    from ml_lifecycle.builders.endpoint import endpoint_config_request, model_name, production_variant
    from ml_lifecycle.operators.deploy import ROLLBACK_XCOM_KEY

    arn = packages(note="canary-alarm")
    package = aws.sm.describe_model_package(ModelPackageName=arn)
    variant = previous_model["variant_name"]
    green = endpoint_config_request(
        cfg,
        variants=[production_variant(cfg, model=model_name(cfg, package), variant_name=variant)],
        version=package["ModelPackageVersion"],
    )["EndpointConfigName"]
    run_id = "faults__alarm_during_canary"
    ctx = deploy_context(run_id)

    errors = {"variant_errors": [{"endpoint": ENDPOINT, "variant": variant, "config": green, "status": 500}]}
    with hosting_faults(aws.url, errors):
        traffic = Traffic(aws)
        try:
            error = fail_task(deploy_operator(arn), ctx, AirflowFailException)
        finally:
            during = traffic.stop()

    alarm = f"{ENDPOINT}-{variant}-5xx-rate"
    message = str(error)
    assert "ROLLED BACK" in message and alarm in message
    assert f"the endpoint serves {previous_model['endpoint_config_name']}, not {green}" in message
    assert during["error"], f"the canary fleet answered 5XX while it took traffic: {during}"
    assert during[previous_model["answer"]], "the previous fleet kept answering during the canary"

    evidence = ctx["ti"].pushed[ROLLBACK_XCOM_KEY]
    assert alarm in evidence["fired_alarms"]
    assert alarm in evidence["failure_reason"]
    fired = next(a for a in evidence["alarms"] if a["name"] == alarm)
    assert fired["state_reason"] and "Threshold Crossed" in fired["state_reason"]
    assert s3_json(aws.s3, evidence["evidence_uri"])["fired_alarms"] == evidence["fired_alarms"]

    notes = notifications(aws, f"Deployment rolled back: {ENDPOINT}")
    assert any(alarm in n["message"] and green in n["message"] for n in notes), notes
    assert endpoint_configs_of(aws, package["ModelPackageVersion"]) == [green], "one config for the new model"
    assert_previous_model_serves_everything(aws, previous_model, rolled_back=arn)
