"""Extra links and the URLs in notifications: the AWS console with a real AWS connection, the devstack's
pages when the connection points SageMaker at the devstack."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

from ml_lifecycle import links
from ml_lifecycle.links import (
    CloudWatchAlarmsLink,
    Console,
    ConsoleLink,
    MonitoringScheduleLink,
    S3ReportLink,
    SageMakerEndpointLink,
    SageMakerModelPackageLink,
    SageMakerProcessingJobLink,
    SageMakerTrainingJobLink,
    SageMakerTransformJobLink,
    SageMakerTuningJobLink,
    devstack_console_url,
    persist_link,
    persist_package_link,
)

DEVSTACK = "http://127.0.0.1:4570"
MOTO = "http://127.0.0.1:5010"


def _aws_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, extra: dict[str, Any]) -> SageMakerHook:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "aws", "login": "devstack", "password": "devstack", "extra": extra}),
    )
    return SageMakerHook(aws_conn_id=conn_id)


@pytest.fixture
def devstack_hook(monkeypatch: pytest.MonkeyPatch) -> SageMakerHook:
    """The connection `.devstack/env` exports: moto for every service, the SageMaker service for SageMaker."""
    return _aws_connection(
        monkeypatch,
        "devstack_links",
        {
            "region_name": "us-east-1",
            "endpoint_url": MOTO,
            "service_config": {"sagemaker": {"endpoint_url": DEVSTACK}, "s3": {"endpoint_url": MOTO}},
        },
    )


@pytest.fixture
def aws_hook(monkeypatch: pytest.MonkeyPatch) -> SageMakerHook:
    """A real AWS connection: a region, no endpoint."""
    return _aws_connection(monkeypatch, "aws_links", {"region_name": "eu-west-1"})


class _TI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _persisted(link: type[ConsoleLink], hook: SageMakerHook, **fields: Any) -> str:
    """Persist ``link`` as a task does, then render it as the UI does (from the stored XCom value)."""
    ti = _TI()
    operator = SimpleNamespace(hook=hook, do_xcom_push=True)
    persist_link(link, operator, {"ti": ti}, **fields)  # type: ignore[arg-type]
    assert link.key in ti.pushed, "persist swallows errors: nothing was stored"
    return link().format_link(**ti.pushed[link.key])


@pytest.mark.parametrize(
    ("endpoint_url", "expected"),
    [
        pytest.param(None, None, id="no-endpoint-is-aws"),
        pytest.param("", None, id="empty-endpoint-is-aws"),
        pytest.param(DEVSTACK, f"{DEVSTACK}/console", id="devstack-loopback"),
        pytest.param("http://devstack-sagemaker:4570/", "http://devstack-sagemaker:4570/console", id="compose-host"),
        pytest.param("http://user:secret@127.0.0.1:4570", f"{DEVSTACK}/console", id="credentials-dropped"),
        pytest.param("https://sagemaker.us-east-1.amazonaws.com", None, id="regional-aws-endpoint"),
        pytest.param("https://sagemaker-fips.us-gov-west-1.amazonaws.com", None, id="fips-endpoint"),
        pytest.param("https://vpce-0a1b-x2y3.api.sagemaker.eu-west-1.vpce.amazonaws.com", None, id="vpc-endpoint"),
        pytest.param("https://api.sagemaker.cn-north-1.amazonaws.com.cn", None, id="china-endpoint"),
        pytest.param("https://sagemaker.us-east-1.api.aws", None, id="dual-stack-endpoint"),
        pytest.param("ftp://127.0.0.1", None, id="not-http"),
    ],
)
def test_devstack_console_url_only_for_endpoints_that_are_not_aws(endpoint_url: str | None, expected: str | None):
    assert devstack_console_url(endpoint_url) == expected


JOB = "train-model-20260301-manual-2026-03-01t00-00-00"
DEVSTACK_PAGES = [
    pytest.param(SageMakerTrainingJobLink, {"job_name": JOB}, f"/console/jobs/training/{JOB}", id="training"),
    pytest.param(SageMakerProcessingJobLink, {"job_name": "pre-1"}, "/console/jobs/processing/pre-1", id="processing"),
    pytest.param(SageMakerTuningJobLink, {"job_name": "tune-1"}, "/console/jobs/tuning/tune-1", id="tuning"),
    pytest.param(SageMakerTransformJobLink, {"job_name": "bs-1"}, "/console/jobs/transform/bs-1", id="transform"),
    pytest.param(SageMakerEndpointLink, {"endpoint_name": "fraud"}, "/console/endpoints/fraud", id="endpoint"),
    pytest.param(MonitoringScheduleLink, {"endpoint_name": "fraud"}, "/console/endpoints/fraud", id="monitoring"),
    pytest.param(
        SageMakerModelPackageLink, {"group": "fraud", "version": 3}, "/console/model-packages/fraud/3", id="package"
    ),
    pytest.param(CloudWatchAlarmsLink, {"prefix": "fraud-v 2"}, "/console/alarms?prefix=fraud-v%202", id="alarms"),
    pytest.param(
        S3ReportLink,
        {"bucket": "ml", "prefix": "reports/eval/run=a+b/gate report.json"},
        "/console/s3/ml/reports/eval/run%3Da%2Bb/gate%20report.json",
        id="s3-object-quoted",
    ),
]


@pytest.mark.parametrize(("link", "fields", "path"), DEVSTACK_PAGES)
def test_links_of_a_devstack_task_open_the_devstack_page(devstack_hook, link, fields, path):
    assert _persisted(link, devstack_hook, **fields) == DEVSTACK + path


AWS_PAGES = [
    pytest.param(
        SageMakerTrainingJobLink,
        {"job_name": JOB},
        f"https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/{JOB}",
        id="training",
    ),
    pytest.param(
        SageMakerTransformJobLink,
        {"job_name": "bs-1"},
        "https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/transform-jobs/bs-1",
        id="transform",
    ),
    pytest.param(
        SageMakerModelPackageLink,
        {"group": "fraud", "version": 3},
        "https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/model-packages/fraud/3",
        id="package",
    ),
    pytest.param(
        CloudWatchAlarmsLink,
        {"prefix": "fraud-v2"},
        "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#alarmsV2:?search=fraud-v2&alarmStateFilter=ALL",
        id="alarms",
    ),
    pytest.param(
        S3ReportLink,
        {"bucket": "ml", "prefix": "reports/eval/"},
        "https://console.aws.amazon.com/s3/buckets/ml?region=eu-west-1&prefix=reports/eval/",
        id="s3",
    ),
]


@pytest.mark.parametrize(("link", "fields", "url"), AWS_PAGES)
def test_links_of_an_aws_task_open_the_aws_console(aws_hook, link, fields, url):
    ti = _TI()
    persist_link(link, SimpleNamespace(hook=aws_hook, do_xcom_push=True), {"ti": ti}, **fields)  # type: ignore[arg-type]
    assert links.DEVSTACK_URL_FIELD not in ti.pushed[link.key]
    assert link().format_link(**ti.pushed[link.key]) == url


def test_devstack_url_is_persisted_so_an_old_run_keeps_the_page_it_had(devstack_hook, monkeypatch):
    ti = _TI()
    persist_link(
        SageMakerEndpointLink, SimpleNamespace(hook=devstack_hook, do_xcom_push=True), {"ti": ti}, endpoint_name="e"
    )  # type: ignore[arg-type]
    stored = ti.pushed[SageMakerEndpointLink.key]
    monkeypatch.setenv("AIRFLOW_CONN_DEVSTACK_LINKS", json.dumps({"conn_type": "aws", "extra": {}}))
    assert SageMakerEndpointLink().format_link(**stored) == f"{DEVSTACK}/console/endpoints/e"


def test_package_link_names_group_and_version_of_the_description(devstack_hook):
    ti = _TI()
    operator = SimpleNamespace(hook=devstack_hook, do_xcom_push=True, package_group_name="fallback")
    persist_package_link(operator, {"ti": ti}, {"ModelPackageGroupName": "fraud", "ModelPackageVersion": 7})  # type: ignore[arg-type]
    assert SageMakerModelPackageLink().format_link(**ti.pushed[SageMakerModelPackageLink.key]) == (
        f"{DEVSTACK}/console/model-packages/fraud/7"
    )


def test_console_urls_in_notifications_follow_the_connection(devstack_hook, aws_hook):
    local = Console.of(devstack_hook)
    assert local.endpoint("fraud") == f"{DEVSTACK}/console/endpoints/fraud"
    assert local.alarms("fraud-v2") == f"{DEVSTACK}/console/alarms?prefix=fraud-v2"
    assert local.model_package("fraud", 2) == f"{DEVSTACK}/console/model-packages/fraud/2"
    aws = Console.of(aws_hook)
    assert aws.endpoint("fraud") == "https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/endpoints/fraud"
    assert (
        aws.alarms("fraud-v2")
        == "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#alarmsV2:?search=fraud-v2"
    )


def test_connection_with_only_a_global_aws_endpoint_keeps_the_console(monkeypatch):
    hook = _aws_connection(
        monkeypatch, "vpce_links", {"region_name": "eu-west-1", "endpoint_url": "https://sts.eu-west-1.amazonaws.com"}
    )
    assert Console.of(hook).devstack_url is None
