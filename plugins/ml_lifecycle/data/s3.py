"""Small S3 helpers over a boto3 client: URIs, listing, deleting, uploading and ranged reads.

Every function takes the client explicitly, so the caller decides where it comes from (an Airflow
``S3Hook``'s connection, or a plain boto3 client in a test).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``.

    :raises ValueError: the text is not an ``s3://bucket[/key]`` URI
    """
    match = _S3_URI.match(uri or "")
    if not match:
        raise ValueError(f"not an S3 URI (expected s3://<bucket>/<key>): {uri!r}")
    return match["bucket"], match["key"] or ""


def as_prefix(uri: str) -> str:
    """The URI with exactly one trailing slash: ``s3://b/datasets/x`` -> ``s3://b/datasets/x/``."""
    split_s3_uri(uri)
    return uri.rstrip("/") + "/"


def join_uri(prefix: str, name: str) -> str:
    """``join_uri("s3://b/p/", "part-00000.parquet")`` -> ``s3://b/p/part-00000.parquet``."""
    return as_prefix(prefix) + name.lstrip("/")


def iter_objects(client: Any, uri: str) -> Iterator[dict[str, Any]]:
    """Every object under the prefix ``uri`` (``Key``, ``Size``, ...), in key order, paging through the list."""
    bucket, key = split_s3_uri(uri)
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        yield from page.get("Contents", [])


def delete_keys(client: Any, bucket: str, keys: Iterable[str]) -> int:
    """Delete ``keys`` from ``bucket`` in batches of 1000; returns how many were deleted.

    :raises RuntimeError: S3 reported a key it could not delete
    """
    batch: list[str] = []
    deleted = 0

    def flush() -> None:
        nonlocal deleted
        if not batch:
            return
        response = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise RuntimeError(
                f"S3 refused to delete {len(errors)} object(s) in s3://{bucket}/, first "
                f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )
        deleted += len(batch)
        batch.clear()

    for key in keys:
        batch.append(key)
        if len(batch) == 1000:
            flush()
    flush()
    return deleted


def put_json(client: Any, uri: str, document: Any, **extra: Any) -> None:
    """Write ``document`` as pretty JSON to ``uri``."""
    bucket, key = split_s3_uri(uri)
    body = json.dumps(document, indent=2, sort_keys=False, default=str).encode("utf-8")
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **extra)


def put_text(client: Any, uri: str, text: str, content_type: str, **extra: Any) -> None:
    bucket, key = split_s3_uri(uri)
    client.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type, **extra)


def get_json(client: Any, uri: str) -> Any:
    bucket, key = split_s3_uri(uri)
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def get_json_or_none(client: Any, uri: str) -> Any:
    """The JSON document at ``uri``, or ``None`` when there is no object there."""
    from botocore.exceptions import ClientError

    try:
        return get_json(client, uri)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"NoSuchKey", "404", "NotFound"}:
            raise
        return None


def object_exists(client: Any, uri: str) -> bool:
    bucket, key = split_s3_uri(uri)
    try:
        client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True


class S3RangeReader(io.RawIOBase):
    """A read-only, seekable file over one S3 object that fetches only the byte ranges asked for.

    Lets pyarrow read a Parquet footer (a few KB at the end) without downloading the whole file.
    """

    def __init__(self, client: Any, bucket: str, key: str, size: int | None = None) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._key = key
        self._size = size if size is not None else client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        elif whence == io.SEEK_END:
            self._pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        self._pos = max(0, self._pos)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        if self._pos >= self._size or want == 0:
            return 0
        end = min(self._size, self._pos + want) - 1
        body = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}")
        data = body["Body"].read()
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)
