"""Helpers for the SageMaker service's integration tests."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import io
import shutil
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
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


def build_probe_wheel(folder: Path, name: str = "devstack-probe", version: str = "1.0") -> Path:
    """Write a minimal pure-Python wheel (module ``devstack_probe`` with ``VERSION``) and return its path."""
    module = name.replace("-", "_")
    files = {
        f"{module}/__init__.py": f'VERSION = "{version}"\n'.encode(),
        f"{module}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ).encode(),
        f"{module}-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: devstack-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record_name = f"{module}-{version}.dist-info/RECORD"
    lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{path},sha256={digest},{len(data)}")
    lines.append(f"{record_name},,")
    files[record_name] = ("\n".join(lines) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


@contextlib.contextmanager
def loopback_index(wheels: list[Path], root: Path) -> Iterator[str]:
    """Serve a PEP 503 simple index of ``wheels`` on 127.0.0.1; yield its ``/simple/`` URL."""
    for wheel in wheels:
        project = wheel.name.split("-", 1)[0].replace("_", "-").lower()
        page = root / "simple" / project
        page.mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheel, page / wheel.name)
        (page / "index.html").write_text(f'<html><body><a href="{wheel.name}">{wheel.name}</a></body></html>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args, **kwargs: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def mount_holders(path: str) -> list[int]:
    """Pids of processes whose mount table mentions ``path`` (a job's private /opt/ml bind)."""
    holders = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            table = (entry / "mountinfo").read_text()
        except OSError:
            continue
        if path in table:
            holders.append(int(entry.name))
    return holders
