"""Fault: every training job of a hyperparameter tuning job fails, so the tuning job fails.

Expected: the ``tune`` task fails naming the tuning job, its FailureReason (no training job succeeded) and the
first failed training job's own reason, with a credential that job's script printed masked; exactly one
tuning job exists for the run, and it started exactly its budget of training jobs, all ``Failed``; a failure
notification names both reasons, masked too.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from tests.faults.conftest import (
    HYPERPARAMETERS,
    credential_canary,
    fail_task,
    job_states,
    notifications,
    run_task,
    sagemaker_faults,
    task_context,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REASON = "AlgorithmError: ExecuteUserScriptError: KeyError: 'validation:auc' (injected), exit code: 1"
#: the search's budget: two training jobs, one at a time
MAX_JOBS = 2


def test_tuning_job_failure_fails_the_task_with_the_training_jobs_reason(
    aws: SimpleNamespace, trained: dict[str, Any]
) -> None:
    from ml_lifecycle.operators.sagemaker import PrepareRunOperator, TuningJobOperator

    run_id = "faults__tuning_job_failure"
    plan = run_task(PrepareRunOperator(task_id="plan"), task_context("plan", run_id))
    name = plan["job_names"]["tune"]
    credential, secret = credential_canary()
    outputs = trained["preprocess"]["outputs"]
    splits = {split: outputs[split] for split in ("train", "validation", "preprocessor")}
    splits["inference"] = plan["code"]["inference"]["src_uri"]
    op = TuningJobOperator(
        task_id="tune",
        splits=splits,
        sourcedir_uri=plan["code"]["training"]["sourcedir_uri"],
        hyperparameter_overrides=HYPERPARAMETERS,
        max_jobs=MAX_JOBS,
        max_parallel_jobs=1,
        check_interval=1,
        max_attempts=300,
    )

    # the training jobs a tuning job starts are named <tuning job>-<NNN>-<hex>
    fault = {"fail_jobs": {"name_prefix": f"{name}-", "count": MAX_JOBS, "reason": f"{REASON}; {credential}"}}
    with sagemaker_faults(aws.url, fault):
        error = fail_task(op, task_context("tune", run_id), AirflowException)

    message = str(error)
    children = job_states(aws.sm, "training", name)
    assert [status for _, status in children] == ["Failed"] * MAX_JOBS, children
    assert message.startswith(f"SageMaker tune job {name} Failed: No training job succeeded after {MAX_JOBS} "), message
    assert f"First failed training job {children[0][0]}: {REASON}; password=***" in message
    assert secret not in message
    assert job_states(aws.sm, "tuning", plan["run_hash"]) == [(name, "Failed")]
    notes = notifications(aws, run_id)
    assert any("train_model.tune" in n["subject"] and REASON in n["message"] for n in notes), notes
    assert not [n for n in aws.seen_notifications if secret in n["subject"] + n["message"]]
