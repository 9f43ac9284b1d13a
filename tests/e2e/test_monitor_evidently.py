"""The evidently monitoring engine end to end on the devstack, with Model Monitor refused as in a new account.

The devstack's Model Monitor APIs answer ``AccessDeniedException`` for the whole module
(``POST /_devstack/monitoring/availability {"available": false}``), so every step below proves it never
calls them. One model is trained on the four weeks before the seeded drift (as in ``test_monitor_drift.py``),
registered with its baseline dataset and deployed (``deploy_model``'s tasks under this engine end at the
deployment: no baseline job, no schedule). Traffic is the feature SQL's rows as ``text/csv``:

1. undrifted traffic (2026-02-13 .. 2026-02-15); ``monitor_model`` over an interval holding it:
   ``export_labels`` finds no label for the window, ``run_monitoring`` runs the monitoring job (a
   processing job in the monitoring image), reports model quality ``no_labels`` (reported, not failed) and
   no drift; ``publish_drift`` is skipped, no drift asset event; the metrics are in CloudWatch
   (``MlLifecycle/Monitoring``) and the alarms of ``monitoring.alarms`` exist;
2. drifted traffic (2026-02-15 .. 2026-03-02) in a later interval: the job decides drift, ``publish_drift``
   writes ``drift.json`` with the reasons and emits the drift asset; the scheduler's asset step creates a
   **queued** ``train_model`` run that consumed that event.

The DAGs run with ``dag.test()`` on the session's metadata database, under a copy of the ``local`` config
with ``monitoring.engine: evidently``, this module's endpoint and model package group.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.e2e.test_monitor_drift import (
    _airflow,
    asset_events,
    captured_records,
    create_asset_triggered_runs,
    dag_test_run,
    feature_rows,
)
from tests.faults.conftest import control, run_pipeline, run_task, s3_json, s3_keys, task_context, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = "fraud-evidently-e2e"
GROUP = "fraud-detector-evidently-e2e"
ANCHOR = dt.datetime(2026, 2, 8, tzinfo=dt.UTC)
WINDOW_DAYS = 31
UNDRIFTED = ("2026-02-13 00:00:00", "2026-02-15 00:00:00")
DRIFTED = ("2026-02-15 00:00:00", "2026-03-02 00:00:00")
ROWS_PER_REQUEST = 100
AVAILABILITY = "/_devstack/monitoring/availability"


def send(aws: SimpleNamespace, rows: list[list[str]]) -> int:
    """Send ``rows`` as ``text/csv`` requests without header, ``Accept: text/csv``; the number of requests."""
    requests = 0
    for start in range(0, len(rows), ROWS_PER_REQUEST):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows[start : start + ROWS_PER_REQUEST])
        aws.runtime.invoke_endpoint(
            EndpointName=ENDPOINT, Body=buffer.getvalue().encode(), ContentType="text/csv", Accept="text/csv"
        )["Body"].read()
        requests += 1
    return requests


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The ``local`` config with the evidently engine, this module's endpoint and group."""
    from ml_lifecycle.config import CONFIG_DIR_VAR, load_config

    text = (ROOT / "include" / "config" / "local.yaml").read_text()
    text, endpoints = re.subn(r"(?m)^(\s*endpoint_name:) .*$", rf"\1 {ENDPOINT}", text)
    text, groups = re.subn(r"(?m)^(\s*model_package_group:) .*$", rf"\1 {GROUP}", text)
    text, engines = re.subn(r"(?m)^(  engine:) .*$", r"\1 evidently", text)
    assert endpoints == groups == engines == 1, "local.yaml names one endpoint, group and monitoring engine"
    folder = tmp_path_factory.mktemp("config")
    (folder / "local.yaml").write_text(text)
    saved = os.environ.get(CONFIG_DIR_VAR)
    os.environ[CONFIG_DIR_VAR] = str(folder)
    try:
        config = load_config("local")
        assert config.monitoring.engine == "evidently" and config.deployment.endpoint_name == ENDPOINT
        yield config
    finally:
        if saved is None:
            os.environ.pop(CONFIG_DIR_VAR, None)
        else:
            os.environ[CONFIG_DIR_VAR] = saved


@pytest.fixture(scope="module")
def aws(devstack: Any, airflow_db: Path, cfg: Any) -> Iterator[SimpleNamespace]:
    """Clients, and Model Monitor refused for the module (as for an account without access)."""
    s3 = devstack.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=cfg.storage.bucket)
    devstack.client("sns").create_topic(Name=cfg.notifications.sns_topic_arn.rsplit(":", 1)[1])
    assert control(devstack.sagemaker_url, "POST", AVAILABILITY, {"available": False}) == {"available": False}
    sm = devstack.client("sagemaker")
    with pytest.raises(sm.exceptions.ClientError, match="AccessDeniedException"):
        sm.list_monitoring_schedules()
    try:
        yield SimpleNamespace(
            s3=s3,
            sm=sm,
            runtime=devstack.client("sagemaker-runtime"),
            cloudwatch=devstack.client("cloudwatch"),
            url=devstack.sagemaker_url,
            devstack=devstack,
        )
    finally:
        control(devstack.sagemaker_url, "POST", AVAILABILITY, {"available": True})


@pytest.fixture(scope="module")
def deployed(aws: SimpleNamespace, cfg: Any) -> Iterator[dict[str, Any]]:
    """train_model's tasks for the pre-drift window (register with baseline_uri), then the deployment."""
    from ml_lifecycle.operators.approval import ResolveModelPackageOperator
    from ml_lifecycle.operators.deploy import GuardedEndpointDeployOperator
    from ml_lifecycle.operators.gate import QualityGateOperator
    from ml_lifecycle.operators.registry import ModelRegistrationOperator
    from ml_lifecycle.operators.sagemaker import EvaluationJobOperator

    run_id = "manual__monitor_evidently"
    params = {"window_days": WINDOW_DAYS}
    out = run_pipeline(run_id, anchor=ANCHOR, params=params)
    plan = out["plan"]

    def ctx(task_id: str) -> dict[str, Any]:
        return task_context(task_id, run_id, anchor=ANCHOR, params=params)

    evaluate = run_task(
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
    gate = run_task(QualityGateOperator(task_id="gate", evaluation_uri=evaluate["evaluation_uri"]), ctx("gate"))
    assert gate["passed"], gate
    run_task(
        ModelRegistrationOperator(
            task_id="register",
            gate=gate,
            model_uri=out["train"]["model_uri"],
            image_uri=cfg.sagemaker.images.inference,
            package_group_name=GROUP,
            dataset_uri=out["extract"]["dataset_uri"],
            manifest_uri=out["extract"]["manifest_uri"],
            training_job=out["train"]["job_name"],
            baseline_uri=evaluate["baseline_uri"],
            approval="auto",
        ),
        ctx("register"),
    )

    def deploy_ctx(task_id: str) -> dict[str, Any]:
        return task_context(task_id, "manual__monitor_evidently_deploy", dag_id="deploy_model")

    resolved = run_task(
        ResolveModelPackageOperator(task_id="resolve", model_package_arn="latest"), deploy_ctx("resolve")
    )
    result = run_task(
        GuardedEndpointDeployOperator(
            task_id="deploy_guarded",
            model_package_arn=resolved["model_package_arn"],
            alarm_period_seconds=10,
            poll_interval=1,
        ),
        deploy_ctx("deploy_guarded"),
    )
    yield {"resolved": resolved, "deployed": result, "baseline_uri": evaluate["baseline_uri"]}
    with contextlib.suppress(Exception):
        aws.sm.delete_endpoint(EndpointName=ENDPOINT)


@pytest.fixture(scope="module")
def dags(aws: SimpleNamespace, cfg: Any) -> dict[str, Any]:
    """Every DAG serialized (train_model unpaused); monitor_model and deploy_model parsed under this config."""
    from airflow.dag_processing.dagbag import DagBag

    _airflow("dags", "reserialize")
    _airflow("dags", "unpause", "train_model")
    out = {}
    for name in ("monitor_model", "deploy_model"):
        bag = DagBag(dag_folder=str(ROOT / "dags" / f"{name}.py"))
        assert not bag.import_errors, bag.import_errors
        out[name] = bag.get_dag(name)
    return out


# ------------------------------------------------------------------------------------------ the test


def test_evidently_engine_monitors_reports_and_queues_retraining_without_model_monitor(
    aws: SimpleNamespace, cfg: Any, deployed: dict[str, Any], dags: dict[str, Any]
) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    from ml_lifecycle.assets import drift_uri

    timings: dict[str, float] = {}
    started = time.perf_counter()
    features = json.loads((ROOT / "include" / "code" / "common" / "features_schema.json").read_text())["features"]
    assert {t.task_id for t in dags["monitor_model"].tasks} == {"export_labels", "run_monitoring", "publish_drift"}
    assert not {"baseline", "schedule_monitoring"} & {t.task_id for t in dags["deploy_model"].tasks}
    assert deployed["resolved"]["baseline_dataset_uri"] == deployed["baseline_uri"]
    drift_asset_uri = drift_uri(cfg)
    capture_uri = deployed["deployed"]["data_capture_uri"].rstrip("/") + f"/{ENDPOINT}/"

    # 1. undrifted traffic: no labels yet (reported), no drift, no asset event; metrics and alarms exist
    first_start = now() - dt.timedelta(seconds=1)
    undrifted = feature_rows(aws.devstack, UNDRIFTED, features)
    sent = send(aws, undrifted)
    wait_for(lambda: captured_records(aws, capture_uri) >= sent, 60, "the undrifted requests' capture")
    first_end = now() + dt.timedelta(seconds=1)
    time.sleep(1.5)  # the interval's end is exclusive: let it pass before the run
    conf = {"interval_start": first_start.isoformat(), "interval_end": first_end.isoformat()}
    _, states, xcoms = dag_test_run(dags["monitor_model"], conf)
    assert states == {"export_labels": "success", "run_monitoring": "success", "publish_drift": "skipped"}, states
    assert xcoms["export_labels"]["labels"] == 0
    result = xcoms["run_monitoring"]
    assert result["status"] == "completed", result
    assert result["model_quality"]["status"] == "no_labels", result["model_quality"]
    assert result["rows"]["interval"] == len(undrifted), result["rows"]
    assert result["drift"]["drifted"] is False, result["drift"]
    assert result["decision"]["retrain"] is False, result["decision"]
    summary = s3_json(aws.s3, result["summary_uri"])
    assert set(summary["drift"]["features"]) == set(features) - set(cfg.monitoring.ignore_features)
    assert s3_keys(aws.s3, result["report_uri"]), "report.html is written"
    assert asset_events(drift_asset_uri) == [] and not s3_keys(aws.s3, drift_asset_uri)
    metrics = aws.cloudwatch.list_metrics(
        Namespace="MlLifecycle/Monitoring", Dimensions=[{"Name": "Endpoint", "Value": ENDPOINT}]
    )["Metrics"]
    assert {"DriftShare", "FeatureDriftScore"} <= {m["MetricName"] for m in metrics}, metrics
    alarms = aws.cloudwatch.describe_alarms(AlarmNamePrefix=f"{ENDPOINT}-monitoring-")["MetricAlarms"]
    assert {a["AlarmName"] for a in alarms} == {f"{ENDPOINT}-monitoring-{a.name}" for a in cfg.monitoring.alarms}
    timings["undrifted traffic + monitor_model"] = time.perf_counter() - started

    # 2. drifted traffic in a later interval: drift, drift.json with the reasons, asset event, queued retraining
    second_start = max(now(), first_end) + dt.timedelta(seconds=1)
    time.sleep(max(0.0, (second_start - now()).total_seconds()) + 0.5)
    drifted = feature_rows(aws.devstack, DRIFTED, features)
    sent += send(aws, drifted)
    wait_for(lambda: captured_records(aws, capture_uri) >= sent, 60, "the drifted requests' capture")
    second_end = now() + dt.timedelta(seconds=1)
    time.sleep(1.5)
    conf = {"interval_start": second_start.isoformat(), "interval_end": second_end.isoformat()}
    run_id, states, xcoms = dag_test_run(dags["monitor_model"], conf)
    assert states["run_monitoring"] == "success" and states["publish_drift"] == "success", states
    result = xcoms["run_monitoring"]
    assert result["rows"]["interval"] == len(drifted), result["rows"]
    assert result["drift"]["drifted"] is True and result["drift"]["share"] >= cfg.monitoring.drift.share
    assert {"amount", "card_avg_amount_7d"} <= set(result["drift"]["features"]), result["drift"]
    reasons = xcoms["publish_drift"]["reasons"]
    assert any(r["check"] == "drift" and r["threshold"] == cfg.monitoring.drift.share for r in reasons), reasons
    document = s3_json(aws.s3, drift_asset_uri)
    assert document["reasons"] == reasons and document["dag_run_id"] == run_id
    assert document["interval"] == result["interval"] and document["report_uri"] == result["report_uri"]
    events = asset_events(drift_asset_uri)
    assert len(events) == 1 and events[0].source_dag_id == "monitor_model", events
    assert events[0].extra["reasons"] == reasons and events[0].extra["job_name"] == result["job_name"]
    timings["drifted traffic + monitor_model"] = time.perf_counter() - started

    create_asset_triggered_runs()
    with create_session() as session:
        runs = session.scalars(
            select(DagRun).where(DagRun.dag_id == "train_model", DagRun.run_type == "asset_triggered")
        ).all()
        fresh = [r for r in runs if [e.id for e in r.consumed_asset_events] == [events[0].id]]
        assert len(fresh) == 1, [(r.run_id, r.state) for r in runs]
        assert getattr(fresh[0].state, "value", fresh[0].state) == "queued"
        queued_run_id = fresh[0].run_id
    timings["train_model queued"] = time.perf_counter() - started

    # Model Monitor was refused all along, and nothing of it exists for this endpoint
    with pytest.raises(aws.sm.exceptions.ClientError, match="Model Monitor availability change"):
        aws.sm.list_monitoring_schedules(EndpointName=ENDPOINT)
    print("drift:", result["drift"], "reasons:", reasons)
    print("timings (s, cumulative):", json.dumps({k: round(v, 1) for k, v in timings.items()}))

    with create_session() as session:  # leave no queued retraining behind for other tests
        session.execute(delete(DagRun).where(DagRun.dag_id == "train_model", DagRun.run_id == queued_run_id))
