"""No connection secret reaches task logs or XCom.

A real Airflow (api-server, scheduler with the LocalExecutor, dag-processor, triggerer; ``tools.ui``) runs
on the devstack with connections whose secrets are fresh random canaries: the Snowflake password and the
AWS secret access key. Two DAGs run there:

- ``secrets_probe``: the package's own tasks that use both connections: the Snowflake extraction to S3,
  validation in the worker, and validation as a deferrable SageMaker Processing job (the waiting happens
  in the triggerer with the AWS connection);
- ``secrets_leak``: a task that deliberately leaks both secrets, to its log and to XCom, proving that the
  scan finds a leak when there is one.

Afterwards every file under ``AIRFLOW_HOME/logs`` (task, trigger and component logs) and every row of the
metadata database is searched for the canaries: after the probe has run they must be nowhere; after the
leaking DAG has run the scan must find them in its task log and its XCom. (With the LocalExecutor a task's
output is also echoed into the scheduler's own log, so a leak spreads beyond the task log: another reason
to scan every file.)
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml_lifecycle.config import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
PROBE, LEAK = "secrets_probe", "secrets_leak"

PROBE_DAG = """
from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator
from ml_lifecycle.operators.validation import DataValidationOperator

BUCKET = {bucket!r}
DATASET = f"s3://{{BUCKET}}/datasets/secrets_probe/{{{{ run_id | replace(':', '_') | replace('+', '_') }}}}/"

with DAG(
    "secrets_probe",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args={{"aws_conn_id": "aws_default", "retries": 0}},
):
    extract = SnowflakeToS3ParquetOperator(
        task_id="extract",
        snowflake_conn_id="snowflake_default",
        sql_path="sql/features.sql",
        interval_start="2026-01-05T00:00:00",
        interval_end="2026-01-19T00:00:00",
        s3_uri=DATASET,
        batch_rows=1000,
        mode="stream",
    )
    in_worker = DataValidationOperator(
        task_id="validate_worker",
        dataset_uri=DATASET,
        suite_path="gx/card_transactions_features.json",
        report_uri=DATASET + "validation-worker/",
        mode="worker",
        batch_rows=1000,
    )
    in_job = DataValidationOperator(
        task_id="validate_processing",
        dataset_uri=DATASET,
        suite_path="gx/card_transactions_features.json",
        report_uri=DATASET + "validation-job/",
        mode="processing",
        batch_rows=1000,
        processing_job={{
            "job_name": "secrets-probe-{{{{ ts_nodash | lower }}}}",
            "role_arn": {role!r},
            "image_uri": {image!r},
            "instance_type": "ml.m5.large",
            "max_runtime_seconds": 900,
        }},
        deferrable=True,
        check_interval=2,
        max_attempts=300,
    )
    extract >> [in_worker, in_job]
"""

LEAK_DAG = """
from __future__ import annotations

import datetime as dt
import json
import os

from airflow.sdk import DAG, task

with DAG("secrets_leak", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), catchup=False):

    @task(retries=0)
    def leak():
        snowflake = json.loads(os.environ["AIRFLOW_CONN_SNOWFLAKE_DEFAULT"])["password"]
        aws = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])["password"]
        print("leaking", snowflake, aws)
        return {"snowflake": snowflake, "aws": aws}

    leak()
"""


def _with_secrets(env: dict[str, str], snowflake_password: str, aws_secret: str) -> dict[str, str]:
    aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    aws["password"] = aws_secret
    snowflake = json.loads(env["AIRFLOW_CONN_SNOWFLAKE_DEFAULT"])
    snowflake["password"] = snowflake_password
    return env | {
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws),
        "AIRFLOW_CONN_SNOWFLAKE_DEFAULT": json.dumps(snowflake),
        "AWS_SECRET_ACCESS_KEY": aws_secret,
    }


@pytest.fixture(scope="module")
def canaries() -> dict[str, str]:
    return {
        "snowflake password": f"sf-canary-{secrets.token_hex(12)}",
        "aws secret access key": f"awsCanary{secrets.token_hex(16)}",
    }


@pytest.fixture(scope="module")
def airflow(devstack: Any, canaries: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running Airflow with the two DAGs and the canary connections; yields ``(ui, home)``."""
    from devstack.stack import free_port
    from tools.ui import AirflowUI, ensure_buckets

    cfg = load_config("local")
    ensure_buckets(devstack.info, "local")
    dags = tmp_path_factory.mktemp("secrets-dags")
    (dags / f"{PROBE}.py").write_text(
        PROBE_DAG.format(bucket=cfg.storage.bucket, role=cfg.sagemaker.role_arn, image=cfg.sagemaker.images.processing)
    )
    (dags / f"{LEAK}.py").write_text(textwrap.dedent(LEAK_DAG))
    home = tmp_path_factory.mktemp("secrets-airflow")
    env = _with_secrets(dict(devstack.env), canaries["snowflake password"], canaries["aws secret access key"])
    ui = AirflowUI(home, devstack_env=env, port=free_port(), extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(dags)})
    ui.start(timeout=600)
    try:
        yield ui, home
    finally:
        ui.stop()


def _run(ui: Any, dag_id: str, timeout: float = 900) -> tuple[str, dict[str, str]]:
    """Unpause and trigger ``dag_id``; wait for the run; return (state, {task_id: state})."""
    token = ui.token()
    deadline = time.monotonic() + 180
    while True:
        dags = {d["dag_id"] for d in ui.api("GET", "/api/v2/dags?limit=100", token=token)["dags"]}
        if dag_id in dags:
            break
        if time.monotonic() > deadline:
            errors = ui.api("GET", "/api/v2/importErrors", token=token)
            raise AssertionError(f"{dag_id} was not parsed: {errors}")
        time.sleep(1)
    ui.api("PATCH", f"/api/v2/dags/{dag_id}", token=token, body={"is_paused": False})
    run = ui.api(
        "POST",
        f"/api/v2/dags/{dag_id}/dagRuns",
        token=token,
        body={"logical_date": dt.datetime.now(dt.UTC).isoformat(), "conf": {}},
    )
    run_id = run["dag_run_id"]
    deadline = time.monotonic() + timeout
    while True:
        state = ui.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", token=token)["state"]
        if state in ("success", "failed"):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{dag_id} run {run_id} still {state} after {timeout:.0f}s")
        time.sleep(2)
    tis = ui.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", token=token)["task_instances"]
    return state, {ti["task_id"]: ti["state"] for ti in tis}


def scan_logs(home: Path, needles: dict[str, str]) -> dict[str, list[str]]:
    """{relative log path: [names of the canaries found in it]} over every file under ``home/logs``."""
    hits: dict[str, list[str]] = {}
    for path in sorted((home / "logs").rglob("*")):
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        found = [name for name, value in needles.items() if value in text]
        if found:
            hits[str(path.relative_to(home / "logs"))] = found
    return hits


def scan_database(database: Path, needles: dict[str, str]) -> list[tuple[str, str | None, list[str]]]:
    """[(table, dag_id of the row or None, canaries found)] over every row of every table."""
    hits = []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [c[0] for c in cursor.description]
            for row in cursor:
                text = " ".join(v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in row)
                found = [name for name, value in needles.items() if value in text]
                if found:
                    dag_id = row[columns.index("dag_id")] if "dag_id" in columns else None
                    hits.append((table, dag_id, found))
    return hits


@pytest.fixture(scope="module")
def probe(airflow: Any, canaries: dict[str, str]) -> dict[str, Any]:
    """Run the probe DAG alone, then scan everything (before the leaking DAG has run)."""
    ui, home = airflow
    state, tasks = _run(ui, PROBE)
    return {
        "state": state,
        "tasks": tasks,
        "logs": scan_logs(home, canaries),
        "database": scan_database(home / "airflow.db", canaries),
    }


@pytest.fixture(scope="module")
def leak(airflow: Any, canaries: dict[str, str], probe: dict[str, Any]) -> dict[str, Any]:
    """Then run the leaking DAG and scan again."""
    ui, home = airflow
    state, tasks = _run(ui, LEAK)
    return {
        "state": state,
        "tasks": tasks,
        "logs": scan_logs(home, canaries),
        "database": scan_database(home / "airflow.db", canaries),
    }


def test_the_probe_tasks_used_both_connections(probe):
    assert probe["tasks"] == {
        "extract": "success",
        "validate_worker": "success",
        "validate_processing": "success",
    }, probe["tasks"]
    assert probe["state"] == "success"


def test_no_secret_in_any_log(airflow, probe):
    _, home = airflow
    assert not probe["logs"], f"connection secrets found in logs: {probe['logs']}"
    task_logs = [p for p in (home / "logs").rglob("*.log") if f"dag_id={PROBE}" in str(p)]
    assert len(task_logs) >= 3, "the probe's tasks wrote their logs under AIRFLOW_HOME/logs"


def test_no_secret_in_xcom_or_anywhere_in_the_database(airflow, probe):
    _, home = airflow
    assert not probe["database"], f"connection secrets found in the metadata database: {probe['database']}"
    with sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True) as conn:
        probe_xcoms = conn.execute("SELECT count(*) FROM xcom WHERE dag_id = ?", (PROBE,)).fetchone()[0]
    assert probe_xcoms >= 3, "the probe's tasks pushed their results to XCom"


def test_the_scan_finds_a_deliberate_leak(leak, canaries):
    assert leak["tasks"] == {"leak": "success"}, leak["tasks"]
    in_task_log = {name for path, found in leak["logs"].items() if f"dag_id={LEAK}" in path for name in found}
    in_xcom = {
        name for table, dag_id, found in leak["database"] if table == "xcom" and dag_id == LEAK for name in found
    }
    assert in_xcom == set(canaries), f"the leaked XCom value was not found: {in_xcom}"
    assert in_task_log == set(canaries), f"the leaking task's log line was not found: {leak['logs']}"
