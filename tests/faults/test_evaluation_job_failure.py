"""Fault: the evaluation processing job fails (the evaluation script exits non-zero).

Expected: the ``evaluate`` task fails naming the job and SageMaker's FailureReason, with a credential the
script printed masked; exactly one processing job exists for the run and it wrote no report (the quality gate,
downstream, has nothing to pass); a failure notification names the reason, masked too.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from tests.faults.conftest import (
    credential_canary,
    fail_task,
    job_states,
    notifications,
    run_task,
    s3_keys,
    sagemaker_faults,
    task_context,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REASON = "AlgorithmError: XGBoostError: cannot load the model from /opt/ml/processing/model (injected), exit code: 1"


def test_evaluation_job_failure_fails_the_task_with_the_reason(aws: SimpleNamespace, trained: dict[str, Any]) -> None:
    from ml_lifecycle.operators.sagemaker import EvaluationJobOperator, PrepareRunOperator

    run_id = "faults__evaluation_job_failure"
    plan = run_task(PrepareRunOperator(task_id="plan"), task_context("plan", run_id))
    name = plan["job_names"]["evaluate"]
    credential, secret = credential_canary()
    op = EvaluationJobOperator(
        task_id="evaluate",
        model_uri=trained["train"]["model_uri"],
        test_uri=trained["preprocess"]["outputs"]["test"],
        code_uri=plan["evaluation_src_uri"],
        check_interval=1,
        max_attempts=300,
    )

    fault = {"fail_jobs": {"name_prefix": name, "count": 1, "reason": f"{REASON}; {credential}"}}
    with sagemaker_faults(aws.url, fault):
        error = fail_task(op, task_context("evaluate", run_id), AirflowException)

    message = str(error)
    assert f"SageMaker evaluate job {name} Failed: {REASON}; password=***" in message
    assert secret not in message
    assert job_states(aws.sm, "processing", plan["run_hash"]) == [(name, "Failed")]
    assert not s3_keys(aws.s3, plan["evaluation_report_uri"]), "a failed evaluation writes no report"
    notes = notifications(aws, run_id)
    assert any("train_model.evaluate" in n["subject"] and REASON in n["message"] for n in notes), notes
    assert not [n for n in aws.seen_notifications if secret in n["subject"] + n["message"]]
