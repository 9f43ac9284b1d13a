"""Fault: the endpoint update cannot be started (SageMaker keeps refusing ``UpdateEndpoint``).

The devstack throttles ``UpdateEndpoint`` for longer than botocore's retries last, so the call fails.

Expected: the ``deploy_guarded`` task fails with the ``ThrottlingException`` naming ``UpdateEndpoint``
(retryable: Airflow retries it with backoff); the endpoint is untouched (InService on the previous config,
no deployment pending) and the previous model serves 100 %; the new model's Model and EndpointConfig exist
once and are reused by the retry; a failure notification names the error.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.faults.conftest import deploy_context, deploy_operator, fail_task, notifications, sagemaker_faults
from tests.faults.deploy_checks import assert_previous_model_serves_everything, endpoint_configs_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_endpoint_update_that_fails_leaves_the_previous_model_serving(
    aws: SimpleNamespace, packages: Any, previous_model: dict[str, Any]
) -> None:
    arn = packages(note="update refused")
    version = aws.sm.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"]
    run_id = "faults__endpoint_update_fails"
    before = aws.sm.describe_endpoint(EndpointName=previous_model["endpoint_name"])

    with sagemaker_faults(aws.url, {"throttle": {"action": "UpdateEndpoint", "seconds": 600}}):
        error = fail_task(deploy_operator(arn), deploy_context(run_id), ClientError)
        configs = endpoint_configs_of(aws, version)
        # Airflow's retry: the same Model and EndpointConfig are found and reused, not created again
        retry = fail_task(deploy_operator(arn), deploy_context(run_id, try_number=2), ClientError)

    for failure in (error, retry):
        assert failure.response["Error"]["Code"] == "ThrottlingException"
        assert "UpdateEndpoint" in str(failure)
    assert len(configs) == 1 and endpoint_configs_of(aws, version) == configs
    after = aws.sm.describe_endpoint(EndpointName=previous_model["endpoint_name"])
    assert after["LastModifiedTime"] == before["LastModifiedTime"], "no update was started"
    notes = notifications(aws, run_id)
    assert any("deploy_model.deploy_guarded" in n["subject"] and "ThrottlingException" in n["message"] for n in notes)
    assert_previous_model_serves_everything(aws, previous_model)
