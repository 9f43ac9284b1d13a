"""The SageMaker-compatible local service: action dispatch, state, jobs and the HTTP server.

Construct it in-process (tests) or run it with ``python -m devstack.sagemaker`` (the stack)::

    service = SageMakerService(state_dir, aws_endpoint_url="http://127.0.0.1:5000", region="us-east-1")
    host, port = service.start(port=0)
    ...
    service.stop()
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel

from devstack.sagemaker import console, processing, registry, training, tuning
from devstack.sagemaker.awsio import AwsClients
from devstack.sagemaker.catalogue import ImageEnvironments
from devstack.sagemaker.environments import EnvironmentCache
from devstack.sagemaker.errors import (
    SageMakerError,
    resource_not_found,
    throttling,
    unknown_operation,
    validation_error,
)
from devstack.sagemaker.events import EventPublisher
from devstack.sagemaker.faults import Faults
from devstack.sagemaker.server import make_server
from devstack.sagemaker.service_api import Handler, request_id
from devstack.sagemaker.store import Store
from devstack.sagemaker.validation import validate_request

log = logging.getLogger(__name__)

#: The account id the service reports in ARNs (the local AWS endpoint's default account).
DEFAULT_ACCOUNT_ID = "123456789012"

#: Module-name prefix of optional extensions under the ``devstack`` package that add actions.
EXTENSION_PREFIX = "sagemaker_"


class SageMakerService:
    """A local SageMaker control plane that really runs jobs as subprocesses.

    :param state_dir: where records, job sandboxes and logs are kept (created if missing).
    :param aws_endpoint_url: the local AWS endpoint (S3, CloudWatch Logs) the service uses as a client.
    :param region: the AWS region reported in ARNs and used for clients.
    :param account_id: the account id reported in ARNs.
    :param stop_grace_seconds: seconds between the stop signal and SIGKILL when a job is stopped.
    :param python: the interpreter that runs framework-image jobs (default: this process's).
    :param load_extensions: whether to load ``devstack.sagemaker_*`` extension modules.
    :param image_cache: where image environments are cached (default ``$DEVSTACK_IMAGE_CACHE``, else
        ``<repository>/.devstack/images``).
    :param images_dir: the project's own image Dockerfiles (default ``<repository>/include/images``).
    """

    def __init__(
        self,
        state_dir: str | Path,
        aws_endpoint_url: str,
        region: str = "us-east-1",
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        stop_grace_seconds: float = 120.0,
        python: str | None = None,
        load_extensions: bool = True,
        image_cache: str | Path | None = None,
        images_dir: str | Path | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.aws_endpoint_url = aws_endpoint_url
        self.region = region
        self.account_id = account_id
        self.stop_grace_seconds = stop_grace_seconds
        self.python = python or sys.executable
        self.model: ServiceModel = botocore.session.get_session().get_service_model("sagemaker")
        self.store = Store(self.state_dir)
        self.aws = AwsClients(aws_endpoint_url, region)
        self.faults = Faults()
        self.url: str | None = None
        self._handlers: dict[str, Handler] = {}
        self._routes: list[tuple[str, str, Callable[[Any, str], None]]] = []
        self._shutdown_hooks: list[Callable[[], None]] = []
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.processing_runtimes: dict[str, Callable[..., list[str]]] = {}
        self.images = ImageEnvironments(
            EnvironmentCache(Path(image_cache) if image_cache else None, self.python),
            account_id,
            Path(images_dir) if images_dir else None,
        )

        self.events = EventPublisher(self)
        self.events.register()
        self.training = training.TrainingJobs(self)
        self.processing = processing.ProcessingJobs(self)
        self.tuning = tuning.TuningJobs(self)
        self.registry = registry.Registry(self)
        for component in (self.training, self.processing, self.tuning, self.registry):
            component.register()
        console.register(self)
        if load_extensions:
            self._load_extensions()
        self.recover()

    # -- wiring ------------------------------------------------------------------------------------

    def register_action(self, action: str, handler: Handler) -> None:
        """Serve ``action`` (e.g. ``CreateEndpoint``) with ``handler(params) -> response``.

        :raises ValueError: when botocore's model has no such operation.
        """
        if action not in self.model.operation_names:
            raise ValueError(f"SageMaker has no operation named {action!r}")
        self._handlers[action] = handler

    def register_processing_runtime(self, family: str, resolver: Callable[..., list[str]]) -> None:
        """Run processing jobs whose image family is ``family`` (see :mod:`devstack.sagemaker.images`).

        :param family: e.g. ``model-monitor``.
        :param resolver: ``resolver(image, app_specification, mapper) -> argv``.
        """
        self.processing_runtimes[family] = resolver

    def register_route(self, method: str, prefix: str, handler: Callable[[Any, str], None]) -> None:
        """Serve HTTP ``method`` requests whose path starts with ``prefix`` with ``handler(request, path)``.

        The handler gets the ``BaseHTTPRequestHandler`` and writes the whole response itself.
        """
        self._routes.append((method, prefix, handler))

    def http_route(self, method: str, path: str) -> Callable[[Any, str], None] | None:
        """Return the handler registered for a request, or None."""
        for route_method, prefix, handler in self._routes:
            if route_method == method and path.startswith(prefix):
                return handler
        return None

    def on_shutdown(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` when the service stops."""
        self._shutdown_hooks.append(hook)

    def _load_extensions(self) -> None:
        import devstack

        for info in pkgutil.iter_modules(devstack.__path__):
            if not info.name.startswith(EXTENSION_PREFIX):
                continue
            module = importlib.import_module(f"devstack.{info.name}")
            register = getattr(module, "register_sagemaker_extension", None)
            if callable(register):
                log.info("Loading SageMaker extension devstack.%s", info.name)
                register(self)

    @property
    def implemented_actions(self) -> list[str]:
        """The actions this service answers."""
        return sorted(self._handlers)

    def client(self, service: str) -> Any:
        """Return a shared boto3 client of the local AWS endpoint (clients are thread-safe)."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self.aws.client(service)
            return self._clients[service]

    # -- ARNs ----------------------------------------------------------------------------------------

    def arn(self, resource_type: str, name: str) -> str:
        """Return ``arn:aws:sagemaker:<region>:<account>:<resource_type>/<name>``."""
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{resource_type}/{name}"

    def sandbox(self, kind: str, name: str) -> Path:
        """Return the sandbox directory of a job."""
        return self.state_dir / "sandboxes" / kind / name

    # -- dispatch --------------------------------------------------------------------------------

    def operation(self, action: str) -> OperationModel:
        """Return botocore's operation model of ``action``."""
        return self.model.operation_model(action)

    def dispatch(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Answer one API call as the HTTP layer does: throttling faults, call count, validation, handler, held
        answers.

        :raises SageMakerError: the API error to return.
        """
        if self.faults.is_throttled(action):
            raise throttling()
        self.faults.count_call(action)
        answer = self.invoke(action, params)
        if (hold := self.faults.take_hold(action)) is not None:
            hold.wait()
        return answer

    def invoke(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Validate and handle one call (no fault injection): the in-process API for extensions.

        :raises SageMakerError: the API error to return.
        """
        handler = self._handlers.get(action)
        if handler is None:
            if action in self.model.operation_names:
                raise unknown_operation(f"The devstack SageMaker service does not implement {action}.")
            raise unknown_operation(f"Unknown operation {action}.")
        validate_request(self.operation(action).input_shape, params)
        return handler(params) or {}

    # -- lifecycle -------------------------------------------------------------------------------

    def recover(self) -> None:
        """Mark jobs that were running when the service last stopped as Failed (their processes are gone)."""
        self.training.recover()
        self.processing.recover()
        self.tuning.recover()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Serve HTTP in a background thread; return the bound (host, port)."""
        self._server = make_server(self, host, port)
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self._server_thread = threading.Thread(target=self._server.serve_forever, name="sagemaker-http", daemon=True)
        self._server_thread.start()
        log.info("SageMaker service listening on %s (state in %s)", self.url, self.state_dir)
        return str(bound_host), int(bound_port)

    def stop(self) -> None:
        """Stop serving, stop running jobs (they end Failed: the service stopped) and release resources."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._server_thread is not None:
            self._server_thread.join(timeout=10)
            self._server_thread = None
        for hook in self._shutdown_hooks:
            try:
                hook()
            except Exception:
                log.exception("Shutdown hook failed")
        self.tuning.shutdown()
        self.training.shutdown()
        self.processing.shutdown()
        self.events.close()

    # -- tags ------------------------------------------------------------------------------------

    def tags_for(self, arn: str) -> list[dict[str, str]]:
        """Return the tags of a resource ARN."""
        record = self.store.get("tags", arn)
        return record["Tags"] if record else []

    def set_tags(self, arn: str, tags: list[dict[str, str]] | None) -> None:
        """Add or overwrite tags of an ARN (by key)."""
        if not tags:
            return
        with self.store.lock:
            current = {t["Key"]: t["Value"] for t in self.tags_for(arn)}
            for tag in tags:
                current[tag["Key"]] = tag.get("Value", "")
            if len(current) > 50:
                raise validation_error(f"Resource {arn} would have {len(current)} tags; the maximum is 50.")
            self.store.put("tags", arn, {"Tags": [{"Key": k, "Value": v} for k, v in current.items()]})

    def delete_tags_of(self, arn: str) -> None:
        """Forget every tag of a deleted resource."""
        self.store.delete("tags", arn)


__all__ = ["SageMakerError", "SageMakerService", "request_id", "resource_not_found"]
