from __future__ import annotations

import datetime as dt

import pytest

from ml_lifecycle.triggers.monitoring import MonitoringExecutionTrigger

SCHEDULED = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


class ExecutionSequence:
    """A ListMonitoringExecutions whose newest execution walks through ``statuses`` (the last one repeats;
    ``None``: no execution yet)."""

    def __init__(self, statuses, fail_with=None):
        self.statuses = list(statuses)
        self.calls = []
        self.fail_with = fail_with

    def list_monitoring_executions(self, **kwargs):
        if self.fail_with:
            raise self.fail_with
        status = self.statuses[min(len(self.calls), len(self.statuses) - 1)]
        self.calls.append(kwargs)
        if status is None:
            return {"MonitoringExecutionSummaries": []}
        summary = {
            "MonitoringScheduleName": kwargs["MonitoringScheduleName"],
            "ScheduledTime": SCHEDULED,
            "MonitoringExecutionStatus": status,
        }
        return {"MonitoringExecutionSummaries": [summary]}


def trigger(**kwargs):
    return MonitoringExecutionTrigger(schedule_name="sched", poll_interval=0.01, **kwargs)


@pytest.mark.parametrize("final", [pytest.param("Completed", id="completed"), pytest.param("Failed", id="failed")])
def test_fires_with_the_execution_once_it_is_terminal(final, first_event):
    client = ExecutionSequence([None, "Pending", "InProgress", final])
    event = first_event(trigger(max_attempts=10), client)
    assert event["status"] == "success"
    assert event["execution"]["MonitoringExecutionStatus"] == final
    assert event["execution"]["ScheduledTime"] == SCHEDULED.isoformat(), "datetimes must be JSON-safe"
    assert event["message"] == f"execution {final}"
    assert len(client.calls) == 4


@pytest.mark.parametrize(
    ("statuses", "execution"),
    [pytest.param([None], None, id="never-started"), pytest.param(["InProgress"], "InProgress", id="still-running")],
)
def test_reports_timeout_with_the_last_execution_seen(statuses, execution, first_event):
    client = ExecutionSequence(statuses)
    event = first_event(trigger(max_attempts=3), client)
    assert event["status"] == "timeout"
    assert len(client.calls) == 3
    assert (event["execution"] or {}).get("MonitoringExecutionStatus") == execution
    assert "no finished execution of sched" in event["message"]


def test_only_asks_for_executions_scheduled_from_the_given_time(first_event):
    client = ExecutionSequence(["Completed"])
    first_event(trigger(max_attempts=2, scheduled_after=SCHEDULED.isoformat()), client)
    (call,) = client.calls
    assert call["ScheduledTimeAfter"] <= SCHEDULED
    assert call["SortBy"] == "ScheduledTime" and call["SortOrder"] == "Descending"


def test_aws_errors_become_an_error_event(first_event):
    event = first_event(trigger(max_attempts=3), ExecutionSequence([], fail_with=RuntimeError("AccessDenied")))
    assert event == {"status": "error", "schedule_name": "sched", "message": "RuntimeError: AccessDenied"}


@pytest.mark.parametrize(
    "after", [pytest.param(None, id="any-execution"), pytest.param(SCHEDULED.isoformat(), id="scheduled-after")]
)
def test_serializes_to_a_constructor_call(after):
    original = trigger(max_attempts=7, scheduled_after=after, region_name="eu-west-1", aws_conn_id="aws_dev")
    path, kwargs = original.serialize()
    assert path == "ml_lifecycle.triggers.monitoring.MonitoringExecutionTrigger"
    clone = MonitoringExecutionTrigger(**kwargs)
    assert clone.serialize() == original.serialize()
    assert kwargs["scheduled_after"] == after and kwargs["aws_conn_id"] == "aws_dev"
