"""Endpoint updates that end ``Failed`` or ``UpdateRollbackFailed`` (``fail_updates`` faults), in botocore's shapes.

Every SageMaker response of these tests is checked against botocore's output shapes (the ``sm`` fixture's
contract recorder), so what ``DescribeEndpoint`` shows in those states parses as SageMaker's would.
"""

from __future__ import annotations

from collections import Counter
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

CANARY = {
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            "WaitIntervalInSeconds": 1,
        },
        "TerminationWaitInSeconds": 0,
        "MaximumExecutionTimeoutInSeconds": 600,
    }
}


def _config(sm: Any, s3: Any, bucket: str, unique_name: Any, scale: float) -> str:
    model = unique_name("model")
    create_model(sm, model, put_scale_model(s3, bucket, f"{model}/model.tar.gz", scale))
    name = unique_name("cfg")
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("AllTraffic", model, count=2)])
    return name


def _settled(sm: Any, name: str) -> dict[str, Any]:
    return eventually(
        lambda: (d := sm.describe_endpoint(EndpointName=name))["EndpointStatus"] != "Updating" and d, timeout=90
    )


def _answers(runtime: Any, name: str, n: int) -> Counter:
    return Counter(
        runtime.invoke_endpoint(EndpointName=name, Body=b"2", ContentType="text/csv")["Body"].read() for _ in range(n)
    )


@pytest.fixture
def blue_green(fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any) -> tuple[str, str, str]:
    """An endpoint serving a model that doubles (``blue``) and a config of one that triples (``green``)."""
    blue = _config(sm, s3, bucket, unique_name, 2.0)
    green = _config(sm, s3, bucket, unique_name, 3.0)
    name = unique_name("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=blue)
    assert wait_endpoint(sm, name)["EndpointStatus"] == "InService"
    yield name, blue, green
    control(fast, "DELETE", "/_devstack/faults")


def test_update_that_ends_failed_accepts_only_delete(
    fast: Any, sm: Any, runtime: Any, blue_green: tuple[str, str, str]
) -> None:
    name, blue, green = blue_green
    control(fast, "POST", "/_devstack/faults", {"fail_updates": {"endpoint": name, "status": "Failed"}})

    sm.update_endpoint(EndpointName=name, EndpointConfigName=green, DeploymentConfig=CANARY)
    desc = _settled(sm, name)

    assert desc["EndpointStatus"] == "Failed"
    assert desc["EndpointConfigName"] == blue
    assert "could not be returned to its previous configuration" in desc["FailureReason"]
    assert "PendingDeploymentSummary" not in desc
    assert desc["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    assert control(fast, "GET", "/_devstack/faults")["fail_updates"] == [], "the fault was used up"
    with pytest.raises(ClientError, match=r"not in service \(status Failed\)"):
        _answers(runtime, name, 1)
    with pytest.raises(ClientError, match="Failed endpoint can only be deleted"):
        sm.update_endpoint(EndpointName=name, EndpointConfigName=blue)
    sm.delete_endpoint(EndpointName=name)
    eventually(lambda: not sm.list_endpoints(NameContains=name)["Endpoints"], timeout=60)


def test_update_whose_rollback_fails_serves_both_configs_until_updated(
    fast: Any, sm: Any, runtime: Any, blue_green: tuple[str, str, str]
) -> None:
    name, blue, green = blue_green
    control(fast, "POST", "/_devstack/faults", {"fail_updates": {"endpoint": name, "status": "UpdateRollbackFailed"}})

    sm.update_endpoint(EndpointName=name, EndpointConfigName=green, DeploymentConfig=CANARY)
    desc = _settled(sm, name)

    assert desc["EndpointStatus"] == "UpdateRollbackFailed"
    assert desc["EndpointConfigName"] == blue
    assert "rollback to the previous endpoint configuration failed" in desc["FailureReason"]
    assert "PendingDeploymentSummary" not in desc
    mix = _answers(runtime, name, 60)
    assert set(mix) == {b"4.0", b"6.0"}, f"both the old and the new fleet answer: {mix}"
    # the way out the runbook gives: an explicit update to the previous config
    sm.update_endpoint(EndpointName=name, EndpointConfigName=blue)
    desc = _settled(sm, name)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", blue)
    assert "FailureReason" not in desc
    assert _answers(runtime, name, 20) == Counter({b"4.0": 20})
