"""Every terminal outcome of a deployment, on the guardrail path and on the stepwise path.

Outcomes (``docs/failure-modes.md``, "Deployment outcomes"):

- **new model InService**: the task succeeds; the new config serves 100 %; no failure notification;
- **new model InService, stepwise**: the old variant is retired: its scalable target (registered by the
  previous deployment's ``autoscale``) is deregistered before the update that removes it, its alarms are
  deleted, and the endpoint has one variant;
- **rolled back by SageMaker**: guardrail path in ``test_alarm_during_canary.py``,
  ``test_latency_alarm_during_canary.py`` and ``test_model_artifact_fails_to_load.py``; stepwise path here
  (the update that adds the new variant is rolled back): the task fails for good saying ``ROLLED BACK``, with
  evidence and a rollback notification; the previous model serves 100 %;
- **rolled back by the stepwise check** (the new variant answers 5XX during a step): the endpoint returns to
  the previous one-variant config; the failed variant, its alarms and any scalable target are removed, the
  previous variant keeps its auto-scaling; the task fails for good saying ``ROLLED BACK`` and what it removed
  (evidence in XCom and S3, notification). A retry after the worker died mid-clean-up finishes it without
  updating the endpoint again;
- **Failed** (``fail_updates`` fault ``Failed``): the task fails for good naming the FailureReason and the
  way out; nothing serves; a failure notification; re-running with the previous model deletes the Failed
  endpoint and creates it again;
- **UpdateRollbackFailed** (``fail_updates`` fault ``UpdateRollbackFailed``): the task fails for good saying
  the endpoint needs a person; the endpoint keeps serving (a mix of both fleets); a failure notification; a
  re-run never reports such an endpoint as deployed; the runbook's explicit update to the previous config
  restores it;
- **concurrent deployment**: while another deployment moves the endpoint, the task refuses to start a
  second one (retryable ``AirflowException``) and touches nothing; the other deployment completes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from tests.faults.conftest import (
    ENDPOINT,
    alarms_ok,
    deploy_context,
    deploy_operator,
    fail_task,
    hosting_faults,
    new_model_answer,
    notifications,
    run_task,
    s3_json,
    sagemaker_faults,
    served,
    stepwise_operator,
    task_context,
    wait_for,
)
from tests.faults.deploy_checks import assert_previous_model_serves_everything, endpoint_configs_of
from tests.faults.test_alarm_during_canary import Traffic
from tests.faults.test_model_artifact_fails_to_load import corrupt_copy

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IN_PROGRESS = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}


def stepwise_context(run_id: str) -> dict[str, Any]:
    return task_context("deploy_stepwise", run_id, dag_id="deploy_model")


PATHS = {
    "guardrail": (deploy_operator, lambda run_id: deploy_context(run_id), "deploy_model.deploy_guarded"),
    "stepwise": (stepwise_operator, stepwise_context, "deploy_model.deploy_stepwise"),
}


def describe(aws: SimpleNamespace) -> dict[str, Any] | None:
    try:
        return aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    except aws.sm.exceptions.ClientError:
        return None


def settled(aws: SimpleNamespace) -> dict[str, Any] | None:
    """The endpoint once no operation runs on it (None when it is gone)."""

    def check() -> Any:
        description = describe(aws)
        return (
            {"description": description}
            if description is None or description["EndpointStatus"] not in IN_PROGRESS
            else None
        )

    return wait_for(check, 180, f"{ENDPOINT} to settle")["description"]


@pytest.fixture
def previous(aws: SimpleNamespace, previous_model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The endpoint serves version 1; afterwards it serves version 1 again (re-created when a test changed it)."""
    yield previous_model
    description = settled(aws)
    if (
        description is not None
        and description["EndpointStatus"] == "InService"
        and description["EndpointConfigName"] == previous_model["endpoint_config_name"]
    ):
        return
    if description is not None:
        aws.sm.delete_endpoint(EndpointName=ENDPOINT)
        wait_for(lambda: describe(aws) is None, 120, f"{ENDPOINT} to be deleted")
    result = run_task(deploy_operator(previous_model["package_arn"]), deploy_context("faults__restore_previous"))
    assert result["endpoint_config_name"] == previous_model["endpoint_config_name"], result


def failure_notes(aws: SimpleNamespace, run_id: str, task: str) -> list[dict[str, Any]]:
    return [n for n in notifications(aws, run_id) if task in n["subject"]]


def autoscale(aws: SimpleNamespace, variant: str) -> None:
    """What the ``autoscale`` task leaves on ``variant``: a scalable target with a target-tracking policy."""
    from ml_lifecycle.builders.endpoint import scaling_requests
    from ml_lifecycle.config import load_config

    target, policy = scaling_requests(load_config(), endpoint=ENDPOINT, variant=variant)
    client = aws.devstack.client("application-autoscaling")
    client.register_scalable_target(**target)
    client.put_scaling_policy(**policy)


def scaled_variants(aws: SimpleNamespace) -> dict[str, int]:
    """Variant -> number of scaling policies, for every variant of the endpoint registered for auto-scaling."""
    client = aws.devstack.client("application-autoscaling")
    prefix = f"endpoint/{ENDPOINT}/variant/"
    targets = client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    return {
        t["ResourceId"].removeprefix(prefix): len(
            client.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=t["ResourceId"])[
                "ScalingPolicies"
            ]
        )
        for t in targets
        if t["ResourceId"].startswith(prefix)
    }


def alarms_of_names(variant: str) -> list[str]:
    from ml_lifecycle.builders.endpoint import alarm_names

    return alarm_names(ENDPOINT, variant)


def alarms_of(aws: SimpleNamespace, variant: str) -> list[str]:
    """The rollback alarms that exist for ``variant`` of the endpoint."""
    from ml_lifecycle.builders.endpoint import alarm_names

    names = alarm_names(ENDPOINT, variant)
    return sorted(a["AlarmName"] for a in aws.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"])


# ------------------------------------------------------------------------------------------ new model InService


@pytest.mark.parametrize("path", PATHS)
def test_new_model_in_service(aws: SimpleNamespace, packages: Any, previous: dict[str, Any], path: str) -> None:
    make, context, _ = PATHS[path]
    arn = packages(note=f"{path} success")
    run_id = f"faults__{path}_in_service"
    old_variant = previous["variant_name"]
    autoscale(aws, old_variant)  # as the previous deployment's autoscale task left it

    result = run_task(make(arn), context(run_id))

    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert description["EndpointStatus"] == "InService"
    assert description["EndpointConfigName"] == result["endpoint_config_name"] != previous["endpoint_config_name"]
    assert [v["VariantName"] for v in description["ProductionVariants"]] == [result["variant_name"]]
    assert [v["CurrentWeight"] for v in description["ProductionVariants"]] == [1.0], "the new model serves 100 %"
    assert "FailureReason" not in description and "PendingDeploymentSummary" not in description
    assert result["action"] == ("updated" if path == "guardrail" else "shifted"), result
    if path == "stepwise":
        assert [c["percent"] for c in result["checks"]] == [50.0, 100.0] and result["retired_variant"] == old_variant
        assert scaled_variants(aws) == {}, "the retired variant's scalable target was deregistered"
        assert alarms_of(aws, old_variant) == [], "the retired variant's alarms were deleted"
        assert result["removed"] == {
            "variants": [old_variant],
            "scalable_targets": [f"endpoint/{ENDPOINT}/variant/{old_variant}"],
            "alarms": sorted(alarms_of_names(old_variant)),
        }
        assert alarms_of(aws, result["variant_name"]), "the serving variant keeps its alarms"
    else:
        assert scaled_variants(aws) == {old_variant: 1}, "same variant, new model: its auto-scaling stays"
    assert served(aws, 20) == {new_model_answer(previous["answer"]): 20}, "the new model answers every request"
    assert notifications(aws, run_id, timeout=2) == [], "a successful deployment notifies nobody"


# ------------------------------------------------------------------------------------------ rolled back


def test_stepwise_new_variant_rolled_back_by_sagemaker(
    aws: SimpleNamespace, packages: Any, trained: dict[str, Any], previous: dict[str, Any]
) -> None:
    from ml_lifecycle.operators.deploy import ROLLBACK_XCOM_KEY

    arn = packages(model_uri=corrupt_copy(aws, trained["train"]["model_uri"]), note="stepwise corrupt artefact")
    ctx = stepwise_context("faults__stepwise_rolled_back")

    error = fail_task(stepwise_operator(arn), ctx, AirflowFailException)

    message = str(error)
    evidence = ctx["ti"].pushed[ROLLBACK_XCOM_KEY]
    assert "ROLLED BACK by SageMaker before any traffic moved" in message, message
    assert evidence["serving_endpoint_config"] == previous["endpoint_config_name"] in message
    assert "exited" in evidence["failure_reason"] and evidence["failure_reason"] in message
    assert evidence["serving_share"] == 1.0
    notes = notifications(aws, f"Deployment rolled back: {ENDPOINT}")
    assert any(evidence["target_endpoint_config"] in n["message"] for n in notes), notes
    assert failure_notes(aws, "faults__stepwise_rolled_back", "deploy_model.deploy_stepwise")
    assert endpoint_configs_of(aws, evidence["model_package_version"]) == [evidence["target_endpoint_config"]], (
        "the two-variant config was tried once, not again"
    )
    assert_previous_model_serves_everything(aws, previous, rolled_back=arn)


def run_until_deferred(op: Any, ctx: dict[str, Any], stop: Any) -> Any:
    """Run ``op`` as worker and triggerer do until it defers with kwargs ``stop`` accepts; that deferral."""

    async def first_event(trigger: Any) -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    try:
        op.execute(ctx)
    except TaskDeferred as deferred:
        pending = deferred
    for _ in range(20):
        if stop(pending.kwargs or {}):
            return pending
        event = asyncio.run(first_event(pending.trigger))
        try:
            getattr(op, pending.method_name)(ctx, event=event, **(pending.kwargs or {}))
        except TaskDeferred as deferred:
            pending = deferred
    raise AssertionError("the task never deferred as expected")


@pytest.mark.parametrize("worker_dies", [pytest.param(False, id="rollback"), pytest.param(True, id="worker-dies")])
def test_stepwise_breach_removes_the_failed_variant(
    aws: SimpleNamespace, packages: Any, cfg: Any, previous: dict[str, Any], worker_dies: bool
) -> None:
    from ml_lifecycle.naming import sagemaker_name
    from ml_lifecycle.operators.deploy import ROLLBACK_XCOM_KEY

    wait_for(lambda: alarms_ok(aws), 90, "the endpoint's rollback alarms to leave ALARM")
    old_variant = previous["variant_name"]
    autoscale(aws, old_variant)
    arn = packages(note=f"stepwise breach {worker_dies}")
    version = aws.sm.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"]
    failed = sagemaker_name(cfg.sagemaker.name_prefix, f"v{version}")
    run_id = f"faults__stepwise_breach_{'retry' if worker_dies else 'once'}"
    ctx = stepwise_context(run_id)

    errors = {"variant_errors": [{"endpoint": ENDPOINT, "variant": failed, "status": 500}]}
    with hosting_faults(aws.url, errors):
        traffic = Traffic(aws)
        try:
            if worker_dies:  # the worker dies once the clean-up's UpdateEndpoint is under way; Airflow retries
                run_until_deferred(stepwise_operator(arn), ctx, lambda kwargs: "rollback_update" in kwargs["progress"])
                before = settled(aws)
                ctx = task_context("deploy_stepwise", run_id, dag_id="deploy_model", try_number=2)
            error = fail_task(stepwise_operator(arn), ctx, AirflowFailException)
        finally:
            during = traffic.stop()

    message = str(error)
    evidence = ctx["ti"].pushed[ROLLBACK_XCOM_KEY]
    assert during["error"], f"the new variant answered 5XX while it took traffic: {during}"
    assert "ROLLED BACK at 50%" in message and "5XX error rate" in message, message
    assert f"serves {previous['endpoint_config_name']} with variant {old_variant} alone" in message, message
    assert evidence["cleanup"] == "done" and evidence["serving_endpoint_config"] == previous["endpoint_config_name"]
    assert evidence["removed"]["variants"] == [failed]
    # (alarms an endpoint deleted earlier in the session left for its variants go too: they guard nothing)
    assert set(alarms_of_names(failed)) <= set(evidence["removed"]["alarms"]), evidence["removed"]
    assert s3_json(aws.s3, evidence["evidence_uri"])["removed"] == evidence["removed"]
    fired = f"{ENDPOINT}-{failed}-5xx-rate"
    assert any(a["name"] == fired for a in evidence["alarms"]), "the alarms' states were kept before deletion"

    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert [(v["VariantName"], v["CurrentWeight"]) for v in description["ProductionVariants"]] == [(old_variant, 1.0)]
    assert scaled_variants(aws) == {old_variant: 1}, "the champion keeps its auto-scaling; nothing else is registered"
    assert alarms_of(aws, failed) == [], "the failed variant's alarms are gone"
    assert alarms_of(aws, old_variant) == sorted(alarms_of_names(old_variant)), "the champion keeps its alarms"
    if worker_dies:
        assert description["LastModifiedTime"] == before["LastModifiedTime"], "the retry did not update it again"
    assert len(endpoint_configs_of(aws, version)) == 1, "only the two-variant config was made for the new model"
    notes = notifications(aws, f"Deployment rolled back: {ENDPOINT}")
    assert any(f"Removed: variant {failed}" in n["message"] for n in notes), notes
    assert_previous_model_serves_everything(aws, previous, rolled_back=arn)


# ------------------------------------------------------------------------------------------ Failed


@pytest.mark.parametrize("path", PATHS)
def test_update_that_ends_failed(aws: SimpleNamespace, packages: Any, previous: dict[str, Any], path: str) -> None:
    make, context, task = PATHS[path]
    arn = packages(note=f"{path} update Failed")
    run_id = f"faults__{path}_update_failed"

    with sagemaker_faults(aws.url, {"fail_updates": {"endpoint": ENDPOINT, "status": "Failed"}}):
        error = fail_task(make(arn), context(run_id), AirflowFailException)

    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert description["EndpointStatus"] == "Failed"
    assert description["EndpointConfigName"] == previous["endpoint_config_name"]
    message = str(error)
    assert f"endpoint {ENDPOINT} Failed while deploying" in message and description["FailureReason"] in message
    assert "delete and re-create" in message, "the error names the way out"
    with pytest.raises(aws.runtime.exceptions.ValidationError, match="not in service"):
        aws.runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"1", ContentType="text/csv")
    notes = failure_notes(aws, run_id, task)
    assert any("Failed while deploying" in n["message"] for n in notes), notes

    # the documented way out: deploy_model with the previous model deletes the Failed endpoint, creates it again
    result = run_task(make(previous["package_arn"]), context(f"{run_id}_recover"))
    assert result["action"] == "created", result
    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert (description["EndpointStatus"], description["EndpointConfigName"]) == (
        "InService",
        result["endpoint_config_name"],
    )
    assert "FailureReason" not in description
    assert served(aws, 20) == {previous["answer"]: 20}
    if path == "guardrail":
        assert_previous_model_serves_everything(aws, previous)


# ------------------------------------------------------------------------------------------ UpdateRollbackFailed


@pytest.mark.parametrize("path", PATHS)
def test_update_whose_rollback_fails(aws: SimpleNamespace, packages: Any, previous: dict[str, Any], path: str) -> None:
    make, context, task = PATHS[path]
    arn = packages(note=f"{path} rollback failed")
    run_id = f"faults__{path}_rollback_failed"

    with sagemaker_faults(aws.url, {"fail_updates": {"endpoint": ENDPOINT, "status": "UpdateRollbackFailed"}}):
        error = fail_task(make(arn), context(run_id), AirflowFailException)

    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert description["EndpointStatus"] == "UpdateRollbackFailed"
    assert description["EndpointConfigName"] == previous["endpoint_config_name"]
    message = str(error)
    assert "is UpdateRollbackFailed" in message and "needs a person" in message, message
    assert description["FailureReason"] in message
    answers = served(aws, 20)
    assert set(answers) <= {previous["answer"], new_model_answer(previous["answer"])}, (
        f"the endpoint keeps answering, from the old and the new fleet: {answers}"
    )
    notes = failure_notes(aws, run_id, task)
    assert any("UpdateRollbackFailed" in n["message"] for n in notes), notes

    # a re-run, even with the model of the config it names, must not report the mixed endpoint as deployed
    again = fail_task(make(previous["package_arn"]), context(f"{run_id}_again"), AirflowFailException)
    assert "UpdateRollbackFailed" in str(again)
    assert aws.sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "UpdateRollbackFailed"

    # the runbook's way out: an explicit update to the previous config
    aws.sm.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName=previous["endpoint_config_name"])
    assert settled(aws)["EndpointStatus"] == "InService"
    assert_previous_model_serves_everything(aws, previous)


# ------------------------------------------------------------------------------------------ concurrent deployment


@pytest.mark.parametrize("path", PATHS)
def test_concurrent_deployment_is_refused(
    aws: SimpleNamespace, packages: Any, previous: dict[str, Any], path: str
) -> None:
    make, context, task = PATHS[path]
    first_arn, second_arn = packages(note=f"{path} concurrent first"), packages(note=f"{path} concurrent second")
    second_version = aws.sm.describe_model_package(ModelPackageName=second_arn)["ModelPackageVersion"]
    first_op, first_ctx = deploy_operator(first_arn), deploy_context(f"faults__{path}_concurrent_first")
    with pytest.raises(TaskDeferred) as deferred:
        first_op.execute(first_ctx)
    pending = wait_for(
        lambda: (describe(aws) or {}).get("PendingDeploymentSummary"), 60, "the first deployment to be pending"
    )["EndpointConfigName"]
    run_id = f"faults__{path}_concurrent_second"

    error = fail_task(make(second_arn), context(run_id), AirflowException)

    assert type(error) is AirflowException, "retryable: a retry waits for the other deployment"
    assert "not starting a second one" in str(error) and pending in str(error), str(error)
    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert description["EndpointStatus"] == "Updating"
    assert description["PendingDeploymentSummary"]["EndpointConfigName"] == pending, "the first deployment goes on"
    assert endpoint_configs_of(aws, second_version) == [], "the refused deployment created no endpoint config"
    notes = failure_notes(aws, run_id, task)
    assert any("not starting a second one" in n["message"] for n in notes), notes

    async def first_event(trigger: Any) -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    event = asyncio.run(first_event(deferred.value.trigger))
    result = first_op.execute_complete(first_ctx, event=event, **(deferred.value.kwargs or {}))
    assert result["action"] == "updated" and result["endpoint_config_name"] == pending
    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert (description["EndpointStatus"], description["EndpointConfigName"]) == ("InService", pending)
    assert served(aws, 10) == {new_model_answer(previous["answer"]): 10}, "the first deployment's model serves"
