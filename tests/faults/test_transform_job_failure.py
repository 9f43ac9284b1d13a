"""Fault: batch_score's batch transform job fails.

Expected: the ``transform`` task fails naming the job and SageMaker's FailureReason, with a credential the
model server printed masked; exactly one transform job exists for the run and it wrote no output, so ``load``
(downstream) has no predictions to write; a failure notification names the reason, masked too.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from tests.faults.conftest import (
    ANCHOR,
    SAMPLE_ROW,
    credential_canary,
    fail_task,
    job_states,
    notifications,
    s3_keys,
    sagemaker_faults,
    task_context,
    transform_operator,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REASON = "ClientError: See job logs for more information: the model server exited with code 1 (injected)"


def test_transform_job_failure_fails_the_task_with_the_reason(
    aws: SimpleNamespace, packages: Callable[..., str], cfg: Any
) -> None:
    from ml_lifecycle.builders.transform import transform_job_name
    from ml_lifecycle.naming import run_hash

    run_id = "faults__transform_job_failure"
    base = f"s3://{cfg.storage.bucket}/faults/transform-failure/"
    key = "faults/transform-failure/input/part-0.csv"
    aws.s3.put_object(Bucket=cfg.storage.bucket, Key=key, Body=SAMPLE_ROW + b"\n")
    credential, secret = credential_canary()
    name = transform_job_name(cfg, dag_id="batch_score", run_id=run_id, start=ANCHOR)

    fault = {"fail_jobs": {"name_prefix": name, "count": 1, "reason": f"{REASON}; {credential}"}}
    with sagemaker_faults(aws.url, fault):
        error = fail_task(
            transform_operator(packages(note="transform failure"), base),
            task_context("transform", run_id, dag_id="batch_score"),
            AirflowException,
        )

    message = str(error)
    assert f"transform job {name} Failed: {REASON}; password=***" in message
    assert secret not in message
    assert job_states(aws.sm, "transform", run_hash("batch_score", run_id)) == [(name, "Failed")]
    assert not s3_keys(aws.s3, base + "output/"), "a failed transform writes no predictions"
    notes = notifications(aws, run_id)
    assert any("batch_score.transform" in n["subject"] and REASON in n["message"] for n in notes), notes
    assert not [n for n in aws.seen_notifications if secret in n["subject"] + n["message"]]
