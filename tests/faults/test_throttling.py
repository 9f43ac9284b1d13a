"""Fault: the SageMaker API throttles (``ThrottlingException``) for a while.

Expected, two cases:

- a short burst (a few seconds) on ``DescribeTrainingJob``: botocore's retries (with backoff) ride it out;
  the task succeeds with the same result and no job is created twice;
- a long outage (longer than botocore's retries): the task fails with the ``ThrottlingException`` naming
  the API call, nothing is created or changed, and Airflow's retries (2, exponential backoff) try again later.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.faults.conftest import (
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
