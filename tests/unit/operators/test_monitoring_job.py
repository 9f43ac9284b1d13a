"""The evidently engine's operators on moto S3/CloudWatch/SNS and a SageMaker stand-in that refuses Model Monitor.

The SageMaker stand-in answers only what the engine may call (model registry, processing jobs); every Model
Monitor action answers ``AccessDeniedException``, as in an account without Model Monitor, so a test that
passes proves the engine never called one.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.session
import pytest
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowSkipException, TaskDeferred
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

from ml_lifecycle.assets import drift_uri
from ml_lifecycle.config import load_config
from ml_lifecycle.operators.monitoring_job import MonitoringDriftOperator, MonitoringJobOperator
from tests.unit.operators._hosting_fakes import AWS_CONNECTION, BUCKET, FakeTI, aws, context, notifications

__all__ = ["aws"]

ENDPOINT = "fraud-detector-local"
START = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
END = START + dt.timedelta(hours=1)
BASELINE = f"s3://{BUCKET}/jobs/train_model/w/abcd1234/evaluate/baseline/"
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/fraud-detector/3"
SERVICE = botocore.session.get_session().get_service_model("sagemaker")
MODEL_MONITOR = re.compile(r"monitoring|quality_job_definition|bias_job_definition|explainability_job_definition")


def summary(*, drifted: bool = False, quality: str = "ok", bias: str = "ok") -> dict[str, Any]:
    reasons = []
    if drifted:
        reasons.append({"check": "drift", "metric": "DriftShare", "value": 0.75, "threshold": 0.5})
    quality_breaches = []
    if quality == "breach":
        quality_breaches = [{"metric": "recall", "value": 0.2, "threshold": 0.5, "comparison": "LessThanThreshold"}]
        reasons.append({"check": "model_quality", "metric": "recall", "value": 0.2, "threshold": 0.5})
    bias_breaches = []
    if bias == "breach":
        bias_breaches = [{"facet_value": "young", "metric": "DPPL", "value": 0.3, "threshold": 0.1}]
    return {
        "version": 1,
        "endpoint": ENDPOINT,
        "interval": {"start": START.isoformat(), "end": END.isoformat()},
        "rows": {"interval": 400, "labelled": 0 if quality == "no_labels" else 300},
        "drift": {
            "drifted": drifted,
            "share": 0.75 if drifted else 0.0,
            "features": {
                "amount": {"drifted": drifted, "test": "ks", "score": 0.001 if drifted else 0.4, "threshold": 0.05},
                "channel": {"drifted": False, "test": "chisquare", "score": 0.6, "threshold": 0.05},
            },
        },
        "data_quality": {"checks": [{"name": "missing_values", "passed": True, "detail": "none"}]},
        "model_quality": {
            "status": quality,
            "labelled": 0 if quality == "no_labels" else 300,
            "metrics": {} if quality == "no_labels" else {"recall": 0.2 if quality == "breach" else 0.8, "auc": 0.9},
            "breaches": quality_breaches,
        },
        "bias": {"status": bias, "facet": "customer_segment", "metrics": {}, "breaches": bias_breaches},
        "decision": {"retrain": bool(reasons), "reasons": reasons, "bias_hold": bias == "breach"},
    }


METRICS = [
    {"name": "DriftShare", "dimensions": {}, "value": 0.75},
    {"name": "FeatureDriftScore", "dimensions": {"Feature": "amount"}, "value": 0.001},
    {"name": "ModelQuality", "dimensions": {"Metric": "recall"}, "value": 0.2},
]


class FakeSageMaker:
    """Registry and processing jobs; the job 'runs' by writing the given outputs. Model Monitor refuses."""

    def __init__(self, outputs: dict[str, Any] | None, *, status: str = "Completed", champion: bool = True):
        self.outputs = outputs
        self.status = status
        self.champion = champion
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        if MODEL_MONITOR.search(name):

            def refuse(**kwargs: Any) -> Any:
                error = {"Code": "AccessDeniedException", "Message": "Model Monitor availability change"}
                raise ClientError({"Error": error}, name)

            return refuse
        raise AttributeError(name)

    def list_model_packages(self, **kwargs: Any) -> dict[str, Any]:
        stage = {"Stage": "Production", "StageStatus": "Deployed"} if self.champion else {}
        return {"ModelPackageSummaryList": [{"ModelPackageArn": PACKAGE, "ModelLifeCycle": stage}] if stage else []}

    def describe_model_package(self, ModelPackageName: str) -> dict[str, Any]:  # noqa: N803
        return {"ModelPackageArn": ModelPackageName, "CustomerMetadataProperties": {"baseline_uri": BASELINE}}

    def create_processing_job(self, **request: Any) -> dict[str, Any]:
        report = ParamValidator().validate(request, SERVICE.operation_model("CreateProcessingJob").input_shape)
        assert not report.has_errors(), report.generate_report()
        name = request["ProcessingJobName"]
        assert name not in self.jobs, f"{name} created twice"
        self.requests.append(request)
        self.jobs[name] = {
            "ProcessingJobName": name,
            "ProcessingJobArn": f"arn:x:processing-job/{name}",
            "ProcessingOutputConfig": request["ProcessingOutputConfig"],
        }
        self.set_status(name, self.status)
        return {"ProcessingJobArn": self.jobs[name]["ProcessingJobArn"]}

    def set_status(self, name: str, status: str) -> None:
        self.jobs[name]["ProcessingJobStatus"] = status
        if status == "Completed" and self.outputs is not None:
            out = self.requests[-1]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
            bucket, key = out.removeprefix("s3://").split("/", 1)
            s3 = boto3.client("s3")
            for file, document in self.outputs.items():
                s3.put_object(Bucket=bucket, Key=key + file, Body=json.dumps(document).encode())

    def describe_processing_job(self, ProcessingJobName: str) -> dict[str, Any]:  # noqa: N803
        if ProcessingJobName not in self.jobs:
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": f"Could not find job {ProcessingJobName}"}},
                "DescribeProcessingJob",
            )
        return dict(self.jobs[ProcessingJobName])


def with_hook(op, fake):
    op.__dict__["hook"] = SimpleNamespace(
        conn=fake,
        conn_region_name="us-east-1",
        conn_partition="aws",
        conn_config=AWS_CONNECTION,
        s3_hook=S3Hook(aws_conn_id="aws_default"),
    )
    op._code_uri = lambda cfg: (f"s3://{BUCKET}/code/monitoring/d1/src/", "d1")  # the job's code is mon-job's
    return op


def capture(*hours: int) -> list[str]:
    s3 = boto3.client("s3")
    keys = []
    for hour in hours:
        key = f"data-capture/{ENDPOINT}/AllTraffic/2026/03/01/{hour:02d}/00-00-000-x.jsonl"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}\n")
        keys.append(key)
    return keys


def operator(**kwargs: Any) -> MonitoringJobOperator:
    return MonitoringJobOperator(
        task_id="run_monitoring", interval_start=START.isoformat(), interval_end=END.isoformat(), **kwargs
    )


def read(uri: str) -> Any:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def test_runs_the_interval_job_and_publishes_metrics_and_alarms(aws):
    capture(3, 10)  # 03:00 is in the 168 h lookback (model quality), 10:00 is the interval
    fake = FakeSageMaker({"summary.json": summary(drifted=True), "metrics.json": METRICS})
    ti = FakeTI()
    result = with_hook(operator(), fake).execute(context(ti))

    [request] = fake.requests
    name = request["ProcessingJobName"]
    assert re.fullmatch(rf"{ENDPOINT}-mon-202603011000-[0-9a-f]{{8}}", name)
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs["baseline"]["S3Uri"] == BASELINE, "the champion's registry baseline_uri"
    assert "labels" not in inputs and "history" not in inputs, "absent inputs are left out"
    manifest = read(inputs["capture"]["S3Uri"])
    assert manifest == [
        {"prefix": f"s3://{BUCKET}/data-capture/{ENDPOINT}/"},
        "AllTraffic/2026/03/01/03/00-00-000-x.jsonl",
        "AllTraffic/2026/03/01/10/00-00-000-x.jsonl",
    ]
    config = read(inputs["config"]["S3Uri"] + "monitor_config.json")
    assert config["interval_start"] == START.isoformat() and config["endpoint"] == ENDPOINT

    assert result["status"] == "completed" and result["job_name"] == name
    assert result["drift"] == {"drifted": True, "share": 0.75, "features": ["amount"]}
    assert result["decision"]["retrain"] is True
    assert result["report_uri"] == f"s3://{BUCKET}/monitoring/{ENDPOINT}/202603011000/report.html"
    assert len(json.dumps(result)) < 4000, "XCom holds the checks, not the per-feature detail"
    assert ti.pushed["ml_lifecycle_s3_report"]["prefix"] == f"monitoring/{ENDPOINT}/202603011000/report.html"

    metrics = aws.cloudwatch.list_metrics(Namespace="MlLifecycle/Monitoring")["Metrics"]
    assert {m["MetricName"] for m in metrics} == {"DriftShare", "FeatureDriftScore", "ModelQuality"}
    assert all({"Name": "Endpoint", "Value": ENDPOINT} in m["Dimensions"] for m in metrics)
    alarms = aws.cloudwatch.describe_alarms(AlarmNamePrefix=f"{ENDPOINT}-monitoring-")["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in alarms) == [
        f"{ENDPOINT}-monitoring-drift-share",
        f"{ENDPOINT}-monitoring-recall",
    ]
    tags = aws.cloudwatch.list_tags_for_resource(ResourceARN=alarms[0]["AlarmArn"])["Tags"]
    assert {t["Key"] for t in tags} >= {"owner", "cost-centre", "project", "environment"}
    history = read(f"s3://{BUCKET}/monitoring/{ENDPOINT}/history/202603011000.json")
    assert history["decision"] == result["decision"]

    # the same interval again (a retry or a cleared task) re-attaches to its job: no second job
    again = with_hook(operator(), fake).execute(context())
    assert again["job_name"] == name and len(fake.requests) == 1


def test_the_interval_is_linked_from_the_served_model_package(aws):
    capture(10)
    # the job echoes the config's model_package_arn in its summary, as monitor.py does
    served = {**summary(drifted=True), "model_package_arn": PACKAGE}
    fake = FakeSageMaker({"summary.json": served, "metrics.json": METRICS, "report.html": "<html>"})
    result = with_hook(operator(), fake).execute(context())

    [request] = fake.requests
    config_uri = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}["config"]
    assert read(config_uri + "monitor_config.json")["model_package_arn"] == PACKAGE, "the champion's"
    folder = f"s3://{BUCKET}/monitoring/{ENDPOINT}/models/3/"
    assert result["model_package_arn"] == PACKAGE and result["model_reports_uri"] == folder
    entry = read(folder + "202603011000.json")
    assert entry["job_name"] == result["job_name"] and entry["decision"] == result["decision"]
    outputs = f"s3://{BUCKET}/monitoring/{ENDPOINT}/202603011000/"
    # no labels were joined in this interval, so there is no model-quality report to link
    assert entry["reports"] == {
        name: outputs + name for name in ("report.html", "summary.json", "drift.png", "model_quality.png")
    }


def test_a_summary_without_a_model_package_links_nothing(aws):
    capture(10)
    fake = FakeSageMaker({"summary.json": summary(), "metrics.json": METRICS})
    result = with_hook(operator(), fake).execute(context())
    assert result["model_package_arn"] is None and result["model_reports_uri"] is None
    assert (
        not boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"monitoring/{ENDPOINT}/models/").get("KeyCount")
    )


def test_waits_deferred_and_resumes_on_the_jobs_outcome(aws):
    capture(10)
    fake = FakeSageMaker({"summary.json": summary(), "metrics.json": []}, status="InProgress")
    with pytest.raises(TaskDeferred) as deferred:
        with_hook(operator(), fake).execute(context())
    trigger = deferred.value.trigger
    assert trigger.job_type == "Processing" and trigger.job_name == fake.requests[0]["ProcessingJobName"]
    # a retry while the job runs re-attaches (and defers again) instead of starting a second job
    with pytest.raises(TaskDeferred):
        with_hook(operator(), fake).execute(context())
    assert len(fake.requests) == 1
    fake.set_status(trigger.job_name, "Completed")
    op = with_hook(operator(), fake)
    # the resume carries only the trigger's event (as dag.test's does)
    result = op.execute_complete(context(), {"status": "success", "job_name": trigger.job_name})
    assert result["status"] == "completed" and result["decision"]["retrain"] is False


def test_an_interval_without_traffic_is_reported_not_failed(aws):
    capture(8)  # traffic, but not in the interval
    fake = FakeSageMaker(None)
    result = with_hook(operator(), fake).execute(context())
    assert result["status"] == "no_traffic" and result["job_name"] is None
    assert fake.requests == []
    with pytest.raises(AirflowSkipException, match="no_traffic"):
        MonitoringDriftOperator(task_id="publish_drift", result=result).execute(context())


def test_no_labels_is_reported_and_is_no_reason_to_retrain(aws):
    capture(10)
    fake = FakeSageMaker({"summary.json": summary(quality="no_labels"), "metrics.json": METRICS[:1]})
    result = with_hook(operator(), fake).execute(context())
    assert result["model_quality"] == {"status": "no_labels", "breaches": []}
    assert result["decision"]["retrain"] is False


def test_labels_are_an_input_once_they_arrived(aws):
    capture(10)
    boto3.client("s3").put_object(
        Bucket=BUCKET, Key=f"monitoring/{ENDPOINT}/labels/2026/03/01/10/0000.jsonl", Body=b"{}\n"
    )
    fake = FakeSageMaker({"summary.json": summary(), "metrics.json": []})
    with_hook(operator(), fake).execute(context())
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in fake.requests[0]["ProcessingInputs"]}
    assert inputs["labels"] == f"s3://{BUCKET}/monitoring/{ENDPOINT}/labels/"


def test_nothing_deployed_skips(aws):
    capture(10)
    with pytest.raises(AirflowSkipException, match="no champion"):
        with_hook(operator(), FakeSageMaker(None, champion=False)).execute(context())


def test_a_bias_breach_notifies_the_team(aws):
    capture(10)
    fake = FakeSageMaker({"summary.json": summary(bias="breach"), "metrics.json": []})
    result = with_hook(operator(), fake).execute(context())
    assert result["decision"]["bias_hold"] is True
    from ml_lifecycle.bias_hold import read_hold

    hold = read_hold(boto3.client("s3"), load_config(), ENDPOINT)
    assert result["bias_hold_uri"] == f"s3://{BUCKET}/monitoring/{ENDPOINT}/bias-hold.json"
    assert hold["breaches"] == summary(bias="breach")["bias"]["breaches"] and hold["facet"] == "customer_segment"
    assert hold["interval"] == result["interval"] and hold["report_uri"] == result["report_uri"]
    assert "DPPL = 0.3" in hold["reason"]
    [message] = notifications(aws)
    assert "Bias breach" in message["Subject"] and "DPPL = 0.3" in message["Message"]
    assert "bias-hold.json" in message["Message"]


def test_no_bias_breach_writes_no_hold(aws):
    from ml_lifecycle.bias_hold import read_hold

    capture(10)
    result = with_hook(operator(), FakeSageMaker({"summary.json": summary(), "metrics.json": []})).execute(context())
    assert "bias_hold_uri" not in result
    assert read_hold(boto3.client("s3"), load_config(), ENDPOINT) is None


def _publish(result: dict[str, Any], outlet_events: dict | None = None) -> dict[str, Any]:
    from airflow.sdk import Asset

    asset = Asset(drift_uri(load_config()))
    events = outlet_events if outlet_events is not None else {asset: SimpleNamespace(extra=None)}
    op = MonitoringDriftOperator(task_id="publish_drift", result=result, outlets=[asset])
    op.__dict__["hook"] = SimpleNamespace(
        conn=FakeSageMaker(None), conn_region_name="us-east-1", conn_partition="aws", conn_config=AWS_CONNECTION,
        s3_hook=S3Hook(aws_conn_id="aws_default"),
    )  # fmt: skip
    out = op.execute(context(outlet_events=events))
    out["extra"] = events[asset].extra
    return out


def test_drift_or_a_quality_breach_emits_the_drift_asset_with_the_reasons_once_per_interval(aws):
    capture(10)
    fake = FakeSageMaker({"summary.json": summary(drifted=True, quality="breach"), "metrics.json": []})
    result = with_hook(operator(), fake).execute(context())
    published = _publish(result)
    assert published["reasons"] == [
        {"check": "drift", "metric": "DriftShare", "value": 0.75, "threshold": 0.5},
        {"check": "model_quality", "metric": "recall", "value": 0.2, "threshold": 0.5},
    ]
    assert published["extra"]["reasons"] == published["reasons"]
    document = read(drift_uri(load_config()))
    assert document["reasons"] == published["reasons"] and document["interval"] == result["interval"]
    assert any("Retraining" in m["Subject"] for m in notifications(aws))
    with pytest.raises(AirflowSkipException, match="already published"):
        _publish(result)


def test_no_drift_and_quality_held_skips_publishing(aws):
    capture(10)
    result = with_hook(operator(), FakeSageMaker({"summary.json": summary(), "metrics.json": []})).execute(context())
    with pytest.raises(AirflowSkipException, match="No retraining"):
        _publish(result)
