"""Fault injection for tests: failing jobs, slow job starts, throttled actions and endpoint updates that fail.

Configured over HTTP with ``POST /_devstack/faults`` and cleared with ``DELETE /_devstack/faults``::

    {
      "fail_jobs":  [{"name_prefix": "train-", "count": 1, "reason": "InternalServerError: injected"}],
      "delay_jobs": [{"name_prefix": "proc-", "count": 2, "seconds": 3}],
      "throttle":   [{"action": "CreateTrainingJob", "seconds": 10}],
      "fail_updates": [{"endpoint": "ep", "status": "UpdateRollbackFailed", "count": 1, "reason": "..."}],
      "hold_answers": [{"action": "CreateProcessingJob", "count": 1, "seconds": 60}]
    }

Each key takes one object or a list. A job fault applies to the next ``count`` jobs (training, processing,
tuning children) whose name starts with ``name_prefix``. A throttle answers ``ThrottlingException`` to
every call of ``action`` for ``seconds``, or to its next ``count`` calls (``{"action": ..., "count": 7}``: a
number of refusals that does not depend on the client's timing); ``throttled`` in the answer counts the calls
answered so, per action, since the faults were last cleared. ``calls`` counts, per action, the calls that were
handled (answered or refused by the API, not throttled) since then: how many ``UpdateEndpoint`` a deployment
made, for instance.

An update fault applies to the next ``count`` ``UpdateEndpoint`` deployments of ``endpoint`` that SageMaker
accepts: once the new fleet is up and the first traffic step is active, the deployment ends in ``status``
instead of going on (see :mod:`devstack.sagemaker.hosting`):

- ``Failed``: the update could not complete and the endpoint cannot recover; only ``DeleteEndpoint`` is
  accepted from then on;
- ``UpdateRollbackFailed``: the update failed and so did its rollback; the endpoint serves a mix of the old
  and the new fleet (traffic stays where the failed step left it) until it is updated or deleted.

``reason`` (default: one per status) becomes the endpoint's ``FailureReason``.

A held answer: the next ``count`` calls of ``action`` take effect at once (the job is created), but their
answer is sent ``seconds`` later, or when the faults are cleared. The client waits in the call meanwhile: a
test can stop it there, after a create went through and before the client learnt of it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

DEFAULT_FAIL_REASON = "InternalServerError: We encountered an internal error. Please try again. (injected fault)"
#: The end states an update fault can give an endpoint, with the FailureReason used when none is given.
UPDATE_FAILURE_REASONS = {
    "Failed": (
        "InternalServerError: The endpoint update could not be completed and the endpoint could not be returned to "
        "its previous configuration; delete the endpoint. (injected fault)"
    ),
    "UpdateRollbackFailed": (
        "InternalServerError: The endpoint update failed and its rollback to the previous endpoint configuration "
        "failed too; the endpoint serves instances of both configurations. (injected fault)"
    ),
}


class FaultSpecError(ValueError):
    """A fault specification that cannot be used."""


@dataclass
class JobFault:
    """A fault to apply to one job: a start delay and/or a failure."""

    delay_seconds: float = 0.0
    fail_reason: str | None = None


@dataclass
class _JobRule:
    kind: str
    name_prefix: str
    remaining: int
    seconds: float = 0.0
    reason: str = DEFAULT_FAIL_REASON

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name_prefix": self.name_prefix, "count": self.remaining}
        if self.kind == "delay":
            out["seconds"] = self.seconds
        else:
            out["reason"] = self.reason
        return out


@dataclass
class Hold:
    """How long to hold one answer: until ``seconds`` have passed or ``released`` is set."""

    seconds: float
    released: threading.Event

    def wait(self) -> None:
        self.released.wait(self.seconds)


@dataclass
class UpdateFault:
    """How one endpoint update ends: its ``EndpointStatus`` and ``FailureReason``."""

    status: str
    reason: str


@dataclass
class _UpdateRule:
    endpoint: str
    status: str
    remaining: int
    reason: str

    def describe(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "status": self.status, "count": self.remaining, "reason": self.reason}


def _as_list(value: Any, key: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            raise FaultSpecError(f"'{key}' entries must be JSON objects, got {item!r}")
    return items


def _number(item: dict[str, Any], key: str, field: str, default: float | None = None) -> float:
    value = item.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultSpecError(f"'{key}.{field}' must be a non-negative number, got {value!r}")
    return float(value)


class Faults:
    """The active faults; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_JobRule] = []
        self._throttles: dict[str, float] = {}
        self._throttle_counts: dict[str, int] = {}
        self._throttled: dict[str, int] = {}
        self._calls: dict[str, int] = {}
        self._updates: list[_UpdateRule] = []
        self._holds: dict[str, list[float]] = {}  # action -> [remaining, seconds]
        self._released = threading.Event()

    def configure(self, payload: Any) -> dict[str, Any]:
        """Add the faults of a ``POST /_devstack/faults`` body; return the active faults.

        :raises FaultSpecError: when the body is malformed (nothing is added then).
        """
        if not isinstance(payload, dict):
            raise FaultSpecError("The fault specification must be a JSON object")
        unknown = set(payload) - {"fail_jobs", "delay_jobs", "throttle", "fail_updates", "hold_answers"}
        if unknown:
            raise FaultSpecError(
                f"Unknown fault keys {sorted(unknown)}; use fail_jobs, delay_jobs, throttle, fail_updates, hold_answers"
            )
        rules: list[_JobRule] = []
        for item in _as_list(payload.get("fail_jobs"), "fail_jobs"):
            reason = item.get("reason", DEFAULT_FAIL_REASON)
            if not isinstance(reason, str) or not reason:
                raise FaultSpecError("'fail_jobs.reason' must be a non-empty string")
            rules.append(
                _JobRule(
                    "fail",
                    str(item.get("name_prefix", "")),
                    int(_number(item, "fail_jobs", "count", 1)),
                    reason=reason[:1024],
                )
            )
        for item in _as_list(payload.get("delay_jobs"), "delay_jobs"):
            rules.append(
                _JobRule(
                    "delay",
                    str(item.get("name_prefix", "")),
                    int(_number(item, "delay_jobs", "count", 1)),
                    seconds=_number(item, "delay_jobs", "seconds"),
                )
            )
        throttles: dict[str, float] = {}
        throttle_counts: dict[str, int] = {}
        for item in _as_list(payload.get("throttle"), "throttle"):
            action = item.get("action")
            if not isinstance(action, str) or not action:
                raise FaultSpecError("'throttle.action' must be an action name such as CreateTrainingJob")
            if ("seconds" in item) == ("count" in item):
                raise FaultSpecError(f"throttle of {action}: give either 'seconds' or 'count'")
            if "count" in item:
                throttle_counts[action] = int(_number(item, "throttle", "count"))
            else:
                throttles[action] = time.monotonic() + _number(item, "throttle", "seconds")
        updates: list[_UpdateRule] = []
        for item in _as_list(payload.get("fail_updates"), "fail_updates"):
            endpoint = item.get("endpoint")
            if not isinstance(endpoint, str) or not endpoint:
                raise FaultSpecError("'fail_updates.endpoint' must be an endpoint name")
            status = item.get("status")
            if status not in UPDATE_FAILURE_REASONS:
                raise FaultSpecError(
                    f"'fail_updates.status' must be one of {', '.join(UPDATE_FAILURE_REASONS)}, got {status!r}"
                )
            reason = item.get("reason", UPDATE_FAILURE_REASONS[status])
            if not isinstance(reason, str) or not reason:
                raise FaultSpecError("'fail_updates.reason' must be a non-empty string")
            count = int(_number(item, "fail_updates", "count", 1))
            updates.append(_UpdateRule(endpoint, status, count, reason[:1024]))
        holds: dict[str, list[float]] = {}
        for item in _as_list(payload.get("hold_answers"), "hold_answers"):
            action = item.get("action")
            if not isinstance(action, str) or not action:
                raise FaultSpecError("'hold_answers.action' must be an action name such as CreateProcessingJob")
            holds[action] = [_number(item, "hold_answers", "count", 1), _number(item, "hold_answers", "seconds")]
        with self._lock:
            self._holds.update(holds)
            self._rules.extend(rules)
            self._throttles.update(throttles)
            self._throttle_counts.update(throttle_counts)
            self._updates.extend(updates)
        return self.snapshot()

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._rules.clear()
            self._throttles.clear()
            self._throttle_counts.clear()
            self._throttled.clear()
            self._calls.clear()
            self._updates.clear()
            self._holds.clear()
            self._released.set()  # answers held now go out
            self._released = threading.Event()

    def snapshot(self) -> dict[str, Any]:
        """Return the active faults in the configuration format."""
        with self._lock:
            current = time.monotonic()
            return {
                "fail_jobs": [r.describe() for r in self._rules if r.kind == "fail" and r.remaining > 0],
                "delay_jobs": [r.describe() for r in self._rules if r.kind == "delay" and r.remaining > 0],
                "throttle": [
                    {"action": action, "seconds": round(until - current, 3)}
                    for action, until in self._throttles.items()
                    if until > current
                ]
                + [{"action": action, "count": n} for action, n in self._throttle_counts.items() if n > 0],
                "fail_updates": [u.describe() for u in self._updates if u.remaining > 0],
                "hold_answers": [
                    {"action": action, "count": int(n), "seconds": seconds}
                    for action, (n, seconds) in self._holds.items()
                    if n > 0
                ],
                "throttled": dict(sorted(self._throttled.items())),
                "calls": dict(sorted(self._calls.items())),
            }

    def take_hold(self, action: str) -> Hold | None:
        """Consume the hold, if any, of the answer to a call of ``action`` that has just taken effect."""
        with self._lock:
            rule = self._holds.get(action)
            if not rule or rule[0] <= 0:
                return None
            rule[0] -= 1
            return Hold(rule[1], self._released)

    def count_call(self, action: str) -> None:
        """Count one handled call of ``action`` (see ``calls`` in :meth:`snapshot`)."""
        with self._lock:
            self._calls[action] = self._calls.get(action, 0) + 1

    def is_throttled(self, action: str) -> bool:
        """Return whether ``action`` must answer ``ThrottlingException`` now."""
        with self._lock:
            if self._throttle_counts.get(action, 0) > 0:
                self._throttle_counts[action] -= 1
            else:
                until = self._throttles.get(action)
                if until is None:
                    return False
                if until <= time.monotonic():
                    del self._throttles[action]
                    return False
            self._throttled[action] = self._throttled.get(action, 0) + 1
            return True

    def take_job_fault(self, job_name: str) -> JobFault:
        """Consume the faults that apply to a new job named ``job_name``."""
        fault = JobFault()
        with self._lock:
            for rule in self._rules:
                if rule.remaining <= 0 or not job_name.startswith(rule.name_prefix):
                    continue
                if rule.kind == "delay" and fault.delay_seconds == 0:
                    fault.delay_seconds = rule.seconds
                    rule.remaining -= 1
                elif rule.kind == "fail" and fault.fail_reason is None:
                    fault.fail_reason = rule.reason
                    rule.remaining -= 1
            self._rules = [r for r in self._rules if r.remaining > 0]
        return fault

    def take_update_fault(self, endpoint: str) -> UpdateFault | None:
        """Consume the fault, if any, that ends the ``UpdateEndpoint`` deployment just accepted for ``endpoint``."""
        with self._lock:
            for rule in self._updates:
                if rule.remaining > 0 and rule.endpoint == endpoint:
                    rule.remaining -= 1
                    self._updates = [u for u in self._updates if u.remaining > 0]
                    return UpdateFault(rule.status, rule.reason)
        return None
