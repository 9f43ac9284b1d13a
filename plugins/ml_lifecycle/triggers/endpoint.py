"""Wait in the triggerer until a SageMaker endpoint settles, then (optionally) bake for a while.

``EndpointSettledTrigger`` polls ``DescribeEndpoint`` every ``poll_interval`` seconds until the endpoint
leaves its in-progress states (``Creating``, ``Updating``, ``SystemUpdating``, ``RollingBack``), then
sleeps ``bake_seconds`` (the endpoint is re-checked at the end of the bake). It reports what it saw and
never judges it: the operator that deferred decides whether the outcome is a success, a rollback or a
failure, from a fresh ``DescribeEndpoint``.

There is no ``aiobotocore`` in the MWAA constraints, so the boto3 calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

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


class EndpointSettledTrigger(BaseTrigger):
    """Fire when the endpoint is no longer being created or updated (and ``bake_seconds`` have passed).

    Event: ``{"status": "success" | "timeout" | "error", "endpoint_name", "endpoint_status",
    "endpoint_config_name", "settled_at" (ISO, when the endpoint was first seen settled), "baked_seconds",
    "message"}``.

    :param endpoint_name: the endpoint to watch
    :param poll_interval: seconds between ``DescribeEndpoint`` calls
    :param max_attempts: polls before giving up with a ``timeout`` event
    :param bake_seconds: after the endpoint settles, wait this long before firing
    :param aws_conn_id: Airflow connection for AWS
    :param region_name: AWS region (default: the connection's)
    :param verify: SSL verification for boto3
    :param botocore_config: botocore client configuration
    """

    def __init__(
        self,
        *,
        endpoint_name: str,
        poll_interval: float = 30,
        max_attempts: int = 120,
        bake_seconds: float = 0,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__()
        self.endpoint_name = endpoint_name
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.bake_seconds = bake_seconds
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "endpoint_name": self.endpoint_name,
                "poll_interval": self.poll_interval,
                "max_attempts": self.max_attempts,
                "bake_seconds": self.bake_seconds,
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

    async def _describe(self, client: Any) -> dict[str, Any]:
        return await asyncio.to_thread(client.describe_endpoint, EndpointName=self.endpoint_name)

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
            description: dict[str, Any] | None = None
            for attempt in range(1, max(self.max_attempts, 1) + 1):
                description = await self._describe(client)
                status = description.get("EndpointStatus")
                if status not in IN_PROGRESS:
                    break
                self.log.info(
                    "Endpoint %s is %s (poll %d/%d) %s",
                    self.endpoint_name,
                    status,
                    attempt,
                    self.max_attempts,
                    variant_progress(description),
                )
                await asyncio.sleep(self.poll_interval)
            else:
                waited = self.poll_interval * self.max_attempts
                yield self._event(
                    "timeout",
                    description,
                    message=f"endpoint {self.endpoint_name} still {description and description.get('EndpointStatus')} "
                    f"after about {waited:.0f} s",
                )
                return
            settled_at = dt.datetime.now(dt.UTC)
            if self.bake_seconds > 0:
                self.log.info("Endpoint %s settled; baking for %s s", self.endpoint_name, self.bake_seconds)
                await asyncio.sleep(self.bake_seconds)
                description = await self._describe(client)
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
