from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from ml_lifecycle.builders.endpoint import alarm_names
from ml_lifecycle.config import load_config
from ml_lifecycle.operators.deploy import (
    ROLLBACK_XCOM_KEY,
    EndpointAutoScalingOperator,
    GuardedEndpointDeployOperator,
)
from ml_lifecycle.triggers.endpoint import EndpointSettledTrigger
from tests.unit.operators._hosting_fakes import (
    AWS_CONNECTION,
    FakeSageMaker,
    FakeTI,
    aws,
    context,
    notifications,
    package,
)

ENDPOINT = "fraud-detector-local"
BUCKET = "ml-lifecycle-local"
__all__ = ["aws"]  # the fixture


def make_operator(fake: FakeSageMaker, **kwargs) -> GuardedEndpointDeployOperator:
    kwargs.setdefault("model_package_arn", package(1)["ModelPackageArn"])
    op = GuardedEndpointDeployOperator(task_id="deploy", aws_conn_id="aws_default", **kwargs)
    op.__dict__["hook"] = SimpleNamespace(
        conn=fake,
        conn_region_name="us-east-1",
        conn_partition="aws",
        conn_config=AWS_CONNECTION,
        s3_hook=S3Hook(aws_conn_id="aws_default"),
    )
    return op


def first_deployment(fake: FakeSageMaker, aws) -> dict:
    fake.add_package(package(1))
    return make_operator(fake).execute(context())


def test_first_deployment_creates_model_config_and_endpoint_with_capture(aws):
    fake = FakeSageMaker()
    result = first_deployment(fake, aws)

    assert result["action"] == "created"
    assert result["variant_name"] == "AllTraffic"
    assert fake.endpoints[ENDPOINT]["EndpointConfigName"] == result["endpoint_config_name"]
    config = fake.configs[result["endpoint_config_name"]]
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{BUCKET}/data-capture"
    assert config["DataCaptureConfig"]["InitialSamplingPercentage"] == 100
    assert config["ProductionVariants"][0]["ModelName"] == result["model_name"]
    model = fake.models[result["model_name"]]
    assert model["PrimaryContainer"]["ModelDataUrl"].endswith("/v1/model.tar.gz")
    assert fake.calls_named("update_endpoint") == []
    assert fake.packages[package(1)["ModelPackageArn"]]["ModelLifeCycle"]["Stage"] == "Production"
    assert result["champion"] == {
        "champion": package(1)["ModelPackageArn"], "version": 1, "retired": [], "changed": True,
    }  # fmt: skip
    alarms = aws.cloudwatch.describe_alarms(AlarmNames=alarm_names(ENDPOINT, "AllTraffic"))["MetricAlarms"]
    assert {a["AlarmName"] for a in alarms} == set(result["alarms"])
    tags = dict(load_config().tags)
    for call in ("create_model", "create_endpoint_config", "create_endpoint"):
        assert [{k: t[k] for k in tags} for t in fake.tags_of(call)] == [tags], call
    for alarm in alarms:
        carried = aws.cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
        assert {t["Key"]: t["Value"] for t in carried} == tags, alarm["AlarmName"]
    json.dumps(result)  # XCom must be JSON-safe


def test_second_model_is_deployed_through_the_configured_canary_with_alarm_rollback(aws):
    fake = FakeSageMaker()
    first = first_deployment(fake, aws)
    fake.add_package(package(2))

    result = make_operator(fake, model_package_arn=package(2)["ModelPackageArn"]).execute(context())

    assert result["action"] == "updated"
    assert result["previous_endpoint_config_name"] == first["endpoint_config_name"]
    [update] = fake.calls_named("update_endpoint")
    policy = update["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    cfg = load_config()
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": cfg.deployment.wait_interval_seconds,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": round(cfg.deployment.canary_percent)},
    }
    assert policy["MaximumExecutionTimeoutInSeconds"] == cfg.deployment.max_execution_timeout_seconds
    rollback_alarms = [a["AlarmName"] for a in update["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]]
    assert rollback_alarms == alarm_names(ENDPOINT, "AllTraffic")
    assert fake.endpoints[ENDPOINT]["EndpointConfigName"] == result["endpoint_config_name"]
    # UpdateEndpoint takes no tags: the endpoint is tagged with AddTags
    [added] = fake.calls_named("add_tags")
    assert added["ResourceArn"] == fake.endpoints[ENDPOINT]["EndpointArn"]
    assert {t["Key"]: t["Value"] for t in added["Tags"]} == dict(cfg.tags)
    # the new package is the champion, the one it replaced is retired
    lifecycle = {arn: p.get("ModelLifeCycle", {}) for arn, p in fake.packages.items()}
    new, old = package(2)["ModelPackageArn"], package(1)["ModelPackageArn"]
    assert (lifecycle[new]["Stage"], lifecycle[new]["StageStatus"]) == ("Production", "Deployed")
    assert ENDPOINT in lifecycle[new]["StageDescription"]
    assert (lifecycle[old]["Stage"], lifecycle[old]["StageStatus"]) == ("Archived", "Retired")
    assert result["champion"]["retired"] == [old]


@pytest.mark.parametrize(
    ("strategy", "routing_type", "size_key"),
    [
        pytest.param("linear", "LINEAR", "LinearStepSize", id="linear"),
        pytest.param("all_at_once", "ALL_AT_ONCE", None, id="all-at-once"),
    ],
)
def test_strategy_param_chooses_the_traffic_routing(aws, strategy, routing_type, size_key):
    fake = FakeSageMaker()
    first_deployment(fake, aws)
    fake.add_package(package(2))
    make_operator(fake, model_package_arn=package(2)["ModelPackageArn"], strategy=strategy).execute(context())
    routing = fake.calls_named("update_endpoint")[0]["DeploymentConfig"]["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"
    ]
    assert routing["Type"] == routing_type
    assert (size_key in routing) if size_key else ("CanarySize" not in routing and "LinearStepSize" not in routing)


def test_rerun_on_the_served_config_is_a_noop(aws):
    fake = FakeSageMaker()
    first = first_deployment(fake, aws)
    calls_before = len(fake.calls)

    again = make_operator(fake).execute(context())

    assert again["action"] == "unchanged"
    assert again["endpoint_config_name"] == first["endpoint_config_name"]
    assert fake.calls[calls_before:] == [], "a re-run must not create or update anything"


DEVSTACK_SAGEMAKER = "http://127.0.0.1:4570"
DEVSTACK_CONNECTION = SimpleNamespace(get_service_endpoint_url=lambda service: DEVSTACK_SAGEMAKER)


@pytest.mark.parametrize(
    ("connection", "endpoint_page", "alarms_page"),
    [
        pytest.param(
            AWS_CONNECTION,
            f"https://console.aws.amazon.com/sagemaker/home?region=us-east-1#/endpoints/{ENDPOINT}",
            f"https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#alarmsV2:?search={ENDPOINT}-AllTraffic",
            id="aws-console",
        ),
        pytest.param(
            DEVSTACK_CONNECTION,
            f"{DEVSTACK_SAGEMAKER}/console/endpoints/{ENDPOINT}",
            f"{DEVSTACK_SAGEMAKER}/console/alarms?prefix={ENDPOINT}-AllTraffic",
            id="devstack-console",
        ),
    ],
)
def test_rollback_fails_loudly_with_evidence_and_notification(aws, connection, endpoint_page, alarms_page):
    fake = FakeSageMaker()
    first = first_deployment(fake, aws)
    fake.add_package(package(2))
    rate_alarm = alarm_names(ENDPOINT, "AllTraffic")[0]
    fake.update_outcome = "rollback"
    fake.rollback_reason = f"Endpoint update was rolled back because the CloudWatch alarm(s) {rate_alarm} fired"
    aws.cloudwatch.put_metric_alarm(  # the alarm as the operator will (re)create it, then tripped
        AlarmName=rate_alarm, MetricName="Invocation5XXErrors", Namespace="AWS/SageMaker", Statistic="Average",
        Period=60, EvaluationPeriods=1, Threshold=0.01, ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip
    ti = FakeTI()
    op = make_operator(fake, model_package_arn=package(2)["ModelPackageArn"])
    op.hook.conn_config = connection
    original_ensure = op.ensure_alarms

    def ensure_then_trip(*args, **kwargs):
        names = original_ensure(*args, **kwargs)
        aws.cloudwatch.set_alarm_state(AlarmName=rate_alarm, StateValue="ALARM", StateReason="5XX rate 0.4 > 0.01")
        return names

    op.ensure_alarms = ensure_then_trip

    with pytest.raises(AirflowFailException) as failure:
        op.execute(context(ti))

    message = str(failure.value)
    assert "ROLLED BACK" in message
    assert rate_alarm in message
    assert first["endpoint_config_name"] in message
    evidence = ti.pushed[ROLLBACK_XCOM_KEY]
    assert evidence["serving_endpoint_config"] == first["endpoint_config_name"]
    assert evidence["fired_alarms"] == [rate_alarm]
    assert evidence["failure_reason"].startswith("Endpoint update was rolled back")
    key = evidence["evidence_uri"].removeprefix(f"s3://{BUCKET}/")
    stored = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert stored["fired_alarms"] == [rate_alarm]
    [note] = notifications(aws)
    assert "rolled back" in note["Subject"].lower()
    assert rate_alarm in note["Message"]
    assert evidence["links"] == {"endpoint": endpoint_page, "alarms": alarms_page}
    assert f"Endpoint: {endpoint_page}" in note["Message"] and f"Alarms: {alarms_page}" in note["Message"]
    assert fake.endpoints[ENDPOINT]["EndpointConfigName"] == first["endpoint_config_name"], "old model keeps serving"
    # the registry: the failed package is RolledBack, the champion is the one that kept serving
    failed, champion = fake.packages[package(2)["ModelPackageArn"]], fake.packages[package(1)["ModelPackageArn"]]
    stage = {name: (p["ModelLifeCycle"]["Stage"], p["ModelLifeCycle"]["StageStatus"]) for name, p in
             (("failed", failed), ("champion", champion))}  # fmt: skip
    assert stage == {"failed": ("Archived", "RolledBack"), "champion": ("Production", "Deployed")}
    assert rate_alarm in failed["ModelLifeCycle"]["StageDescription"]
    assert evidence["marked_rolled_back"] is True


def test_unapproved_package_is_refused(aws):
    fake = FakeSageMaker()
    fake.add_package(package(3, status="PendingManualApproval"))
    with pytest.raises(AirflowFailException, match="PendingManualApproval"):
        make_operator(fake, model_package_arn=package(3)["ModelPackageArn"]).execute(context())
    assert fake.calls == []


def test_update_in_progress_defers_and_resumes_to_the_outcome(aws):
    from airflow.providers.common.compat.sdk import TaskDeferred

    fake = FakeSageMaker()
    first_deployment(fake, aws)
    fake.add_package(package(2))
    fake.settle = False
    op = make_operator(fake, model_package_arn=package(2)["ModelPackageArn"])

    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())

    trigger = deferred.value.trigger
    assert isinstance(trigger, EndpointSettledTrigger)
    assert trigger.endpoint_name == ENDPOINT
    assert deferred.value.timeout is not None
    state = deferred.value.kwargs["state"]
    json.dumps(state)

    # a retry while SageMaker still shifts traffic re-attaches instead of starting another update
    with pytest.raises(TaskDeferred):
        make_operator(fake, model_package_arn=package(2)["ModelPackageArn"]).execute(context())
    assert len(fake.calls_named("update_endpoint")) == 1

    fake.finish(ENDPOINT)
    result = op.execute_complete(context(), event={"status": "success", "endpoint_name": ENDPOINT}, state=state)
    assert result["action"] == "updated"
    assert fake.endpoints[ENDPOINT]["EndpointConfigName"] == result["endpoint_config_name"]


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"status": "timeout", "message": "still Updating"}, id="timeout"),
        pytest.param({"status": "error", "message": "AccessDenied"}, id="error"),
        pytest.param(None, id="no-event"),
    ],
)
def test_bad_trigger_events_fail_the_task(aws, event):
    op = make_operator(FakeSageMaker())
    with pytest.raises(AirflowException):
        op.execute_complete(context(), event=event, state={"endpoint": ENDPOINT})


def test_autoscaling_registers_target_tracking_on_each_variant(aws):
    fake = FakeSageMaker()
    first_deployment(fake, aws)
    op = EndpointAutoScalingOperator(task_id="autoscale", aws_conn_id="aws_default")
    op.__dict__["hook"] = SimpleNamespace(
        conn=fake, conn_region_name="us-east-1", conn_partition="aws", conn_config=AWS_CONNECTION
    )

    result = op.execute(context())

    cfg = load_config()
    [target] = result["targets"]
    assert target["resource_id"] == f"endpoint/{ENDPOINT}/variant/AllTraffic"
    client = boto3.client("application-autoscaling")
    registered = client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in registered] == [
        (cfg.deployment.autoscaling.min_capacity, cfg.deployment.autoscaling.max_capacity)
    ]
    [policy] = client.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    spec = policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert spec["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    arn = registered[0]["ScalableTargetARN"]
    assert client.list_tags_for_resource(ResourceARN=arn)["Tags"] == dict(cfg.tags)
    # idempotent: running again updates in place, and tags a target whose tags were lost or changed
    client.untag_resource(ResourceARN=arn, TagKeys=["cost-centre"])
    op.execute(context())
    assert len(client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]) == 1
    assert client.list_tags_for_resource(ResourceARN=arn)["Tags"] == dict(cfg.tags)


def test_alarms_made_before_their_tags_are_tagged_on_the_next_deployment(aws):
    from ml_lifecycle.builders.endpoint import alarm_requests

    cfg = load_config()
    for request in alarm_requests(cfg, endpoint=ENDPOINT, variant="AllTraffic"):
        aws.cloudwatch.put_metric_alarm(**{k: v for k, v in request.items() if k != "Tags"})  # an untagged alarm
    op = make_operator(FakeSageMaker())
    op.ensure_alarms(cfg, ENDPOINT, "AllTraffic", 60)
    for alarm in aws.cloudwatch.describe_alarms(AlarmNames=alarm_names(ENDPOINT, "AllTraffic"))["MetricAlarms"]:
        tags = aws.cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
        assert {t["Key"]: t["Value"] for t in tags} == dict(cfg.tags), alarm["AlarmName"]
