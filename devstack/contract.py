"""Response contract checks against botocore's service models.

botocore validates requests but not responses: a service that returns an unknown member, a wrong type
or a value outside an enum is parsed silently (unknown members are dropped, wrong types pass through).
This module walks an operation's OUTPUT shape over the raw JSON body and reports every deviation:

- members the shape does not define;
- values of the wrong JSON type (timestamps are epoch numbers in the JSON protocols);
- string values outside the member's enum;
- required members that are missing.

Use it directly::

    problems = check_output(service_model.operation_model("DescribeTrainingJob"), body)

or attach a :class:`ContractRecorder` to a boto3 client so that every response is checked::

    recorder = ContractRecorder()
    recorder.attach(sagemaker_client)
    ...
    recorder.assert_clean()
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from botocore.model import OperationModel, Shape


@dataclass(frozen=True)
class Violation:
    """One deviation of a response from its output shape.

    :param operation: the operation name.
    :param path: where in the body, e.g. ``SecondaryStatusTransitions[0].Status``.
    :param problem: what is wrong.
    """

    operation: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.operation}: {self.path or '(body)'}: {self.problem}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _walk(shape: Shape, value: Any, path: str, out: list[tuple[str, str]]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            out.append((path, f"expected an object ({shape.name}), got {type(value).__name__}"))
            return
        members = shape.members
        for name, item in value.items():
            member_path = f"{path}.{name}" if path else name
            if name not in members:
                out.append((member_path, f"not a member of {shape.name}"))
                continue
            if item is None:
                out.append((member_path, "is null"))
                continue
            _walk(members[name], item, member_path, out)
        for name in shape.required_members:
            if name not in value:
                out.append((f"{path}.{name}" if path else name, f"required member of {shape.name} is missing"))
    elif kind == "list":
        if not isinstance(value, list):
            out.append((path, f"expected a list ({shape.name}), got {type(value).__name__}"))
            return
        for index, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{index}]", out)
    elif kind == "map":
        if not isinstance(value, dict):
            out.append((path, f"expected a map ({shape.name}), got {type(value).__name__}"))
            return
        for key, item in value.items():
            if not isinstance(key, str):
                out.append((f"{path}[{key!r}]", "map key is not a string"))
            _walk(shape.value, item, f"{path}[{key!r}]", out)
    elif kind == "string":
        if not isinstance(value, str):
            out.append((path, f"expected a string ({shape.name}), got {type(value).__name__}"))
            return
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            out.append((path, f"{value!r} is not one of {shape.name} {enum}"))
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            out.append((path, f"expected an integer ({shape.name}), got {value!r}"))
    elif kind in ("float", "double"):
        if not _is_number(value):
            out.append((path, f"expected a number ({shape.name}), got {value!r}"))
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append((path, f"expected a boolean ({shape.name}), got {value!r}"))
    elif kind == "timestamp":
        if not _is_number(value):
            out.append((path, f"expected an epoch-seconds timestamp ({shape.name}), got {value!r}"))
    elif kind == "blob" and not isinstance(value, str):
        out.append((path, f"expected a base64 string ({shape.name}), got {type(value).__name__}"))


def check_output(operation: OperationModel, body: dict[str, Any] | bytes | str) -> list[Violation]:
    """Check a JSON response body against an operation's output shape.

    :param operation: botocore's operation model, e.g.
        ``botocore.session.get_session().get_service_model("sagemaker").operation_model("DescribeModel")``.
    :param body: the raw JSON (bytes or str) or the decoded object.
    :return: every violation found (empty when the body conforms).
    """
    if isinstance(body, bytes | str):
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        body = json.loads(text) if text.strip() else {}
    shape = operation.output_shape
    if shape is None:
        if body:
            return [Violation(operation.name, "", f"operation has no output but the body is {body!r}")]
        return []
    found: list[tuple[str, str]] = []
    _walk(shape, body, "", found)
    return [Violation(operation.name, path, problem) for path, problem in found]


@dataclass
class ContractRecorder:
    """Checks every successful response a boto3 client receives, via botocore's ``after-call`` event.

    Checked operations are counted in :attr:`checked` (operation name -> responses checked).
    """

    violations: list[Violation] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attach(self, client: Any) -> None:
        """Register on ``client`` so that each of its responses is checked."""
        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"after-call.{service_id}", self._after_call)

    def _after_call(self, http_response: Any, parsed: Any, model: OperationModel, **_: Any) -> None:
        if http_response is None or http_response.status_code >= 300:
            return
        found = check_output(model, http_response.content or b"")
        with self._lock:
            self.violations.extend(found)
            self.checked[model.name] = self.checked.get(model.name, 0) + 1

    def assert_clean(self) -> None:
        """Raise ``AssertionError`` listing every violation recorded so far."""
        if self.violations:
            listing = "\n".join(f"  - {v}" for v in self.violations)
            raise AssertionError(f"{len(self.violations)} response contract violation(s):\n{listing}")
