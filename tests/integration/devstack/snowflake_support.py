"""A Snowflake stand-in process with S3 staging on an in-process moto server, for tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import snowflake.connector

ROOT = Path(__file__).resolve().parents[3]
ROLE = "arn:aws:iam::123456789012:role/snowflake-stage"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StandIn:
    """``python -m devstack.snowflake.server`` on a free port, its S3 staging pointed at ``s3_endpoint``.

    :param state: directory for the databases, stages and staging file.
    :param s3_endpoint: the S3 endpoint URL (a moto server); ``None`` for internal stages only.
    """

    def __init__(self, state: Path, s3_endpoint: str | None = None) -> None:
        self.state = state
        self.s3_endpoint = s3_endpoint
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = state / "snowflake.log"

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devstack.snowflake.server",
                    "--port",
                    str(self.port),
                    "--db-path",
                    str(self.state / "db"),
                    *(["--s3-endpoint-url", self.s3_endpoint] if self.s3_endpoint else []),
                ],
                cwd=ROOT,
                env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the stand-in exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_devstack/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("the Snowflake stand-in did not become healthy")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def connect(self, **kwargs: Any) -> Any:
        """A real connector connection; a retried request would take minutes, so the timeouts are short."""
        return snowflake.connector.connect(
            **{
                "user": "dev",
                "password": "dev",
                "account": "fakesnow",
                "host": "127.0.0.1",
                "port": self.port,
                "protocol": "http",
                "network_timeout": 60,
                "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
                **kwargs,
            }
        )


def create_stage(cursor: Any, bucket: str, *, stage: str = "ML_STAGE", integration: str = "ML_S3") -> None:
    """An integration allowing ``s3://<bucket>/`` and an external stage on it (in the current schema)."""
    cursor.execute(
        f"CREATE OR REPLACE STORAGE INTEGRATION {integration} TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' "
        f"ENABLED = TRUE STORAGE_AWS_ROLE_ARN = '{ROLE}' STORAGE_ALLOWED_LOCATIONS = ('s3://{bucket}/')"
    )
    cursor.execute(f"CREATE OR REPLACE STAGE {stage} URL = 's3://{bucket}/' STORAGE_INTEGRATION = {integration}")
