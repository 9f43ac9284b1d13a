"""Fault: a job's S3 input is missing (the dataset prefix was deleted, or never written).

Expected:

- processing (``preprocess``): SageMaker starts the job, which fails with
  ``ClientError: No S3 objects found under S3 URL ...``; the task fails with that reason;
- training (``train``): the provider's hook checks every channel before ``CreateTrainingJob`` and fails
  the task naming the missing prefix; no job is created (SageMaker itself would refuse it with a
  ``ValidationException``).

Exactly one (or no) job per run, nothing else touched.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from tests.faults.conftest import (
    fail_task,
    jobs_named,
    preprocess_operator,
    run_task,
    task_context,
    train_operator,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("task", [pytest.param("preprocess", id="processing"), pytest.param("train", id="training")])
def test_missing_s3_input(aws: SimpleNamespace, trained: dict[str, Any], task: str) -> None:
    from ml_lifecycle.operators.sagemaker import PrepareRunOperator

    run_id = f"faults__missing_input_{task}"
    plan = run_task(PrepareRunOperator(task_id="plan"), task_context("plan", run_id))
    missing = f"s3://{trained['plan']['dataset_uri'].split('/')[2]}/datasets/missing/{task}/"
    ctx = task_context(task, run_id)

    if task == "preprocess":
        error = fail_task(preprocess_operator(plan, missing), ctx, AirflowException)
        name = plan["job_names"]["preprocess"]
        assert f"SageMaker preprocess job {name} Failed: ClientError: No S3 objects found under S3 URL" in str(error)
        assert missing.rstrip("/") in str(error)
        jobs = jobs_named(aws.sm, "processing", plan["run_hash"])
        assert [(j["ProcessingJobName"], j["ProcessingJobStatus"]) for j in jobs] == [(name, "Failed")]
    else:
        outputs = {**trained["preprocess"]["outputs"], "train": missing}
        error = fail_task(train_operator(plan, {"outputs": outputs}), ctx, AirflowException)
        assert f"The input S3 Key or Prefix {missing} does not exist" in str(error)
        assert not jobs_named(aws.sm, "training", plan["run_hash"]), "SageMaker created no job"
