"""No connection secret reaches task logs, XCom, notifications, S3 or job logs, on success or failure.

A real Airflow (api-server, scheduler with the LocalExecutor, dag-processor, triggerer; ``tools.ui``) runs
on the devstack with connections whose secrets are fresh random canaries: the Snowflake password and the
AWS secret access key. Three DAGs run there:

- ``secrets_probe``: the package's own tasks that use both connections: the Snowflake extraction to S3,
  validation in the worker, and validation as a deferrable SageMaker Processing job (the waiting happens
  in the triggerer with the AWS connection);
- ``secrets_fail``: the package's tasks failing while they hold the connections, with the package's failure
  callback: an extraction from a schema that does not exist (the Snowflake error path) and a validation job
  over a dataset that does not exist (the SageMaker / S3 error path); each failure is published to SNS;
- ``secrets_leak``: a task that deliberately leaks both secrets, to its log, to XCom, to an SNS message, to
  an S3 object and to a CloudWatch Logs stream, proving that each scan finds a leak when there is one.

Afterwards everything a secret could reach is searched for the canaries: every file under
``AIRFLOW_HOME/logs`` (task, trigger and component logs), every row of the metadata database, every SNS
message of the notification topic (through an SQS queue subscribed before the runs), every object of the
environment's bucket (datasets, reports, job outputs) and every CloudWatch Logs event (the SageMaker jobs'
logs). After the probe and the failures they must be nowhere; after the leaking DAG has run each scan must
find them. (With the LocalExecutor a task's output is also echoed into the scheduler's own log, so a leak
spreads beyond the task log: another reason to scan every file.)
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
PROBE, FAIL, LEAK = "secrets_probe", "secrets_fail", "secrets_leak"

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

FAIL_DAG = """
from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from ml_lifecycle.notifications import on_failure_callback
from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator
from ml_lifecycle.operators.validation import DataValidationOperator

BUCKET = {bucket!r}
MISSING = f"s3://{{BUCKET}}/datasets/secrets_fail/no-such-dataset/"

with DAG(
    "secrets_fail",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args={{"aws_conn_id": "aws_default", "retries": 0, "on_failure_callback": on_failure_callback}},
):
    SnowflakeToS3ParquetOperator(
        task_id="extract_from_a_missing_schema",
        snowflake_conn_id="snowflake_missing_schema",
        sql_path="sql/features.sql",
        interval_start="2026-01-05T00:00:00",
        interval_end="2026-01-19T00:00:00",
        s3_uri=f"s3://{{BUCKET}}/datasets/secrets_fail/extract/",
        batch_rows=1000,
        mode="stream",
    )
    DataValidationOperator(
        task_id="validate_a_missing_dataset",
        dataset_uri=MISSING,
        suite_path="gx/card_transactions_features.json",
        report_uri=MISSING + "validation/",
        mode="processing",
        batch_rows=1000,
        processing_job={{
            "job_name": "secrets-fail-{{{{ ts_nodash | lower }}}}",
            "role_arn": {role!r},
            "image_uri": {image!r},
            "instance_type": "ml.m5.large",
            "max_runtime_seconds": 900,
        }},
        deferrable=True,
        check_interval=2,
        max_attempts=300,
    )
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
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        snowflake = json.loads(os.environ["AIRFLOW_CONN_SNOWFLAKE_DEFAULT"])["password"]
        aws = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])["password"]
        print("leaking", snowflake, aws)
        text = f"leaking {{snowflake}} {{aws}}"
        client = lambda service: AwsBaseHook(aws_conn_id="aws_default", client_type=service).conn
        client("sns").publish(TopicArn={topic!r}, Subject="leak", Message=text)
        client("s3").put_object(Bucket={bucket!r}, Key="reports/secrets_leak/leak.txt", Body=text.encode())
        logs = client("logs")
        logs.create_log_group(logGroupName="/secrets-leak")
        logs.create_log_stream(logGroupName="/secrets-leak", logStreamName="leak")
        logs.put_log_events(
            logGroupName="/secrets-leak",
            logStreamName="leak",
            logEvents=[{{"timestamp": int(dt.datetime.now(dt.UTC).timestamp() * 1000), "message": text}}],
        )
        return {{"snowflake": snowflake, "aws": aws}}

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
def notifications(devstack: Any) -> dict[str, Any]:
    """The environment's SNS topic, with an SQS queue subscribed to it before anything runs."""
    cfg = load_config("local")
    sns, sqs = devstack.client("sns"), devstack.client("sqs")
    topic = sns.create_topic(Name=cfg.notifications.sns_topic_arn.rsplit(":", 1)[1])["TopicArn"]
    queue = sqs.create_queue(QueueName="secrets-scan-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return {"topic": topic, "queue": queue, "sqs": sqs, "received": []}


@pytest.fixture(scope="module")
def airflow(
    devstack: Any,
    canaries: dict[str, str],
    notifications: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """A running Airflow with the three DAGs and the canary connections; yields ``(ui, home)``."""
    from devstack.stack import free_port
    from tools.ui import AirflowUI, ensure_environment

    cfg = load_config("local")
    ensure_environment(devstack.info, "local")
    dags = tmp_path_factory.mktemp("secrets-dags")
    job = {"bucket": cfg.storage.bucket, "role": cfg.sagemaker.role_arn, "image": cfg.sagemaker.images.processing}
    (dags / f"{PROBE}.py").write_text(PROBE_DAG.format(**job))
    (dags / f"{FAIL}.py").write_text(FAIL_DAG.format(**job))
    (dags / f"{LEAK}.py").write_text(
        textwrap.dedent(LEAK_DAG.format(topic=notifications["topic"], bucket=cfg.storage.bucket))
    )
    home = tmp_path_factory.mktemp("secrets-airflow")
    env = _with_secrets(dict(devstack.env), canaries["snowflake password"], canaries["aws secret access key"])
    missing_schema = json.loads(env["AIRFLOW_CONN_SNOWFLAKE_DEFAULT"]) | {"schema": "NO_SUCH_SCHEMA"}
    extra = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW_CONN_SNOWFLAKE_MISSING_SCHEMA": json.dumps(missing_schema),
    }
    ui = AirflowUI(home, devstack_env=env, port=free_port(), extra_env=extra)
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


def scan_notifications(notifications: dict[str, Any], needles: dict[str, str]) -> list[tuple[str, list[str]]]:
    """[(subject or first line, canaries found)] over every SNS message received so far (kept across calls)."""
    sqs, queue, received = notifications["sqs"], notifications["queue"], notifications["received"]
    while True:
        answer = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = answer.get("Messages", [])
        if not messages:
            break
        for message in messages:
            received.append(message["Body"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return [
        (body.splitlines()[0][:120] if body else "", [name for name, value in needles.items() if value in body])
        for body in received
    ]


def scan_bucket(s3: Any, bucket: str, needles: dict[str, str]) -> dict[str, list[str]]:
    """{key: canaries found} over every object of ``bucket`` (datasets, reports, job inputs and outputs)."""
    hits: dict[str, list[str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            text = body.decode("utf-8", errors="replace")
            found = [name for name, value in needles.items() if value in text]
            if found:
                hits[item["Key"]] = found
    return hits


def scan_log_events(logs: Any, needles: dict[str, str]) -> tuple[dict[str, list[str]], int]:
    """({log group: canaries found}, number of events read) over every CloudWatch Logs group."""
    hits: dict[str, list[str]] = {}
    events = 0
    for page in logs.get_paginator("describe_log_groups").paginate():
        for group in page["logGroups"]:
            name = group["logGroupName"]
            for found_page in logs.get_paginator("filter_log_events").paginate(logGroupName=name):
                for event in found_page["events"]:
                    events += 1
                    found = [key for key, value in needles.items() if value in event["message"]]
                    if found:
                        hits.setdefault(name, []).extend(n for n in found if n not in hits.get(name, []))
    return hits, events


def _scan_everything(home: Path, devstack: Any, notifications: dict[str, Any], needles: dict[str, str]) -> dict:
    bucket = load_config("local").storage.bucket
    log_hits, log_events = scan_log_events(devstack.client("logs"), needles)
    return {
        "logs": scan_logs(home, needles),
        "database": scan_database(home / "airflow.db", needles),
        "notifications": scan_notifications(notifications, needles),
        "objects": scan_bucket(devstack.client("s3"), bucket, needles),
        "log_events": log_hits,
        "log_events_read": log_events,
    }


@pytest.fixture(scope="module")
def probe(airflow: Any, devstack: Any, notifications: dict[str, Any], canaries: dict[str, str]) -> dict[str, Any]:
    """Run the probe DAG, then the failing DAG, then scan everything (before the leaking DAG has run)."""
    ui, home = airflow
    state, tasks = _run(ui, PROBE)
    fail_state, fail_tasks = _run(ui, FAIL)
    return {
        "state": state,
        "tasks": tasks,
        "fail_state": fail_state,
        "fail_tasks": fail_tasks,
        **_scan_everything(home, devstack, notifications, canaries),
    }


@pytest.fixture(scope="module")
def leak(
    airflow: Any, devstack: Any, notifications: dict[str, Any], canaries: dict[str, str], probe: dict[str, Any]
) -> dict[str, Any]:
    """Then run the leaking DAG and scan again."""
    ui, home = airflow
    state, tasks = _run(ui, LEAK)
    return {"state": state, "tasks": tasks, **_scan_everything(home, devstack, notifications, canaries)}


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


def test_the_failing_tasks_failed_and_notified(probe):
    assert probe["fail_tasks"] == {
        "extract_from_a_missing_schema": "failed",
        "validate_a_missing_dataset": "failed",
    }, probe["fail_tasks"]
    assert probe["fail_state"] == "failed"
    subjects = [subject for subject, _ in probe["notifications"]]
    assert sum(FAIL in subject for subject in subjects) >= 2, f"a failure notification per failed task: {subjects}"


def test_no_secret_in_notifications_objects_or_job_logs(probe):
    assert not [hit for hit in probe["notifications"] if hit[1]], "connection secrets in SNS notifications"
    assert not probe["objects"], f"connection secrets in S3 objects: {probe['objects']}"
    assert not probe["log_events"], f"connection secrets in CloudWatch Logs: {probe['log_events']}"
    assert probe["log_events_read"] > 0, "the SageMaker jobs' logs were read"


def test_the_scan_finds_a_deliberate_leak(leak, canaries):
    assert leak["tasks"] == {"leak": "success"}, leak["tasks"]
    in_task_log = {name for path, found in leak["logs"].items() if f"dag_id={LEAK}" in path for name in found}
    in_xcom = {
        name for table, dag_id, found in leak["database"] if table == "xcom" and dag_id == LEAK for name in found
    }
    assert in_xcom == set(canaries), f"the leaked XCom value was not found: {in_xcom}"
    assert in_task_log == set(canaries), f"the leaking task's log line was not found: {leak['logs']}"
    in_notifications = {name for _, found in leak["notifications"] for name in found}
    assert in_notifications == set(canaries), "the leaked SNS message was not found"
    assert set(leak["objects"].get("reports/secrets_leak/leak.txt", [])) == set(canaries), leak["objects"]
    assert set(leak["log_events"].get("/secrets-leak", [])) == set(canaries), leak["log_events"]
