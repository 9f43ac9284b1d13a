"""Fault: the SageMaker training job fails (AlgorithmError).

Expected: the ``train`` task fails naming the job and SageMaker's FailureReason; exactly one training job
exists for the run; the dataset and the preprocessing outputs are kept; a failure notification names the
reason. Recovery: the retry (try 2) starts ``<job>-r2`` and completes.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from tests.faults.conftest import (
    jobs_named,
    notifications,
    run_task,
    s3_keys,
    sagemaker_faults,
    task_context,
    train_operator,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REASON = "AlgorithmError: ExecuteUserScriptError: xgboost.core.XGBoostError: out of memory (injected), exit code: 1"


def test_training_job_failure_fails_the_task_with_the_reason_and_a_retry_recovers(
    aws: SimpleNamespace, trained: dict[str, Any]
) -> None:
    from ml_lifecycle.operators.sagemaker import PrepareRunOperator

    run_id = "faults__training_job_failure"
    plan = run_task(PrepareRunOperator(task_id="plan"), task_context("plan", run_id))
    name = plan["job_names"]["train"]
    kept = {uri: s3_keys(aws.s3, uri) for uri in trained["preprocess"]["outputs"].values()}

    with sagemaker_faults(aws.url, {"fail_jobs": {"name_prefix": name, "count": 1, "reason": REASON}}):
        error = _fail(train_operator(plan, trained["preprocess"]), task_context("train", run_id))

    message = str(error)
    assert isinstance(error, AirflowException)
    assert f"SageMaker train job {name} Failed: {REASON}" in message
    jobs = jobs_named(aws.sm, "training", plan["run_hash"])
    assert [(j["TrainingJobName"], j["TrainingJobStatus"]) for j in jobs] == [(name, "Failed")]
    assert {uri: s3_keys(aws.s3, uri) for uri in kept} == kept, "the preprocessing outputs are kept"
    notes = notifications(aws, run_id)
    assert any("train_model.train" in n["subject"] and REASON in n["message"] for n in notes), notes

    # recovery: Airflow retries the task; try 2 starts a new job (the failed one stays for its logs)
    result = run_task(train_operator(plan, trained["preprocess"]), task_context("train", run_id, try_number=2))
    assert result["status"] == "Completed" and result["job_name"] == f"{name}-r2"
    names = sorted(j["TrainingJobName"] for j in jobs_named(aws.sm, "training", plan["run_hash"]))
    assert names == [name, f"{name}-r2"]


def _fail(op: Any, ctx: dict[str, Any]) -> BaseException:
    from tests.faults.conftest import fail_task

    return fail_task(op, ctx)
