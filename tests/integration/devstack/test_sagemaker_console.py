"""The devstack console over HTTP on loopback: pages of a real processing job, model package, report and alarms."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from devstack.sagemaker.service import SageMakerService
from tests.integration.devstack.sagemaker_support import ROLE, SKLEARN_IMAGE, put_text, wait_for

pytestmark = pytest.mark.integration

SCRIPT = """
import pathlib, sys
rows = pathlib.Path("/opt/ml/processing/input/data/raw.csv".replace("/opt/ml", sys.argv[1])).read_text().split()
pathlib.Path("/opt/ml/processing/output/clean.csv".replace("/opt/ml", sys.argv[1])).write_text("\\n".join(rows))
print("console-probe cleaned", len(rows), "rows")
"""
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def http_get(url: str) -> tuple[int, str, bytes]:
    """GET ``url``: (status, content type, body), error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def processing_job(sm: Any, s3: Any, bucket: str, name: str) -> dict[str, Any]:
    put_text(s3, bucket, "raw/raw.csv", "a\nb\nc")
    put_text(s3, bucket, "code/clean.py", SCRIPT)
    sm.create_processing_job(
        ProcessingJobName=name,
        RoleArn=ROLE,
        AppSpecification={
            "ImageUri": SKLEARN_IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/clean.py"],
            "ContainerArguments": ["/opt/ml"],
        },
        ProcessingInputs=[
            {
                "InputName": input_name,
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/{prefix}/",
                    "LocalPath": f"/opt/ml/processing/input/{input_name}",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
            for input_name, prefix in (("data", "raw"), ("code", "code"))
        ],
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "clean",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/clean/{name}",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
    )
    return wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus", timeout=300)


def test_job_page_names_the_job_links_its_output_and_shows_its_log(
    sagemaker_service: SageMakerService, sm: Any, s3: Any, bucket: str, unique_name: Any
) -> None:
    name = unique_name("console-job")
    desc = processing_job(sm, s3, bucket, name)
    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    url = f"{sagemaker_service.url}/console/jobs/processing/{name}"

    deadline = time.monotonic() + 30
    while True:  # the log reaches CloudWatch Logs shortly after the job ends
        status, content_type, body = http_get(url)
        page = body.decode()
        if "console-probe cleaned 3 rows" in page or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert f"Processing job {name}" in page and "Completed" in page
    assert "console-probe cleaned 3 rows" in page, "the job's log is on its page"
    output = f"/console/s3/{bucket}/clean/{name}"
    assert f'<a href="{output}">s3://{bucket}/clean/{name}</a>' in page

    status, _, listing = http_get(sagemaker_service.url + output)
    assert status == 200 and f'href="{output}/clean.csv"' in listing.decode()
    status, content_type, data = http_get(f"{sagemaker_service.url}{output}/clean.csv")
    assert (status, content_type, data) == (200, "text/csv", b"a\nb\nc")


def test_model_package_page_links_its_report_which_opens_as_an_image(
    sagemaker_service: SageMakerService, sm: Any, s3: Any, bucket: str, unique_name: Any
) -> None:
    group = unique_name("console-group")
    s3.put_object(Bucket=bucket, Key="reports/eval/roc_curve.png", Body=PNG, ContentType="image/png")
    sm.create_model_package_group(ModelPackageGroupName=group)
    sm.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{bucket}/models/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={"auc": "0.93", "roc_curve": f"s3://{bucket}/reports/eval/roc_curve.png"},
    )

    status, content_type, body = http_get(f"{sagemaker_service.url}/console/model-packages/{group}/1")
    page = body.decode()
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert f"Model package {group} version 1" in page and "PendingManualApproval" in page and "0.93" in page
    report = f"/console/s3/{bucket}/reports/eval/roc_curve.png"
    assert f'<a href="{report}">s3://{bucket}/reports/eval/roc_curve.png</a>' in page
    assert http_get(sagemaker_service.url + report) == (200, "image/png", PNG)


def test_alarms_page_shows_the_state_moto_holds(
    sagemaker_service: SageMakerService, moto_endpoint: str, unique_name: Any
) -> None:
    import boto3

    from tests.integration.devstack.sagemaker_support import CREDENTIALS, REGION

    cloudwatch = boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name=REGION, **CREDENTIALS)
    prefix = unique_name("console-ep") + "-v2"
    cloudwatch.put_metric_alarm(
        AlarmName=f"{prefix}-5xx", MetricName="Invocation5XXErrors", Namespace="AWS/SageMaker", Statistic="Average",
        Period=60, EvaluationPeriods=1, Threshold=0.01, ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip
    cloudwatch.set_alarm_state(AlarmName=f"{prefix}-5xx", StateValue="ALARM", StateReason="5XX rate 0.4 > 0.01")
    status, _, body = http_get(f"{sagemaker_service.url}/console/alarms?prefix={prefix}")
    assert status == 200
    assert f"{prefix}-5xx" in body.decode() and "ALARM" in body.decode() and "5XX rate 0.4 &gt; 0.01" in body.decode()


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/console/jobs/training/no-such-job", id="training-job"),
        pytest.param("/console/jobs/tuning/no-such-job", id="tuning-job"),
        pytest.param("/console/model-packages/no-such-group/1", id="model-package"),
        pytest.param("/console/endpoints/no-such-endpoint", id="endpoint"),
        pytest.param("/console/s3/no-such-bucket/x.json", id="s3"),
    ],
)
def test_unknown_resources_answer_404_over_http(sagemaker_service: SageMakerService, path: str) -> None:
    status, content_type, _ = http_get(f"{sagemaker_service.url}{path}")
    assert (status, content_type) == (404, "text/html; charset=utf-8")
