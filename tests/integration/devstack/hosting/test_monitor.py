"""Model Monitor on the devstack: baselining job, schedules, executions over captured traffic, reports, metrics."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.devstack.hosting_support import (
    control,
    eventually,
    model_tarball,
    variant,
    wait_endpoint,
)
from tests.integration.devstack.sagemaker_support import ROLE, SKLEARN_IMAGE, wait_for

pytestmark = pytest.mark.integration

MONITOR_IMAGE = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"

#: CSV rows "amount,count,channel" in; "score" out (amount / 100).
SCORER = """
def model_fn(model_dir):
    return 0.01

def input_fn(data, content_type):
    return [line.split(",") for line in data.strip().splitlines()]

def predict_fn(rows, scale):
    return [float(row[0]) * scale for row in rows]

def output_fn(scores, accept):
    return "\\n".join(f"{s:.4f}" for s in scores), "text/csv"
"""


def _rows(count: int, mean: float, channels: list[str], seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[f"{rng.gauss(mean, 10):.2f}", str(rng.randint(0, 5)), rng.choice(channels)] for _ in range(count)]


def _read(s3: Any, uri: str) -> Any:
    bucket, key = uri[len("s3://") :].split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def baseline(sagemaker_service: Any, moto_endpoint: str, tmp_path_factory: Any) -> dict[str, str]:
    """A baselining job of the analyzer image over a headered CSV (prediction column first)."""
    from tests.integration.devstack.hosting_support import client

    sm, s3 = client("sagemaker", sagemaker_service.url), client("s3", moto_endpoint)
    bucket = "devstack-monitor-baseline"
    s3.create_bucket(Bucket=bucket)
    rows = _rows(400, 50.0, ["POS", "ECOM"], seed=1)
    text = "score,amount,count,channel\n" + "\n".join(f"{float(r[0]) * 0.01:.4f}," + ",".join(r) for r in rows)
    s3.put_object(Bucket=bucket, Key="train/baseline.csv", Body=text.encode())
    job = f"baseline-suggestion-job-{int(time.time() * 1000)}"
    sm.create_processing_job(
        ProcessingJobName=job,
        RoleArn=ROLE,
        AppSpecification={"ImageUri": MONITOR_IMAGE},
        ProcessingResources={
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
        },
        ProcessingInputs=[
            {
                "InputName": "baseline_dataset_input",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/train/baseline.csv",
                    "LocalPath": "/opt/ml/processing/input/baseline_dataset_input",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "monitoring_output",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/baseline/results",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        Environment={
            "dataset_format": json.dumps({"csv": {"header": True, "output_columns_position": "START"}}),
            "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
            "output_path": "/opt/ml/processing/output",
            "publish_cloudwatch_metrics": "Disabled",
        },
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    desc = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=job), "ProcessingJobStatus", 120)
    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["ExitMessage"] == "Completed: Job completed successfully with no violations."
    return {
        "constraints": f"s3://{bucket}/baseline/results/constraints.json",
        "statistics": f"s3://{bucket}/baseline/results/statistics.json",
    }


def test_baselining_job_writes_statistics_and_constraints(baseline: dict[str, str], s3: Any) -> None:
    stats = _read(s3, baseline["statistics"])
    constraints = _read(s3, baseline["constraints"])

    assert [f["name"] for f in stats["features"]] == ["score", "amount", "count", "channel"]
    assert stats["dataset"]["item_count"] == 400
    amount = stats["features"][1]
    assert amount["inferred_type"] == "Fractional"
    assert len(amount["numerical_statistics"]["distribution"]["kll"]["buckets"]) == 10
    assert constraints["features"][3]["string_constraints"]["domains"] == ["ECOM", "POS"]
    assert constraints["monitoring_config"]["distribution_constraints"]["comparison_method"] == "Robust"


def _capturing_endpoint(sm: Any, s3: Any, bucket: str, unique_name: Any) -> str:
    s3.put_object(Bucket=bucket, Key="scorer/model.tar.gz", Body=model_tarball({"code/inference.py": SCORER}))
    model = unique_name("scorer")
    sm.create_model(
        ModelName=model,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": f"s3://{bucket}/scorer/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    )
    cfg = unique_name("cfg")
    sm.create_endpoint_config(
        EndpointConfigName=cfg,
        ProductionVariants=[variant("AllTraffic", model)],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{bucket}/datacapture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
    )
    name = unique_name("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    assert wait_endpoint(sm, name)["EndpointStatus"] == "InService"
    return name


def _definition(sm: Any, unique_name: Any, endpoint: str, bucket: str, baseline: dict[str, str]) -> str:
    name = unique_name("dq")
    sm.create_data_quality_job_definition(
        JobDefinitionName=name,
        DataQualityBaselineConfig={
            "ConstraintsResource": {"S3Uri": baseline["constraints"]},
            "StatisticsResource": {"S3Uri": baseline["statistics"]},
        },
        DataQualityAppSpecification={"ImageUri": MONITOR_IMAGE},
        DataQualityJobInput={
            "EndpointInput": {"EndpointName": endpoint, "LocalPath": "/opt/ml/processing/input/endpoint"}
        },
        DataQualityJobOutputConfig={
            "MonitoringOutputs": [
                {
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/reports",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    }
                }
            ]
        },
        JobResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
        RoleArn=ROLE,
        StoppingCondition={"MaxRuntimeInSeconds": 1800},
    )
    return name


def _wait_execution(sm: Any, schedule: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = sm.list_monitoring_executions(MonitoringScheduleName=schedule)["MonitoringExecutionSummaries"]
        if found and found[0]["MonitoringExecutionStatus"] not in ("Pending", "InProgress", "Stopping"):
            return found[0]
        return None

    return eventually(done, timeout=120, interval=0.5)


@pytest.mark.parametrize(
    ("mean", "channels", "status", "violations"),
    [
        pytest.param(50.0, ["POS", "ECOM"], "Completed", set(), id="undrifted-traffic"),
        pytest.param(
            95.0,
            ["POS", "ATM"],
            "CompletedWithViolations",
            {
                ("score", "baseline_drift_check"),
                ("amount", "baseline_drift_check"),
                ("channel", "baseline_drift_check"),
                ("channel", "categorical_values_check"),
            },
            id="drifted-traffic",
        ),
    ],
)
def test_hourly_schedule_reports_drift_only_for_drifted_traffic(
    fast: Any,
    sm: Any,
    s3: Any,
    bucket: str,
    unique_name: Any,
    runtime: Any,
    cloudwatch: Any,
    baseline: dict[str, str],
    mean: float,
    channels: list[str],
    status: str,
    violations: set[tuple[str, str]],
) -> None:
    endpoint = _capturing_endpoint(sm, s3, bucket, unique_name)
    definition = _definition(sm, unique_name, endpoint, bucket, baseline)
    schedule = unique_name("hourly")
    sm.create_monitoring_schedule(
        MonitoringScheduleName=schedule,
        MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
            "MonitoringJobDefinitionName": definition,
            "MonitoringType": "DataQuality",
        },
    )
    eventually(
        lambda: (
            sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)["MonitoringScheduleStatus"] == "Scheduled"
        )
    )
    rows = _rows(150, mean, channels, seed=7)
    for start in range(0, len(rows), 10):
        body = "\n".join(",".join(r) for r in rows[start : start + 10])
        runtime.invoke_endpoint(EndpointName=endpoint, Body=body.encode(), ContentType="text/csv")
    fast.telemetry.flush()
    scheduled = math.ceil(time.time() / 3600) * 3600

    started = control(fast, "POST", "/_devstack/monitoring/run-now", {"MonitoringScheduleName": schedule})
    execution = _wait_execution(sm, schedule)

    assert started["ScheduledTime"] == scheduled
    assert execution["MonitoringExecutionStatus"] == status, execution.get("FailureReason")
    assert execution["EndpointName"] == endpoint and execution["MonitoringJobDefinitionName"] == definition
    job_name = execution["ProcessingJobArn"].split("processing-job/")[1]
    job = sm.describe_processing_job(ProcessingJobName=job_name)
    assert job["MonitoringScheduleArn"].endswith(f"monitoring-schedule/{schedule}")
    environment = job["Environment"]
    start_time = dt.datetime.fromtimestamp(scheduled - 3600, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (environment["start_time"], environment["sagemaker_endpoint_name"]) == (start_time, endpoint)
    assert [i["InputName"] for i in job["ProcessingInputs"]] == ["endpoint_input_1", "constraints", "baseline"]
    report = job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    hour = dt.datetime.fromtimestamp(scheduled, dt.UTC)
    assert report == f"s3://{bucket}/reports/{endpoint}/{schedule}/{hour:%Y/%m/%d/%H}"
    found = _read(s3, f"{report}/constraint_violations.json")["violations"]
    assert {(v["feature_name"], v["constraint_check_type"]) for v in found} == violations
    stats = _read(s3, f"{report}/statistics.json")
    assert stats["dataset"]["item_count"] == 150
    assert _read(s3, f"{report}/constraints.json") == _read(s3, baseline["constraints"])
    described = sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)
    assert described["LastMonitoringExecutionSummary"]["MonitoringExecutionStatus"] == status

    points = cloudwatch.get_metric_statistics(
        Namespace="aws/sagemaker/Endpoints/data-metrics",
        MetricName="feature_baseline_drift_amount",
        Dimensions=[{"Name": "Endpoint", "Value": endpoint}, {"Name": "MonitoringSchedule", "Value": schedule}],
        StartTime=dt.datetime.fromtimestamp(scheduled - 7200, dt.UTC),
        EndTime=dt.datetime.fromtimestamp(scheduled + 60, dt.UTC),
        Period=3600,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert len(points) == 1
    assert (points[0]["Maximum"] > 0.1) == bool(violations)


def test_now_schedule_runs_once_and_no_data_fails(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, baseline: dict[str, str]
) -> None:
    endpoint = _capturing_endpoint(sm, s3, bucket, unique_name)
    definition = _definition(sm, unique_name, endpoint, bucket, baseline)
    schedule = unique_name("now")

    sm.create_monitoring_schedule(
        MonitoringScheduleName=schedule,
        MonitoringScheduleConfig={
            "ScheduleConfig": {
                "ScheduleExpression": "NOW",
                "DataAnalysisStartTime": "-PT1H",
                "DataAnalysisEndTime": "PT0H",
            },
            "MonitoringJobDefinitionName": definition,
            "MonitoringType": "DataQuality",
        },
    )
    execution = _wait_execution(sm, schedule)

    assert execution["MonitoringExecutionStatus"] == "Failed"
    assert execution["FailureReason"] == "Job inputs had no data"
    listed = sm.list_monitoring_schedules(EndpointName=endpoint)["MonitoringScheduleSummaries"]
    assert [(s["MonitoringScheduleName"], s["MonitoringScheduleStatus"]) for s in listed] == [(schedule, "Scheduled")]
    definitions = sm.list_data_quality_job_definitions(EndpointName=endpoint)["JobDefinitionSummaries"]
    assert [d["MonitoringJobDefinitionName"] for d in definitions] == [definition]


def test_schedule_lifecycle_and_errors(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, baseline: dict[str, str]
) -> None:
    endpoint = unique_name("ep-not-needed")
    definition = _definition(sm, unique_name, endpoint, bucket, baseline)
    schedule = unique_name("daily")
    config = {
        "ScheduleConfig": {"ScheduleExpression": "cron(0 3 ? * * *)"},
        "MonitoringJobDefinitionName": definition,
        "MonitoringType": "DataQuality",
    }
    sm.create_monitoring_schedule(MonitoringScheduleName=schedule, MonitoringScheduleConfig=config)

    with pytest.raises(ClientError) as duplicate:
        sm.create_monitoring_schedule(MonitoringScheduleName=schedule, MonitoringScheduleConfig=config)
    with pytest.raises(ClientError) as bad_cron:
        sm.create_monitoring_schedule(
            MonitoringScheduleName=unique_name("bad"),
            MonitoringScheduleConfig={**config, "ScheduleConfig": {"ScheduleExpression": "cron(15 * ? * * *)"}},
        )
    with pytest.raises(ClientError) as in_use:
        sm.delete_data_quality_job_definition(JobDefinitionName=definition)
    eventually(
        lambda: (
            sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)["MonitoringScheduleStatus"] == "Scheduled"
        )
    )
    sm.stop_monitoring_schedule(MonitoringScheduleName=schedule)
    stopped = sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)["MonitoringScheduleStatus"]
    sm.start_monitoring_schedule(MonitoringScheduleName=schedule)
    restarted = sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)["MonitoringScheduleStatus"]
    sm.update_monitoring_schedule(
        MonitoringScheduleName=schedule,
        MonitoringScheduleConfig={
            **config,
            "ScheduleConfig": {"ScheduleExpression": "cron(0 */6 ? * * *)".replace("*/6", "0/6")},
        },
    )
    updated = sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)
    sm.delete_monitoring_schedule(MonitoringScheduleName=schedule)
    sm.delete_data_quality_job_definition(JobDefinitionName=definition)

    assert duplicate.value.response["Error"]["Code"] == "ResourceInUse"
    assert bad_cron.value.response["Error"]["Code"] == "ValidationException"
    assert in_use.value.response["Error"]["Code"] == "ResourceInUse"
    assert (stopped, restarted) == ("Stopped", "Scheduled")
    assert updated["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"] == "cron(0 0/6 ? * * *)"
    with pytest.raises(ClientError) as gone:
        sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFound"


def test_scheduler_runs_each_boundary_once(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any, baseline: dict[str, str]
) -> None:
    endpoint = _capturing_endpoint(sm, s3, bucket, unique_name)
    definition = _definition(sm, unique_name, endpoint, bucket, baseline)
    schedule = unique_name("tick")
    sm.create_monitoring_schedule(
        MonitoringScheduleName=schedule,
        MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
            "MonitoringJobDefinitionName": definition,
        },
    )
    eventually(
        lambda: (
            sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)["MonitoringScheduleStatus"] == "Scheduled"
        )
    )
    rows = _rows(120, 50.0, ["POS", "ECOM"], seed=3)
    runtime.invoke_endpoint(
        EndpointName=endpoint, Body="\n".join(",".join(r) for r in rows).encode(), ContentType="text/csv"
    )
    fast.telemetry.flush()
    boundary = math.ceil(time.time() / 3600) * 3600

    before = fast.monitoring.run_due(moment=boundary - 1)
    first = fast.monitoring.run_due(moment=boundary + 5)
    again = fast.monitoring.run_due(moment=boundary + 65)
    execution = _wait_execution(sm, schedule)

    assert [s["MonitoringScheduleName"] for s in before if s["MonitoringScheduleName"] == schedule] == []
    assert [s["ScheduledTime"] for s in first if s["MonitoringScheduleName"] == schedule] == [boundary]
    assert [s for s in again if s["MonitoringScheduleName"] == schedule] == []
    assert execution["MonitoringExecutionStatus"] == "Completed", execution.get("FailureReason")
