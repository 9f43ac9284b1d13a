"""Validation against the devstack: extract an interval from the stand-in, then validate it with the project's
suite, in the worker and in a SageMaker Processing job that the devstack really runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from ml_lifecycle.config import load_config
from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator
from ml_lifecycle.operators.validation import DataValidationOperator

pytestmark = pytest.mark.integration

BUCKET = "ml-lifecycle-it-validation"
SUITE = "gx/card_transactions_features.json"
SUITE_DOCUMENT = json.loads((Path(__file__).resolve().parents[2] / "include" / SUITE).read_text(encoding="utf-8"))


class FakeTI:
    try_number = 1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def extract(start: dt.date, end: dt.date) -> str:
    prefix = f"s3://{BUCKET}/datasets/train_model/{start:%Y%m%d}-{end:%Y%m%d}/"
    SnowflakeToS3ParquetOperator(
        task_id="extract",
        snowflake_conn_id="snowflake_default",
        aws_conn_id="aws_default",
        sql_path="sql/features.sql",
        interval_start=start.isoformat(),
        interval_end=end.isoformat(),
        s3_uri=prefix,
        batch_rows=1000,
        mode="stream",
    ).execute({})
    return prefix


def validate(dataset_uri: str, **overrides: Any) -> tuple[dict[str, Any], FakeTI]:
    ti = FakeTI()
    op = DataValidationOperator(
        task_id="validate",
        aws_conn_id="aws_default",
        dataset_uri=dataset_uri,
        suite_path=SUITE,
        report_uri=dataset_uri + "validation/",
        batch_rows=700,
        **overrides,
    )
    return op.execute({"ti": ti}), ti


def processing_job(name: str, image: str | None = None, *, isolated: bool = False) -> dict[str, Any]:
    cfg = load_config("local")
    return {
        "job_name": name,
        "role_arn": cfg.sagemaker.role_arn,
        "image_uri": image or cfg.sagemaker.images.validation,
        "instance_type": cfg.sagemaker.processing.instance_type,
        "max_runtime_seconds": 900,
        "enable_network_isolation": isolated,
        "tags": {"project": "it"},
    }


@pytest.fixture(scope="module")
def s3(devstack: Any) -> Any:
    client = devstack.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def clean_dataset(devstack: Any, s3: Any) -> str:
    return extract(dt.date(2026, 1, 15), dt.date(2026, 1, 29))


def test_clean_interval_passes_in_the_worker(clean_dataset: str, s3: Any) -> None:
    result, ti = validate(clean_dataset, mode="worker")

    assert result["success"] is True
    assert result["result_uri"] == clean_dataset + "validation/validation_result.json"
    assert result["evaluated_expectations"] == len(SUITE_DOCUMENT["expectations"])
    assert ti.xcom["validation_summary"]["row_count"] == result["row_count"] > 1000
    head = s3.head_object(Bucket=BUCKET, Key=result["docs_uri"].split(BUCKET + "/", 1)[1])
    assert head["ContentType"].startswith("text/html")


@pytest.mark.slow
def test_clean_interval_passes_in_a_processing_job_with_the_same_result(
    devstack: Any, clean_dataset: str, s3: Any
) -> None:
    if not devstack.sagemaker_url:
        pytest.fail("this test needs the devstack's SageMaker service (unset DEVSTACK_TEST_SAGEMAKER=0)")
    worker, _ = validate(clean_dataset, mode="worker")

    result, _ = validate(
        clean_dataset,
        mode="processing",
        processing_job=processing_job("it-validate-clean"),
        deferrable=False,
        check_interval=2,
        max_attempts=300,
    )

    assert result["job_name"] == "it-validate-clean"
    assert {k: result[k] for k in worker} == worker
    job = devstack.client("sagemaker").describe_processing_job(ProcessingJobName="it-validate-clean")
    assert job["ProcessingJobStatus"] == "Completed"
    assert job["AppSpecification"]["ContainerEntrypoint"][-1].endswith("/validate.py")
    document = json.loads(
        s3.get_object(Bucket=BUCKET, Key=result["result_uri"].split(BUCKET + "/", 1)[1])["Body"].read()
    )
    assert document["summary"]["row_count"] == worker["row_count"]


@pytest.mark.slow
def test_processing_validation_needs_an_image_with_great_expectations_under_network_isolation(
    devstack: Any, clean_dataset: str, s3: Any
) -> None:
    """prod's shape: validation in a processing job with network isolation. The project's validation image
    runs it; the stock scikit-learn image cannot (no Great Expectations, and nothing can be installed), as on
    AWS."""
    if not devstack.sagemaker_url:
        pytest.fail("this test needs the devstack's SageMaker service (unset DEVSTACK_TEST_SAGEMAKER=0)")
    stock = load_config("local").sagemaker.images.processing
    wait = {"deferrable": False, "check_interval": 2, "max_attempts": 300}

    own, _ = validate(
        clean_dataset, mode="processing", processing_job=processing_job("it-validate-own", isolated=True), **wait
    )
    with pytest.raises(AirflowException, match="great_expectations"):
        validate(
            clean_dataset,
            mode="processing",
            processing_job=processing_job("it-validate-stock", stock, isolated=True),
            **wait,
        )

    assert own["success"] is True
    job = devstack.client("sagemaker").describe_processing_job(ProcessingJobName="it-validate-stock")
    assert job["ProcessingJobStatus"] == "Failed"
    assert "great_expectations is not installed in this image" in job["FailureReason"]


def test_corrupted_day_fails_validation_naming_each_defect(devstack: Any, s3: Any) -> None:
    clean = devstack.seed_params
    devstack.stack.seed(dataclasses.replace(clean, corrupt_on=dt.date(2026, 2, 3)), devstack.info)
    try:
        dataset = extract(dt.date(2026, 2, 2), dt.date(2026, 2, 5))
    finally:
        devstack.stack.seed(clean, devstack.info)

    with pytest.raises(AirflowFailException) as caught:
        validate(dataset, mode="worker")

    message = str(caught.value)
    for line in (
        "expect_column_values_to_be_unique(transaction_id)",
        "expect_column_values_to_be_between(amount)",
        "expect_column_values_to_be_in_set(channel)",
        "expect_column_values_to_be_in_set(merchant_category)",
        "expect_column_values_to_not_be_null(card_txn_count_24h)",
        f"Report: {dataset}validation/validation_result.json",
    ):
        assert line in message
    key = dataset.split(BUCKET + "/", 1)[1] + "validation/validation_result.json"
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["success"] is False
