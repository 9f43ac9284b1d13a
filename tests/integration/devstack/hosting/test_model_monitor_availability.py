"""The devstack's Model Monitor availability switch: refused as for an account without access, then back."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.devstack.hosting_support import client, control

pytestmark = pytest.mark.integration

PATH = "/_devstack/monitoring/availability"


@pytest.fixture
def unavailable(sagemaker_service: Any) -> Any:
    assert control(sagemaker_service, "POST", PATH, {"available": False}) == {"available": False}
    yield sagemaker_service
    assert control(sagemaker_service, "POST", PATH, {"available": True}) == {"available": True}


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("list_monitoring_schedules", {}),
        ("describe_monitoring_schedule", {"MonitoringScheduleName": "any-data-quality"}),
        ("delete_monitoring_schedule", {"MonitoringScheduleName": "any-data-quality"}),
        ("list_data_quality_job_definitions", {}),
        ("describe_data_quality_job_definition", {"JobDefinitionName": "any"}),
        ("list_monitoring_executions", {"MonitoringScheduleName": "any-data-quality"}),
    ],
)
def test_model_monitor_refuses_while_unavailable(unavailable: Any, call: str, kwargs: dict[str, Any]) -> None:
    sm = client("sagemaker", unavailable.url)
    with pytest.raises(ClientError) as caught:
        getattr(sm, call)(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == "AccessDeniedException", error
    assert "Model Monitor availability change" in error["Message"]


def test_model_monitor_answers_again_when_switched_back(sagemaker_service: Any) -> None:
    sm = client("sagemaker", sagemaker_service.url)
    control(sagemaker_service, "POST", PATH, {"available": False})
    control(sagemaker_service, "POST", PATH, {"available": True})
    assert "MonitoringScheduleSummaries" in sm.list_monitoring_schedules()


def test_switch_refuses_a_body_without_a_boolean(sagemaker_service: Any) -> None:
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as caught:
        control(sagemaker_service, "POST", PATH, {"available": "no"})
    assert caught.value.code == 400
