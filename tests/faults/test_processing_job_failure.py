"""Fault: a SageMaker processing job fails (the preprocessing script exits non-zero).

Expected: the ``preprocess`` task fails naming the job and SageMaker's FailureReason; exactly one
processing job exists for the run; the extracted dataset is kept untouched; no training job is started;
a failure notification names the reason. Recovery: Airflow's retry starts ``<job>-r2`` (as for training).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from tests.faults.conftest import (
    fail_task,
    jobs_named,
    notifications,
    preprocess_operator,
    run_task,
    s3_keys,
    sagemaker_faults,
    task_context,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REASON = "AlgorithmError: ValueError: could not convert string to float: 'n/a' (injected), exit code: 1"


def test_processing_job_failure_fails_the_task_with_the_reason(aws: SimpleNamespace, trained: dict[str, Any]) -> None:
    from ml_lifecycle.operators.sagemaker import PrepareRunOperator

    run_id = "faults__processing_job_failure"
    plan = run_task(PrepareRunOperator(task_id="plan"), task_context("plan", run_id))
    name = plan["job_names"]["preprocess"]
    dataset = trained["extract"]["dataset_uri"]
    before = s3_keys(aws.s3, dataset)

    with sagemaker_faults(aws.url, {"fail_jobs": {"name_prefix": name, "count": 1, "reason": REASON}}):
        error = fail_task(preprocess_operator(plan, dataset), task_context("preprocess", run_id), AirflowException)

    assert f"SageMaker preprocess job {name} Failed: {REASON}" in str(error)
    jobs = jobs_named(aws.sm, "processing", plan["run_hash"])
    assert [(j["ProcessingJobName"], j["ProcessingJobStatus"]) for j in jobs] == [(name, "Failed")]
    assert not jobs_named(aws.sm, "training", plan["run_hash"])
    assert s3_keys(aws.s3, dataset) == before, "the dataset is kept as it was"
    assert not s3_keys(aws.s3, plan["jobs_uri"] + "preprocess/train/"), "a failed job uploads no output"
    notes = notifications(aws, run_id)
    assert any("train_model.preprocess" in n["subject"] and REASON in n["message"] for n in notes), notes
