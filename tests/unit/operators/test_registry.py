from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from types import SimpleNamespace

import boto3
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from moto import mock_aws

from ml_lifecycle.assets import approved_model_asset, approved_model_uri
from ml_lifecycle.config import load_config
from ml_lifecycle.operators.registry import ModelRegistrationOperator, PublishApprovedModelOperator, approval_status
from tests.unit.operators.registry_fakes import FakeHook, FakeRegistry

CFG = load_config("local")
BUCKET = CFG.storage.bucket
GROUP = CFG.sagemaker.model_package_group
GATE_PASSED = {
    "decision": "passed",
    "passed": True,
    "reason": "all checks passed",
    "gate_uri": f"s3://{BUCKET}/reports/r/gate.json",
    "evaluation_uri": f"s3://{BUCKET}/reports/r/evaluation.json",
    "metrics": {"auc": 0.93, "recall": 0.61},
}
BASELINE = f"s3://{BUCKET}/jobs/train_model/20260130-20260301/abcd1234/evaluate/baseline/"
GATE_REJECTED = {
    **GATE_PASSED,
    "decision": "rejected",
    "passed": False,
    "reason": "auc 0.7100 < threshold 0.8000",
}


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def registry():
    return FakeRegistry()


@pytest.fixture
def sent(monkeypatch):
    messages = []
    monkeypatch.setattr(
        "ml_lifecycle.notifications.publish", lambda subject, message, cfg=None: messages.append((subject, message))
    )
    return messages


def _context(xcoms, run_id="manual__2026-03-01", logical_date=datetime(2026, 3, 1, tzinfo=UTC), params=None):
    ti = SimpleNamespace(
        task_id="t", dag_id="train_model", try_number=1, map_index=-1,
        xcom_pull=lambda task_ids: xcoms.get(task_ids), xcom_push=lambda **kw: None,
    )  # fmt: skip
    return {
        "ti": ti,
        "run_id": run_id,
        "logical_date": logical_date,
        "dag_run": SimpleNamespace(run_after=logical_date),
        "dag": SimpleNamespace(dag_id="train_model"),
        "params": params or {"window_days": 30},
        "outlet_events": defaultdict(lambda: SimpleNamespace(extra=None)),
    }


def _register(registry, s3, approval="config", gate=None, step_results=None):
    op = ModelRegistrationOperator(
        task_id="register",
        model_uri="s3://b/jobs/train/output/model.tar.gz",
        image_uri=CFG.sagemaker.images.inference,
        package_group_name=GROUP,
        dataset_uri=f"s3://{BUCKET}/datasets/train_model/20260130-20260301/",
        manifest_uri=f"s3://{BUCKET}/datasets/train_model/20260130-20260301/_manifest.json",
        validation_result_uri=f"s3://{BUCKET}/reports/v/result.json",
        training_job="fraud-train-20260301-abcd1234",
        code_digest="0123456789abcdef",
        baseline_uri=BASELINE,
        approval=approval,
        gate=gate,
        step_results=step_results,
    )
    op.__dict__["hook"] = FakeHook(registry, s3)
    return op


def test_rejected_model_skips_registration_with_the_reason(registry, s3):
    with pytest.raises(AirflowSkipException, match=r"quality gate rejected.*auc 0.7100.*gate.json"):
        _register(registry, s3, gate=GATE_REJECTED).execute(_context({}))
    assert registry.create_calls == 0


def test_registration_carries_metrics_and_lineage(registry, s3, monkeypatch):
    monkeypatch.setenv("GIT_COMMIT", "deadbeef")
    result = _register(registry, s3, gate=GATE_PASSED).execute(_context({}))
    assert result["approval_status"] == "Approved", "local config approves automatically"
    assert result["version"] == 1 and not result["already_registered"]
    package = registry.describe_model_package(ModelPackageName=result["model_package_arn"])
    props = package["CustomerMetadataProperties"]
    assert props["git_commit"] == "deadbeef"
    assert props["dag_run_id"] == "manual__2026-03-01"
    assert props["window_start"].startswith("2026-01-30") and props["window_end"].startswith("2026-03-01")
    assert props["manifest_uri"].endswith("_manifest.json")
    assert props["gate_uri"] == GATE_PASSED["gate_uri"]
    assert props["baseline_uri"] == BASELINE, "deploy_model baselines Model Monitor on it"
    assert result["baseline_uri"] == BASELINE
    assert props["metric:auc"] == "0.93"
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == GATE_PASSED["evaluation_uri"]
    assert package["InferenceSpecification"]["Containers"][0]["Image"] == CFG.sagemaker.images.inference


def test_the_model_package_group_is_created_with_the_tags_and_an_untagged_one_is_tagged(registry, s3):
    _register(registry, s3, gate=GATE_PASSED).execute(_context({}))
    arn = registry.describe_model_package_group(ModelPackageGroupName=GROUP)["ModelPackageGroupArn"]
    assert registry.tags[arn] == dict(CFG.tags), "created by the package with the tags, not by the provider untagged"
    [package] = registry.packages
    assert "Tags" not in package, "a versioned package takes its group's tags (CreateModelPackage refuses Tags)"
    registry.tags[arn] = {}  # a group made before its tags were configured
    _register(registry, s3, gate=GATE_PASSED).execute(_context({}, run_id="manual__other"))
    assert registry.tags[arn] == dict(CFG.tags)


def test_reused_steps_are_in_the_lineage_and_the_result(registry, s3):
    reused = {"reused": True, "step": "train", "source_job_name": "fraud-train-20260301-0000aaaa",
              "source_run_id": "manual__2026-03-01T00:00:00+00:00", "key": "k"}  # fmt: skip
    results = json.dumps([{"job_name": "p", "cache": {"reused": False, "step": "preprocess"}}, {"cache": reused}, None])
    result = _register(registry, s3, gate=GATE_PASSED, step_results=results).execute(_context({}))
    props = registry.describe_model_package(ModelPackageName=result["model_package_arn"])["CustomerMetadataProperties"]
    source = "fraud-train-20260301-0000aaaa from run manual__2026-03-01T00:00:00+00:00"
    assert props["reused:train"] == source and "reused:preprocess" not in props
    assert result["reused_steps"] == {"train": source}
    again = _register(registry, s3, gate=GATE_PASSED, step_results=results).execute(_context({}))
    assert again["already_registered"] and again["reused_steps"] == {"train": source}


def test_nothing_reused_means_no_reused_lineage(registry, s3):
    result = _register(registry, s3, gate=GATE_PASSED, step_results="[null, null]").execute(_context({}))
    assert result["reused_steps"] == {}


def test_a_retry_does_not_register_a_second_version(registry, s3):
    first = _register(registry, s3, gate=GATE_PASSED).execute(_context({}))
    again = _register(registry, s3, gate=GATE_PASSED).execute(_context({}))
    assert registry.create_calls == 1
    assert again["model_package_arn"] == first["model_package_arn"] and again["already_registered"]
    other_run = _register(registry, s3, gate=GATE_PASSED).execute(_context({}, run_id="manual__other"))
    assert other_run["version"] == 2


@pytest.mark.parametrize(
    ("env", "mode", "expected"),
    [
        pytest.param("local", "config", "Approved", id="local-auto"),
        pytest.param("prod", "config", "PendingManualApproval", id="prod-manual"),
        pytest.param("local", "manual", "PendingManualApproval", id="param-forces-manual"),
        pytest.param("prod", "auto", "Approved", id="param-forces-auto"),
    ],
)
def test_approval_follows_environment_and_param(env, mode, expected):
    assert approval_status(load_config(env), mode) == expected


def test_unknown_approval_mode_is_rejected():
    with pytest.raises(AirflowFailException, match="approval must be one of"):
        approval_status(CFG, "yes please")


def _publish(registry, s3, registration, **context_kwargs):
    op = PublishApprovedModelOperator(
        task_id="publish_approval",
        pointer_uri=approved_model_uri(CFG),
        registration=registration,
        outlets=[approved_model_asset(CFG)],
    )
    op.__dict__["hook"] = FakeHook(registry, s3)
    context = _context({}, **context_kwargs)
    return op.execute(context), context


def _pointer(s3):
    key = approved_model_uri(CFG).removeprefix(f"s3://{BUCKET}/")
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def _pointer_or_none(s3):
    key = approved_model_uri(CFG).removeprefix(f"s3://{BUCKET}/")
    return s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount") or None


def test_approved_model_is_published_with_an_asset_event(registry, s3, sent):
    registration = _register(registry, s3, gate=GATE_PASSED).execute(_context({}))
    pointer, context = _publish(registry, s3, registration)
    assert _pointer(s3)["model_package_arn"] == registration["model_package_arn"] == pointer["model_package_arn"]
    event = context["outlet_events"][approved_model_asset(CFG)]
    assert event.extra["model_package_arn"] == registration["model_package_arn"]
    assert sent == []


def test_pending_model_is_not_published(registry, s3, sent):
    """A version awaiting approval (the approval task asks for it, not this one) emits nothing."""
    registration = _register(registry, s3, approval="manual", gate=GATE_PASSED).execute(_context({}))
    with pytest.raises(AirflowSkipException, match="PendingManualApproval, not Approved"):
        _publish(registry, s3, registration)
    assert _pointer_or_none(s3) is None
    assert sent == []


def test_backfilled_older_model_is_held_for_manual_approval_and_not_published(registry, s3, sent):
    newer = _register(registry, s3, gate=GATE_PASSED).execute(_context({}, run_id="scheduled__new"))
    _publish(registry, s3, newer)
    older_date = datetime(2026, 2, 1, tzinfo=UTC)
    older = _register(registry, s3, gate=GATE_PASSED).execute(
        _context({}, run_id="backfill__old", logical_date=older_date)
    )
    assert older["approval_status"] == "PendingManualApproval"
    assert older["window_end"] == "2026-02-01T00:00:00+00:00", "registered with its own window"
    assert "older than the newest Approved version" in older["approval_hold"]
    package = registry.describe_model_package(ModelPackageName=older["model_package_arn"])
    assert package["ApprovalDescription"] == older["approval_hold"]
    assert newer["model_package_arn"] in package["ApprovalDescription"]
    with pytest.raises(AirflowSkipException, match="PendingManualApproval, not Approved"):
        _publish(registry, s3, older, run_id="backfill__old", logical_date=older_date)
    assert _pointer(s3)["model_package_arn"] == newer["model_package_arn"]

    # a person approves it anyway: it is Approved, but the pointer (and so deploy_model) still does not move
    registry.update_model_package(ModelPackageArn=older["model_package_arn"], ModelApprovalStatus="Approved")
    with pytest.raises(AirflowSkipException, match="older window"):
        _publish(registry, s3, older, run_id="backfill__old", logical_date=older_date)
    assert _pointer(s3)["model_package_arn"] == newer["model_package_arn"]


def test_an_older_window_than_the_champion_is_held_even_when_a_newer_version_is_approved(registry, s3):
    """The champion decides, not the newest Approved version: the hold names the champion."""
    champion = _register(registry, s3, gate=GATE_PASSED).execute(
        _context({}, run_id="scheduled__champion", logical_date=datetime(2026, 3, 1, tzinfo=UTC))
    )
    registry.set_lifecycle(champion["model_package_arn"], "Production", "Deployed")
    held = _register(registry, s3, approval="auto", gate=GATE_PASSED).execute(
        _context({}, run_id="backfill__jan", logical_date=datetime(2026, 1, 15, tzinfo=UTC))
    )
    assert held["approval_status"] == "PendingManualApproval"
    assert f"older than the champion {champion['model_package_arn']}" in held["approval_hold"]


def _at(registry, s3, run_id, day, **kwargs):
    return _register(registry, s3, gate=GATE_PASSED, **kwargs).execute(_context({}, run_id=run_id, logical_date=day))


def test_a_newer_window_than_the_champion_is_approved_automatically(registry, s3):
    champion = _at(registry, s3, "scheduled__feb", datetime(2026, 2, 1, tzinfo=UTC))
    registry.set_lifecycle(champion["model_package_arn"], "Production", "Deployed")
    march = _at(registry, s3, "scheduled__mar", datetime(2026, 3, 1, tzinfo=UTC))
    assert march["approval_status"] == "Approved" and march["approval_hold"] is None


def test_a_rolled_back_newer_version_does_not_hold_a_model_back(registry, s3):
    """Before any champion the current model is the newest Approved version that never rolled back."""
    _at(registry, s3, "scheduled__feb", datetime(2026, 2, 1, tzinfo=UTC))
    april = _at(registry, s3, "scheduled__apr", datetime(2026, 4, 1, tzinfo=UTC))
    registry.set_lifecycle(april["model_package_arn"], "Archived", "RolledBack")
    march = _at(registry, s3, "scheduled__mar", datetime(2026, 3, 1, tzinfo=UTC))
    assert march["approval_status"] == "Approved" and march["approval_hold"] is None


def test_the_pre_training_bias_report_is_attached_when_the_evaluation_wrote_it(registry, s3):
    without = _register(registry, s3, gate=GATE_PASSED).execute(_context({}, run_id="manual__no_bias"))
    package = registry.describe_model_package(ModelPackageName=without["model_package_arn"])
    assert "Bias" not in package["ModelMetrics"]

    s3.put_object(Bucket=BUCKET, Key="reports/r/analysis.json", Body=b'{"version": "1.0"}')
    result = _register(registry, s3, gate=GATE_PASSED).execute(_context({}, run_id="manual__bias"))

    package = registry.describe_model_package(ModelPackageName=result["model_package_arn"])
    assert package["ModelMetrics"]["Bias"] == {
        "PreTrainingReport": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/reports/r/analysis.json"}
    }
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == GATE_PASSED["evaluation_uri"]


def test_a_bias_hold_registers_the_next_model_for_a_person_with_the_breach(registry, s3, sent):
    from ml_lifecycle.bias_hold import write_hold

    endpoint = CFG.deployment.endpoint_name
    write_hold(
        s3,
        CFG,
        endpoint,
        reason="bias breach",
        facet="customer_segment",
        breaches=[{"facet_value": "student", "metric": "RD", "value": 0.41, "threshold": 0.2}],
        interval={"start": "2026-03-01T10:00:00+00:00", "end": "2026-03-01T11:00:00+00:00"},
        report_uri=f"s3://{BUCKET}/monitoring/{endpoint}/x/summary.json",
    )

    held = _register(registry, s3, approval="auto", gate=GATE_PASSED).execute(_context({}))

    assert held["approval_status"] == "PendingManualApproval"
    assert f"monitoring found bias on endpoint {endpoint}" in held["approval_hold"]
    assert "RD 0.41 for student (threshold 0.2)" in held["approval_hold"]
    package = registry.describe_model_package(ModelPackageName=held["model_package_arn"])
    assert package["ApprovalDescription"] == held["approval_hold"]
    with pytest.raises(AirflowSkipException, match="PendingManualApproval, not Approved"):
        _publish(registry, s3, held)


def test_an_unreadable_bias_hold_holds_as_well(registry, s3):
    endpoint = CFG.deployment.endpoint_name
    s3.put_object(Bucket=BUCKET, Key=f"monitoring/{endpoint}/bias-hold.json", Body=b"not json")

    held = _register(registry, s3, approval="auto", gate=GATE_PASSED).execute(_context({}))

    assert held["approval_status"] == "PendingManualApproval"
    assert "the bias hold cannot be read" in held["approval_hold"] and "is not JSON" in held["approval_hold"]


def test_manual_approval_mode_does_not_read_the_bias_hold(registry, s3):
    endpoint = CFG.deployment.endpoint_name
    s3.put_object(Bucket=BUCKET, Key=f"monitoring/{endpoint}/bias-hold.json", Body=b"not json")
    result = _register(registry, s3, approval="manual", gate=GATE_PASSED).execute(_context({}))
    assert result["approval_status"] == "PendingManualApproval" and result["approval_hold"] is None
