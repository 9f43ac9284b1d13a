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
   **queued** ``train_model`` run that consumed that event;
3. late labels on which the model's recall collapses: undrifted transactions the endpoint scores (one request
   each, ``InferenceId`` = transaction id) get ``FRAUD_LABELS`` rows that arrive inside the lookback window
   (``LABELED_AT`` before the interval's end) and make the fraud the ones it called legitimate;
   ``monitor_model`` reports a model-quality breach (recall 0 below ``recall_min``), ``drift.json`` names
   the metric, value and threshold and a ``train_model`` run is queued;
4. a biased segment: the same with the missed fraud only in the ``student`` segment (caught elsewhere): a bias
   breach (RD), the endpoint's bias hold, the notice on the team's topic, and the next automatic approval
   registers the model ``PendingManualApproval`` with the hold's reason.

Cases 3 and 4 set the labels of the transactions they send and restore them afterwards; neither leaves a bias
hold or a queued run behind.

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
    _cell,
    asset_events,
    captured_records,
    create_asset_triggered_runs,
    dag_test_run,
    feature_rows,
)
from tests.faults.conftest import (
    control,
    notifications,
    run_pipeline,
    run_task,
    s3_json,
    s3_keys,
    task_context,
    wait_for,
)

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


def scored_pool(
    aws: SimpleNamespace, features: list[str], size: int, interval: tuple[str, str] = UNDRIFTED
) -> list[dict[str, Any]]:
    """``size`` undrifted transactions of ``interval`` (id, segment, model inputs) with the predicted label.

    Scored in batches without ``InferenceId`` (captured, never joined to a label), before an interval starts.
    """
    from tools.lifecycle import predict

    sql = (ROOT / "include" / "sql" / "features.sql").read_text()
    with contextlib.closing(aws.devstack.snowflake_connect()) as conn:
        cursor = conn.cursor()
        cursor.execute(sql, {"interval_start": interval[0], "interval_end": interval[1]})
        names = [d[0].lower() for d in cursor.description]
        rows = cursor.fetchall()[:size]
    positions = [names.index(f) for f in features]
    pool = [
        {
            "id": str(row[names.index("transaction_id")]),
            "segment": str(row[names.index("customer_segment")]),
            "row": [_cell(row[p]) for p in positions],
        }
        for row in rows
    ]
    for start in range(0, len(pool), ROWS_PER_REQUEST):
        chunk = pool[start : start + ROWS_PER_REQUEST]
        answers = predict(aws.runtime, ENDPOINT, [t["row"] for t in chunk])
        for item, answer in zip(chunk, answers, strict=True):
            item["predicted"] = int(answer.split(",")[1])
    return pool


@contextlib.contextmanager
def arrived_labels(aws: SimpleNamespace, labels: dict[str, int], labeled_at: dt.datetime) -> Iterator[None]:
    """Set ``FRAUD_LABELS`` of these transactions to ``labels`` arriving at ``labeled_at``; restore them after."""
    at = labeled_at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    with contextlib.closing(aws.devstack.snowflake_connect()) as conn:
        cursor = conn.cursor()
        saved = {}
        for transaction_id, label in labels.items():
            cursor.execute(
                "SELECT IS_FRAUD, LABELED_AT FROM FRAUD_LABELS WHERE TRANSACTION_ID = %(id)s", {"id": transaction_id}
            )
            rows = cursor.fetchall()
            assert len(rows) == 1, f"the seed has one label for {transaction_id}: {rows}"
            saved[transaction_id] = rows[0]
            cursor.execute(
                "UPDATE FRAUD_LABELS SET IS_FRAUD = %(fraud)s, LABELED_AT = TO_TIMESTAMP_NTZ(%(at)s)"
                " WHERE TRANSACTION_ID = %(id)s",
                {"fraud": bool(label), "at": at, "id": transaction_id},
            )
        try:
            yield
        finally:
            for transaction_id, (fraud, when) in saved.items():
                cursor.execute(
                    "UPDATE FRAUD_LABELS SET IS_FRAUD = %(fraud)s, LABELED_AT = TO_TIMESTAMP_NTZ(%(at)s)"
                    " WHERE TRANSACTION_ID = %(id)s",
                    {"fraud": fraud, "at": when.isoformat(sep=" "), "id": transaction_id},
                )


def send_scored(aws: SimpleNamespace, items: list[dict[str, Any]]) -> tuple[dt.datetime, dt.datetime]:
    """Send ``items`` one request each with ``InferenceId`` = transaction id, in a fresh interval; its bounds."""
    from tools.lifecycle import send as send_rows

    start = now() - dt.timedelta(seconds=1)
    send_rows(aws.runtime, ENDPOINT, [t["row"] for t in items], inference_ids=[t["id"] for t in items])
    end = now() + dt.timedelta(seconds=1)
    time.sleep(1.5)  # the interval's end is exclusive: let it pass before the run
    return start, end


def delete_asset_triggered_train_runs(event_ids: set[int]) -> list[Any]:
    """Create the runs the scheduler would for queued asset events; delete the train_model runs that consumed
    any of ``event_ids``; return those runs' (run_id, state, consumed event ids)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    create_asset_triggered_runs()
    with create_session() as session:
        runs = session.scalars(
            select(DagRun).where(DagRun.dag_id == "train_model", DagRun.run_type == "asset_triggered")
        ).all()
        fresh = [
            (r.run_id, getattr(r.state, "value", r.state), {e.id for e in r.consumed_asset_events})
            for r in runs
            if {e.id for e in r.consumed_asset_events} & event_ids
        ]
        for run_id, _, _ in fresh:
            session.execute(delete(DagRun).where(DagRun.dag_id == "train_model", DagRun.run_id == run_id))
    return fresh


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
    sns, sqs = devstack.client("sns"), devstack.client("sqs")
    topic = sns.create_topic(Name=cfg.notifications.sns_topic_arn.rsplit(":", 1)[1])["TopicArn"]
    queue = sqs.create_queue(QueueName="monitor-evidently-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
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
            sqs=sqs,
            queue=queue,
            seen_notifications=[],
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
    register = {
        "gate": gate,
        "model_uri": out["train"]["model_uri"],
        "image_uri": cfg.sagemaker.images.inference,
        "package_group_name": GROUP,
        "dataset_uri": out["extract"]["dataset_uri"],
        "manifest_uri": out["extract"]["manifest_uri"],
        "training_job": out["train"]["job_name"],
        "baseline_uri": evaluate["baseline_uri"],
        "approval": "auto",
    }
    run_task(ModelRegistrationOperator(task_id="register", **register), ctx("register"))

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
    yield {"resolved": resolved, "deployed": result, "baseline_uri": evaluate["baseline_uri"], "register": register}
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


def test_recall_collapse_on_late_labels_is_a_model_quality_breach_that_queues_retraining(
    aws: SimpleNamespace, cfg: Any, deployed: dict[str, Any], dags: dict[str, Any]
) -> None:
    """Late labels make the served model's recall collapse: breach, drift.json names recall, retraining queued."""
    from ml_lifecycle.assets import drift_uri
    from ml_lifecycle.bias_hold import clear_hold

    started = time.perf_counter()
    features = json.loads((ROOT / "include" / "code" / "common" / "features_schema.json").read_text())["features"]
    pool = scored_pool(aws, features, 400)
    missed = [t for t in pool if t["predicted"] == 0][:100]
    flagged = [t for t in pool if t["predicted"] == 1][:20]
    # the fraud is where the model said "legitimate", and what it flagged was legitimate: recall 0
    labels = {t["id"]: i % 2 for i, t in enumerate(missed)} | {t["id"]: 0 for t in flagged}
    assert len(labels) >= cfg.monitoring.model_quality.min_labelled_rows
    start, end = send_scored(aws, missed + flagged)
    drift_asset_uri = drift_uri(cfg)
    before = {e.id for e in asset_events(drift_asset_uri)}
    # the labels arrive within the lookback window, before the interval's end (a whole hour: exports are hourly)
    try:
        with arrived_labels(aws, labels, end.replace(minute=0, second=0) - dt.timedelta(minutes=30)):
            conf = {"interval_start": start.isoformat(), "interval_end": end.isoformat()}
            run_id, states, xcoms = dag_test_run(dags["monitor_model"], conf)
    finally:  # the predicted-positive shares of the segments may differ enough for a bias hold: none is left
        clear_hold(aws.s3, cfg, ENDPOINT)
    assert states == {"export_labels": "success", "run_monitoring": "success", "publish_drift": "success"}, states
    assert xcoms["export_labels"]["labels"] == len(labels), xcoms["export_labels"]
    result = xcoms["run_monitoring"]
    assert result["drift"]["drifted"] is False, result["drift"]
    summary = s3_json(aws.s3, result["summary_uri"])
    quality = summary["model_quality"]
    recall_min = cfg.monitoring.model_quality.recall_min
    assert quality["status"] == "breach" and quality["labelled"] == len(labels), quality
    assert quality["metrics"]["recall"] == 0.0 < recall_min, quality["metrics"]
    assert quality["metrics"]["confusion_matrix"]["1"] == {"0": 50, "1": 0}, quality["metrics"]
    recall_breach = [b for b in quality["breaches"] if b["metric"] == "recall"]
    assert recall_breach == [
        {"metric": "recall", "value": 0.0, "threshold": recall_min, "comparison": "LessThanThreshold"}
    ], quality["breaches"]

    reasons = xcoms["publish_drift"]["reasons"]
    assert {"check": "model_quality", "metric": "recall", "value": 0.0, "threshold": recall_min} in reasons, reasons
    assert not [r for r in reasons if r["check"] == "drift"], reasons
    document = s3_json(aws.s3, drift_asset_uri)
    assert document["reasons"] == reasons and document["dag_run_id"] == run_id
    events = [e for e in asset_events(drift_asset_uri) if e.id not in before]
    assert len(events) == 1 and events[0].extra["reasons"] == reasons, events
    queued = delete_asset_triggered_train_runs({events[0].id})
    # one queued run consumed the event (with any earlier event whose run is gone: Airflow's "since the last run")
    assert [state for _, state, consumed in queued if events[0].id in consumed] == ["queued"], queued
    print("model quality:", quality["metrics"], f"({time.perf_counter() - started:.1f}s)")


def test_biased_segment_is_a_bias_breach_that_holds_automatic_approval(
    aws: SimpleNamespace, cfg: Any, deployed: dict[str, Any], dags: dict[str, Any]
) -> None:
    """The fraud of one segment goes unseen: bias breach, the endpoint's hold, the notice, held registration."""
    from ml_lifecycle.assets import drift_uri
    from ml_lifecycle.bias_hold import clear_hold, read_hold
    from ml_lifecycle.operators.registry import ModelRegistrationOperator

    started = time.perf_counter()
    features = json.loads((ROOT / "include" / "code" / "common" / "features_schema.json").read_text())["features"]
    # after the training window and before the recall test's transactions
    pool = scored_pool(aws, features, 1000, ("2026-02-08 00:00:00", "2026-02-13 00:00:00"))
    segment = "student"
    held = [t for t in pool if t["segment"] == segment and t["predicted"] == 0][:40]
    others_flagged = [t for t in pool if t["segment"] != segment and t["predicted"] == 1][:20]
    others = [t for t in pool if t["segment"] != segment and t["predicted"] == 0][:40]
    assert len(held) == 40 and others_flagged and len(others) == 40, (len(held), len(others_flagged), len(others))
    # in the segment half the transactions are fraud the model missed (recall 0); elsewhere it caught all (recall 1)
    labels = (
        {t["id"]: i % 2 for i, t in enumerate(held)}
        | {t["id"]: 1 for t in others_flagged}
        | {t["id"]: 0 for t in others}
    )
    start, end = send_scored(aws, held + others_flagged + others)
    clear_hold(aws.s3, cfg, ENDPOINT)
    assert read_hold(aws.s3, cfg, ENDPOINT) is None
    try:
        with arrived_labels(aws, labels, end.replace(minute=0, second=0) - dt.timedelta(minutes=30)):
            conf = {"interval_start": start.isoformat(), "interval_end": end.isoformat()}
            _, states, xcoms = dag_test_run(dags["monitor_model"], conf)
        assert states["run_monitoring"] == "success", states
        result = xcoms["run_monitoring"]
        assert result["bias"]["status"] == "breach", result["bias"]
        rd_max = cfg.monitoring.bias.rd_abs_max
        rd = [b for b in result["bias"]["breaches"] if b["facet_value"] == segment and b["metric"] == "RD"]
        assert len(rd) == 1 and abs(rd[0]["value"]) == 1.0 > rd_max and rd[0]["threshold"] == rd_max, rd
        assert rd[0]["comparison"] == "AbsGreaterThanThreshold", rd

        hold = read_hold(aws.s3, cfg, ENDPOINT)
        assert hold is not None and result["bias_hold_uri"] == hold["uri"], (hold, result)
        assert hold["endpoint"] == ENDPOINT and hold["facet"] == "customer_segment", hold
        assert {(b["facet_value"], b["metric"]) for b in hold["breaches"]} >= {(segment, "RD")}, hold
        assert notifications(aws, hold["uri"]), aws.seen_notifications

        # the next automatic approval: registered PendingManualApproval with the hold's reason
        context = task_context(
            "register", "manual__monitor_evidently_held", anchor=ANCHOR, params={"window_days": WINDOW_DAYS}
        )
        registered = run_task(ModelRegistrationOperator(task_id="register", **deployed["register"]), context)
        assert registered["approval_status"] == "PendingManualApproval", registered
        assert registered["approval_hold"] and "monitoring found bias" in registered["approval_hold"], registered
        package = aws.sm.describe_model_package(ModelPackageName=registered["model_package_arn"])
        assert package["ModelApprovalStatus"] == "PendingManualApproval"
        reason = package["ApprovalDescription"]
        assert reason == registered["approval_hold"][:1024], (reason, registered["approval_hold"])
        assert reason.startswith(f"Held for manual approval: monitoring found bias on endpoint {ENDPOINT}"), reason
    finally:
        clear_hold(aws.s3, cfg, ENDPOINT)
        new = {e.id for e in asset_events(drift_uri(cfg))}
        delete_asset_triggered_train_runs(new)  # a model-quality reason may have queued one: leave none behind
    print("bias breaches:", result["bias"]["breaches"], f"({time.perf_counter() - started:.1f}s)")
