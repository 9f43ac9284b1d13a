"""With the ``devstack`` fixture, unmodified boto3, provider hooks and our Snowflake hook reach the stack."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest

pytestmark = pytest.mark.integration


def test_plain_boto3_clients_reach_moto_through_the_env(devstack) -> None:
    s3 = boto3.client("s3")
    assert s3.meta.endpoint_url == devstack.moto_url
    s3.create_bucket(Bucket="fixture-env-check")
    s3.put_object(Bucket="fixture-env-check", Key="k.txt", Body=b"hello")
    assert devstack.client("s3").get_object(Bucket="fixture-env-check", Key="k.txt")["Body"].read() == b"hello"
    assert boto3.client("sts").get_caller_identity()["Account"]


def test_plain_boto3_sagemaker_client_reaches_the_sagemaker_service(devstack) -> None:
    if devstack.sagemaker_url is None:
        pytest.skip("fixture started without the SageMaker service (DEVSTACK_TEST_SAGEMAKER=0)")
    sm = boto3.client("sagemaker")
    assert sm.meta.endpoint_url == devstack.sagemaker_url
    assert "ModelPackageGroupSummaryList" in sm.list_model_package_groups()
    assert boto3.client("sagemaker-runtime").meta.endpoint_url == devstack.sagemaker_url


def test_provider_s3_hook_uses_aws_default(devstack) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    devstack.client("s3").create_bucket(Bucket="fixture-hook-check")
    hook = S3Hook(aws_conn_id="aws_default")
    hook.load_bytes(b"x", key="a/b.bin", bucket_name="fixture-hook-check")
    assert hook.list_keys("fixture-hook-check") == ["a/b.bin"]


def test_project_snowflake_hook_reads_the_seeded_history(devstack) -> None:
    from ml_lifecycle.hooks.snowflake_hook import SnowflakeHook

    hook = SnowflakeHook(snowflake_conn_id="snowflake_default")
    count, first, last = hook.get_first(
        "SELECT COUNT(*), MIN(EVENT_TS)::DATE, MAX(EVENT_TS)::DATE FROM FRAUD_DB.RAW.CARD_TRANSACTIONS"
    )
    params = devstack.seed_params
    assert count == params.days * params.rows_per_day
    assert first == params.start
    assert last == params.start + dt.timedelta(days=params.days - 1)


def test_every_service_reports_healthy(devstack) -> None:
    status = devstack.stack.status()
    assert status, "no services recorded"
    assert all(s["healthy"] for s in status.values()), status
    assert devstack.startup_seconds < 120
