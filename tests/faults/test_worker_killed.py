"""Fault: the worker process is killed (SIGKILL) while its training job runs; Airflow retries the task.

Expected: the retry (try 2) finds the job try 1 created, still running, and RE-ATTACHES to it instead of
starting a second one; it finishes with that job's result. ListTrainingJobs shows exactly one job for
the run, named by try 1.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.faults.conftest import (
    jobs_named,
    run_task,
    spawn_task,
    task_context,
    train_operator,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_worker_killed_during_training_the_retry_reattaches(
    aws: SimpleNamespace, trained: dict[str, Any], tmp_path: Path
) -> None:
    from ml_lifecycle.operators.sagemaker import PrepareRunOperator

    run_id = "faults__worker_killed"
    plan = run_task(PrepareRunOperator(task_id="plan"), task_context("plan", run_id))
    name = plan["job_names"]["train"]

    # try 1 runs in a worker process of its own; it is killed once its job exists
    worker = spawn_task("train", run_id, plan, tmp_path / "try1.json", preprocess=trained["preprocess"])
    try:
        created = wait_for(
            lambda: jobs_named(aws.sm, "training", plan["run_hash"]) or worker.poll() is not None,
            timeout=120,
            what=f"try 1 to create training job {name}",
        )
        assert worker.poll() is None, Path(f"{tmp_path / 'try1.json'}.log").read_text()[-2000:]
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    assert [j["TrainingJobName"] for j in created] == [name]
    assert aws.sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "InProgress", (
        "the job outlives the worker"
    )

    # try 2: the same task again, as Airflow's retry runs it
    result = run_task(train_operator(plan, trained["preprocess"]), task_context("train", run_id, try_number=2))

    assert result["job_name"] == name and result["status"] == "Completed"
    jobs = jobs_named(aws.sm, "training", plan["run_hash"])
    assert [(j["TrainingJobName"], j["TrainingJobStatus"]) for j in jobs] == [(name, "Completed")], "one job"
    assert result["model_uri"].startswith(f"s3://{plan['dataset_uri'].split('/')[2]}/")
