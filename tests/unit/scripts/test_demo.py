"""scripts/demo.py reads its summary straight from Airflow's SQLite metadata database."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
import sqlite3
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _insert(conn: sqlite3.Connection, table: str, values: dict) -> None:
    """Insert a row, giving every other NOT NULL column without a default a placeholder of its type."""
    for _, name, kind, not_null, default, primary in conn.execute(f"PRAGMA table_info({table})"):
        if name in values or not not_null or default is not None or (primary and kind == "INTEGER"):
            continue
        kind = kind.upper()
        values[name] = 0 if "INT" in kind or "BOOL" in kind or "FLOAT" in kind else f"{name}-placeholder"
    columns = ", ".join(values)
    conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(values))})", list(values.values()))


@pytest.fixture(scope="module")
def empty_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The metadata tables as Airflow's own models define them, created once."""
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from sqlalchemy import create_engine

    import_all_models()
    path = tmp_path_factory.mktemp("schema") / "airflow.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    return path


@pytest.fixture
def database(empty_database: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(empty_database, tmp_path / "airflow.db"))


def _seed(path: Path, runs: list[tuple[str, str]], tasks: list[tuple], xcoms: dict[str, object]) -> None:
    with sqlite3.connect(path) as conn:
        for number, (run_id, state) in enumerate(runs, start=1):
            _insert(conn, "dag_run", {"id": number, "dag_id": "train_model", "run_id": run_id, "state": state})
        latest = runs[-1][0]
        for task_id, state, start, duration in tasks:
            _insert(
                conn,
                "task_instance",
                {
                    "id": f"{task_id}-id",
                    "dag_id": "train_model",
                    "run_id": latest,
                    "task_id": task_id,
                    "map_index": -1,
                    "state": state,
                    "try_number": 1,
                    "start_date": start,
                    "duration": duration,
                },
            )
        for task_id, value in xcoms.items():
            _insert(
                conn,
                "xcom",
                {
                    "dag_run_id": len(runs),
                    "dag_id": "train_model",
                    "run_id": latest,
                    "task_id": task_id,
                    "map_index": -1,
                    "key": "return_value",
                    "value": json.dumps(value),
                    "timestamp": dt.datetime(2026, 3, 1).isoformat(" "),
                },
            )


def test_summary_reads_the_latest_run_in_task_order(demo: ModuleType, database: Path) -> None:
    gate = {"decision": "approved", "passed": True, "metrics": {"auc": 0.93}}
    _seed(
        database,
        runs=[("manual__older", "failed"), ("manual__latest", "success")],
        tasks=[
            ("evaluate", "success", "2026-03-01 10:00:20.000000", 8.25),
            ("plan", "success", "2026-03-01 10:00:00.000000", 2.0),
            ("tune", "skipped", None, None),
        ],
        xcoms={"gate": gate, "plan": {"window": {"days": 60}}},
    )
    result = demo.summary(database)
    assert result["run_id"] == "manual__latest"
    assert result["state"] == "success"
    assert [t["task_id"] for t in result["tasks"]] == ["plan", "evaluate", "tune"]
    assert [t["seconds"] for t in result["tasks"]] == [2.0, 8.2, None]
    assert result["xcom"]["gate"] == gate
    assert result["xcom"]["plan"]["window"]["days"] == 60


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        pytest.param(False, "no Airflow metadata database", id="no-database"),
        pytest.param(True, "no train_model run", id="no-run"),
    ],
)
def test_summary_says_what_is_missing(demo: ModuleType, database: Path, tmp_path: Path, seed: bool, message: str):
    path = database if seed else tmp_path / "absent.db"
    with pytest.raises(SystemExit, match=message):
        demo.summary(path)


# ------------------------------------------------------------------------------------------ the whole loop


def test_progress_lines_carry_the_seconds_since_the_start(demo: ModuleType) -> None:
    import io

    ticks = iter([100.0, 100.04, 112.345, 130.0])
    out = io.StringIO()
    progress = demo.Progress(out=out, clock=lambda: next(ticks))
    progress.line("airflow: up")
    progress.task("train_model", "r1", "plan", "running", 1)
    progress.task("deploy_model", "r2", "deploy_guarded", None, 2)
    assert out.getvalue().splitlines() == [
        "[   0.0s] airflow: up",
        "[  12.3s] train_model   plan                 running",
        "[  30.0s] deploy_model  deploy_guarded       none (try 2)",
    ]


def _result(reports_dir: Path) -> dict:
    return {
        "state": "success",
        "wall": 141.6,
        "airflow_url": "http://127.0.0.1:8080",
        "endpoint": {
            "name": "fraud-detector-local",
            "status": "InService",
            "variants": "AllTraffic weight 1.0",
            "console_url": "http://127.0.0.1:4570/console/endpoints/fraud-detector-local",
        },
        "sample": {"row": ["12.5", "2.6"], "prediction": "0.0132"},
        "champion": {
            "model_package_arn": "arn:aws:sagemaker:us-east-1:1:model-package/fraud/2",
            "version": 2,
            "console_url": "http://127.0.0.1:4570/console/model-packages/fraud/2",
        },
        "trainings": [
            {
                "run_id": "demo__t",
                "trigger": "manual",
                "gate": {"decision": "passed", "reason": "thresholds met", "metrics": {"auc": 0.91234}},
                "register": {"version": 1, "approval_status": "Approved"},
            },
            {
                "run_id": "asset__x",
                "trigger": "drift asset",
                "gate": {
                    "decision": "rejected",
                    "reason": "auc -0.05",
                    "baseline_model_package_arn": "arn:...:model-package/fraud/1",
                    "metrics": {"auc": 0.86},
                },
            },
        ],
        "deployments": [{"run_id": "asset__d", "how": "first deployment (creates the endpoint)"}],
        "monitoring": {"violation_count": 3, "threshold": 1, "drift": True, "features": ["amount", "log_amount"]},
        "reports_dir": str(reports_dir),
        "reports": {"training 1": [reports_dir / "training-1" / "roc_curve.png"]},
    }


def test_lifecycle_summary_names_endpoint_champion_gates_findings_and_reports(demo: ModuleType, tmp_path) -> None:
    text = "\n".join(demo.lifecycle_summary(_result(tmp_path)))
    assert text.startswith("Whole loop SUCCESS in 142 s")
    assert "fraud-detector-local (InService, AllTraffic weight 1.0)" in text
    assert "fraud probability 0.0132 for 12.5,2.6" in text
    assert "champion        version 2: arn:aws:sagemaker:us-east-1:1:model-package/fraud/2" in text
    assert "gate          PASSED: thresholds met" in text and "against: none (thresholds only)" in text
    assert "gate          REJECTED: auc -0.05" in text and "against: arn:...:model-package/fraud/1" in text
    assert "metrics: auc=0.9123" in text
    assert "registered    version 1, Approved" in text
    assert "3 violation(s) (threshold 1), drift FOUND" in text and "drifted features: amount, log_amount" in text
    assert str(tmp_path / "training-1" / "roc_curve.png") in text
    reports_at = text.index(str(tmp_path / "training-1" / "roc_curve.png"))
    assert text.index("    model package http://127.0.0.1:4570/console/model-packages/fraud/2") > reports_at
    assert "    endpoint      http://127.0.0.1:4570/console/endpoints/fraud-detector-local" in text


def test_lifecycle_summary_of_a_run_that_stopped_early(demo: ModuleType) -> None:
    lines = demo.lifecycle_summary({"wall": 9.0, "airflow_url": "not started", "trainings": [], "deployments": []})
    assert lines == [
        "Whole loop DONE in 9 s",
        "  airflow         not started (scheduler, dag-processor, triggerer; LocalExecutor)",
    ]


@pytest.fixture
def s3():
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="reports-bucket")
        yield client


def _stats(buckets: list[tuple[float, float, int]]) -> dict:
    kll = {"buckets": [{"lower_bound": lo, "upper_bound": hi, "count": n} for lo, hi, n in buckets]}
    return {"features": [{"name": "amount", "numerical_statistics": {"distribution": {"kll": kll}}}]}


def test_download_reports_fetches_the_named_files_that_exist(demo: ModuleType, s3, tmp_path: Path) -> None:
    for name in ("evaluation.json", "roc_curve.png", "other.bin"):
        s3.put_object(Bucket="reports-bucket", Key=f"runs/r1/evaluation/{name}", Body=name.encode())
    s3.put_object(Bucket="reports-bucket", Key="runs/r1/evaluation-old/pr_curve.png", Body=b"x")
    report = "s3://reports-bucket/runs/r1/evaluation/evaluation.json"
    files = demo.download_reports(s3, report, demo.EVALUATION_FILES, tmp_path)
    assert files == [tmp_path / "evaluation.json", tmp_path / "roc_curve.png"]
    assert (tmp_path / "roc_curve.png").read_bytes() == b"roc_curve.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluation.json", "roc_curve.png"]


@pytest.mark.parametrize("uri", ["", "s3://", "https://b/k", None])
def test_s3_location_refuses_what_is_not_an_s3_uri(demo: ModuleType, uri) -> None:
    with pytest.raises(ValueError, match="not an s3:// URI"):
        demo.s3_location(uri)


def test_collect_reports_downloads_every_report_and_draws_a_chart_per_drifted_feature(
    demo: ModuleType, s3, tmp_path: Path
) -> None:
    import json

    for name in ("evaluation.json", "gate.json", "roc_curve.png", "pr_curve.png", "confusion_matrix.png"):
        s3.put_object(Bucket="reports-bucket", Key=f"t/evaluation/{name}", Body=b"{}")
    for name in ("validation_result.json", "validation_report.html"):
        s3.put_object(Bucket="reports-bucket", Key=f"t/validation/{name}", Body=b"<html></html>")
    s3.put_object(Bucket="reports-bucket", Key="m/exec/constraint_violations.json", Body=b"{}")
    s3.put_object(Bucket="reports-bucket", Key="reports/monitoring/job-1.json", Body=b"{}")
    live = _stats([(0, 100, 5), (100, 200, 50)])
    s3.put_object(Bucket="reports-bucket", Key="m/exec/statistics.json", Body=json.dumps(live).encode())
    baseline = _stats([(0, 50, 40), (50, 100, 10)])
    s3.put_object(Bucket="reports-bucket", Key="d/baseline/statistics.json", Body=json.dumps(baseline).encode())
    result = {
        "trainings": [
            {
                "evaluate": {"evaluation_uri": "s3://reports-bucket/t/evaluation/evaluation.json"},
                "validate": {"result_uri": "s3://reports-bucket/t/validation/validation_result.json"},
            }
        ],
        "monitoring": {
            "output_uri": "s3://reports-bucket/m/exec/",
            "report_uri": "s3://reports-bucket/reports/monitoring/job-1.json",
            "baseline_statistics_uri": "s3://reports-bucket/d/baseline/statistics.json",
            "features": ["amount", "channel"],
        },
    }
    reports = demo.collect_reports(s3, result, tmp_path)
    assert [p.name for p in reports["training 1"]] == list(demo.EVALUATION_FILES)
    assert [p.name for p in reports["validation 1"]] == ["validation_report.html", "validation_result.json"]
    # a chart for the numeric feature; the categorical one has no buckets to draw
    assert [p.name for p in reports["monitoring"]] == [
        "constraint_violations.json",
        "statistics.json",
        "job-1.json",
        "drift_amount.png",
    ]
    assert (tmp_path / "monitoring" / "drift_amount.png").read_bytes().startswith(b"\x89PNG")


EVIDENTLY_FINDINGS = {
    "engine": "evidently",
    "report_uri": "s3://reports-bucket/monitoring/fraud-ep/202612072200/report.html",
    "drift": {"drifted": True, "share": 0.78, "features": ["amount", "card_avg_amount_7d"]},
    "model_quality": {"status": "breach", "breaches": []},
    "bias": {"status": "ok", "breaches": []},
    "decision": {
        "retrain": True,
        "reasons": [
            {"check": "drift", "metric": "DriftShare", "value": 0.78, "threshold": 0.5},
            {"check": "model_quality", "metric": "recall", "value": 0.2, "threshold": 0.5},
        ],
    },
    "metrics_published": 31,
    "alarms": ["fraud-ep-monitoring-drift-share", "fraud-ep-monitoring-recall"],
    "model_reports_uri": "s3://reports-bucket/monitoring/fraud-ep/models/1/",
}


def test_lifecycle_summary_of_the_evidently_engine_names_checks_reasons_cloudwatch_and_the_reports(
    demo: ModuleType, tmp_path
) -> None:
    result = _result(tmp_path)
    result["monitoring"] = EVIDENTLY_FINDINGS
    result["champion"]["monitoring_reports"] = "s3://reports-bucket/monitoring/fraud-ep/models/2/"
    text = "\n".join(demo.lifecycle_summary(result))
    assert "monitoring      drift FOUND (share 0.78), model quality breach, bias ok: retraining" in text
    assert "drifted features: amount, card_avg_amount_7d" in text
    assert "reason: drift: DriftShare = 0.78 (threshold 0.5)" in text
    assert "reason: model_quality: recall = 0.2 (threshold 0.5)" in text
    assert "CloudWatch: 31 metric(s) in MlLifecycle/Monitoring; alarms fraud-ep-monitoring-drift-share," in text
    assert "the champion's reports: s3://reports-bucket/monitoring/fraud-ep/models/1/" in text
    assert "its monitoring reports go to s3://reports-bucket/monitoring/fraud-ep/models/2/" in text
    assert "violation(s)" not in text


def test_collect_reports_downloads_the_monitoring_jobs_report_and_pictures(demo: ModuleType, s3, tmp_path) -> None:
    folder = "monitoring/fraud-ep/202612072200/"
    for name in ("report.html", "summary.json", "drift.png", "model_quality.png", "metrics.json"):
        s3.put_object(Bucket="reports-bucket", Key=folder + name, Body=b"x")
    reports = demo.collect_reports(s3, {"monitoring": EVIDENTLY_FINDINGS}, tmp_path)
    # model_quality.html is absent (no labels joined in that interval): skipped, not an error
    assert [p.name for p in reports["monitoring"]] == ["report.html", "summary.json", "drift.png", "model_quality.png"]
    assert all(p.parent == tmp_path / "monitoring" and p.is_file() for p in reports["monitoring"])


def test_the_demo_downloads_every_file_the_monitoring_job_links(demo: ModuleType) -> None:
    from ml_lifecycle.builders.monitoring_job import REPORT_FILES

    assert demo.MONITORING_FILES == REPORT_FILES


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--demo", "all"], "invalid choice: 'all'"), (["--traffic-days", "0"], "--traffic-days must be at least 1")],
)
def test_bad_arguments_are_named(demo: ModuleType, argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit):
        demo.main(argv)
    assert message in capsys.readouterr().err
