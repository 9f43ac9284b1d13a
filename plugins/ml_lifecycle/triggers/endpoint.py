"""Wait in the triggerer until a SageMaker endpoint settles, then (optionally) bake for a while.

``EndpointSettledTrigger`` polls ``DescribeEndpoint`` every ``poll_interval`` seconds until the endpoint
leaves its in-progress states (``Creating``, ``Updating``, ``SystemUpdating``, ``RollingBack``), then
sleeps ``bake_seconds`` (the endpoint is re-checked at the end of the bake). It reports what it saw and
never judges it: the operator that deferred decides whether the outcome is a success, a rollback or a
failure, from a fresh ``DescribeEndpoint``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from ml_lifecycle.triggers.base import SageMakerPollingTrigger

IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})


def variant_progress(description: dict[str, Any]) -> str:
    """A one-line summary of the variants' status messages (for the triggerer log)."""
    parts = []
    pending = description.get("PendingDeploymentSummary") or {}
    for source in (description.get("ProductionVariants") or [], pending.get("ProductionVariants") or []):
        for variant in source:
            for status in variant.get("VariantStatus") or []:
                parts.append(f"{variant.get('VariantName')}: {status.get('Status')} {status.get('StatusMessage', '')}")
    return "; ".join(parts)


class EndpointSettledTrigger(SageMakerPollingTrigger):
    """Fire when the endpoint is no longer being created or updated (and ``bake_seconds`` have passed).

    Event: ``{"status": "success" | "timeout" | "error", "endpoint_name", "endpoint_status",
    "endpoint_config_name", "settled_at" (ISO, when the endpoint was first seen settled), "baked_seconds",
    "message"}``.

    :param endpoint_name: the endpoint to watch
    :param bake_seconds: after the endpoint settles, wait this long before firing
    :param kwargs: polling and connection arguments of
        :class:`~ml_lifecycle.triggers.base.SageMakerPollingTrigger` (``poll_interval`` between
        ``DescribeEndpoint`` calls, ``max_attempts`` before a ``timeout`` event, ``aws_conn_id``...)
    """

    def __init__(self, *, endpoint_name: str, bake_seconds: float = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name
        self.bake_seconds = bake_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._serialize_with({"endpoint_name": self.endpoint_name, "bake_seconds": self.bake_seconds})

    def _describe(self, client: Any) -> dict[str, Any]:
        return client.describe_endpoint(EndpointName=self.endpoint_name)

    def _log_progress(self, description: dict[str, Any], attempt: int) -> None:
        self.log.info(
            "Endpoint %s is %s (poll %d/%d) %s",
            self.endpoint_name,
            description.get("EndpointStatus"),
            attempt,
            self.max_attempts,
            variant_progress(description),
        )

    def _event(self, status: str, description: dict[str, Any] | None, **extra: Any) -> TriggerEvent:
        description = description or {}
        return TriggerEvent(
            {
                "status": status,
                "endpoint_name": self.endpoint_name,
                "endpoint_status": description.get("EndpointStatus"),
                "endpoint_config_name": description.get("EndpointConfigName"),
                **extra,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            client = await asyncio.to_thread(self._client)
            description, settled = await self._poll(
                lambda: self._describe(client),
                lambda answer: answer.get("EndpointStatus") not in IN_PROGRESS,
                self._log_progress,
            )
            if not settled:
                yield self._event(
                    "timeout",
                    description,
                    message=f"endpoint {self.endpoint_name} still {description and description.get('EndpointStatus')} "
                    f"after about {self.waited_seconds:.0f} s",
                )
                return
            settled_at = dt.datetime.now(dt.UTC)
            if self.bake_seconds > 0:
                self.log.info("Endpoint %s settled; baking for %s s", self.endpoint_name, self.bake_seconds)
                await asyncio.sleep(self.bake_seconds)
                description = await asyncio.to_thread(self._describe, client)
            yield self._event(
                "success",
                description,
                settled_at=settled_at.isoformat(),
                baked_seconds=self.bake_seconds,
                message=f"endpoint {self.endpoint_name} is {description.get('EndpointStatus')}",
            )
        except Exception as exc:  # report, never crash the triggerer; the operator raises
            self.log.exception("Watching endpoint %s failed", self.endpoint_name)
            yield TriggerEvent(
                {"status": "error", "endpoint_name": self.endpoint_name, "message": f"{type(exc).__name__}: {exc}"}
            )
