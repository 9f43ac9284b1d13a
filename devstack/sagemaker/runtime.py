"""sagemaker-runtime ``InvokeEndpoint`` (REST-JSON) on the SageMaker service's own port.

``POST /endpoints/{EndpointName}/invocations``: the request body goes to a production variant's model
worker, chosen by the variants' current weights or by the ``X-Amzn-SageMaker-Target-Variant`` header.
The answer carries ``x-Amzn-Invoked-Production-Variant``. A non-2xx answer of the model becomes a
``ModelError`` (HTTP 424) with ``OriginalStatusCode``, ``OriginalMessage`` and ``LogStreamArn``; an
unknown endpoint is a ``ValidationError``.

Every invocation adds per-variant metrics (namespace ``AWS/SageMaker``, once with dimensions ``EndpointName``
and ``VariantName`` and once more with ``EndpointConfigName`` too): ``Invocations``,
``InvocationsPerInstance``, ``Invocation4XXErrors``, ``Invocation5XXErrors``, ``InvocationModelErrors``,
``ModelLatency`` and ``OverheadLatency`` (microseconds). They are batched and sent every second as raw
values (so that CloudWatch can compute percentiles), and sampled requests are captured per the variant's
``DataCaptureConfig``.

Test faults (``POST /_devstack/hosting/faults``, ``DELETE`` clears, ``GET`` lists)::

    {"variant_errors":  [{"endpoint": "ep", "variant": "AllTraffic", "status": 500, "count": 10,
                          "config": "optional-endpoint-config", "message": "injected"}],
     "variant_latency": [{"endpoint": "ep", "variant": "AllTraffic", "seconds": 0.5, "count": 3}]}

``count`` (default: unlimited) bounds how many requests a fault applies to.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from devstack.sagemaker import capture as capturemod
from devstack.sagemaker.capture import CaptureWriter
from devstack.sagemaker.serving import InvocationResult
from devstack.sagemaker.telemetry import MetricBatcher

if TYPE_CHECKING:
    from devstack.sagemaker.deployments import Fleet
    from devstack.sagemaker.hosting import Hosting
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

MAX_PAYLOAD = 6 * 1024 * 1024
NAMESPACE = "AWS/SageMaker"
INVOCATIONS_PREFIX = "/endpoints/"
FAULTS_PATH = "/_devstack/hosting/faults"


class InvokeError(Exception):
    """A sagemaker-runtime error response."""

    def __init__(self, code: str, status: int, message: str, **members: Any) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.members = members

    def body(self) -> dict[str, Any]:
        out = {"Message": self.message, "message": self.message}
        out.update(self.members)
        return out


@dataclass
class _Fault:
    kind: str
    endpoint: str
    variant: str | None
    config: str | None
    remaining: int | None
    status: int = 500
    seconds: float = 0.0
    message: str = "Injected fault: the model container failed."

    def matches(self, endpoint: str, variant: str, config: str) -> bool:
        return (
            self.endpoint == endpoint
            and (self.variant is None or self.variant == variant)
            and (self.config is None or self.config == config)
            and (self.remaining is None or self.remaining > 0)
        )

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"endpoint": self.endpoint}
        if self.variant:
            out["variant"] = self.variant
        if self.config:
            out["config"] = self.config
        if self.remaining is not None:
            out["count"] = self.remaining
        if self.kind == "error":
            out.update({"status": self.status, "message": self.message})
        else:
            out["seconds"] = self.seconds
        return out


class VariantFaults:
    """Injected per-variant errors and latency (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []

    def configure(self, payload: Any) -> dict[str, Any]:
        """Add faults; raise ValueError naming what is malformed (nothing is added then)."""
        if not isinstance(payload, dict):
            raise ValueError("The fault specification must be a JSON object")
        unknown = set(payload) - {"variant_errors", "variant_latency"}
        if unknown:
            raise ValueError(f"Unknown fault keys {sorted(unknown)}; use variant_errors, variant_latency")
        faults: list[_Fault] = []
        for key, kind in (("variant_errors", "error"), ("variant_latency", "latency")):
            items = payload.get(key) or []
            for item in items if isinstance(items, list) else [items]:
                if not isinstance(item, dict) or not isinstance(item.get("endpoint"), str):
                    raise ValueError(f"'{key}' entries must be objects with an 'endpoint' name")
                count = item.get("count")
                if count is not None and (not isinstance(count, int) or count < 0):
                    raise ValueError(f"'{key}.count' must be a non-negative integer")
                fault = _Fault(kind, item["endpoint"], item.get("variant"), item.get("config"), count)
                if kind == "error":
                    status = item.get("status", 500)
                    if not isinstance(status, int) or not 400 <= status <= 599:
                        raise ValueError("'variant_errors.status' must be an HTTP error status (400-599)")
                    fault.status = status
                    fault.message = str(item.get("message") or fault.message)
                else:
                    seconds = item.get("seconds")
                    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                        raise ValueError("'variant_latency.seconds' must be a non-negative number")
                    fault.seconds = float(seconds)
                faults.append(fault)
        with self._lock:
            self._faults.extend(faults)
        return self.snapshot()

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            live = [f for f in self._faults if f.remaining is None or f.remaining > 0]
            return {
                "variant_errors": [f.describe() for f in live if f.kind == "error"],
                "variant_latency": [f.describe() for f in live if f.kind == "latency"],
            }

    def take(self, endpoint: str, variant: str, config: str) -> tuple[float, _Fault | None]:
        """Consume the faults of one request: (added latency, error fault or None)."""
        latency = 0.0
        error: _Fault | None = None
        with self._lock:
            for fault in self._faults:
                if not fault.matches(endpoint, variant, config):
                    continue
                if fault.kind == "latency" and latency == 0.0:
                    latency = fault.seconds
                elif fault.kind == "error" and error is None:
                    error = fault
                else:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
        return latency, error


class Runtime:
    """InvokeEndpoint, its metrics and its data capture.

    :param service: the owning service.
    :param hosting: the hosting component that owns the endpoints.
    """

    def __init__(self, service: ServiceApi, hosting: Hosting) -> None:
        self.service = service
        self.hosting = hosting
        self.metrics = MetricBatcher(lambda: service.client("cloudwatch"))
        self.capture = CaptureWriter(lambda: service.client("s3"))
        self.faults = VariantFaults()

    def register(self) -> None:
        """Serve the runtime and fault routes on the service's port."""
        self.service.register_route("POST", INVOCATIONS_PREFIX, self.handle_invocation)
        for method in ("GET", "POST", "DELETE"):
            self.service.register_route(method, FAULTS_PATH, self.handle_faults)

    # -- HTTP ------------------------------------------------------------------------------------

    @staticmethod
    def _read(request: Any) -> bytes:
        length = int(request.headers.get("Content-Length") or 0)
        return request.rfile.read(length) if length else b""

    @staticmethod
    def _send(request: Any, status: int, body: bytes, headers: dict[str, str]) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        request.end_headers()
        request.wfile.write(body)

    def _send_error(self, request: Any, error: InvokeError) -> None:
        body = json.dumps(error.body()).encode("utf-8")
        self._send(
            request,
            error.status,
            body,
            {"Content-Type": "application/json", "x-amzn-ErrorType": f"{error.code}:http://internal.amazon.com/"},
        )

    def handle_faults(self, request: Any, path: str) -> None:
        """``GET|POST|DELETE /_devstack/hosting/faults``."""
        body = self._read(request)
        if request.command == "POST":
            try:
                snapshot = self.faults.configure(json.loads(body or b"{}"))
            except ValueError as exc:
                self._send(
                    request, 400, json.dumps({"message": str(exc)}).encode(), {"Content-Type": "application/json"}
                )
                return
        else:
            if request.command == "DELETE":
                self.faults.clear()
            snapshot = self.faults.snapshot()
        self._send(request, 200, json.dumps(snapshot).encode(), {"Content-Type": "application/json"})

    def handle_invocation(self, request: Any, path: str) -> None:
        """``POST /endpoints/{EndpointName}/invocations``."""
        parts = path[len(INVOCATIONS_PREFIX) :].split("/")
        try:
            body = self._read(request)
            if len(parts) != 2 or parts[1] != "invocations":
                raise InvokeError("UnknownOperationException", 404, f"No route for POST {path}")
            endpoint = unquote(parts[0])
            status, payload, headers = self.invoke(
                endpoint,
                body,
                content_type=request.headers.get("Content-Type"),
                accept=request.headers.get("Accept"),
                custom_attributes=request.headers.get("X-Amzn-SageMaker-Custom-Attributes"),
                target_variant=request.headers.get("X-Amzn-SageMaker-Target-Variant"),
                inference_id=request.headers.get("X-Amzn-SageMaker-Inference-Id"),
            )
        except InvokeError as error:
            self._send_error(request, error)
            return
        except Exception:
            log.exception("InvokeEndpoint failed inside the devstack")
            self._send_error(
                request,
                InvokeError(
                    "InternalFailure",
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    "The devstack failed to invoke the endpoint; see its log.",
                ),
            )
            return
        self._send(request, status, payload, headers)

    # -- invocation ------------------------------------------------------------------------------

    def _log_stream_arn(self, endpoint: str) -> str:
        return (
            f"arn:aws:logs:{self.service.region}:{self.service.account_id}:log-group:"
            f"/aws/sagemaker/Endpoints/{endpoint}"
        )

    def invoke(
        self,
        endpoint: str,
        body: bytes,
        *,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None = None,
        target_variant: str | None = None,
        inference_id: str | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        """Serve one invocation; return (HTTP status, body, headers).

        :raises InvokeError: the runtime error to answer.
        """
        started = time.perf_counter()
        record = self.service.store.get("endpoints", endpoint)
        runtime = self.hosting.runtime(endpoint)
        if record is None or runtime is None:
            raise InvokeError(
                "ValidationError", 400, f"Endpoint {endpoint} of account {self.service.account_id} not found."
            )
        status = record["desc"]["EndpointStatus"]
        # UpdateRollbackFailed: the update and its rollback failed, the endpoint serves a mix of both configs
        if status not in ("InService", "Updating", "UpdateRollbackFailed"):
            raise InvokeError(
                "ValidationError",
                400,
                f"Endpoint {endpoint} of account {self.service.account_id} is not in service (status {status}).",
            )
        if len(body) > MAX_PAYLOAD:
            raise InvokeError(
                "ValidationError",
                400,
                f"Request body of {len(body)} bytes exceeds the InvokeEndpoint limit of {MAX_PAYLOAD} bytes.",
            )
        if runtime.warming:
            raise InvokeError(
                "ServiceUnavailable", 503, f"Endpoint {endpoint} is restarting its model containers; retry shortly."
            )
        fleet = runtime.choose(target_variant)
        for _ in range(3):
            # a fleet whose traffic just moved away (rollback, end of a deployment) drains: choose again
            if fleet is None or fleet.enter():
                break
            fleet = runtime.choose(target_variant)
        else:
            fleet = None
        if fleet is None:
            if target_variant is not None:
                raise InvokeError(
                    "ValidationError",
                    400,
                    f"Variant {target_variant} is not a production variant of endpoint {endpoint} "
                    f"(variants: {', '.join(sorted(runtime.variant_names())) or 'none'}).",
                )
            raise InvokeError(
                "ValidationError", 400, f"Endpoint {endpoint} has no production variant with a positive weight."
            )
        try:
            latency, fault = self.faults.take(endpoint, fleet.name, fleet.config_name)
            model_started = time.perf_counter()
            if fault is not None:
                result = InvocationResult(fault.status, fault.message.encode(), "text/plain", 0)
            else:
                assert fleet.worker is not None
                result = fleet.worker.invoke(body, content_type, accept, custom_attributes)
        finally:
            fleet.leave()
        if latency or fault is not None:
            # an injected latency slows the model's answer down (it is computed first, so a request in flight
            # when its fleet is stopped, by a rollback for instance, still gets it), as a slow model would
            time.sleep(latency)
            result = InvocationResult(
                result.status, result.body, result.content_type, int((time.perf_counter() - model_started) * 1e6)
            )
        total_us = int((time.perf_counter() - started) * 1e6)
        self._record_metrics(fleet, result, total_us)
        if 200 <= result.status < 300:
            self._capture(endpoint, fleet, body, content_type, result, inference_id, custom_attributes)
            headers = {
                "Content-Type": result.content_type,
                "x-Amzn-Invoked-Production-Variant": fleet.name,
            }
            if custom_attributes:
                headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
            return 200, result.body, headers
        raise self._model_error(endpoint, fleet, result)

    def _model_error(self, endpoint: str, fleet: Fleet, result: InvocationResult) -> InvokeError:
        original = result.body.decode("utf-8", errors="replace")
        kind = "client" if 400 <= result.status < 500 else "server"
        region = self.service.region
        message = (
            f'Received {kind} error ({result.status}) from primary with message "{original}". See '
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:group="
            f"/aws/sagemaker/Endpoints/{endpoint} in account {self.service.account_id} for more information."
        )
        return InvokeError(
            "ModelError",
            424,
            message,
            ErrorCode="CLIENT_ERROR_FROM_MODEL" if kind == "client" else "INTERNAL_FAILURE_FROM_MODEL",
            OriginalStatusCode=result.status,
            OriginalMessage=original,
            LogStreamArn=self._log_stream_arn(endpoint),
        )

    def _record_metrics(self, fleet: Fleet, result: InvocationResult, total_us: int) -> None:
        # CloudWatch matches a metric only on its exact dimension set, so each datapoint is sent twice, as
        # SageMaker publishes it: per variant (EndpointName, VariantName: what alarms on the endpoint watch,
        # old and new fleet together) and per fleet (plus EndpointConfigName: what alarms on one fleet of a
        # deployment watch). The devstack publishes the per-fleet set always, SageMaker from a deployment on.
        variant = {"EndpointName": fleet.endpoint, "VariantName": fleet.name}
        dimension_sets = [variant, {**variant, "EndpointConfigName": fleet.config_name}]
        error4 = 1.0 if 400 <= result.status < 500 else 0.0
        error5 = 1.0 if result.status >= 500 or result.status == 0 else 0.0
        model_error = 1.0 if not 200 <= result.status < 300 else 0.0
        overhead = max(0, total_us - result.model_latency_us)
        stamp = time.time()
        for dims in dimension_sets:
            add = self.metrics.add
            add(NAMESPACE, dims, "Invocations", 1.0, "None", stamp)
            add(NAMESPACE, dims, "InvocationsPerInstance", 1.0 / max(fleet.instance_count, 1), "None", stamp)
            add(NAMESPACE, dims, "Invocation4XXErrors", error4, "None", stamp)
            add(NAMESPACE, dims, "Invocation5XXErrors", error5, "None", stamp)
            add(NAMESPACE, dims, "InvocationModelErrors", model_error, "None", stamp)
            add(NAMESPACE, dims, "ModelLatency", float(result.model_latency_us), "Microseconds", stamp)
            add(NAMESPACE, dims, "OverheadLatency", float(overhead), "Microseconds", stamp)

    def _capture(
        self,
        endpoint: str,
        fleet: Fleet,
        body: bytes,
        content_type: str | None,
        result: InvocationResult,
        inference_id: str | None,
        custom_attributes: str | None,
    ) -> None:
        config = fleet.capture
        if not capturemod.is_enabled(config) or config is None or not capturemod.should_sample(config):
            return
        when = dt.datetime.now(dt.UTC)
        record = capturemod.build_record(
            config,
            request_body=body,
            request_content_type=content_type,
            response_body=result.body,
            response_content_type=result.content_type,
            inference_time=when,
            inference_id=inference_id,
            custom_attributes=custom_attributes,
        )
        self.capture.add(config["DestinationS3Uri"], endpoint, fleet.name, record, when)
