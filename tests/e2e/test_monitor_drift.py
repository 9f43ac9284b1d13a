"""The monitoring loop end to end on the devstack: drifted traffic -> Model Monitor -> drift asset -> retraining.

One model is trained on the four weeks before the seeded drift (``[2026-01-08, 2026-02-08)``, the devstack
fixture drifts from 2026-02-15), evaluated (which writes the Model Monitor baseline dataset: the model's
output columns, then its input columns), gated, registered with its ``baseline_uri`` and deployed to an
endpoint of this module's own; ``deploy_model``'s tail then baselines Model Monitor on the dataset the
registry names and puts the hourly data-quality schedule on the endpoint. Traffic is the feature SQL's rows
sent as ``text/csv`` without header with ``Accept: text/csv`` (the monitored contract):

1. undrifted traffic (2026-02-13 .. 2026-02-15); the schedule's execution for it (the devstack's
   ``run-now``) completes without violations; ``monitor_model`` (its hourly path, ``read_latest``) reports
   0 violations, ``publish_drift`` is skipped and no drift asset event exists;
2. drifted traffic (2026-02-15 .. 2026-03-02) in the same hour; the next execution has violations beyond
   the threshold; ``monitor_model`` publishes ``drift.json`` and emits the drift asset (an ``AssetEvent``
   in Airflow's metadata database); the scheduler's asset-trigger step then creates a **queued**
   ``train_model`` run that consumed that event;
3. the one-off path (``monitor_model`` with ``run_now``) over the same hour finds the drift too.

The DAGs run with ``dag.test()`` on the session's SQLite metadata database, into which ``airflow dags
reserialize`` wrote every DAG (``train_model`` unpaused), under a copy of the ``local`` config naming this
module's endpoint and model package group.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.faults.conftest import control, run_pipeline, run_task, s3_json, s3_keys, task_context, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = "fraud-drift-e2e"
GROUP = "fraud-detector-drift-e2e"
ANCHOR = dt.datetime(2026, 2, 8, tzinfo=dt.UTC)
WINDOW_DAYS = 31
UNDRIFTED = ("2026-02-13 00:00:00", "2026-02-15 00:00:00")
DRIFTED = ("2026-02-15 00:00:00", "2026-03-02 00:00:00")
ROWS_PER_REQUEST = 100
TERMINAL = ("Completed", "CompletedWithViolations", "Failed", "Stopped")


# ------------------------------------------------------------------------------------------ helpers


def _airflow(*args: str) -> str:
    """Run the ``airflow`` CLI on the session's metadata database; its output."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
        check=False,
    )
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _cell(value: Any) -> str:
    """A feature value as a client writes it in a CSV request."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def feature_rows(devstack: Any, interval: tuple[str, str], features: list[str]) -> list[list[str]]:
    """The model's input columns of ``include/sql/features.sql`` over ``interval`` on the seeded table."""
    sql = (ROOT / "include" / "sql" / "features.sql").read_text()
    with contextlib.closing(devstack.snowflake_connect()) as conn:
        cursor = conn.cursor()
        cursor.execute(sql, {"interval_start": interval[0], "interval_end": interval[1]})
        names = [d[0].lower() for d in cursor.description]
        rows = cursor.fetchall()
    positions = [names.index(f) for f in features]
    return [[_cell(row[p]) for p in positions] for row in rows]


def send(aws: SimpleNamespace, rows: list[list[str]]) -> int:
    """Send ``rows`` as ``text/csv`` requests without header, ``Accept: text/csv``; the number of requests."""
    requests = 0
    for start in range(0, len(rows), ROWS_PER_REQUEST):
        chunk = rows[start : start + ROWS_PER_REQUEST]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(chunk)
        response = aws.runtime.invoke_endpoint(
            EndpointName=ENDPOINT, Body=buffer.getvalue().encode(), ContentType="text/csv", Accept="text/csv"
        )
        answer = response["Body"].read().decode().splitlines()
        assert len(answer) == len(chunk) and all(re.fullmatch(r"[01]\.\d{6},[01]", a) for a in answer), answer[:3]
        requests += 1
    return requests


def captured_records(aws: SimpleNamespace, capture_uri: str) -> int:
    from tools.lifecycle import captured_records as count

    return count(aws.s3, capture_uri)


def scheduled_execution(aws: SimpleNamespace, schedule: str) -> dict[str, Any]:
    """Start the hourly schedule's execution over the traffic so far (devstack ``run-now``); wait for its end.

    The scheduled time is just after the newest captured request, so the execution's hour-long window
    ``[scheduled - 1 h, scheduled)`` holds all of this module's traffic.
    """
    scheduled = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=2)
    time.sleep(2.5)  # the window's end is exclusive at second resolution: let it pass
    started = control(
        aws.url,
        "POST",
        "/_devstack/monitoring/run-now",
        {"MonitoringScheduleName": schedule, "ScheduledTime": scheduled.isoformat()},
    )
    job = started["ProcessingJobArn"].rsplit("/", 1)[-1]

    def finished() -> dict[str, Any] | None:
        for summary in aws.sm.list_monitoring_executions(MonitoringScheduleName=schedule)[
            "MonitoringExecutionSummaries"
        ]:
            if summary.get("ProcessingJobArn", "").endswith(job) and summary["MonitoringExecutionStatus"] in TERMINAL:
                return summary
        return None

    return wait_for(finished, 180, f"monitoring execution {job}", interval=1)


def asset_events(uri: str) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == uri)
        ).all()
        return [SimpleNamespace(id=e.id, extra=dict(e.extra or {}), source_dag_id=e.source_dag_id) for e in events]


def dag_test_run(dag: Any, conf: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``dag.test`` with ``conf``; (run id, {task: state}, {task: XCom return value})."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    run = dag.test(run_conf=conf)
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        states = {ti.task_id: getattr(ti.state, "value", ti.state) for ti in tis}
        xcoms = {
            x.task_id: XComModel.deserialize_value(x)
            for x in session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == dag.dag_id, XComModel.run_id == run.run_id, XComModel.key == "return_value"
                )
            ).all()
        }
    return run.run_id, states, xcoms


def create_asset_triggered_runs() -> None:
    """One pass of the scheduler's DAG-run creation (``SchedulerJobRunner._create_dagruns_for_dags``).

    This is the step of the scheduler loop that turns queued asset events into DAG runs; the rest of the
    loop (starting and executing tasks) is deliberately not run, so the new run stays queued.
    """
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import prohibit_commit

    job = Job()
    runner = SchedulerJobRunner(job=job, num_runs=1)
    with create_session() as session:
        session.add(job)
    with create_session() as session, prohibit_commit(session) as guard:
        runner._create_dagruns_for_dags(guard, session)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The ``local`` config with this module's endpoint and model package group (``ML_LIFECYCLE_CONFIG_DIR``)."""
    from ml_lifecycle.config import CONFIG_DIR_VAR, load_config

    text = (ROOT / "include" / "config" / "local.yaml").read_text()
    text, endpoints = re.subn(r"(?m)^(\s*endpoint_name:) .*$", rf"\1 {ENDPOINT}", text)
    text, groups = re.subn(r"(?m)^(\s*model_package_group:) .*$", rf"\1 {GROUP}", text)
    text, engines = re.subn(r"(?m)^(  engine:) .*$", r"\1 model_monitor", text)  # this module's engine
    assert endpoints == groups == engines == 1, "local.yaml names one endpoint, group and monitoring engine"
    folder = tmp_path_factory.mktemp("config")
    (folder / "local.yaml").write_text(text)
    saved = os.environ.get(CONFIG_DIR_VAR)
    os.environ[CONFIG_DIR_VAR] = str(folder)
    try:
        config = load_config("local")
        assert config.deployment.endpoint_name == ENDPOINT and config.sagemaker.model_package_group == GROUP
        yield config
    finally:
        if saved is None:
            os.environ.pop(CONFIG_DIR_VAR, None)
        else:
            os.environ[CONFIG_DIR_VAR] = saved


@pytest.fixture(scope="module")
def aws(devstack: Any, airflow_db: Path, cfg: Any) -> SimpleNamespace:
    s3 = devstack.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=cfg.storage.bucket)
    devstack.client("sns").create_topic(Name=cfg.notifications.sns_topic_arn.rsplit(":", 1)[1])
    return SimpleNamespace(
        s3=s3,
        sm=devstack.client("sagemaker"),
        runtime=devstack.client("sagemaker-runtime"),
        url=devstack.sagemaker_url,
        devstack=devstack,
    )


@pytest.fixture(scope="module")
def registered(aws: SimpleNamespace, cfg: Any) -> dict[str, Any]:
    """train_model's tasks for the pre-drift window: ... -> evaluate -> gate -> register (with baseline_uri)."""
    from ml_lifecycle.operators.gate import QualityGateOperator
    from ml_lifecycle.operators.registry import ModelRegistrationOperator
    from ml_lifecycle.operators.sagemaker import EvaluationJobOperator

    run_id = "manual__monitor_drift"
    params = {"window_days": WINDOW_DAYS}
    out = run_pipeline(run_id, anchor=ANCHOR, params=params)
    plan = out["plan"]
    assert (plan["window"]["start"], plan["window"]["end"]) == (
        "2026-01-08T00:00:00+00:00",
        "2026-02-08T00:00:00+00:00",
    )

    def ctx(task_id: str) -> dict[str, Any]:
        return task_context(task_id, run_id, anchor=ANCHOR, params=params)

    out["evaluate"] = run_task(
        EvaluationJobOperator(
            task_id="evaluate",
            model_uri=out["train"]["model_uri"],
            test_uri=out["preprocess"]["outputs"]["test"],
            code_uri=plan["code"]["evaluation"]["src_uri"],
            check_interval=1,
            max_attempts=300,
        ),
        ctx("evaluate"),
    )
    out["gate"] = run_task(
        QualityGateOperator(task_id="gate", evaluation_uri=out["evaluate"]["evaluation_uri"]), ctx("gate")
    )
    assert out["gate"]["passed"], out["gate"]
    out["register"] = run_task(
        ModelRegistrationOperator(
            task_id="register",
            gate=out["gate"],
            model_uri=out["train"]["model_uri"],
            image_uri=cfg.sagemaker.images.inference,
            package_group_name=GROUP,
            dataset_uri=out["extract"]["dataset_uri"],
            manifest_uri=out["extract"]["manifest_uri"],
            training_job=out["train"]["job_name"],
            baseline_uri=out["evaluate"]["baseline_uri"],
            approval="auto",
        ),
        ctx("register"),
    )
    return out


@pytest.fixture(scope="module")
def monitored(aws: SimpleNamespace, cfg: Any, registered: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """deploy_model's tasks: resolve -> deploy_guarded -> baseline (from the registry) -> schedule_monitoring."""
    from ml_lifecycle.operators.approval import ResolveModelPackageOperator
    from ml_lifecycle.operators.deploy import GuardedEndpointDeployOperator
    from ml_lifecycle.operators.monitor import DataQualityBaselineOperator, MonitoringScheduleOperator

    def ctx(task_id: str) -> dict[str, Any]:
        return task_context(task_id, "manual__monitor_drift_deploy", dag_id="deploy_model")

    resolved = run_task(ResolveModelPackageOperator(task_id="resolve", model_package_arn="latest"), ctx("resolve"))
    deployed = run_task(
        GuardedEndpointDeployOperator(
            task_id="deploy_guarded",
            model_package_arn=resolved["model_package_arn"],
            alarm_period_seconds=10,
            poll_interval=1,
        ),
        ctx("deploy_guarded"),
    )
    baseline = run_task(
        DataQualityBaselineOperator(
            task_id="baseline",
            dataset_uri=resolved["baseline_dataset_uri"],
            model_package_version=resolved["version"],
            poll_interval=1,
        ),
        ctx("baseline"),
    )
    schedule = run_task(
        MonitoringScheduleOperator(
            task_id="schedule_monitoring",
            statistics_uri=baseline["statistics_uri"],
            constraints_uri=baseline["constraints_uri"],
            model_package_version=resolved["version"],
        ),
        ctx("schedule_monitoring"),
    )
    yield {"resolved": resolved, "deployed": deployed, "baseline": baseline, "schedule": schedule}
    with contextlib.suppress(Exception):
        aws.sm.delete_monitoring_schedule(MonitoringScheduleName=schedule["schedule_name"])
    with contextlib.suppress(Exception):
        aws.sm.delete_endpoint(EndpointName=ENDPOINT)


@pytest.fixture(scope="module")
def dags(aws: SimpleNamespace, cfg: Any) -> dict[str, Any]:
    """Every DAG serialized into the metadata database (train_model unpaused); monitor_model parsed here."""
    from airflow.dag_processing.dagbag import DagBag

    _airflow("dags", "reserialize")
    _airflow("dags", "unpause", "train_model")
    bag = DagBag(dag_folder=str(ROOT / "dags" / "monitor_model.py"))
    assert not bag.import_errors, bag.import_errors
    return {"monitor_model": bag.get_dag("monitor_model")}


# ------------------------------------------------------------------------------------------ the test


def test_drifted_traffic_emits_the_drift_asset_and_queues_retraining(
    aws: SimpleNamespace, cfg: Any, registered: dict[str, Any], monitored: dict[str, Any], dags: dict[str, Any]
) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    from ml_lifecycle.assets import drift_uri

    timings: dict[str, float] = {}
    started = time.perf_counter()
    resolved, baseline, schedule = monitored["resolved"], monitored["baseline"], monitored["schedule"]
    features = json.loads((ROOT / "include" / "code" / "common" / "features_schema.json").read_text())["features"]

    # the registry names the evaluation's baseline, laid out like a flattened capture record
    assert resolved["baseline_dataset_uri"] == registered["evaluate"]["baseline_uri"]
    assert registered["register"]["baseline_uri"] == registered["evaluate"]["baseline_uri"]
    statistics = s3_json(aws.s3, baseline["statistics_uri"])
    assert [f["name"] for f in statistics["features"]] == ["fraud_probability", "is_fraud", *features]
    evaluation = s3_json(aws.s3, registered["evaluate"]["evaluation_uri"])
    assert (
        statistics["dataset"]["item_count"] == evaluation["monitoring_baseline"]["rows"] == evaluation["data"]["rows"]
    )
    constraints = {f["name"]: f for f in s3_json(aws.s3, baseline["constraints_uri"])["features"]}
    ignored = {
        n
        for n, f in constraints.items()
        if f.get("monitoringConfigOverrides", {}).get("evaluate_constraints") == "Disabled"
    }
    assert ignored == set(cfg.monitoring.ignore_features)

    # Model Monitor's resources carry the configured tags (the MWAA e2e runs the default engine, which has none)
    from tests.e2e.tag_audit import MODEL_MONITOR_KINDS, audit, untagged

    found = audit(aws.devstack.client)
    assert all(found[kind] for kind in MODEL_MONITOR_KINDS), {k: found[k] for k in MODEL_MONITOR_KINDS}
    assert untagged({kind: found[kind] for kind in MODEL_MONITOR_KINDS}, dict(cfg.tags)) == {}

    drift_asset_uri = drift_uri(cfg)
    capture_uri = monitored["deployed"]["data_capture_uri"].rstrip("/") + f"/{ENDPOINT}/"

    # 1. undrifted traffic: no violation, no drift asset
    undrifted = feature_rows(aws.devstack, UNDRIFTED, features)
    assert len(undrifted) >= 300
    sent = send(aws, undrifted)
    wait_for(lambda: captured_records(aws, capture_uri) >= sent, 60, "the undrifted requests' capture")
    execution = scheduled_execution(aws, schedule["schedule_name"])
    assert execution["MonitoringExecutionStatus"] == "Completed", execution
    timings["undrifted traffic + hourly execution"] = time.perf_counter() - started

    run_id, states, xcoms = dag_test_run(dags["monitor_model"], {"run_now": False})
    assert states == {"choose_source": "success", "read_latest": "success", "run_now": "skipped",
                      "publish_drift": "skipped"}, states  # fmt: skip
    findings = xcoms["read_latest"]
    assert findings["execution_status"] == "Completed" and findings["violation_count"] == 0, findings
    assert findings["processing_job"] == execution["ProcessingJobArn"].rsplit("/", 1)[-1]
    assert asset_events(drift_asset_uri) == [], "no drift asset event for undrifted traffic"
    assert not s3_keys(aws.s3, drift_asset_uri)
    timings["monitor_model (no drift)"] = time.perf_counter() - started

    # 2. drifted traffic in the same hour: violations beyond the threshold, drift asset, retraining queued
    drifted = feature_rows(aws.devstack, DRIFTED, features)
    assert len(drifted) >= 2500
    sent += send(aws, drifted)
    wait_for(lambda: captured_records(aws, capture_uri) >= sent, 60, "the drifted requests' capture")
    execution = scheduled_execution(aws, schedule["schedule_name"])
    assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations", execution
    timings["drifted traffic + hourly execution"] = time.perf_counter() - started

    run_id, states, xcoms = dag_test_run(dags["monitor_model"], {"run_now": False})
    assert states["read_latest"] == "success" and states["publish_drift"] == "success", states
    findings = xcoms["read_latest"]
    assert findings["violation_count"] > cfg.monitoring.violation_threshold, findings
    drifted_features = set(findings["features"])
    assert {"amount", "card_avg_amount_7d"} <= drifted_features, findings["violations"]
    assert not drifted_features & set(cfg.monitoring.ignore_features), "calendar features are not checked"
    assert {v["constraint_check_type"] for v in findings["violations"]} == {"baseline_drift_check"}
    report = s3_json(aws.s3, drift_asset_uri)
    assert report["processing_job"] == findings["processing_job"] and report["dag_run_id"] == run_id
    events = asset_events(drift_asset_uri)
    assert len(events) == 1 and events[0].source_dag_id == "monitor_model", events
    assert events[0].extra["processing_job"] == findings["processing_job"]
    timings["monitor_model (drift)"] = time.perf_counter() - started

    create_asset_triggered_runs()
    with create_session() as session:
        runs = session.scalars(
            select(DagRun).where(DagRun.dag_id == "train_model", DagRun.run_type == "asset_triggered")
        ).all()
        assert len(runs) == 1, [(r.run_id, r.state) for r in runs]
        run = runs[0]
        assert getattr(run.state, "value", run.state) == "queued"
        assert [e.id for e in run.consumed_asset_events] == [events[0].id]
        queued_run_id = run.run_id
    timings["train_model queued"] = time.perf_counter() - started

    # 3. the one-off analysis of the last hour (monitor_model's run_now path) sees the drift too
    run_id, states, xcoms = dag_test_run(dags["monitor_model"], {"run_now": True, "window_hours": 1})
    assert states["run_now"] == "success" and states["publish_drift"] == "success", states
    assert xcoms["run_now"]["violation_count"] > cfg.monitoring.violation_threshold
    assert len(asset_events(drift_asset_uri)) == 2
    timings["monitor_model run_now (drift)"] = time.perf_counter() - started
    print("drift findings:", findings["violation_count"], sorted(findings["features"]))
    print("timings (s, cumulative):", json.dumps({k: round(v, 1) for k, v in timings.items()}))

    with create_session() as session:  # leave no queued retraining behind for other tests
        session.execute(delete(DagRun).where(DagRun.dag_id == "train_model", DagRun.run_id == queued_run_id))
