"""The service's own AWS clients (S3, CloudWatch Logs) against the local AWS endpoint, and data movement."""

from __future__ import annotations

import json
import logging
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

#: Dummy credentials: the local AWS endpoint accepts any.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class S3UriError(ValueError):
    """An S3 URI that cannot be parsed."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into (bucket, key).

    :raises S3UriError: when the URI is not an ``s3://`` URI with a bucket.
    """
    if not uri.startswith("s3://"):
        raise S3UriError(f"Not an S3 URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise S3UriError(f"S3 URI without a bucket: {uri!r}")
    return bucket, key


@dataclass(frozen=True)
class AwsClients:
    """boto3 clients the service uses as an AWS client itself.

    :param endpoint_url: the local AWS endpoint (the moto server).
    :param region: the region.
    """

    endpoint_url: str
    region: str

    def client(self, service: str) -> Any:
        """Return a new boto3 client for ``service`` against the local endpoint."""
        session = boto3.session.Session()
        return session.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
            **DUMMY_CREDENTIALS,
        )


def list_objects(s3: Any, uri: str) -> list[dict[str, Any]]:
    """List every object under an S3 prefix (directory markers excluded).

    :raises ClientError: when the bucket does not exist.
    """
    bucket, prefix = parse_s3_uri(uri)
    objects: list[dict[str, Any]] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):
                objects.append(item)
    return objects


def has_objects(s3: Any, uri: str) -> bool:
    """Return whether at least one object exists under the prefix (False also for a missing bucket)."""
    try:
        bucket, prefix = parse_s3_uri(uri)
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=5)
    except (ClientError, S3UriError):
        return False
    return any(not item["Key"].endswith("/") for item in page.get("Contents", []))


def relative_key(prefix: str, key: str) -> str:
    """Return where an object under ``prefix`` lands relative to the local directory.

    - the prefix names the object itself: its base name;
    - the prefix ends with ``/`` or the key continues it with ``/``: the path after the prefix;
    - otherwise (``data/train`` matching ``data/train_x.csv``): the path after the prefix's last ``/``.
    """
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    if prefix == "" or prefix.endswith("/"):
        return key[len(prefix) :]
    if key.startswith(prefix + "/"):
        return key[len(prefix) + 1 :]
    parent = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return key[len(parent) :]


def _safe_target(dest: Path, relative: str) -> Path:
    target = (dest / relative).resolve()
    if not str(target).startswith(str(dest.resolve())):
        raise ValueError(f"S3 key {relative!r} would be written outside {dest}")
    return target


def download_prefix(s3: Any, uri: str, dest: Path) -> int:
    """Download every object under an S3 prefix into ``dest``; return the number of files.

    :raises ClientError: on S3 errors.
    """
    bucket, prefix = parse_s3_uri(uri)
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for item in list_objects(s3, uri):
        target = _safe_target(dest, relative_key(prefix, item["Key"]))
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, item["Key"], str(target))
        count += 1
    return count


def download_manifest(s3: Any, manifest_uri: str, dest: Path) -> int:
    """Download the objects a manifest file lists: ``[{"prefix": "s3://b/p/"}, "rel/key", ...]``.

    :raises ValueError: when the manifest is not in that format.
    """
    bucket, key = parse_s3_uri(manifest_uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        manifest = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Manifest {manifest_uri} is not JSON: {exc}") from exc
    if not isinstance(manifest, list) or not manifest or not isinstance(manifest[0], dict):
        raise ValueError(f'Manifest {manifest_uri} must be a list starting with {{"prefix": "s3://..."}}')
    prefix_uri = manifest[0].get("prefix")
    if not isinstance(prefix_uri, str):
        raise ValueError(f"Manifest {manifest_uri} has no 'prefix' entry")
    prefix_bucket, prefix = parse_s3_uri(prefix_uri)
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for relative in manifest[1:]:
        if not isinstance(relative, str):
            raise ValueError(f"Manifest {manifest_uri} entry {relative!r} is not a string")
        target = _safe_target(dest, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(prefix_bucket, prefix + relative, str(target))
        count += 1
    return count


def upload_directory(s3: Any, src: Path, uri: str) -> int:
    """Upload every regular file under ``src`` (symlinks not followed) to the S3 prefix; return the count."""
    bucket, prefix = parse_s3_uri(uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    count = 0
    if not src.exists():
        return 0
    for path in sorted(src.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        s3.upload_file(str(path), bucket, prefix + path.relative_to(src).as_posix())
        count += 1
    return count


def make_tarball(src: Path, tar_path: Path) -> None:
    """Write ``src``'s contents (not the directory itself) to a gzipped tarball."""
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w:gz") as tar:
        if src.exists():
            for path in sorted(src.iterdir()):
                tar.add(path, arcname=path.name)


def extract_tarball(tar_path: Path, dest: Path) -> None:
    """Extract a tarball into ``dest`` refusing members that escape it."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "r:*") as tar:
        tar.extractall(dest, filter="data")


class CloudWatchLogSink:
    """Ships a job's log lines to one CloudWatch Logs stream, batching in a background thread.

    Lines are also appended to a local file. Failures to reach CloudWatch Logs are logged by the service
    and never fail the job.

    :param logs: a CloudWatch Logs client.
    :param group: the log group, e.g. ``/aws/sagemaker/TrainingJobs``.
    :param stream: the stream, e.g. ``<job>/algo-1-<epoch>``.
    :param local_file: where to append the lines as well.
    :param flush_interval: seconds between shipments.
    """

    MAX_BATCH = 1000

    def __init__(self, logs: Any, group: str, stream: str, local_file: Path, flush_interval: float = 0.5) -> None:
        self._logs = logs
        self.group = group
        self.stream = stream
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._local = local_file.open("a", encoding="utf-8")
        self._flush_interval = flush_interval
        self._ready = self._create_stream()
        self._last_ts = 0
        self._thread = threading.Thread(target=self._run, name=f"logs-{stream}", daemon=True)
        self._thread.start()

    def _create_stream(self) -> bool:
        try:
            try:
                self._logs.create_log_group(logGroupName=self.group)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                    raise
            self._logs.create_log_stream(logGroupName=self.group, logStreamName=self.stream)
            return True
        except Exception:
            log.warning("Cannot create log stream %s%s; job logs stay local", self.group, self.stream)
            return False

    def write(self, line: str, timestamp: float | None = None) -> None:
        """Queue one line (without its newline)."""
        ts = int((timestamp if timestamp is not None else time.time()) * 1000)
        with self._lock:
            ts = max(ts, self._last_ts)
            self._last_ts = ts
            self._local.write(line + "\n")
            self._local.flush()
            if line.strip():
                self._pending.append({"timestamp": ts, "message": line})

    def _run(self) -> None:
        while not self._closed.wait(self._flush_interval):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Ship the queued lines now."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch or not self._ready:
            return
        for start in range(0, len(batch), self.MAX_BATCH):
            chunk = batch[start : start + self.MAX_BATCH]
            try:
                self._logs.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=chunk)
            except Exception:
                log.warning("Cannot ship %d log events to %s%s", len(chunk), self.group, self.stream)

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._closed.set()
        self._thread.join(timeout=10)
        with self._lock:
            self._local.close()
