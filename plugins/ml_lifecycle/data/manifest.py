"""The dataset manifest: ``_manifest.json`` beside the Parquet parts of one extracted interval.

Readers take the part list from the manifest, never from listing the prefix, so a reader can never
pick up a stray file. The manifest is written last: while it is absent the dataset is incomplete.

Shape (``manifest_version`` 1)::

    {
      "manifest_version": 1,
      "format": "parquet",
      "dataset_uri": "s3://bucket/datasets/.../",
      "row_count": 123,
      "columns": ["transaction_id", ...],
      "schema": [{"name": "transaction_id", "type": "string"}, ...],
      "parts": [{"name": "part-00000.parquet", "uri": "s3://...", "rows": 100, "bytes": 4096,
                 "row_groups": 2, "sha256": "..."}, ...],
      "query": {"path": "sql/features.sql", "sha256": "...", "interval_start": "2026-01-01T00:00:00",
                "interval_end": "2026-03-01T00:00:00", "snowflake_query_id": "01b2..."},
      "extraction": {"mode": "stream", "batch_rows": 50000},
      "started_at": "2026-03-01T00:05:00+00:00",
      "finished_at": "2026-03-01T00:06:10+00:00"
    }

Each part carries a checksum of its bytes: ``sha256`` when the worker wrote it (stream mode), ``etag`` (S3's)
when Snowflake unloaded it. :func:`ml_lifecycle.cache.dataset_digest` turns them into the dataset's content
digest, one input of the step cache keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from ml_lifecycle.data.s3 import as_prefix, get_json, join_uri, put_json

MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def manifest_uri(dataset_uri: str) -> str:
    return join_uri(dataset_uri, MANIFEST_NAME)


def build_manifest(
    *,
    dataset_uri: str,
    schema: Sequence[dict[str, str]],
    parts: Sequence[dict[str, Any]],
    sql_path: str,
    query_sha256: str,
    interval_start: dt.datetime,
    interval_end: dt.datetime,
    snowflake_query_id: str | None,
    mode: str,
    started_at: str,
    finished_at: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a manifest document; ``row_count`` is the sum of the parts' rows."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "format": "parquet",
        "dataset_uri": as_prefix(dataset_uri),
        "row_count": sum(int(p["rows"]) for p in parts),
        "columns": [f["name"] for f in schema],
        "schema": [dict(f) for f in schema],
        "parts": [dict(p) for p in parts],
        "query": {
            "path": sql_path,
            "sha256": query_sha256,
            "interval_start": interval_start.isoformat(),
            "interval_end": interval_end.isoformat(),
            "snowflake_query_id": snowflake_query_id,
        },
        "extraction": {"mode": mode, **(extra or {})},
        "started_at": started_at,
        "finished_at": finished_at,
    }


def write_manifest(client: Any, manifest: dict[str, Any], **put_args: Any) -> str:
    uri = manifest_uri(manifest["dataset_uri"])
    put_json(client, uri, manifest, **put_args)
    return uri


def read_manifest(client: Any, dataset_uri: str) -> dict[str, Any]:
    """Read and sanity-check the manifest of ``dataset_uri``.

    :raises ValueError: the manifest is not one this code understands
    """
    manifest = get_json(client, manifest_uri(dataset_uri))
    if manifest.get("manifest_version") != MANIFEST_VERSION or not isinstance(manifest.get("parts"), list):
        raise ValueError(
            f"{manifest_uri(dataset_uri)}: unsupported manifest (manifest_version "
            f"{manifest.get('manifest_version')!r}, expected {MANIFEST_VERSION})"
        )
    return manifest
