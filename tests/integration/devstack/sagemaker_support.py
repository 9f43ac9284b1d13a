"""Helpers for the SageMaker service's integration tests."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from typing import Any

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
TERMINAL = {"Completed", "Failed", "Stopped"}


def wait_for(describe: Callable[[], dict[str, Any]], key: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll a Describe call until ``key`` reaches a terminal state; return the last description."""
    deadline = time.monotonic() + timeout
    while True:
        desc = describe()
        if desc[key] in TERMINAL:
            return desc
        if time.monotonic() > deadline:
            raise AssertionError(f"{key} still {desc[key]} after {timeout} s: {desc}")
        time.sleep(0.1)


def put_text(s3: Any, bucket: str, key: str, text: str) -> str:
    """Upload a text object and return its S3 URI."""
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
    return f"s3://{bucket}/{key}"


def put_sourcedir(s3: Any, bucket: str, key: str, files: dict[str, str]) -> str:
    """Upload a ``sourcedir.tar.gz`` holding ``files`` (name -> text) and return its S3 URI."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return f"s3://{bucket}/{key}"


def read_tarball(s3: Any, uri: str) -> dict[str, bytes]:
    """Download a tarball from S3 and return its regular files (name -> bytes)."""
    bucket, key = uri[len("s3://") :].split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                out[member.name] = handle.read()
    return out
