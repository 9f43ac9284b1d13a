"""HTTP front end: the JSON 1.1 wire protocol plus the ``/_devstack/*`` control routes.

- ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>`` and a JSON body: the API. Errors are HTTP 400
  with ``{"__type": <code>, "message": <text>}``.
- ``GET /_devstack/health``: 200 ``{"status": "ok", ...}`` once the service answers.
- ``GET|POST|DELETE /_devstack/faults``: see :mod:`devstack.sagemaker.faults`.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from devstack.sagemaker.errors import SageMakerError, serialization_error, unknown_operation
from devstack.sagemaker.faults import FaultSpecError
from devstack.sagemaker.service_api import request_id

if TYPE_CHECKING:
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

JSON_11 = "application/x-amz-json-1.1"
#: the control routes' content type
JSON = "application/json"
TARGET_PREFIX = "SageMaker."
MAX_BODY = 32 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    service: ServiceApi


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "devstack-sagemaker"
    # headers and body go out in two writes: with Nagle's algorithm the body waits for the client's delayed
    # ACK of the headers (about 40 ms on Linux), on every request of a kept-alive connection
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # -- plumbing --------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise serialization_error(f"Request body of {length} bytes is too large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any, content_type: str = JSON_11, request_id: str = "") -> None:
        payload = json.dumps(body, default=str).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if request_id:
            self.send_header("x-amzn-RequestId", request_id)
        self.end_headers()
        self.wfile.write(payload)

    # -- routes ----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._serve("GET")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        """Serve a route an extension registered (e.g. sagemaker-runtime), else a control route, else the API
        (POST) or 404."""
        path = self.path.split("?", 1)[0]
        handler = self.server.service.http_route(method, path)
        if handler is not None:
            handler(self, path)
            return
        control = {
            ("GET", "/_devstack/health"): self._get_health,
            ("GET", "/_devstack/faults"): self._get_faults,
            ("DELETE", "/_devstack/faults"): self._delete_faults,
            ("POST", "/_devstack/faults"): self._post_faults,
        }.get((method, path))
        if control is not None:
            control()
        elif method == "POST":
            self._post_api()
        else:
            if method == "DELETE":
                self._read_body()
            self._send(404, {"message": f"No route for {method} {path}"}, JSON)

    def _get_health(self) -> None:
        service = self.server.service
        actions = service.implemented_actions
        self._send(200, {"status": "ok", "service": "sagemaker", "region": service.region, "actions": actions}, JSON)

    def _get_faults(self) -> None:
        self._send(200, self.server.service.faults.snapshot(), JSON)

    def _delete_faults(self) -> None:
        self._read_body()
        self.server.service.faults.clear()
        self._send(200, self.server.service.faults.snapshot(), JSON)

    def _post_faults(self) -> None:
        try:
            payload = json.loads(self._read_body() or b"{}")
            snapshot = self.server.service.faults.configure(payload)
        except (ValueError, FaultSpecError) as exc:
            self._send(400, {"message": str(exc)}, JSON)
            return
        self._send(200, snapshot, JSON)

    def _post_api(self) -> None:
        rid = request_id()
        target = self.headers.get("X-Amz-Target", "")
        action = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        try:
            body = self._read_body()
            if not action:
                raise unknown_operation(f"Missing or unknown X-Amz-Target header {target!r}")
            try:
                params = json.loads(body) if body.strip() else {}
            except ValueError as exc:
                raise serialization_error(f"Request body is not JSON: {exc}") from exc
            if not isinstance(params, dict):
                raise serialization_error("Request body must be a JSON object")
            result = self.server.service.dispatch(action, params)
        except SageMakerError as exc:
            log.info("%s -> %s: %s", action or target, exc.code, exc.message)
            self._send(exc.status, exc.to_body(), request_id=rid)
            return
        except Exception:
            log.exception("Internal error answering %s", action)
            self._send(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {
                    "__type": "InternalFailure",
                    "message": f"The devstack failed to answer {action}; see its log.",
                },
                request_id=rid,
            )
            return
        try:
            self._send(200, result, request_id=rid)
        except (BrokenPipeError, ConnectionResetError):  # a client gone while its answer was held
            log.info("%s: the client left before its answer was sent", action)


def make_server(service: ServiceApi, host: str, port: int) -> _Server:
    """Bind the HTTP server for ``service`` (call ``serve_forever`` to run it)."""
    server = _Server((host, port), _Handler)
    server.service = service
    return server
