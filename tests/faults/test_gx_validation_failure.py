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
    for kind in ("processing", "training"):
        assert not jobs_named(aws.sm, kind, plan["run_hash"]), "bad data reaches no SageMaker job"
    notes = notifications(aws, run_id)
    assert any("train_model.validate" in n["subject"] and "Data validation failed" in n["message"] for n in notes)
