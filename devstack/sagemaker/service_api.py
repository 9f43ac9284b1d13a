"""What the SageMaker service's components (job kinds, registry, hosting, console, HTTP server) use of it.

:class:`devstack.sagemaker.service.SageMakerService` builds its components and hands itself to each; the
components type it as :class:`ServiceApi`, so they depend on this module, never on ``service.py``: the
service depends on its components and not the other way round. A component registers its actions with
``service.register_action`` (and HTTP routes with ``service.register_route``) when it is built.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from botocore.model import OperationModel

from devstack.sagemaker.awsio import AwsClients
from devstack.sagemaker.catalogue import ImageEnvironments
from devstack.sagemaker.faults import Faults
from devstack.sagemaker.store import Store

#: ``handler(params) -> response`` of one API action.
Handler = Callable[[dict[str, Any]], dict[str, Any] | None]


class ServiceApi(Protocol):
    """The service as a component sees it (see :class:`devstack.sagemaker.service.SageMakerService`)."""

    state_dir: Path
    aws_endpoint_url: str
    region: str
    account_id: str
    stop_grace_seconds: float
    python: str
    store: Store
    aws: AwsClients
    faults: Faults
    images: ImageEnvironments
    url: str | None
    processing_runtimes: dict[str, Callable[..., list[str]]]
    #: the other components a component may call (training jobs for tuning, processing jobs for monitoring)
    training: Any
    processing: Any
    #: the EventBridge events the service sends (:class:`devstack.sagemaker.events.EventPublisher`)
    events: Any

    def register_action(self, action: str, handler: Handler) -> None: ...

    def register_processing_runtime(self, family: str, resolver: Callable[..., list[str]]) -> None: ...

    def register_route(self, method: str, prefix: str, handler: Callable[[Any, str], None]) -> None: ...

    def http_route(self, method: str, path: str) -> Callable[[Any, str], None] | None: ...

    def on_shutdown(self, hook: Callable[[], None]) -> None: ...

    @property
    def implemented_actions(self) -> list[str]: ...

    def client(self, service: str) -> Any: ...

    def arn(self, resource_type: str, name: str) -> str: ...

    def sandbox(self, kind: str, name: str) -> Path: ...

    def operation(self, action: str) -> OperationModel: ...

    def dispatch(self, action: str, params: dict[str, Any]) -> dict[str, Any]: ...

    def invoke(self, action: str, params: dict[str, Any]) -> dict[str, Any]: ...

    def tags_for(self, arn: str) -> list[dict[str, str]]: ...

    def set_tags(self, arn: str, tags: list[dict[str, str]] | None) -> None: ...

    def delete_tags_of(self, arn: str) -> None: ...


def request_id() -> str:
    """Return a new request id for the ``x-amzn-RequestId`` header."""
    return str(uuid.uuid4())
