"""Helpers shared by the action handlers: time, ARNs, list filtering, sorting and pagination."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from devstack.sagemaker.errors import SageMakerError, validation_error


def now() -> float:
    """Return the current time as epoch seconds (the JSON 1.1 timestamp encoding)."""
    return round(time.time(), 3)


def as_epoch(value: Any) -> float | None:
    """Parse a request timestamp (epoch number or ISO 8601 string) to epoch seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise validation_error(f"Cannot parse timestamp {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def encode_token(offset: int) -> str:
    """Encode a pagination offset as an opaque ``NextToken``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    """Decode a ``NextToken`` produced by :func:`encode_token`."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise validation_error("Invalid pagination token given in NextToken.") from exc
    if not isinstance(offset, int) or offset < 0:
        raise validation_error("Invalid pagination token given in NextToken.")
    return offset


def paginate(items: list[Any], params: dict[str, Any], default_max: int = 10) -> tuple[list[Any], str | None]:
    """Return one page of ``items`` and the ``NextToken`` of the next page (None at the end).

    :param items: the filtered, sorted items.
    :param params: the request (``MaxResults``, ``NextToken``).
    :param default_max: page size when ``MaxResults`` is absent.
    """
    offset = decode_token(params.get("NextToken"))
    size = params.get("MaxResults") or default_max
    page = items[offset : offset + size]
    next_offset = offset + size
    return page, (encode_token(next_offset) if next_offset < len(items) else None)


def filter_records(
    records: Iterable[dict[str, Any]],
    params: dict[str, Any],
    *,
    name_key: str,
    status_key: str | None = None,
    creation_key: str = "CreationTime",
    modified_key: str = "LastModifiedTime",
) -> list[dict[str, Any]]:
    """Apply the common List* filters: ``NameContains``, ``StatusEquals``, creation/modification windows."""
    name_contains = params.get("NameContains")
    status = params.get("StatusEquals")
    created_after = as_epoch(params.get("CreationTimeAfter"))
    created_before = as_epoch(params.get("CreationTimeBefore"))
    modified_after = as_epoch(params.get("LastModifiedTimeAfter"))
    modified_before = as_epoch(params.get("LastModifiedTimeBefore"))
    out = []
    for record in records:
        if name_contains and name_contains.lower() not in record[name_key].lower():
            continue
        if status and status_key and record.get(status_key) != status:
            continue
        created = record.get(creation_key, 0)
        if created_after is not None and created <= created_after:
            continue
        if created_before is not None and created >= created_before:
            continue
        modified = record.get(modified_key, created)
        if modified_after is not None and modified <= modified_after:
            continue
        if modified_before is not None and modified >= modified_before:
            continue
        out.append(record)
    return out


def sort_records(
    records: list[dict[str, Any]],
    params: dict[str, Any],
    keys: dict[str, Callable[[dict[str, Any]], Any]],
    default_by: str,
    default_order: str,
) -> list[dict[str, Any]]:
    """Sort by ``SortBy`` (one of ``keys``) and ``SortOrder``; ties keep creation order."""
    by = params.get("SortBy") or default_by
    order = params.get("SortOrder") or default_order
    key = keys[by]
    return sorted(records, key=key, reverse=order == "Descending")


def echoed_members(service: Any, create: str, describe: str) -> list[str]:
    """The members of a ``create`` request that its ``describe`` answer repeats (botocore's model)."""
    describe_members = service.operation(describe).output_shape.members
    return [m for m in service.operation(create).input_shape.members if m in describe_members]


def stop_wanted(status: str, noun: str) -> bool:
    """Whether a Stop* call on a job in ``status`` has anything to do (not when it is Stopping already).

    :raises SageMakerError: ValidationException when the job is neither InProgress nor Stopping.
    """
    if status == "Stopping":
        return False
    if status != "InProgress":
        raise validation_error(f"The request was rejected because the {noun} job is in status {status}.")
    return True


def read_json(request: Any) -> Any:
    """The JSON body of a request to a devstack control route (an empty body reads as ``{}``).

    :raises ValueError: when the body is not JSON.
    """
    length = int(request.headers.get("Content-Length") or 0)
    return json.loads((request.rfile.read(length) if length else b"") or b"{}")


def send_json(request: Any, status: int, body: Any) -> None:
    """Answer a request to a devstack control route with ``body`` as JSON."""
    data = json.dumps(body, default=str).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


def require(record: dict[str, Any] | None, error: SageMakerError) -> dict[str, Any]:
    """Return a stored record, or raise ``error`` (the action's own not-found answer) when there is none."""
    if record is None:
        raise error
    return record


def page_response(
    items: list[dict[str, Any]],
    params: dict[str, Any],
    result_key: str,
    summary: Sequence[str] | Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    default_max: int = 10,
) -> dict[str, Any]:
    """One page of a List* answer: ``{result_key: [...], "NextToken": ...}`` (no token on the last page).

    :param items: the filtered, sorted items.
    :param summary: how an item is shown: the member names to keep, a function, or None for the item itself.
    :param default_max: page size when ``MaxResults`` is absent.
    """
    page, token = paginate(items, params, default_max)
    if summary is None:
        shown = page
    elif callable(summary):
        shown = [summary(item) for item in page]
    else:
        shown = [pick(item, summary) for item in page]
    out: dict[str, Any] = {result_key: shown}
    if token:
        out["NextToken"] = token
    return out


@dataclass(frozen=True)
class Listing:
    """How a SageMaker List* action answers: the common filters, ``SortBy``/``SortOrder``, then one page.

    :param result_key: the answer's member holding the page, e.g. ``Endpoints``.
    :param name_key: the member ``NameContains`` and ``SortBy=Name`` look at.
    :param summary: how a description is shown (see :func:`page_response`).
    :param status_key: the member ``StatusEquals`` and ``SortBy=Status`` look at (None: neither applies).
    :param modified_key: the member the ``LastModifiedTime*`` windows look at.
    :param sort_keys: the ``SortBy`` values and their keys, when not ``Name``, ``CreationTime`` (and ``Status``).
    """

    result_key: str
    name_key: str
    summary: Sequence[str] | Callable[[dict[str, Any]], dict[str, Any]] | None = None
    status_key: str | None = None
    modified_key: str = "LastModifiedTime"
    sort_keys: dict[str, Callable[[dict[str, Any]], Any]] | None = None
    default_by: str = "CreationTime"
    default_order: str = "Descending"

    def answer(self, records: Iterable[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        """Answer ``params`` from ``records``, the descriptions to list (already narrowed by the action's own
        filters)."""
        name_key, status_key = self.name_key, self.status_key
        found = filter_records(
            records, params, name_key=name_key, status_key=status_key, modified_key=self.modified_key
        )
        sort_keys = self.sort_keys
        if sort_keys is None:
            sort_keys = {"Name": lambda d: d[name_key], "CreationTime": lambda d: d["CreationTime"]}
            if status_key:
                sort_keys["Status"] = lambda d: d[status_key]
        ordered = sort_records(found, params, sort_keys, self.default_by, self.default_order)
        return page_response(ordered, params, self.result_key, self.summary)


def descriptions(store: Any, kind: str) -> list[dict[str, Any]]:
    """The descriptions (``desc``) of every stored record of ``kind``."""
    return [record["desc"] for record in store.values(kind)]


def pick(source: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Return the members of ``source`` named in ``names`` that are present and not None."""
    return {name: source[name] for name in names if source.get(name) is not None}
