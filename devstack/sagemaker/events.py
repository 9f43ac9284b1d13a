"""SageMaker's EventBridge events, sent to the local EventBridge (moto) as SageMaker sends them to AWS's.

SageMaker puts an event on the account's default event bus when a resource changes state; rules route it to
their targets (an SQS queue, here and on AWS). The service sends two kinds:

- ``SageMaker Model Package State Change`` when a model package is created and when an update changes its
  approval status, lifecycle stage or package status (``detail`` mirrors ``DescribeModelPackage``);
- ``SageMaker Endpoint Deployment State Change`` when an endpoint's status changes while it is created,
  updated (blue/green or stepwise), rolled back or deleted (``detail``: name, ARN, config, variants, status,
  pending deployment, failure reason).

Like AWS, delivery is best-effort and asynchronous: events are queued and sent with ``PutEvents`` by one
background thread, in order; a failure to send is logged and counted, never an error of the API call that
caused it. A consumer must tolerate an event delivered more than once (AWS documents that SageMaker may
send several events for one change): :meth:`EventPublisher.resend_last` sends the last event of a resource
again, which is how the devstack reproduces that (``POST /_devstack/events/resend`` with
``{"ResourceArn": ...}``; ``GET /_devstack/events`` answers the counts of events sent, failed and dropped).

``DEVSTACK_SAGEMAKER_EVENTS=0`` switches sending off (events are then dropped and counted as such).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import threading
from typing import TYPE_CHECKING, Any

from devstack.sagemaker.common import read_json, send_json

if TYPE_CHECKING:
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

SOURCE = "aws.sagemaker"
MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
ENDPOINT_DEPLOYMENT_STATE_CHANGE = "SageMaker Endpoint Deployment State Change"
ENABLED_VAR = "DEVSTACK_SAGEMAKER_EVENTS"

#: DescribeModelPackage members whose change is a state change of the package
PACKAGE_STATE_MEMBERS = ("ModelApprovalStatus", "ModelLifeCycle", "ModelPackageStatus")
#: DescribeEndpoint members an endpoint event carries
ENDPOINT_MEMBERS = (
    "EndpointName",
    "EndpointArn",
    "EndpointConfigName",
    "ProductionVariants",
    "EndpointStatus",
    "FailureReason",
    "PendingDeploymentSummary",
    "CreationTime",
    "LastModifiedTime",
)
_TIME_MEMBERS = {"CreationTime", "LastModifiedTime", "StartTime"}
EVENTS_PATH = "/_devstack/events"
RESEND_PATH = "/_devstack/events/resend"
_STOP = object()


def iso_time(value: Any) -> Any:
    """An epoch-seconds timestamp as EventBridge writes times (``2021-02-24T17:00:14Z``); other values unchanged."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def json_detail(value: Any, key: str | None = None) -> Any:
    """A description made JSON-safe for an event ``detail`` (timestamps as ISO 8601 UTC)."""
    if isinstance(value, dict):
        return {k: json_detail(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [json_detail(v) for v in value]
    if key in _TIME_MEMBERS:
        return iso_time(value)
    return value


def model_package_detail(desc: dict[str, Any]) -> dict[str, Any]:
    """The ``detail`` of a model package event: the package's description."""
    return json_detail(desc)


def endpoint_detail(desc: dict[str, Any]) -> dict[str, Any]:
    """The ``detail`` of an endpoint deployment event."""
    return json_detail({k: desc[k] for k in ENDPOINT_MEMBERS if k in desc})


def package_state_changed(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """Whether an update changed the approval status, the lifecycle stage or the status of a package."""
    if before is None:
        return True
    return any(before.get(member) != after.get(member) for member in PACKAGE_STATE_MEMBERS)


class EventPublisher:
    """Sends the service's events to the local EventBridge (``PutEvents`` on the default bus).

    :param service: the owning service (region, account and the AWS endpoint's clients).
    :param enabled: send events (default: ``$DEVSTACK_SAGEMAKER_EVENTS`` is not ``0``).
    """

    def __init__(self, service: ServiceApi, enabled: bool | None = None) -> None:
        self.service = service
        self.enabled = os.environ.get(ENABLED_VAR, "1") != "0" if enabled is None else enabled
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last: dict[str, dict[str, Any]] = {}

    def emit(self, detail_type: str, resource_arn: str, detail: dict[str, Any]) -> None:
        """Queue one event about ``resource_arn``; never raises.

        :param detail_type: e.g. :data:`MODEL_PACKAGE_STATE_CHANGE`.
        :param resource_arn: the resource the event is about (the event's ``resources``).
        :param detail: the event's ``detail`` (JSON-safe).
        """
        entry = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Resources": [resource_arn],
            "Detail": json.dumps(detail, sort_keys=True, default=str),
            "Time": dt.datetime.now(dt.UTC),
        }
        with self._lock:
            self._last[resource_arn] = entry
            if not self.enabled:
                self.dropped += 1
                return
            self._ensure_thread()
        self._queue.put(entry)

    def resend_last(self, resource_arn: str) -> bool:
        """Send the last event of ``resource_arn`` once more (a duplicate delivery); whether there was one."""
        with self._lock:
            entry = self._last.get(resource_arn)
            if entry is None or not self.enabled:
                return False
            self._ensure_thread()
        self._queue.put(dict(entry))
        return True

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="sagemaker-events", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            try:
                if entry is _STOP:
                    return
                self._send(entry)
            finally:
                self._queue.task_done()

    def _send(self, entry: dict[str, Any]) -> None:
        try:
            answer = self.service.client("events").put_events(Entries=[entry])
        except Exception as exc:  # best-effort, as on AWS: the API call that caused it has already answered
            self.failed += 1
            log.warning("Could not send the %s event of %s: %s", entry["DetailType"], entry["Resources"][0], exc)
            return
        failed = [e for e in answer.get("Entries", []) if e.get("ErrorCode")]
        if failed:
            self.failed += 1
            log.warning(
                "EventBridge refused the %s event of %s: %s %s",
                entry["DetailType"],
                entry["Resources"][0],
                failed[0].get("ErrorCode"),
                failed[0].get("ErrorMessage"),
            )
            return
        self.sent += 1
        log.info("Sent %s of %s", entry["DetailType"], entry["Resources"][0])

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was sent or given up on; whether that happened within ``timeout``."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def counts(self) -> dict[str, int]:
        """Events sent, failed to send and dropped (sending switched off)."""
        return {"sent": self.sent, "failed": self.failed, "dropped": self.dropped}

    def register(self) -> None:
        """Serve the control routes (counts, and sending an event again)."""
        self.service.register_route("POST", RESEND_PATH, self.handle_resend)
        self.service.register_route("GET", EVENTS_PATH, self.handle_counts)

    def handle_counts(self, request: Any, path: str) -> None:
        """``GET /_devstack/events``: the counts, once every queued event was sent or given up on."""
        flushed = self.flush()
        send_json(request, 200, {**self.counts(), "flushed": flushed})

    def handle_resend(self, request: Any, path: str) -> None:
        """``POST /_devstack/events/resend`` ``{"ResourceArn"}``: send that resource's last event again."""
        try:
            arn = read_json(request)["ResourceArn"]
        except (KeyError, TypeError, ValueError) as exc:
            message = f"Give ResourceArn, the resource whose last event to send again: {exc}"
            send_json(request, 400, {"message": message})
            return
        if not self.resend_last(arn):
            send_json(request, 404, {"message": f"No event was sent about {arn} (or sending is switched off)."})
            return
        send_json(request, 200, {"ResourceArn": arn, "flushed": self.flush()})

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout``), then stop the sending thread."""
        if self._thread is not None and self._thread.is_alive():
            self.flush(timeout)
            self._queue.put(_STOP)
            self._thread.join(timeout)
