"""Server-side request validation against botocore's SageMaker service model.

botocore checks only required members, types and minimums on the client side; SageMaker checks
maximum lengths, patterns, enums and numeric ranges on the server and answers with a
``ValidationException`` whose message lists every failed constraint, for example::

    1 validation error detected: Value 'bad_name' at 'trainingJobName' failed to satisfy constraint:
    Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}

Member paths use the lower-camel-case member names and ``.N.member.`` (1-based) for list items.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from botocore.model import Shape

from devstack.sagemaker.errors import SageMakerError, serialization_error, validation_error

#: AWS reports at most this many constraint failures in one message.
MAX_REPORTED_ERRORS = 10


@functools.lru_cache(maxsize=2048)
def _compile(pattern: str) -> re.Pattern[str] | None:
    """Compile an AWS (Java) pattern, or return None if Python's ``re`` cannot express it."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _render(value: Any) -> str:
    if value is None:
        return "Value null"
    if isinstance(value, str):
        return f"Value '{value}'"
    if isinstance(value, bool):
        return f"Value '{str(value).lower()}'"
    if isinstance(value, int | float):
        return f"Value '{value}'"
    return f"Value '{json.dumps(value, sort_keys=True, default=str)}'"


class _Collector:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, value: Any, path: str, constraint: str) -> None:
        self.errors.append(f"{_render(value)} at '{path}' failed to satisfy constraint: {constraint}")


def _type_error(path: str, expected: str) -> SageMakerError:
    return serialization_error(f"Expected {expected} at '{path or '(root)'}'")


def _check(shape: Shape, value: Any, path: str, out: _Collector) -> None:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            raise _type_error(path, "a JSON object")
        for req in shape.required_members:
            if value.get(req) is None:
                out.add(None, _join(path, req), "Member must not be null")
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                _check(member, value[name], _join(path, name), out)
    elif kind == "list":
        if not isinstance(value, list):
            raise _type_error(path, "a JSON array")
        _length(value, len(value), meta, path, out)
        for index, item in enumerate(value, start=1):
            if item is None:
                continue
            _check(shape.member, item, f"{path}.{index}.member", out)
    elif kind == "map":
        if not isinstance(value, dict):
            raise _type_error(path, "a JSON object")
        _length(value, len(value), meta, path, out)
        for key, item in value.items():
            _check(shape.key, key, f"{path}.{key}.key", out)
            if item is not None:
                _check(shape.value, item, f"{path}.{key}.member", out)
    elif kind == "string":
        if not isinstance(value, str):
            raise _type_error(path, "a string")
        _length(value, len(value), meta, path, out)
        enum = meta.get("enum")
        if enum and value not in enum:
            out.add(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = meta.get("pattern")
        if pattern:
            compiled = _compile(pattern)
            if compiled is not None and compiled.fullmatch(value) is None:
                out.add(value, path, f"Member must satisfy regular expression pattern: {pattern}")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(path, "an integer")
        _range(value, meta, path, out)
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(path, "a number")
        _range(value, meta, path, out)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise _type_error(path, "a boolean")
    elif kind == "timestamp" and (isinstance(value, bool) or not isinstance(value, int | float | str)):
        raise _type_error(path, "a timestamp")


def _join(path: str, name: str) -> str:
    return f"{path}.{_camel(name)}" if path else _camel(name)


def _length(value: Any, size: int, meta: dict[str, Any], path: str, out: _Collector) -> None:
    if "max" in meta and size > meta["max"]:
        out.add(value, path, f"Member must have length less than or equal to {meta['max']}")
    if "min" in meta and size < meta["min"]:
        out.add(value, path, f"Member must have length greater than or equal to {meta['min']}")


def _range(value: float, meta: dict[str, Any], path: str, out: _Collector) -> None:
    if "max" in meta and value > meta["max"]:
        out.add(value, path, f"Member must have value less than or equal to {meta['max']}")
    if "min" in meta and value < meta["min"]:
        out.add(value, path, f"Member must have value greater than or equal to {meta['min']}")


def collect_errors(shape: Shape | None, params: Any) -> list[str]:
    """Return every constraint failure of ``params`` against ``shape`` (empty when valid).

    :param shape: the operation's input shape (None for operations without input).
    :param params: the decoded JSON request body.
    :raises SageMakerError: ``SerializationException`` when a member has the wrong JSON type.
    """
    if shape is None:
        return []
    out = _Collector()
    _check(shape, params, "", out)
    return out.errors


def format_errors(errors: list[str]) -> str:
    """Format constraint failures the way AWS does."""
    shown = errors[:MAX_REPORTED_ERRORS]
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} validation {noun} detected: " + "; ".join(shown)


def validate_request(shape: Shape | None, params: Any) -> None:
    """Raise a ``ValidationException`` listing every failed constraint, if any.

    :param shape: the operation's input shape.
    :param params: the decoded JSON request body.
    :raises SageMakerError: when the request breaks the model's constraints.
    """
    errors = collect_errors(shape, params)
    if errors:
        raise validation_error(format_errors(errors))


def constraint_error(value: Any, path: str, constraint: str) -> SageMakerError:
    """Return a single-constraint ``ValidationException`` in AWS's wording.

    :param value: the offending value.
    :param path: the member path, e.g. ``inputDataConfig.1.member.channelName``.
    :param constraint: the constraint text, e.g. ``Member must not be null``.
    """
    return validation_error(
        f"1 validation error detected: {_render(value)} at '{path}' failed to satisfy constraint: {constraint}"
    )
