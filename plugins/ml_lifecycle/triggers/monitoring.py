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

from airflow.triggers.base import BaseTrigger, TriggerEvent

TERMINAL = frozenset({"Completed", "CompletedWithViolations", "Failed", "Stopped"})


def summary_json(summary: dict[str, Any]) -> dict[str, Any]:
    """A monitoring execution summary with datetimes as ISO strings (JSON-safe for events and XCom)."""
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in summary.items()}


class MonitoringExecutionTrigger(BaseTrigger):
    """Fire when the schedule's newest execution (scheduled at/after ``scheduled_after``) is terminal.

    Event: ``{"status": "success" | "timeout" | "error", "schedule_name", "execution": {summary} | None,
    "message"}``.

    :param schedule_name: the monitoring schedule
    :param scheduled_after: ISO timestamp; older executions are ignored (``None``: any)
    :param poll_interval: seconds between polls
    :param max_attempts: polls before a ``timeout`` event
    """

    def __init__(
        self,
        *,
        schedule_name: str,
        scheduled_after: str | None = None,
        poll_interval: float = 30,
        max_attempts: int = 120,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__()
        self.schedule_name = schedule_name
        self.scheduled_after = scheduled_after
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "schedule_name": self.schedule_name,
                "scheduled_after": self.scheduled_after,
                "poll_interval": self.poll_interval,
                "max_attempts": self.max_attempts,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
            },
        )

    def _client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        ).conn

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

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            client = await asyncio.to_thread(self._client)
            newest = None
            for attempt in range(1, max(self.max_attempts, 1) + 1):
                newest = await asyncio.to_thread(self._newest, client)
                status = newest and newest.get("MonitoringExecutionStatus")
                if status in TERMINAL:
                    yield TriggerEvent(
                        {
                            "status": "success",
                            "schedule_name": self.schedule_name,
                            "execution": summary_json(newest),
                            "message": f"execution {status}",
                        }
                    )
                    return
                self.log.info(
                    "Monitoring schedule %s: newest execution %s (poll %d/%d)",
                    self.schedule_name,
                    status or "not started yet",
                    attempt,
                    self.max_attempts,
                )
                await asyncio.sleep(self.poll_interval)
            yield TriggerEvent(
                {
                    "status": "timeout",
                    "schedule_name": self.schedule_name,
                    "execution": summary_json(newest) if newest else None,
                    "message": f"no finished execution of {self.schedule_name} after "
                    f"{self.poll_interval * self.max_attempts:.0f} s",
                }
            )
        except Exception as exc:
            self.log.exception("Watching monitoring schedule %s failed", self.schedule_name)
            yield TriggerEvent(
                {"status": "error", "schedule_name": self.schedule_name, "message": f"{type(exc).__name__}: {exc}"}
            )
