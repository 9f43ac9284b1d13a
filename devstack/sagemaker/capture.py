"""Endpoint data capture in SageMaker's JSON Lines format, delivered to S3 in hourly prefixes.

One record per sampled invocation::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "1.0,2.0", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                        "data": "0.87", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-03-02T09:15:27Z"},
     "eventVersion": "0"}

- ``encoding`` is ``CSV`` for content types listed in ``CaptureContentTypeHeader.CsvContentTypes``,
  ``JSON`` for ``JsonContentTypes`` (default lists: ``text/csv`` and ``application/json``), and ``BASE64``
  (data base64-encoded) otherwise;
- ``CaptureOptions`` select ``Input``, ``Output`` or both; ``InitialSamplingPercentage`` samples requests;
- ``InferenceId`` goes to ``eventMetadata.inferenceId``, ``CustomAttributes`` to
  ``eventMetadata.customAttributes`` (a list);
- objects land at ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl``,
  the hour of the invocation (UTC). The writer buffers records and uploads one object per variant and hour
  each time it is flushed (every second in the service).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import random
import threading
import uuid
from collections import defaultdict
from typing import Any

from devstack.sagemaker.awsio import parse_s3_uri

log = logging.getLogger(__name__)

DEFAULT_CSV_TYPES = ("text/csv",)
DEFAULT_JSON_TYPES = ("application/json",)


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def encoding_for(content_type: str | None, capture_config: dict[str, Any]) -> str:
    """Return ``CSV``, ``JSON`` or ``BASE64`` for a content type under a DataCaptureConfig."""
    header = capture_config.get("CaptureContentTypeHeader") or {}
    csv_types = header.get("CsvContentTypes") or (DEFAULT_CSV_TYPES if not header else ())
    json_types = header.get("JsonContentTypes") or (DEFAULT_JSON_TYPES if not header else ())
    observed = (content_type or "").strip()
    media = _media(content_type)
    if observed in csv_types or media in {_media(t) for t in csv_types}:
        return "CSV"
    if observed in json_types or media in {_media(t) for t in json_types}:
        return "JSON"
    return "BASE64"


def _payload(data: bytes, content_type: str | None, mode: str, capture_config: dict[str, Any]) -> dict[str, str]:
    encoding = encoding_for(content_type, capture_config)
    if encoding != "BASE64":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if encoding == "BASE64":
        text = base64.b64encode(data).decode("ascii")
    return {
        "observedContentType": content_type or "",
        "mode": mode,
        "data": text,
        "encoding": encoding,
    }


def capture_modes(capture_config: dict[str, Any]) -> tuple[bool, bool]:
    """Return (capture input, capture output) for a DataCaptureConfig."""
    modes = {option["CaptureMode"] for option in capture_config.get("CaptureOptions", [])}
    both = "InputAndOutput" in modes
    return both or "Input" in modes, both or "Output" in modes


def is_enabled(capture_config: dict[str, Any] | None) -> bool:
    """Whether a DataCaptureConfig captures anything."""
    return bool(capture_config) and capture_config.get("EnableCapture", True) is not False


def should_sample(capture_config: dict[str, Any], rng: random.Random | None = None) -> bool:
    """Draw whether one request is captured, per ``InitialSamplingPercentage``."""
    percentage = capture_config.get("InitialSamplingPercentage", 0)
    if percentage >= 100:
        return True
    if percentage <= 0:
        return False
    return (rng or random).random() * 100 < percentage


def build_record(
    capture_config: dict[str, Any],
    *,
    request_body: bytes,
    request_content_type: str | None,
    response_body: bytes,
    response_content_type: str | None,
    inference_time: dt.datetime,
    inference_id: str | None = None,
    custom_attributes: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Return one capture record (see the module docstring)."""
    want_input, want_output = capture_modes(capture_config)
    data: dict[str, Any] = {}
    if want_input:
        data["endpointInput"] = _payload(request_body, request_content_type, "INPUT", capture_config)
    if want_output:
        data["endpointOutput"] = _payload(response_body, response_content_type, "OUTPUT", capture_config)
    metadata: dict[str, Any] = {
        "eventId": event_id or str(uuid.uuid4()),
        "inferenceTime": inference_time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if inference_id:
        metadata["inferenceId"] = inference_id
    if custom_attributes:
        metadata["customAttributes"] = [custom_attributes]
    return {"captureData": data, "eventMetadata": metadata, "eventVersion": "0"}


def object_key(prefix: str, endpoint: str, variant: str, when: dt.datetime, unique: str | None = None) -> str:
    """Return the S3 key of a capture file created at ``when`` (UTC) under a destination prefix."""
    when = when.astimezone(dt.UTC)
    base = prefix.rstrip("/")
    stamp = f"{when:%M-%S}-{when.microsecond // 1000:03d}"
    name = f"{stamp}-{unique or uuid.uuid4()}.jsonl"
    path = f"{endpoint}/{variant}/{when:%Y/%m/%d/%H}/{name}"
    return f"{base}/{path}" if base else path


class CaptureWriter:
    """Buffers capture records and uploads them, one object per destination, variant and hour.

    :param s3_client: a function returning an S3 client (called at flush time).
    """

    def __init__(self, s3_client: Any) -> None:
        self._s3_client = s3_client
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)

    def add(self, destination: str, endpoint: str, variant: str, record: dict[str, Any], when: dt.datetime) -> None:
        """Queue one record captured at ``when``."""
        hour = when.astimezone(dt.UTC).strftime("%Y%m%d%H")
        with self._lock:
            self._pending[(destination, endpoint, variant, hour)].append(record)

    def pending(self) -> int:
        """Return how many records wait for upload."""
        with self._lock:
            return sum(len(v) for v in self._pending.values())

    def flush(self) -> int:
        """Upload every queued record; return how many were written. Failed uploads are retried later."""
        with self._lock:
            batches, self._pending = self._pending, defaultdict(list)
        written = 0
        now = dt.datetime.now(dt.UTC)
        for (destination, endpoint, variant, hour), records in batches.items():
            when = dt.datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=dt.UTC)
            # the file name carries the minute/second of the first record's hour window
            if now.strftime("%Y%m%d%H") == hour:
                when = now
            body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode("utf-8")
            try:
                bucket, prefix = parse_s3_uri(destination)
                key = object_key(prefix, endpoint, variant, when)
                self._s3_client().put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/jsonl")
                written += len(records)
            except Exception:
                log.warning(
                    "Cannot deliver %d capture records to %s; retrying at the next flush", len(records), destination
                )
                with self._lock:
                    self._pending[(destination, endpoint, variant, hour)][:0] = records
        return written
