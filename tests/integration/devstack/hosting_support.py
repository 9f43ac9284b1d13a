"""Helpers and fixtures for the hosting, runtime, alarm, monitoring and transform integration tests."""

from __future__ import annotations

import io
import json
import tarfile
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from devstack.sagemaker.service import SageMakerService
from tests.integration.devstack.sagemaker_support import CREDENTIALS, REGION, ROLE, SKLEARN_IMAGE

#: A model whose prediction is the sum of each CSV row times the ``scale`` stored in model.json.
SCALE_INFERENCE = """
import json, os

def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as fh:
        return json.load(fh)

def input_fn(data, content_type):
    if content_type != "text/csv":
        raise ValueError("unsupported content type " + str(content_type))
    return [[float(x) for x in line.split(",")] for line in data.strip().splitlines()]

def predict_fn(rows, model):
    if model.get("fail"):
        raise RuntimeError("model is broken on purpose")
    return [sum(row) * model["scale"] for row in rows]

def output_fn(prediction, accept):
    return "\\n".join(str(p) for p in prediction), "text/csv"
"""


def model_tarball(files: dict[str, str]) -> bytes:
    """Return a ``model.tar.gz`` holding ``files`` (path -> text)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def put_scale_model(s3: Any, bucket: str, key: str, scale: float, fail: bool = False) -> str:
    """Upload a scale model (``code/inference.py`` + ``model.json``); return its S3 URI."""
    body = model_tarball(
        {"model.json": json.dumps({"scale": scale, "fail": fail}), "code/inference.py": SCALE_INFERENCE}
    )
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def create_model(
    sm: Any, name: str, model_data: str, image: str = SKLEARN_IMAGE, env: dict[str, str] | None = None
) -> None:
    """CreateModel with a script-mode container (``SAGEMAKER_PROGRAM=inference.py`` by default)."""
    environment = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
    environment.update(env or {})
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": image, "ModelDataUrl": model_data, "Environment": environment},
    )


def variant(name: str, model: str, weight: float = 1.0, count: int = 1) -> dict[str, Any]:
    """A ProductionVariant."""
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": count,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": weight,
    }


def wait_endpoint(
    sm: Any, name: str, timeout: float = 90.0, until: tuple[str, ...] = ("InService", "Failed")
) -> dict[str, Any]:
    """Poll DescribeEndpoint until its status is one of ``until``."""
    deadline = time.monotonic() + timeout
    while True:
        desc = sm.describe_endpoint(EndpointName=name)
        if desc["EndpointStatus"] in until:
            return desc
        if time.monotonic() > deadline:
            raise AssertionError(f"Endpoint {name} still {desc['EndpointStatus']} after {timeout} s: {desc}")
        time.sleep(0.1)


def client(service: str, endpoint: str) -> Any:
    """A boto3 client against a local endpoint."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        **CREDENTIALS,
    )


def control(service: SageMakerService, method: str, path: str, payload: Any = None) -> Any:
    """Call a ``/_devstack/...`` control route and return its JSON answer."""
    assert service.url is not None
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(service.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Call ``check`` until it returns a truthy value; return it (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")
