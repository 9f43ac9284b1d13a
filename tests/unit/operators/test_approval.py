from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from ml_lifecycle.operators.approval import ModelPackageApprovalOperator, ResolveModelPackageOperator
from tests.unit.operators._hosting_fakes import AWS_CONNECTION, FakeSageMaker, context, package


def _with_hook(op, fake):
    op.__dict__["hook"] = SimpleNamespace(
        conn=fake, conn_region_name="us-east-1", conn_partition="aws", conn_config=AWS_CONNECTION
    )
    return op


def approve(fake, **kwargs):
    kwargs.setdefault("decision", "approve")
    kwargs.setdefault("reason", "reviewed the evaluation report")
    return _with_hook(ModelPackageApprovalOperator(task_id="approve", **kwargs), fake).execute(context())


def registry() -> FakeSageMaker:
    fake = FakeSageMaker()
    fake.add_package(package(1, status="Approved"))
    fake.add_package(package(2, status="PendingManualApproval"))
    fake.add_package(package(3, status="PendingManualApproval"))
    return fake


def test_latest_pending_version_is_approved_with_the_reason():
    fake = registry()
    result = approve(fake)
    assert result["version"] == 3
    assert result["approval_status"] == "Approved"
    assert result["previous_status"] == "PendingManualApproval" and result["changed"] is True
    assert fake.packages[package(3)["ModelPackageArn"]]["ApprovalDescription"] == "reviewed the evaluation report"
    assert fake.packages[package(2)["ModelPackageArn"]]["ModelApprovalStatus"] == "PendingManualApproval"


def test_a_given_version_is_rejected_and_a_repeat_changes_nothing():
    fake = registry()
    arn = package(2)["ModelPackageArn"]
    first = approve(fake, decision="reject", reason="recall too low on the holdout", model_package_arn=arn)
    again = approve(fake, decision="reject", reason="recall too low on the holdout", model_package_arn=arn)
    assert first["approval_status"] == again["approval_status"] == "Rejected"
    assert again["changed"] is False
    assert len(fake.calls_named("update_model_package")) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"decision": "maybe"}, "approve' or 'reject", id="bad-decision"),
        pytest.param({"reason": "  "}, "reason is required", id="no-reason"),
        pytest.param({"model_package_arn": "arn:aws:sagemaker:us-east-1:1:model-package/x/9"}, "does not exist",
                     id="unknown-arn"),
    ],
)  # fmt: skip
def test_bad_requests_fail_without_changing_anything(kwargs, message):
    fake = registry()
    with pytest.raises(AirflowFailException, match=message):
        approve(fake, **kwargs)
    assert fake.calls_named("update_model_package") == []


def test_nothing_pending_is_a_clear_failure():
    fake = FakeSageMaker()
    fake.add_package(package(1, status="Approved"))
    with pytest.raises(AirflowFailException, match="awaits manual approval"):
        approve(fake)


def resolve(fake, ctx=None, **kwargs):
    return _with_hook(ResolveModelPackageOperator(task_id="resolve", **kwargs), fake).execute(ctx or context())


def test_resolve_defaults_to_the_newest_approved_version():
    fake = registry()
    lineage = {"dag_id": "train_model", "dag_run_id": "scheduled__x", "window_start": "2026-01-01T00:00:00+00:00",
               "window_end": "2026-03-01T00:00:00+00:00"}  # fmt: skip
    fake.add_package(package(4, status="Approved", **lineage))
    result = resolve(fake)
    assert result["version"] == 4 and result["source"] == "latest_approved"
    assert result["baseline_dataset_uri"].startswith("s3://ml-lifecycle-local/jobs/train_model/20260101-20260301/")
    assert result["baseline_dataset_uri"].endswith("/evaluate/baseline/")


def test_resolve_uses_the_recorded_baseline_dataset_first():
    fake = registry()
    recorded = "s3://ml-lifecycle-local/jobs/train_model/20260101-20260301/1234abcd/evaluate/baseline/"
    fake.add_package(package(5, status="Approved", dag_id="train_model", dag_run_id="scheduled__y",
                             window_start="2026-01-01T00:00:00+00:00", window_end="2026-03-01T00:00:00+00:00",
                             baseline_uri=recorded))  # fmt: skip
    assert resolve(fake)["baseline_dataset_uri"] == recorded


def test_resolve_prefers_the_triggering_asset_event():
    fake = registry()
    fake.add_package(package(4, status="Approved"))
    event = SimpleNamespace(extra={"model_package_arn": package(1)["ModelPackageArn"]}, timestamp=None)
    result = resolve(fake, context(triggering_asset_events={"approved": [event]}))
    assert result["version"] == 1 and result["source"] == "asset_event"


def test_resolve_refuses_an_unapproved_param():
    with pytest.raises(AirflowFailException, match="not Approved"):
        resolve(registry(), model_package_arn=package(2)["ModelPackageArn"])


def _sqs_event(version: int, status: str = "Approved") -> SimpleNamespace:
    body = {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Model Package State Change",
        "time": f"2026-03-01T10:0{version}:00Z",
        "detail": {
            "ModelPackageArn": package(version)["ModelPackageArn"],
            "ModelPackageGroupName": "fraud-detector",
            "ModelApprovalStatus": status,
        },
    }
    batch = [{"MessageId": f"m{version}", "ReceiptHandle": "r", "Body": json.dumps(body)}]
    return SimpleNamespace(extra={"from_trigger": True, "payload": {"status": "success", "message_batch": batch}})


def test_resolve_deploys_the_approval_read_from_the_approval_queue():
    fake = registry()
    fake.add_package(package(4, status="Approved"))
    fake.add_package(package(5, status="Approved"))
    events = {"model_approvals__fraud-detector": [_sqs_event(4), _sqs_event(3, status="Rejected")]}
    result = resolve(fake, context(triggering_asset_events=events))
    # version 4 (the triggering approval), not 5 (the newest Approved)
    assert result["version"] == 4 and result["source"] == "approval_event"


def test_resolve_says_when_the_endpoint_already_serves_the_version(capsys):
    from ml_lifecycle.builders.endpoint import model_name
    from ml_lifecycle.config import load_config

    fake = registry()
    served = package(1)
    fake.configs["cfg-v1"] = {
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": model_name(load_config(), served)}]
    }
    fake.endpoints["fraud-detector-local"] = {
        "EndpointName": "fraud-detector-local",
        "EndpointStatus": "InService",
        "EndpointConfigName": "cfg-v1",
    }
    events = {"approvals": [_sqs_event(1)]}
    capsys.readouterr()
    again = resolve(fake, context(triggering_asset_events=events), endpoint_name="fraud-detector-local")
    assert again["version"] == 1 and again["already_serving"] is True
    logged = " ".join(capsys.readouterr().out.split())
    assert "Endpoint fraud-detector-local already serves" in logged and "deploys nothing new" in logged
    fake.add_package(package(4, status="Approved"))
    other = resolve(
        fake, context(triggering_asset_events={"approvals": [_sqs_event(4)]}), endpoint_name="fraud-detector-local"
    )
    assert other["version"] == 4 and other["already_serving"] is False


def _mark(fake, version, stage, status):
    fake.packages[package(version)["ModelPackageArn"]]["ModelLifeCycle"] = {"Stage": stage, "StageStatus": status}


def test_latest_never_picks_a_version_that_rolled_back():
    fake = registry()
    fake.add_package(package(4, status="Approved"))
    _mark(fake, 1, "Production", "Deployed")
    _mark(fake, 4, "Archived", "RolledBack")
    result = resolve(fake)
    assert result["version"] == 1 and result["source"] == "latest_approved"
    assert result["lifecycle"] == {"Stage": "Production", "StageStatus": "Deployed"}


def test_latest_is_the_newest_approved_not_the_champion():
    """deploy_model deploys what was approved last; batch_score scores with what serves."""
    fake = registry()
    fake.add_package(package(4, status="Approved"))
    _mark(fake, 1, "Production", "Deployed")
    assert resolve(fake)["version"] == 4
    scored = resolve(fake, fallback="champion")
    assert scored["version"] == 1 and scored["source"] == "champion"


def test_the_champion_fallback_before_any_deployment_is_the_newest_approved_that_never_rolled_back():
    fake = registry()
    fake.add_package(package(4, status="Approved"))
    _mark(fake, 4, "Archived", "RolledBack")
    result = resolve(fake, fallback="champion")
    assert result["version"] == 1 and result["source"] == "latest_approved"


def test_nothing_deployable_is_a_clear_failure():
    fake = FakeSageMaker()
    fake.add_package(package(1, status="Approved"))
    _mark(fake, 1, "Archived", "RolledBack")
    with pytest.raises(AirflowFailException, match="no Approved version that never rolled back"):
        resolve(fake)


@pytest.mark.parametrize(
    ("stage", "status", "why"),
    [
        pytest.param("Archived", "RolledBack", "rolled back", id="rolled-back"),
        pytest.param("Archived", "Retired", "is Archived/Retired", id="former-champion"),
        pytest.param("Production", "Deployed", "is already the champion", id="champion"),
    ],
)
def test_an_event_naming_a_version_deployed_before_skips_the_run_but_its_arn_deploys_it(stage, status, why):
    """SageMaker sends a state-change event for every update of an Approved version, the champion's own marking
    included: only a version that was never deployed is a new approval."""
    fake = registry()
    _mark(fake, 1, stage, status)
    event = SimpleNamespace(extra={"model_package_arn": package(1)["ModelPackageArn"]}, timestamp=None)
    with pytest.raises(AirflowSkipException, match=why):
        resolve(fake, context(triggering_asset_events={"approved": [event]}))
    explicit = resolve(fake, model_package_arn=package(1)["ModelPackageArn"])
    assert explicit["version"] == 1 and explicit["source"] == "param"


def test_an_unknown_fallback_is_refused_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="fallback must be one of"):
        ResolveModelPackageOperator(task_id="resolve", fallback="newest")


def test_a_sagemaker_event_for_a_version_marked_by_a_deployment_skips_the_run():
    """Marking the champion (or retiring or rolling back a version) is an update of an Approved version: SageMaker
    sends its state-change event, which the approvals rule lets through; such a run deploys nothing."""
    fake = registry()
    fake.add_package(package(4, status="Approved"))
    _mark(fake, 4, "Archived", "Retired")
    with pytest.raises(AirflowSkipException, match="named by the triggering event is Archived/Retired"):
        resolve(fake, context(triggering_asset_events={"approvals": [_sqs_event(4)]}))
