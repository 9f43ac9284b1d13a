"""The devstack console's pages: what each shows, escaping, 404 for unknown resources, content types."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.sagemaker.console import Console
from devstack.sagemaker.errors import resource_not_found, unknown_operation, validation_error

REGION = "us-east-1"
EVIL = '<script>alert("x")</script>'


class FakeService:
    """What the console uses of the SageMaker service: ``invoke``, ``client``, ``arn``, ``register_route``."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], dict[str, Any]] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        self.routes: list[tuple[str, str, Callable[..., None]]] = []

    def invoke(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        if action.startswith("List"):
            if action not in self.lists:
                raise unknown_operation(f"The devstack SageMaker service does not implement {action}.")
            return self.lists[action]
        name = next(iter(v for k, v in params.items() if k != "MaxResults"))
        if (action, name) not in self.answers:
            if action == "DescribeHyperParameterTuningJob":
                raise resource_not_found(f"Amazon SageMaker can't find a tuning job with name {name}")
            raise validation_error(f"Could not find {name}.")
        return self.answers[(action, name)]

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def arn(self, resource_type: str, name: str) -> str:
        return f"arn:aws:sagemaker:{REGION}:123456789012:{resource_type}/{name}"

    def register_route(self, method: str, prefix: str, handler: Callable[..., None]) -> None:
        self.routes.append((method, prefix, handler))


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class FakeRequest:
    """The part of ``BaseHTTPRequestHandler`` a route handler writes to."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.status = 0
        self.headers: dict[str, str] = {}
        self.wfile = io.BytesIO()

    def send_response(self, status: int) -> None:
        self.status = status

    def send_header(self, name: str, value: str) -> None:
        self.headers[name] = value

    def end_headers(self) -> None:
        pass


@pytest.fixture
def service() -> Iterator[FakeService]:
    with mock_aws():
        yield FakeService()


@pytest.fixture
def get(service: FakeService) -> Callable[[str], Response]:
    console = Console(service)  # type: ignore[arg-type]
    console.register()
    [(method, prefix, handler)] = service.routes
    assert (method, prefix) == ("GET", "/console")

    def fetch(url: str) -> Response:
        request = FakeRequest(url)
        handler(request, url.split("?", 1)[0])
        body = request.wfile.getvalue()
        assert int(request.headers["Content-Length"]) == len(body)
        return Response(request.status, request.headers, body)

    return fetch


def test_training_job_page_shows_status_reason_s3_links_and_log(service, get):
    name = "train-1"
    service.answers[("DescribeTrainingJob", name)] = {
        "TrainingJobName": name,
        "TrainingJobStatus": "Failed",
        "FailureReason": "AlgorithmError: bad input",
        "CreationTime": 1767225600.0,
        "InputDataConfig": [{"DataSource": {"S3DataSource": {"S3Uri": "s3://bkt/data/train/"}}}],
        "ModelArtifacts": {"S3ModelArtifacts": "s3://bkt/models/train-1/output/model.tar.gz"},
    }
    logs = service.client("logs")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=f"{name}/algo-1-1")
    logs.put_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=f"{name}/algo-1-1",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "epoch 1 loss <0.5>"}],
    )
    page = get(f"/console/jobs/training/{name}")
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Training job train-1" in page.text
    assert "Failed" in page.text and "AlgorithmError: bad input" in page.text
    assert '<a href="/console/s3/bkt/data/train/">s3://bkt/data/train/</a>' in page.text
    assert 'href="/console/s3/bkt/models/train-1/output/model.tar.gz"' in page.text
    assert "2026-01-01T00:00:00+00:00" in page.text, "epoch times are shown as dates"
    assert "epoch 1 loss &lt;0.5&gt;" in page.text, "the log, escaped"


def test_tuning_job_page_links_its_training_jobs(service, get):
    service.answers[("DescribeHyperParameterTuningJob", "tune-1")] = {
        "HyperParameterTuningJobName": "tune-1",
        "HyperParameterTuningJobStatus": "Completed",
        "BestTrainingJob": {"TrainingJobName": "tune-1-002"},
    }
    service.lists["ListTrainingJobsForHyperParameterTuningJob"] = {
        "TrainingJobSummaries": [
            {"TrainingJobName": n, "TrainingJobStatus": "Completed"} for n in ("tune-1-001", "tune-1-002")
        ]
    }
    page = get("/console/jobs/tuning/tune-1")
    assert page.status == 200
    assert '<a href="/console/jobs/training/tune-1-002">tune-1-002</a> (best)' in page.text
    assert '<a href="/console/jobs/training/tune-1-001">tune-1-001</a><' in page.text


def test_names_and_values_from_resources_are_escaped(service, get):
    service.answers[("DescribeProcessingJob", "pre-1")] = {
        "ProcessingJobName": "pre-1",
        "ProcessingJobStatus": "Failed",
        "FailureReason": EVIL,
        "Environment": {EVIL: 's3://bkt/a"onmouseover="x/\'.json'},
    }
    page = get("/console/jobs/processing/pre-1")
    assert page.status == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
    assert '"onmouseover' not in page.text, "an S3 URI cannot break out of its href"
    assert "no log" in page.text


def test_model_package_page_links_every_s3_metadata_value(service, get):
    arn = service.arn("model-package", "fraud/3")
    service.answers[("DescribeModelPackage", arn)] = {
        "ModelPackageArn": arn,
        "ModelPackageGroupName": "fraud",
        "ModelPackageVersion": 3,
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": "s3://bkt/eval/evaluation.json"}
            }
        },
        "CustomerMetadataProperties": {
            "auc": "0.91",
            "gate_report": "s3://bkt/reports/eval/gate.json",
            "roc_curve": "s3://bkt/reports/eval/roc curve.png",
            EVIL: EVIL,
        },
        "InferenceSpecification": {"Containers": [{"ModelDataUrl": "s3://bkt/models/m/model.tar.gz"}]},
    }
    page = get("/console/model-packages/fraud/3")
    assert page.status == 200
    assert "Model package fraud version 3" in page.text
    assert "Approved" in page.text and "0.91" in page.text
    assert '<a href="/console/s3/bkt/reports/eval/gate.json">s3://bkt/reports/eval/gate.json</a>' in page.text
    assert '<a href="/console/s3/bkt/reports/eval/roc%20curve.png">' in page.text
    assert '<a href="/console/s3/bkt/eval/evaluation.json">' in page.text
    assert "<script>" not in page.text


def test_endpoint_page_shows_variants_weights_and_monitoring(service, get):
    service.answers[("DescribeEndpoint", "fraud")] = {
        "EndpointName": "fraud",
        "EndpointStatus": "InService",
        "EndpointConfigName": "fraud-cfg-2",
        "ProductionVariants": [
            {"VariantName": "v1", "CurrentWeight": 0.9, "DesiredWeight": 0.9, "CurrentInstanceCount": 1},
            {"VariantName": "v2", "CurrentWeight": 0.1, "DesiredWeight": 0.1, "CurrentInstanceCount": 1},
        ],
    }
    service.lists["ListMonitoringSchedules"] = {"MonitoringScheduleSummaries": [{"MonitoringScheduleName": "fraud-dq"}]}
    service.answers[("DescribeMonitoringSchedule", "fraud-dq")] = {
        "MonitoringScheduleName": "fraud-dq",
        "MonitoringScheduleStatus": "Scheduled",
        "MonitoringScheduleConfig": {"ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"}},
        "LastMonitoringExecutionSummary": {
            "MonitoringExecutionStatus": "CompletedWithViolations",
            "ProcessingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:processing-job/dq-exec-1",
        },
    }
    page = get("/console/endpoints/fraud")
    assert page.status == 200
    rows = re.findall(r"<tr><td>(v\d)</td><td>([\d.]+)</td>", page.text)
    assert rows == [("v1", "0.9"), ("v2", "0.1")]
    assert 'href="/console/alarms?prefix=fraud-v2"' in page.text
    assert "fraud-dq" in page.text and "cron(0 * ? * * *)" in page.text and "CompletedWithViolations" in page.text
    assert '<a href="/console/jobs/processing/dq-exec-1">dq-exec-1</a>' in page.text


def test_alarms_page_lists_the_prefix_with_state_and_reason(service, get):
    cloudwatch = service.client("cloudwatch")
    for name in ("fraud-v2-5xx", "fraud-v2-latency", "other-v1-5xx"):
        cloudwatch.put_metric_alarm(
            AlarmName=name, MetricName="Invocation5XXErrors", Namespace="AWS/SageMaker", Statistic="Average",
            Period=60, EvaluationPeriods=1, Threshold=0.01, ComparisonOperator="GreaterThanThreshold",
        )  # fmt: skip
    cloudwatch.set_alarm_state(AlarmName="fraud-v2-5xx", StateValue="ALARM", StateReason=f"5XX 0.4 > 0.01 {EVIL}")
    page = get("/console/alarms?prefix=fraud-v2")
    assert page.status == 200
    assert "fraud-v2-5xx" in page.text and "fraud-v2-latency" in page.text
    assert "other-v1-5xx" not in page.text
    assert '<span class="status">ALARM</span>' in page.text and "5XX 0.4 &gt; 0.01" in page.text
    assert "<script>" not in page.text


@pytest.mark.parametrize(
    ("key", "body", "stored_type", "served_type"),
    [
        pytest.param("r/roc_curve.png", b"\x89PNG\r\n\x1a\n", "image/png", "image/png", id="png"),
        pytest.param("r/report.html", b"<html>ok</html>", "text/html", "text/html", id="html"),
        pytest.param("r/gate.json", b'{"passed": true}', None, "application/json", id="json-guessed-from-name"),
        pytest.param("r/data.bin", b"\x00\x01", None, "application/octet-stream", id="unknown-binary"),
    ],
)
def test_s3_object_is_served_with_its_content_type(service, get, key, body, stored_type, served_type):
    s3 = service.client("s3")
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key=key, Body=body, **({"ContentType": stored_type} if stored_type else {}))
    page = get(f"/console/s3/bkt/{key}")
    assert page.status == 200
    assert page.headers["Content-Type"] == served_type
    assert page.body == body
    assert page.headers["Content-Security-Policy"] == "sandbox allow-scripts", "reports run in an origin of their own"


def test_s3_prefix_lists_its_keys_and_folders(service, get):
    s3 = service.client("s3")
    s3.create_bucket(Bucket="bkt")
    for key in ("reports/eval/gate.json", "reports/eval/plots/roc.png", f"reports/eval/{EVIL}.txt"):
        s3.put_object(Bucket="bkt", Key=key, Body=b"x")
    for url in ("/console/s3/bkt/reports/eval/", "/console/s3/bkt/reports/eval"):
        page = get(url)
        assert page.status == 200, url
        assert '<a href="/console/s3/bkt/reports/eval/gate.json">gate.json</a>' in page.text
        assert '<a href="/console/s3/bkt/reports/eval/plots/">plots/</a>' in page.text
        assert "<script>" not in page.text


def test_buckets_page(service, get):
    service.client("s3").create_bucket(Bucket="bkt")
    page = get("/console/s3/")
    assert page.status == 200 and '<a href="/console/s3/bkt/">bkt</a>' in page.text


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("/console/jobs/training/nope", id="training-job"),
        pytest.param("/console/jobs/tuning/nope", id="tuning-job-resource-not-found"),
        pytest.param("/console/jobs/transform/nope", id="transform-job"),
        pytest.param("/console/jobs/compile/x", id="unknown-job-kind"),
        pytest.param("/console/model-packages/fraud/99", id="model-package"),
        pytest.param("/console/endpoints/nope", id="endpoint"),
        pytest.param("/console/s3/no-such-bucket/key.json", id="bucket"),
        pytest.param("/console/s3/bkt/missing.json", id="s3-object"),
        pytest.param("/console/s3/bkt/missing/", id="s3-prefix"),
        pytest.param("/console/nothing-here", id="unknown-page"),
        pytest.param(f"/console/endpoints/{EVIL}", id="escaped-name"),
    ],
)
def test_unknown_resources_answer_404(service, get, url):
    service.client("s3").create_bucket(Bucket="bkt")
    page = get(url)
    assert page.status == 404
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<script>" not in page.text


def test_index_links_recent_resources(service, get):
    service.lists["ListTrainingJobs"] = {
        "TrainingJobSummaries": [{"TrainingJobName": "train-1", "TrainingJobStatus": "Completed"}]
    }
    service.lists["ListModelPackageGroups"] = {"ModelPackageGroupSummaryList": [{"ModelPackageGroupName": "fraud"}]}
    service.lists["ListModelPackages"] = {"ModelPackageSummaryList": [{"ModelPackageVersion": 2}]}
    service.lists["ListEndpoints"] = {"Endpoints": [{"EndpointName": "fraud", "EndpointStatus": "InService"}]}
    page = get("/console/")
    assert page.status == 200
    assert '<a href="/console/jobs/training/train-1">train-1</a>' in page.text
    assert '<a href="/console/model-packages/fraud/2">2</a>' in page.text
    assert '<a href="/console/endpoints/fraud">fraud</a>' in page.text


def test_a_page_of_an_action_the_service_does_not_run_answers_404(service, get):
    def unknown(action: str, params: dict[str, Any]) -> dict[str, Any]:
        raise unknown_operation(f"The devstack SageMaker service does not implement {action}.")

    service.invoke = unknown  # type: ignore[method-assign]  # e.g. hosting without its extension
    page = get("/console/endpoints/fraud")
    assert page.status == 404 and "does not run DescribeEndpoint" in page.text
