from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from ml_lifecycle.config import load_config
from ml_lifecycle.operators.gate import (
    PASSED,
    REJECTED,
    QualityGateOperator,
    evaluate_gate,
    package_metrics,
    report_metrics,
)
from tests.unit.operators.registry_fakes import FakeHook, FakeRegistry

BUCKET = "ml-lifecycle-local"
EVALUATION = f"s3://{BUCKET}/reports/train_model/w/h/evaluation/evaluation.json"
GROUP = load_config("local").sagemaker.model_package_group  # thresholds auc 0.80, recall 0.30; max drop auc 0.02


def _report(auc, recall=0.6):
    return {
        "binary_classification_metrics": {"auc": {"value": auc, "standard_deviation": "NaN"}},
        "summary": {"auc": auc, "recall": recall, "precision": 0.5, "rows": 1000, "threshold": 0.5},
    }


@pytest.mark.parametrize(
    ("metrics", "baseline", "passed"),
    [
        pytest.param({"auc": 0.9, "recall": 0.5}, None, True, id="first-model-thresholds-only"),
        pytest.param({"auc": 0.79, "recall": 0.5}, None, False, id="below-threshold"),
        pytest.param({"auc": 0.9}, None, False, id="metric-missing-fails"),
        pytest.param({"auc": 0.885, "recall": 0.5}, {"auc": 0.90}, True, id="small-drop-allowed"),
        pytest.param({"auc": 0.87, "recall": 0.5}, {"auc": 0.90}, False, id="regression-beyond-allowed"),
        pytest.param({"auc": 0.87, "recall": 0.5}, {"recall": 0.4}, True, id="baseline-lacks-metric"),
    ],
)
def test_gate_checks(metrics, baseline, passed):
    checks = evaluate_gate(metrics, {"auc": 0.8, "recall": 0.3}, {"auc": 0.02}, baseline)
    assert all(c.passed for c in checks) is passed


def test_regression_check_records_its_evidence():
    (check,) = [c for c in evaluate_gate({"auc": 0.87}, {}, {"auc": 0.02}, {"auc": 0.9}) if c.kind == "regression"]
    assert (check.observed, check.baseline, check.max_regression) == (0.87, 0.9, 0.02)
    assert check.threshold == pytest.approx(0.88)
    assert "baseline 0.9000" in check.describe()


def test_report_metrics_reads_summary_and_sagemaker_layout():
    report = {"binary_classification_metrics": {"auc": {"value": 0.9}, "f2": {"value": "NaN"}}, "summary": {"rows": 5}}
    assert report_metrics(report, wanted=["auc", "f2"]) == {"auc": 0.9}
    assert report_metrics(_report(0.91)) == {"auc": 0.91, "recall": 0.6, "precision": 0.5}


def test_package_metrics_reads_customer_metadata():
    assert package_metrics({"metric:auc": "0.91", "dag_id": "x", "metric:bad": "n/a"}) == {"auc": 0.91}


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def notifications(monkeypatch):
    sent = []
    monkeypatch.setattr(
        "ml_lifecycle.notifications.publish", lambda subject, message, cfg=None: sent.append((subject, message))
    )
    return sent


def _run_gate(s3, registry, auc, run_id="manual__2", report_uri=None):
    s3.put_object(Bucket=BUCKET, Key=EVALUATION.removeprefix(f"s3://{BUCKET}/"), Body=json.dumps(_report(auc)))
    op = QualityGateOperator(task_id="gate", evaluation_uri=EVALUATION, report_uri=report_uri)
    op.__dict__["hook"] = FakeHook(registry, s3)
    context = {
        "run_id": run_id,
        "dag": SimpleNamespace(dag_id="train_model"),
        "ti": SimpleNamespace(task_id="gate", dag_id="train_model", try_number=1, map_index=-1,
                              xcom_push=lambda **kw: None),
        "logical_date": datetime(2026, 3, 1, tzinfo=UTC),
    }  # fmt: skip
    result = op.execute(context)
    gate_doc = json.loads(
        s3.get_object(Bucket=BUCKET, Key=result["gate_uri"].removeprefix(f"s3://{BUCKET}/"))["Body"].read()
    )
    return result, gate_doc


def test_first_model_is_judged_by_thresholds_only(s3, notifications):
    result, doc = _run_gate(s3, FakeRegistry(), auc=0.9)
    assert result["decision"] == PASSED and result["passed"]
    assert result["gate_uri"] == EVALUATION.replace("evaluation.json", "gate.json")
    assert doc["baseline"] is None
    assert {c["kind"] for c in doc["checks"]} == {"threshold"}
    assert notifications == []


def test_gate_report_goes_to_the_runs_own_folder_when_given(s3, notifications):
    """A reused evaluation lives in another run's folder: that run's gate.json must stay as it was."""
    own = f"s3://{BUCKET}/reports/train_model/w/run2/evaluation/"
    result, doc = _run_gate(s3, FakeRegistry(), auc=0.9, report_uri=own)
    assert result["gate_uri"] == own + "gate.json" and result["evaluation_uri"] == EVALUATION
    assert doc["evaluation_uri"] == EVALUATION
    listed = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert not [
        o
        for o in listed
        if o["Key"] == EVALUATION.removeprefix(f"s3://{BUCKET}/").replace("evaluation.json", "gate.json")
    ]


def test_second_model_is_compared_with_the_latest_approved(s3, notifications):
    registry = FakeRegistry()
    registry.add(GROUP, "Approved", {"metric:auc": "0.80", "dag_run_id": "old"})
    newest = registry.add(GROUP, "Approved", {"metric:auc": "0.95", "dag_run_id": "manual__1"})
    registry.add(GROUP, "PendingManualApproval", {"metric:auc": "0.99", "dag_run_id": "pending"})
    result, doc = _run_gate(s3, registry, auc=0.90)
    assert result["decision"] == REJECTED
    assert doc["baseline"]["model_package_arn"] == newest
    regression = next(c for c in doc["checks"] if c["kind"] == "regression")
    assert (regression["observed"], regression["baseline"], regression["passed"]) == (0.9, 0.95, False)
    assert result["failed_checks"] and "baseline 0.9500" in result["failed_checks"][0]
    assert len(notifications) == 1 and "not a pipeline failure" in notifications[0][1]
    assert result["gate_uri"] in notifications[0][1]


def test_baseline_metrics_fall_back_to_the_model_metrics_report(s3, notifications):
    registry = FakeRegistry()
    old_report = f"s3://{BUCKET}/reports/old/evaluation.json"
    s3.put_object(Bucket=BUCKET, Key="reports/old/evaluation.json", Body=json.dumps(_report(0.97)))
    registry.add(GROUP, "Approved", {"dag_run_id": "old"}, evaluation_uri=old_report)
    result, doc = _run_gate(s3, registry, auc=0.90)
    assert doc["baseline"]["metrics"]["auc"] == 0.97
    assert result["decision"] == REJECTED


def test_a_rerun_never_uses_its_own_registration_as_baseline(s3, notifications):
    registry = FakeRegistry()
    registry.add(GROUP, "Approved", {"metric:auc": "0.85", "dag_run_id": "manual__1"})
    registry.add(GROUP, "Approved", {"metric:auc": "0.99", "dag_run_id": "manual__2"})
    result, doc = _run_gate(s3, registry, auc=0.86, run_id="manual__2")
    assert doc["baseline"]["metrics"] == {"auc": 0.85}
    assert result["passed"]


def test_unreadable_report_fails_the_task_clearly(s3):
    from airflow.providers.common.compat.sdk import AirflowFailException

    op = QualityGateOperator(task_id="gate", evaluation_uri=f"s3://{BUCKET}/missing/evaluation.json")
    op.__dict__["hook"] = FakeHook(FakeRegistry(), s3)
    with pytest.raises(AirflowFailException, match="Cannot read the evaluation report"):
        op.execute({"run_id": "r", "dag": SimpleNamespace(dag_id="d")})


def test_the_baseline_is_the_champion_not_the_newest_approved(s3, notifications):
    registry = FakeRegistry()
    champion = registry.add(GROUP, "Approved", {"metric:auc": "0.80", "dag_run_id": "champion"})
    registry.add(GROUP, "Approved", {"metric:auc": "0.99", "dag_run_id": "approved-later"})
    registry.set_lifecycle(champion, "Production", "Deployed")
    result, doc = _run_gate(s3, registry, auc=0.85)
    assert doc["baseline"]["model_package_arn"] == champion and doc["baseline"]["source"] == "champion"
    assert result["baseline_source"] == "champion" and result["passed"]


def test_a_rolled_back_version_is_never_the_baseline(s3, notifications):
    registry = FakeRegistry()
    kept = registry.add(GROUP, "Approved", {"metric:auc": "0.80", "dag_run_id": "kept"})
    rolled_back = registry.add(GROUP, "Approved", {"metric:auc": "0.99", "dag_run_id": "bad"})
    registry.set_lifecycle(rolled_back, "Archived", "RolledBack")
    result, doc = _run_gate(s3, registry, auc=0.85)
    assert doc["baseline"]["model_package_arn"] == kept and doc["baseline"]["source"] == "latest_approved"
    assert result["passed"]
