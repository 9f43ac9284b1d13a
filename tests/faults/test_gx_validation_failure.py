"""Fault: the interval's data breaks the Great Expectations suite (bad rows planted in Snowflake).

Expected: ``extract`` succeeds; ``validate`` fails with ``AirflowFailException`` (no retry: the data will
not change by itself) listing each failed expectation with its column and observed value, and where the
report is; the report (JSON + HTML) and the dataset are kept in S3; nothing reaches SageMaker; the failure
notification carries the same list.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from tests.faults.conftest import (
    ROOT,
    extract_operator,
    fail_task,
    jobs_named,
    notifications,
    run_task,
    s3_json,
    s3_keys,
    task_context,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CORRUPT_DAY = dt.date(2026, 1, 20)
ANCHOR = dt.datetime(2026, 1, 22, tzinfo=dt.UTC)
PARAMS = {"window_days": 2}
WHOLE_RUN_PARAMS = {"window_days": 7}


@pytest.fixture
def corrupt_day(aws: SimpleNamespace) -> Any:
    """The seeded history with bad rows planted on :data:`CORRUPT_DAY`; the clean history is restored after."""
    from tests.conftest import DEVSTACK_TEST_SEED_KWARGS

    result = aws.devstack.seed(**DEVSTACK_TEST_SEED_KWARGS, corrupt_on=CORRUPT_DAY)
    try:
        yield result
    finally:
        aws.devstack.seed(**DEVSTACK_TEST_SEED_KWARGS)


def test_gx_validation_failure_stops_the_run_and_keeps_the_report(
    aws: SimpleNamespace, trained: dict[str, Any], corrupt_day: Any
) -> None:
    from ml_lifecycle.config import load_config
    from ml_lifecycle.operators.sagemaker import PrepareRunOperator
    from ml_lifecycle.operators.validation import SUMMARY_XCOM_KEY, DataValidationOperator

    assert sum(corrupt_day.corrupted.values()) > 0, corrupt_day
    run_id = "faults__gx_validation_failure"

    def ctx(task_id: str) -> dict[str, Any]:
        return task_context(task_id, run_id, anchor=ANCHOR, params=PARAMS)

    plan = run_task(PrepareRunOperator(task_id="plan"), ctx("plan"))
    extracted = run_task(extract_operator(plan), ctx("extract"))
    dataset = s3_keys(aws.s3, extracted["dataset_uri"])

    validation = load_config().training.validation
    validate_ctx = ctx("validate")
    op = DataValidationOperator(
        task_id="validate",
        dataset_uri=extracted["dataset_uri"],
        suite_path=validation.suite,
        report_uri=plan["reports_uri"] + "validation/",
        mode="worker",
        batch_rows=validation.batch_rows,
    )
    error = fail_task(op, validate_ctx, AirflowFailException)

    message = str(error)
    summary = validate_ctx["ti"].pushed[SUMMARY_XCOM_KEY]
    failed = summary["failed"]
    assert failed and not summary["success"]
    assert message.startswith(f"Data validation failed: {len(failed)} of ")
    for item in failed:
        assert item["type"] in message
    assert "expect_column_values_to_be_between(amount)" in message, "the negative amounts are named"
    assert f"Report: {summary['result_uri']}" in message
    report = s3_json(aws.s3, summary["result_uri"])
    assert report["summary"]["success"] is False if "summary" in report else report["success"] is False
    assert s3_keys(aws.s3, summary["docs_uri"]), "the HTML report is kept"
    assert s3_keys(aws.s3, extracted["dataset_uri"]) == dataset, "the dataset is kept for inspection"
    # "nothing reaches SageMaker" is checked by the whole-run test below, once the run is past every job step
    notes = notifications(aws, run_id)
    assert any("train_model.validate" in n["subject"] and "Data validation failed" in n["message"] for n in notes)


@pytest.fixture
def validation_mode(tmp_path: Any) -> Any:
    """``load_config("local")`` with ``training.validation.mode`` set as the test asks (prod runs ``processing``)."""
    import contextlib
    import os
    import re

    from ml_lifecycle.config import CONFIG_DIR_VAR, _load_cached

    @contextlib.contextmanager
    def use(mode: str) -> Any:
        text = (ROOT / "include" / "config" / "local.yaml").read_text()
        text, count = re.subn(r"(?m)^(    mode:) worker$", rf"\1 {mode}", text)
        assert count == 1, "local.yaml sets training.validation.mode once"
        (tmp_path / "local.yaml").write_text(text)
        saved = os.environ.get(CONFIG_DIR_VAR)
        os.environ[CONFIG_DIR_VAR] = str(tmp_path)
        _load_cached.cache_clear()
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop(CONFIG_DIR_VAR, None)
            else:
                os.environ[CONFIG_DIR_VAR] = saved
            _load_cached.cache_clear()

    return use


@pytest.mark.parametrize("mode", ["worker", "processing"])
def test_a_whole_run_over_bad_data_stops_at_validate(
    aws: SimpleNamespace, airflow_db: Any, corrupt_day: Any, validation_mode: Any, mode: str
) -> None:
    """The whole train_model DAG over the corrupted interval, validation in the worker (local) or as a
    processing job in the validation image (prod): validate fails, nothing after it runs, and the devstack
    has no preprocessing, training or tuning job of the run, checked once the run has ended, past every
    point where one would start."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from ml_lifecycle.config import load_config
    from ml_lifecycle.naming import RunPlan

    with validation_mode(mode):
        assert load_config().training.validation.mode == mode
        bag = DagBag(dag_folder=str(ROOT / "dags" / "train_model.py"))
        assert not bag.import_errors, bag.import_errors
        dag = bag.get_dag("train_model")
        # a week (1,400 rows): the DAG's extract skips an interval under training.min_rows (1,000)
        run = dag.test(logical_date=ANCHOR, run_after=ANCHOR, run_conf=WHOLE_RUN_PARAMS)
        with create_session() as session:
            tis = session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id)
            ).all()
            states = {ti.task_id: getattr(ti.state, "value", ti.state) for ti in tis}
            tries = {ti.task_id: ti.try_number for ti in tis}
        plan = RunPlan.create(load_config(), dag_id="train_model", run_id=run.run_id, anchor=ANCHOR, window_days=7)

    assert states["plan"] == states["extract"] == "success", states
    assert states["validate"] == "failed" and tries["validate"] == 1, f"failed once, not retried: {states}"
    after = {t: s for t, s in states.items() if t not in ("plan", "extract", "validate")}
    assert after and set(after.values()) <= {"upstream_failed", "skipped"}, f"nothing after validate ran: {after}"
    assert getattr(run.state, "value", run.state) == "failed"

    validation_jobs = jobs_named(aws.sm, "processing", plan.run_hash)
    if mode == "processing":
        assert [j["ProcessingJobName"] for j in validation_jobs] == [plan.job_name("validate")], (
            "one processing job: the validation's (it writes the report; the task fails on its verdict)"
        )
    else:
        assert validation_jobs == [], "worker-mode validation starts no job"
    assert not jobs_named(aws.sm, "training", plan.run_hash), "bad data reaches no training job"
    tuning = aws.sm.list_hyper_parameter_tuning_jobs(NameContains=plan.run_hash)["HyperParameterTuningJobSummaries"]
    assert tuning == []
    notes = notifications(aws, run.run_id)
    assert any("train_model.validate" in n["subject"] and "Data validation failed" in n["message"] for n in notes)
