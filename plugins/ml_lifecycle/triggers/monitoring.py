"""Wait in the triggerer for a monitoring schedule's execution to finish.

``MonitoringExecutionTrigger`` polls ``ListMonitoringExecutions`` for the schedule (newest first) until an
execution scheduled at or after ``scheduled_after`` reaches a terminal status (``Completed``,
``CompletedWithViolations``, ``Failed``, ``Stopped``). SageMaker has no waiter for monitoring executions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from ml_lifecycle.triggers.base import SageMakerPollingTrigger

TERMINAL = frozenset({"Completed", "CompletedWithViolations", "Failed", "Stopped"})


def summary_json(summary: dict[str, Any]) -> dict[str, Any]:
    """A monitoring execution summary with datetimes as ISO strings (JSON-safe for events and XCom)."""
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in summary.items()}


class MonitoringExecutionTrigger(SageMakerPollingTrigger):
    """Fire when the schedule's newest execution (scheduled at/after ``scheduled_after``) is terminal.

    Event: ``{"status": "success" | "timeout" | "error", "schedule_name", "execution": {summary} | None,
    "message"}``.

    :param schedule_name: the monitoring schedule
    :param scheduled_after: ISO timestamp; older executions are ignored (``None``: any)
    :param kwargs: polling and connection arguments of
        :class:`~ml_lifecycle.triggers.base.SageMakerPollingTrigger` (``poll_interval`` between
        ``ListMonitoringExecutions`` calls, ``max_attempts`` before a ``timeout`` event, ``aws_conn_id``...)
    """

    def __init__(self, *, schedule_name: str, scheduled_after: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule_name = schedule_name
        self.scheduled_after = scheduled_after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._serialize_with({"schedule_name": self.schedule_name, "scheduled_after": self.scheduled_after})

    def _newest(self, client: Any) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {
            "MonitoringScheduleName": self.schedule_name,
            "SortBy": "ScheduledTime",
            "SortOrder": "Descending",
            "MaxResults": 10,
        }
        if self.scheduled_after:
            kwargs["ScheduledTimeAfter"] = dt.datetime.fromisoformat(self.scheduled_after) - dt.timedelta(seconds=1)
        summaries = client.list_monitoring_executions(**kwargs).get("MonitoringExecutionSummaries") or []
        return summaries[0] if summaries else None

    def _log_progress(self, newest: dict[str, Any] | None, attempt: int) -> None:
        self.log.info(
            "Monitoring schedule %s: newest execution %s (poll %d/%d)",
            self.schedule_name,
            (newest and newest.get("MonitoringExecutionStatus")) or "not started yet",
            attempt,
            self.max_attempts,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            client = await asyncio.to_thread(self._client)
            newest, finished = await self._poll(
                lambda: self._newest(client),
                lambda answer: bool(answer) and answer.get("MonitoringExecutionStatus") in TERMINAL,
                self._log_progress,
            )
            if finished:
                yield TriggerEvent(
                    {
                        "status": "success",
                        "schedule_name": self.schedule_name,
                        "execution": summary_json(newest),
                        "message": f"execution {newest['MonitoringExecutionStatus']}",
                    }
                )
                return
            yield TriggerEvent(
                {
                    "status": "timeout",
                    "schedule_name": self.schedule_name,
                    "execution": summary_json(newest) if newest else None,
                    "message": f"no finished execution of {self.schedule_name} after {self.waited_seconds:.0f} s",
                }
            )
        except Exception as exc:
            self.log.exception("Watching monitoring schedule %s failed", self.schedule_name)
            yield TriggerEvent(
                {"status": "error", "schedule_name": self.schedule_name, "message": f"{type(exc).__name__}: {exc}"}
            )
