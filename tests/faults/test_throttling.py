"""Fault: the SageMaker API throttles (``ThrottlingException``) for a while.

Expected, two cases:

- a short burst (a few seconds) on ``DescribeTrainingJob``: botocore's retries (with backoff) ride it out;
  the task succeeds with the same result and no job is created twice;
- a long outage (longer than botocore's retries): the task fails with the ``ThrottlingException`` naming
  the API call, nothing is created or changed, and Airflow's retries (2, exponential backoff) try again later.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.faults.conftest import (
    control,
    fail_task,
    jobs_named,
    notifications,
    run_task,
    sagemaker_faults,
    task_context,
    train_operator,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize(
    ("seconds", "rides_it_out"),
    [
        pytest.param(1, True, id="short-burst-ridden-out"),
        pytest.param(300, False, id="outage-fails-clearly"),
    ],
)
def test_throttling(aws: SimpleNamespace, trained: dict[str, Any], seconds: float, rides_it_out: bool) -> None:
    run_id = trained["run_id"]
    plan = trained["plan"]
    jobs_before = jobs_named(aws.sm, "training", plan["run_hash"])
    spec = {"throttle": [{"action": "DescribeTrainingJob", "seconds": seconds}]}
    op = train_operator(plan, trained["preprocess"])
    ctx = task_context("train", run_id, try_number=2)

    started = time.monotonic()
    with sagemaker_faults(aws.url, spec) as active:
        assert active["throttle"], active
        if rides_it_out:
            result = run_task(op, ctx)
        else:
            error = fail_task(op, ctx, ClientError)
    elapsed = time.monotonic() - started

    assert jobs_named(aws.sm, "training", plan["run_hash"]) == jobs_before, "no job created, none changed"
    if rides_it_out:
        assert result == trained["train"], "the retried call returned the run's completed job"
        assert elapsed >= seconds
    else:
        assert error.response["Error"]["Code"] == "ThrottlingException"
        assert "DescribeTrainingJob" in str(error) and "max retries" in str(error)
        assert elapsed < 60, f"botocore's retries are bounded ({elapsed:.0f} s)"
        notes = notifications(aws, run_id)
        assert any("train_model.train" in n["subject"] and "ThrottlingException" in n["message"] for n in notes)


def test_throttled_create_and_trigger_polls_end_with_one_job(aws: SimpleNamespace, trained: dict[str, Any]) -> None:
    """``CreateTrainingJob`` refused 3 times (botocore's own retries ride it out: 5 attempts a call), then, while
    the triggerer waits, ``DescribeTrainingJob`` refused 12 times: more than two polls' worth of botocore
    attempts, so whole polls fail with ``ThrottlingException`` and the trigger must keep polling. The task
    succeeds with exactly one job; counted refusals, not seconds, so the outcome does not depend on timing."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from ml_lifecycle.operators.sagemaker import PrepareRunOperator

    run_id = "faults__throttled_create_and_polls"
    plan = run_task(PrepareRunOperator(task_id="plan"), task_context("plan", run_id))
    name = plan["job_names"]["train"]
    op = train_operator(plan, trained["preprocess"])
    ctx = task_context("train", run_id)

    create = {
        "throttle": [{"action": "CreateTrainingJob", "count": 3}],
        "delay_jobs": {"name_prefix": name, "seconds": 5},
    }
    with sagemaker_faults(aws.url, create):
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(ctx)
        refused = control(aws.url, "GET", "/_devstack/faults")["throttled"]
    assert refused == {"CreateTrainingJob": 3}, refused

    async def first_event(trigger: Any) -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    with sagemaker_faults(aws.url, {"throttle": {"action": "DescribeTrainingJob", "count": 12}}):
        event = asyncio.run(first_event(deferred.value.trigger))
        refused = control(aws.url, "GET", "/_devstack/faults")["throttled"]
    assert refused == {"DescribeTrainingJob": 12}, "every refusal reached the trigger's polls"
    assert event["status"] == "success", event
    result = getattr(op, deferred.value.method_name)(ctx, event=event, **(deferred.value.kwargs or {}))

    jobs = jobs_named(aws.sm, "training", plan["run_hash"])
    assert [(j["TrainingJobName"], j["TrainingJobStatus"]) for j in jobs] == [(name, "Completed")], jobs
    assert result["job_name"] == name and result["model_uri"].startswith("s3://"), result
    assert notifications(aws, run_id, timeout=2) == [], "a throttled but successful task notifies nobody"
