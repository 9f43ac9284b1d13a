from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import botocore.session
import pytest
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException, TaskDeferred
from botocore.validate import ParamValidator

from ml_lifecycle.assets import drift_uri
from ml_lifecycle.builders.monitor import baseline_request, job_definition_request, one_off_config, schedule_name
from ml_lifecycle.config import include_dir, load_config
from ml_lifecycle.operators.monitor import (
    DataQualityBaselineOperator,
    LatestMonitoringResultOperator,
    MonitoringRunOperator,
    MonitoringScheduleOperator,
    PublishDriftOperator,
)
from ml_lifecycle.triggers.monitoring import MonitoringExecutionTrigger
from tests.unit.operators._hosting_fakes import (
    AWS_CONNECTION,
    BUCKET,
    FakeMonitoring,
    FakeTI,
    aws,
    context,
    notifications,
)

ENDPOINT = "fraud-detector-local"
SCHEDULE = schedule_name(ENDPOINT)
DATASET = f"s3://{BUCKET}/jobs/train_model/20260101-20260301/abcd1234/preprocess/baseline/"
SERVICE = botocore.session.get_session().get_service_model("sagemaker")
__all__ = ["aws"]

CONFIG_DIR = include_dir() / "config"


def assert_valid(operation: str, request: dict) -> None:
    report = ParamValidator().validate(request, SERVICE.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def with_hook(op, fake):
    op.__dict__["hook"] = SimpleNamespace(
        conn=fake,
        conn_region_name="us-east-1",
        conn_partition="aws",
        conn_config=AWS_CONNECTION,
        s3_hook=S3Hook(aws_conn_id="aws_default"),
    )
    return op


@pytest.mark.parametrize("env", [pytest.param(p.stem, id=p.stem) for p in sorted(CONFIG_DIR.glob("*.yaml"))])
def test_requests_match_the_sagemaker_api(env):
    cfg = load_config(env)
    assert_valid(
        "CreateProcessingJob",
        baseline_request(cfg, job_name="fraud-baseline-v1-x", dataset_uri=DATASET, output_uri="s3://b/out/"),
    )
    definition = job_definition_request(
        cfg, endpoint=ENDPOINT, version=3, statistics_uri="s3://b/s.json", constraints_uri="s3://b/c.json"
    )
    assert_valid("CreateDataQualityJobDefinition", definition)
    assert_valid(
        "CreateMonitoringSchedule",
        {"MonitoringScheduleName": "x", "MonitoringScheduleConfig": one_off_config(definition["JobDefinitionName"], 2)},
    )


def test_baseline_job_follows_the_analyzer_contract(aws):
    fake = FakeMonitoring()
    op = with_hook(
        DataQualityBaselineOperator(task_id="baseline", dataset_uri=DATASET, model_package_version="3"), fake
    )
    result = op.execute(context())

    [request] = fake.calls_named("create_processing_job")
    env = request["Environment"]
    assert json.loads(env["dataset_format"]) == {"csv": {"header": True, "output_columns_position": "START"}}
    assert env["dataset_source"] == request["ProcessingInputs"][0]["S3Input"]["LocalPath"]
    assert env["output_path"] == request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"]
    assert env["publish_cloudwatch_metrics"] == "Disabled"
    assert request["AppSpecification"]["ImageUri"].endswith("sagemaker-model-monitor-analyzer")
    assert result["statistics_uri"].endswith("/statistics.json")
    assert result["constraints_uri"] == result["output_uri"] + "constraints.json"

    # a re-run reuses the completed job of the same model version and dataset
    again = with_hook(
        DataQualityBaselineOperator(task_id="baseline", dataset_uri=DATASET, model_package_version="3"), fake
    ).execute(context())
    assert again == result
    assert len(fake.calls_named("create_processing_job")) == 1


def _constraints(uri):
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def test_baseline_switches_off_the_ignored_calendar_features(aws):
    cfg = load_config()
    assert cfg.monitoring.ignore_features == ["hour_of_day", "day_of_week", "is_weekend"]
    result = with_hook(
        DataQualityBaselineOperator(task_id="baseline", dataset_uri=DATASET, model_package_version="3"),
        FakeMonitoring(),
    ).execute(context())
    assert result["ignored_features"] == cfg.monitoring.ignore_features
    features = {f["name"]: f for f in _constraints(result["constraints_uri"])["features"]}
    off = {
        name
        for name, f in features.items()
        if f.get("monitoringConfigOverrides") == {"evaluate_constraints": "Disabled"}
    }
    assert off == {"hour_of_day", "day_of_week", "is_weekend"}
    assert "monitoring_config_overrides" not in features["channel"]["string_constraints"], "other features stay"


def test_an_ignored_feature_the_baseline_lacks_fails_naming_it(aws):
    fake = FakeMonitoring()
    op = DataQualityBaselineOperator(
        task_id="baseline", dataset_uri=DATASET, model_package_version="3", ignore_features=["hour_of_dy"]
    )
    with pytest.raises(AirflowFailException, match=r"names hour_of_dy, which the baseline .* does not have"):
        with_hook(op, fake).execute(context())


def test_baseline_in_progress_defers_and_a_failed_one_is_replaced_on_retry(aws):
    fake = FakeMonitoring()
    fake.job_status = "InProgress"
    with pytest.raises(TaskDeferred) as deferred:
        with_hook(
            DataQualityBaselineOperator(task_id="baseline", dataset_uri=DATASET, model_package_version=3), fake
        ).execute(context())
    assert deferred.value.trigger.serialize()[1]["job_type"] == "Processing"

    [job] = fake.jobs.values()
    job["ProcessingJobStatus"] = "Failed"
    fake.job_status = "Completed"
    ti = FakeTI()
    ti.try_number = 2
    result = with_hook(
        DataQualityBaselineOperator(task_id="baseline", dataset_uri=DATASET, model_package_version=3), fake
    ).execute(context(ti))
    assert result["job_name"].endswith("-r2")


def test_missing_baseline_dataset_is_a_clear_failure(aws):
    op = with_hook(
        DataQualityBaselineOperator(task_id="b", dataset_uri="None", model_package_version=1), FakeMonitoring()
    )
    with pytest.raises(AirflowFailException, match="no baseline dataset"):
        op.execute(context())


def schedule(fake, version=3, stats="s3://b/v3/statistics.json"):
    op = MonitoringScheduleOperator(
        task_id="schedule", statistics_uri=stats, constraints_uri=stats.replace("statistics", "constraints"),
        model_package_version=version,
    )  # fmt: skip
    return with_hook(op, fake).execute(context())


def test_schedule_is_created_then_updated_by_the_sdk_pattern_and_a_rerun_is_a_noop(aws):
    fake = FakeMonitoring()
    created = schedule(fake)
    assert created["action"] == "created"
    assert created["schedule_name"] == SCHEDULE
    config = fake.schedules[SCHEDULE]["MonitoringScheduleConfig"]
    assert config["MonitoringJobDefinitionName"] == created["job_definition_name"]
    assert config["ScheduleConfig"]["ScheduleExpression"] == load_config().monitoring.schedule_expression

    assert fake.tags_of("create_schedule") == [dict(load_config().tags)]

    unchanged = schedule(fake)
    assert unchanged["action"] == "unchanged"
    assert len(fake.calls_named("create_definition")) == 1

    updated = schedule(fake, version=4, stats="s3://b/v4/statistics.json")
    assert updated["action"] == "updated"
    assert updated["previous_job_definition_name"] == created["job_definition_name"]
    order = [name for name, _ in fake.calls if name in {"create_definition", "update_schedule", "delete_definition"}]
    assert order == ["create_definition", "create_definition", "update_schedule", "delete_definition"]
    assert set(fake.definitions) == {updated["job_definition_name"]}
    # UpdateMonitoringSchedule takes no tags: the existing schedule is tagged with AddTags
    assert fake.tags_of("add_tags")[-1] == dict(load_config().tags)
    assert fake.calls_named("add_tags")[-1]["ResourceArn"] == fake.schedules[SCHEDULE]["MonitoringScheduleArn"]


def put_violations(aws, prefix: str, violations: list[dict]) -> str:
    key = prefix.removeprefix(f"s3://{BUCKET}/") + "/constraint_violations.json"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"violations": violations}))
    return prefix


VIOLATIONS = [
    {"feature_name": "amount", "constraint_check_type": "baseline_drift_check", "description": "distance 0.4 > 0.1"},
    {"feature_name": "hour_of_day", "constraint_check_type": "baseline_drift_check", "description": "0.3 > 0.1"},
]


def read_latest(fake, threshold=None):
    op = LatestMonitoringResultOperator(task_id="read", violation_threshold=threshold)
    return with_hook(op, fake).execute(context())


def test_reader_finds_the_newest_finished_execution_and_its_violations(aws):
    fake = FakeMonitoring()
    old = put_violations(aws, f"s3://{BUCKET}/monitoring/reports/{ENDPOINT}/{SCHEDULE}/2026/03/01/01", [])
    new = put_violations(aws, f"s3://{BUCKET}/monitoring/reports/{ENDPOINT}/{SCHEDULE}/2026/03/01/02", VIOLATIONS)
    fake.add_execution(SCHEDULE, 1, "Completed", old, ENDPOINT)
    fake.add_execution(SCHEDULE, 2, "CompletedWithViolations", new, ENDPOINT)
    fake.add_execution(SCHEDULE, 3, "InProgress", new, ENDPOINT)

    result = read_latest(fake, threshold=2)

    assert result["execution_status"] == "CompletedWithViolations"
    assert result["scheduled_time"].startswith("2026-03-01T02:00")
    assert result["violation_count"] == 2 and result["drift"] is True
    assert result["features"] == ["amount", "hour_of_day"]
    report = json.loads(
        aws.s3.get_object(Bucket=BUCKET, Key=result["report_uri"].removeprefix(f"s3://{BUCKET}/"))["Body"].read()
    )
    assert report["violation_count"] == 2
    json.dumps(result)
    assert read_latest(fake, threshold=3)["drift"] is False


def test_reader_without_executions_reports_nothing_to_see(aws):
    result = read_latest(FakeMonitoring())
    assert result["execution_status"] is None and result["drift"] is False


def test_one_off_run_creates_a_now_schedule_defers_and_cleans_up(aws):
    fake = FakeMonitoring()
    op = with_hook(MonitoringRunOperator(task_id="run", job_definition_name="fraud-dq-v3-x", window_hours=3), fake)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    assert isinstance(deferred.value.trigger, MonitoringExecutionTrigger)
    [created] = fake.calls_named("create_schedule")
    assert fake.tags_of("create_schedule") == [dict(load_config().tags)]
    assert created["config"]["ScheduleConfig"] == {
        "ScheduleExpression": "NOW",
        "DataAnalysisStartTime": "-PT3H",
        "DataAnalysisEndTime": "-PT0H",
    }
    name = created["name"]
    out = put_violations(aws, f"s3://{BUCKET}/monitoring/reports/{ENDPOINT}/{name}/2026/03/01/04", VIOLATIONS[:1])
    fake.add_execution(name, 4, "CompletedWithViolations", out, ENDPOINT)
    event = {"status": "success", "schedule_name": name, "execution": {"MonitoringExecutionStatus": "x"}}
    result = op.execute_complete(context(), event=event, **deferred.value.kwargs)
    assert result["violation_count"] == 1 and result["drift"] is True
    assert name not in fake.schedules, "the one-off schedule is removed"


def drift_task(findings):
    from ml_lifecycle.assets import drift_asset

    return PublishDriftOperator(task_id="drift", findings=findings, outlets=[drift_asset(load_config())])


FINDINGS = {
    "endpoint_name": ENDPOINT,
    "processing_job": "model-monitoring-202603010200-0001",
    "violation_count": 2,
    "violations": VIOLATIONS,
    "features": ["amount", "hour_of_day"],
    "threshold": 1,
    "drift": True,
    "violations_uri": "s3://x/constraint_violations.json",
}


def test_drift_emits_the_asset_once_per_execution_and_notifies(aws):
    op = with_hook(drift_task(FINDINGS), FakeMonitoring())
    events = {op.outlets[0]: SimpleNamespace(extra=None)}
    result = op.execute(context(FakeTI({}), outlet_events=events))
    assert result["published"] is True
    assert events[op.outlets[0]].extra["violation_count"] == 2
    uri = drift_uri(load_config())
    stored = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"))["Body"].read())
    assert stored["processing_job"] == FINDINGS["processing_job"]
    [note] = notifications(aws)
    assert "drift" in note["Subject"].lower() and "amount" in note["Message"]

    with pytest.raises(AirflowSkipException, match="already published"):
        with_hook(drift_task(FINDINGS), FakeMonitoring()).execute(context(FakeTI({})))


@pytest.mark.parametrize(
    ("sagemaker_endpoint", "endpoint_page"),
    [
        pytest.param(
            None,
            f"https://console.aws.amazon.com/sagemaker/home?region=us-east-1#/endpoints/{ENDPOINT}",
            id="aws-console",
        ),
        pytest.param(
            "http://127.0.0.1:4570", f"http://127.0.0.1:4570/console/endpoints/{ENDPOINT}", id="devstack-console"
        ),
    ],
)
def test_drift_notification_links_the_endpoint_page_of_the_connection(aws, sagemaker_endpoint, endpoint_page):
    op = with_hook(drift_task(FINDINGS), FakeMonitoring())
    op.hook.conn_config = SimpleNamespace(get_service_endpoint_url=lambda service: sagemaker_endpoint)
    op.execute(context(FakeTI({}), outlet_events={op.outlets[0]: SimpleNamespace(extra=None)}))
    [note] = notifications(aws)
    assert f"Endpoint: {endpoint_page}\n" in note["Message"]


def test_no_drift_skips_without_an_asset_event(aws):
    calm = {**FINDINGS, "violation_count": 0, "violations": [], "drift": False}
    with pytest.raises(AirflowSkipException, match="No drift"):
        with_hook(drift_task(calm), FakeMonitoring()).execute(context(FakeTI({})))
    assert notifications(aws) == []
