"""Fault: a SageMaker processing job fails (the preprocessing script exits non-zero).

Expected: the ``preprocess`` task fails naming the job and SageMaker's FailureReason (a credential the script
printed masked); exactly one processing job exists per try; the extracted dataset is kept untouched; no training
or tuning job is started; a failure notification names the reason, masked too. Recovery: Airflow's retry starts
``<job>-r2`` (as for training); a job that fails on every try fails the run once its retries are spent.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from tests.faults.conftest import (
    ROOT,
    credential_canary,
    fail_task,
    job_states,
    jobs_named,
    notifications,
    preprocess_operator,
    run_task,
    s3_json,
    s3_keys,
    sagemaker_faults,
    task_context,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REASON = "AlgorithmError: ValueError: could not convert string to float: 'n/a' (injected), exit code: 1"
#: the whole-run test's interval: a week of the seeded history (over training.min_rows) of its own
WHOLE_RUN_ANCHOR = dt.datetime(2026, 2, 12, tzinfo=dt.UTC)
WHOLE_RUN_WINDOW_DAYS = 7


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
    # "no training job" is checked by the whole-run test below, past the point where train would start one
    assert s3_keys(aws.s3, dataset) == before, "the dataset is kept as it was"
    assert not s3_keys(aws.s3, plan["jobs_uri"] + "preprocess/train/"), "a failed job uploads no output"
    notes = notifications(aws, run_id)
    assert any("train_model.preprocess" in n["subject"] and REASON in n["message"] for n in notes), notes


def test_a_whole_run_whose_preprocessing_job_fails_on_every_try_stops_at_preprocess(
    aws: SimpleNamespace, airflow_db: Any
) -> None:
    """The whole train_model DAG (``dag.test``: the scheduler's dependency and retry rules, the task's own
    callbacks) with the preprocessing job failing on each of its three tries. ``preprocess`` is retried as the
    DAG says (only its retry delay is shortened here) and each try starts one job: ``<job>``, ``<job>-r2``,
    ``<job>-r3``, all Failed. Then the task fails for good, nothing after it runs, and once the run has ended
    (past every point where a training, tuning or evaluation job would start) the devstack lists no job of the
    run but those three; the dataset is kept as extract wrote it; ONE failure notification names the task and
    the reason, with the credential the script printed masked there and in every notification seen."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    from ml_lifecycle.config import load_config
    from ml_lifecycle.naming import RunPlan

    bag = DagBag(dag_folder=str(ROOT / "dags" / "train_model.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("train_model")
    preprocess = dag.get_task("preprocess")
    assert preprocess.retries == 2, "the DAG's retries are what is tested"
    preprocess.retry_delay, preprocess.retry_exponential_backoff = dt.timedelta(0), 0  # no minutes of waiting

    conf = {"window_days": WHOLE_RUN_WINDOW_DAYS, "force": True}  # force: a job of this run, not a reused one
    # the run id dag.test gives the run, so the fault can name the run's job before the run starts
    expected_run_id = DagRun.generate_run_id(
        run_type=DagRunType.MANUAL, logical_date=WHOLE_RUN_ANCHOR, run_after=WHOLE_RUN_ANCHOR
    )
    plan = RunPlan.create(
        load_config(),
        dag_id="train_model",
        run_id=expected_run_id,
        anchor=WHOLE_RUN_ANCHOR,
        window_days=WHOLE_RUN_WINDOW_DAYS,
    )
    name = plan.job_name("preprocess")
    credential, secret = credential_canary()
    fault = {"fail_jobs": {"name_prefix": name, "count": 3, "reason": f"{REASON}; {credential}"}}
    with sagemaker_faults(aws.url, fault):
        run = dag.test(logical_date=WHOLE_RUN_ANCHOR, run_after=WHOLE_RUN_ANCHOR, run_conf=conf)
    assert run.run_id == expected_run_id
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        states = {ti.task_id: getattr(ti.state, "value", ti.state) for ti in tis}
        tries = {ti.task_id: ti.try_number for ti in tis}

    assert states["plan"] == states["extract"] == states["validate"] == "success", states
    assert states["preprocess"] == "failed" and tries["preprocess"] == 3, f"failed after 3 tries: {states} {tries}"
    after = {t: s for t, s in states.items() if t not in ("plan", "extract", "validate", "preprocess")}
    assert after and set(after.values()) <= {"upstream_failed", "skipped"}, f"nothing after preprocess ran: {after}"
    assert getattr(run.state, "value", run.state) == "failed"

    # the run has ended: every point where a later job would have started is behind it
    assert job_states(aws.sm, "processing", plan.run_hash) == [
        (name, "Failed"),
        (f"{name}-r2", "Failed"),
        (f"{name}-r3", "Failed"),
    ], "one processing job per try, and no evaluation job"
    assert not jobs_named(aws.sm, "training", plan.run_hash), "no training job"
    assert not jobs_named(aws.sm, "tuning", plan.run_hash), "no tuning job"
    assert not jobs_named(aws.sm, "transform", plan.run_hash), "no transform job"

    manifest = s3_json(aws.s3, plan.dataset_uri + "_manifest.json")
    parts = {p["name"] for p in manifest["parts"]}
    listed = {k.rsplit("/", 1)[1] for k in s3_keys(aws.s3, plan.dataset_uri) if k.endswith(".parquet")}
    assert parts and parts <= listed, "the extracted dataset is kept"

    notes = notifications(aws, run.run_id)
    failures = [n for n in notes if "train_model.preprocess" in n["subject"]]
    assert len(failures) == 1, f"one notification, when the task failed for good (retries send none): {notes}"
    assert f"{REASON}; password=***" in failures[0]["message"], failures[0]
    assert not [n for n in aws.seen_notifications if secret in n["subject"] + n["message"]], "the credential leaked"
