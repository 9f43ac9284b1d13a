"""Fault: Snowflake is unreachable from the worker (connection refused).

Expected: ``extract`` fails after the connector's bounded retries with its error
(``250001: Could not connect to Snowflake backend``); the interval's previous dataset is kept untouched
(the prefix is cleared only after the query ran); no SageMaker job; Airflow retries the task (2 retries,
exponential backoff) and a failure notification names the error.
"""

from __future__ import annotations

import json
import os
import socket
import time
from types import SimpleNamespace
from typing import Any

import pytest

from tests.faults.conftest import extract_operator, fail_task, jobs_named, notifications, s3_keys, task_context

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_snowflake_unreachable_fails_extract_and_keeps_the_dataset(
    aws: SimpleNamespace, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from snowflake.connector.errors import OperationalError

    connection = json.loads(os.environ["AIRFLOW_CONN_SNOWFLAKE_DEFAULT"])
    port = _closed_port()
    connection["port"] = port
    connection["extra"]["port"] = port
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEFAULT", json.dumps(connection))
    run_id = trained["run_id"]  # a retry of the shared run's extract: its dataset exists
    plan = trained["plan"]
    before = s3_keys(aws.s3, plan["dataset_uri"])
    jobs = jobs_named(aws.sm, "processing", plan["run_hash"])

    started = time.monotonic()
    error = fail_task(extract_operator(plan), task_context("extract", run_id, try_number=2), OperationalError)
    elapsed = time.monotonic() - started

    assert "Could not connect to Snowflake backend" in str(error)
    assert elapsed < 120, f"the connector gives up within a bounded time ({elapsed:.0f} s)"
    assert s3_keys(aws.s3, plan["dataset_uri"]) == before, "the previous dataset is kept"
    assert jobs_named(aws.sm, "processing", plan["run_hash"]) == jobs
    notes = notifications(aws, "Could not connect to Snowflake backend")
    assert any("train_model.extract" in n["subject"] and run_id in n["message"] for n in notes), notes
