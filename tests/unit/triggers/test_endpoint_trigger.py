# ruff: noqa: N803  (keyword names mirror the boto3 API)
from __future__ import annotations

import pytest

from ml_lifecycle.triggers.endpoint import EndpointSettledTrigger


class StatusSequence:
    """A DescribeEndpoint that walks through ``statuses`` (the last one repeats)."""

    def __init__(self, statuses, fail_with=None):
        self.statuses = list(statuses)
        self.calls = 0
        self.fail_with = fail_with

    def describe_endpoint(self, EndpointName):
        if self.fail_with:
            raise self.fail_with
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        return {"EndpointName": EndpointName, "EndpointStatus": status, "EndpointConfigName": f"cfg-{self.calls}"}


def trigger(**kwargs):
    return EndpointSettledTrigger(endpoint_name="ep", poll_interval=0.01, **kwargs)


def test_fires_when_the_endpoint_leaves_updating(first_event):
    client = StatusSequence(["Updating", "Updating", "InService"])
    event = first_event(trigger(max_attempts=10), client)
    assert event["status"] == "success"
    assert event["endpoint_status"] == "InService"
    assert client.calls == 3


def test_reports_timeout_when_the_update_outlasts_the_attempts(first_event):
    event = first_event(trigger(max_attempts=3), StatusSequence(["Updating"]))
    assert event["status"] == "timeout"
    assert "still Updating" in event["message"]


def test_bakes_after_settling_and_reports_the_state_at_the_end_of_the_bake(first_event):
    client = StatusSequence(["InService"])
    event = first_event(trigger(max_attempts=3, bake_seconds=0.05), client)
    assert event["status"] == "success"
    assert event["baked_seconds"] == 0.05
    assert client.calls == 2, "the endpoint is described again after the bake"
    assert event["settled_at"]


def test_aws_errors_become_an_error_event(first_event):
    event = first_event(trigger(max_attempts=3), StatusSequence([], fail_with=RuntimeError("AccessDenied")))
    assert event["status"] == "error"
    assert "AccessDenied" in event["message"]


@pytest.mark.parametrize("bake", [pytest.param(0, id="no-bake"), pytest.param(30, id="bake")])
def test_serializes_to_a_constructor_call(bake):
    original = trigger(max_attempts=7, bake_seconds=bake, region_name="eu-west-1")
    path, kwargs = original.serialize()
    assert path == "ml_lifecycle.triggers.endpoint.EndpointSettledTrigger"
    clone = EndpointSettledTrigger(**kwargs)
    assert clone.serialize() == original.serialize()
