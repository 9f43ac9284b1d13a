"""The endpoints' "Endpoint Deployment State Change" events: a view of the service's store that sends an
endpoint's event whenever a write changes its deployment state. The hosting actions
(:mod:`devstack.sagemaker.hosting`) and the deployment engine (:mod:`devstack.sagemaker.deployments`) both
write endpoints through it, so every status change SageMaker would announce is announced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devstack.sagemaker.events import ENDPOINT_DEPLOYMENT_STATE_CHANGE, endpoint_detail

if TYPE_CHECKING:
    from devstack.sagemaker.service_api import ServiceApi

ENDPOINTS = "endpoints"


def deployment_state(desc: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """What a "Endpoint Deployment State Change" event reports a change of: the status, and the pending
    deployment's config and variant statuses."""
    if desc is None:
        return None
    pending = desc.get("PendingDeploymentSummary") or {}
    variants = tuple(
        (v.get("VariantName"), tuple(s.get("Status") for s in v.get("VariantStatus") or []))
        for v in pending.get("ProductionVariants") or []
    )
    return desc.get("EndpointStatus"), pending.get("EndpointConfigName"), variants


class EndpointEventsStore:
    """The service's store, sending an endpoint's "Endpoint Deployment State Change" event whenever a write
    changes its deployment state (every other kind and every read go straight to the store)."""

    def __init__(self, service: ServiceApi) -> None:
        self._service = service
        self._store = service.store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _publish(self, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        desc = (after or {}).get("desc")
        if desc is None or deployment_state(desc) == deployment_state((before or {}).get("desc")):
            return
        self._service.events.emit(ENDPOINT_DEPLOYMENT_STATE_CHANGE, desc["EndpointArn"], endpoint_detail(desc))

    def put(self, kind: str, name: str, record: dict[str, Any]) -> None:
        with self._store.lock:
            before = self._store.get(kind, name) if kind == ENDPOINTS else None
            self._store.put(kind, name, record)
        if kind == ENDPOINTS:
            self._publish(before, record)

    def insert_new(self, kind: str, name: str, record: dict[str, Any]) -> bool:
        created = self._store.insert_new(kind, name, record)
        if created and kind == ENDPOINTS:
            self._publish(None, record)
        return created

    def update(self, kind: str, name: str, change: Any) -> dict[str, Any]:
        if kind != ENDPOINTS:
            return self._store.update(kind, name, change)
        with self._store.lock:
            before = self._store.get(kind, name)
            after = self._store.update(kind, name, change)
        self._publish(before, after)
        return after
