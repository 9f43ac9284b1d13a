"""Every hosting, monitoring and transform action answers in botocore's output shapes; state survives restarts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.contract import ContractRecorder
from devstack.sagemaker.service import SageMakerService
from tests.integration.devstack.hosting_support import (
    client,
    create_model,
    put_scale_model,
    variant,
    wait_endpoint,
)
from tests.integration.devstack.sagemaker_support import ROLE, wait_for

pytestmark = pytest.mark.integration

ACTIONS = {
    "CreateEndpointConfig",
    "DescribeEndpointConfig",
    "ListEndpointConfigs",
    "DeleteEndpointConfig",
    "CreateEndpoint",
    "DescribeEndpoint",
    "ListEndpoints",
    "DeleteEndpoint",
    "UpdateEndpoint",
    "UpdateEndpointWeightsAndCapacities",
    "CreateDataQualityJobDefinition",
    "DescribeDataQualityJobDefinition",
    "ListDataQualityJobDefinitions",
    "DeleteDataQualityJobDefinition",
    "CreateMonitoringSchedule",
    "DescribeMonitoringSchedule",
    "ListMonitoringSchedules",
    "UpdateMonitoringSchedule",
    "DeleteMonitoringSchedule",
    "StartMonitoringSchedule",
    "StopMonitoringSchedule",
    "ListMonitoringExecutions",
    "CreateTransformJob",
    "DescribeTransformJob",
    "ListTransformJobs",
    "StopTransformJob",
}
MONITOR_IMAGE = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"


def test_service_implements_the_actions(sagemaker_service: SageMakerService) -> None:
    assert ACTIONS <= set(sagemaker_service.implemented_actions)


def test_every_action_answers_in_botocore_shapes(
    fast: Any, sm: Any, contract: ContractRecorder, s3: Any, bucket: str, unique_name: Any
) -> None:
    model = unique_name("model")
    create_model(sm, model, put_scale_model(s3, bucket, "m/model.tar.gz", 1.0))
    capture = {
        "InitialSamplingPercentage": 50,
        "DestinationS3Uri": f"s3://{bucket}/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
    }
    cfg, cfg2 = unique_name("cfg"), unique_name("cfg")
    for name in (cfg, cfg2):
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[variant("AllTraffic", model, count=2)],
            DataCaptureConfig=capture,
            Tags=[{"Key": "team", "Value": "ml"}],
        )
    sm.describe_endpoint_config(EndpointConfigName=cfg)
    sm.list_endpoint_configs(NameContains=cfg, SortBy="Name", SortOrder="Ascending", MaxResults=1)
    endpoint = unique_name("ep")
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=cfg)
    sm.describe_endpoint(EndpointName=endpoint)
    wait_endpoint(sm, endpoint)
    sm.list_endpoints(StatusEquals="InService", SortBy="Status")
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredWeight": 2.0, "DesiredInstanceCount": 3}],
    )
    sm.describe_endpoint(EndpointName=endpoint)
    wait_endpoint(sm, endpoint, until=("InService",))
    sm.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=cfg2,
        RetainAllVariantProperties=True,
        DeploymentConfig={
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                    "WaitIntervalInSeconds": 1,
                },
                "TerminationWaitInSeconds": 1,
                "MaximumExecutionTimeoutInSeconds": 600,
            }
        },
    )
    while sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "Updating":
        pass
    desc = sm.describe_endpoint(EndpointName=endpoint)
    assert desc["EndpointConfigName"] == cfg2
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 3, "RetainAllVariantProperties kept the count"

    definition = unique_name("dq")
    sm.create_data_quality_job_definition(
        JobDefinitionName=definition,
        DataQualityAppSpecification={
            "ImageUri": MONITOR_IMAGE,
            "Environment": {"publish_cloudwatch_metrics": "Disabled"},
        },
        DataQualityJobInput={
            "EndpointInput": {
                "EndpointName": endpoint,
                "LocalPath": "/opt/ml/processing/input/endpoint",
                "StartTimeOffset": "-PT2H",
                "EndTimeOffset": "-PT0H",
            }
        },
        DataQualityJobOutputConfig={
            "MonitoringOutputs": [
                {"S3Output": {"S3Uri": f"s3://{bucket}/reports", "LocalPath": "/opt/ml/processing/output"}}
            ]
        },
        JobResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 10}},
        RoleArn=ROLE,
    )
    sm.describe_data_quality_job_definition(JobDefinitionName=definition)
    sm.list_data_quality_job_definitions(NameContains=definition, SortBy="Name")
    schedule = unique_name("sched")
    config = {
        "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
        "MonitoringJobDefinitionName": definition,
        "MonitoringType": "DataQuality",
    }
    sm.create_monitoring_schedule(MonitoringScheduleName=schedule, MonitoringScheduleConfig=config)
    sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)
    sm.list_monitoring_schedules(EndpointName=endpoint, SortBy="Status")
    sm.update_monitoring_schedule(MonitoringScheduleName=schedule, MonitoringScheduleConfig=config)
    sm.stop_monitoring_schedule(MonitoringScheduleName=schedule)
    sm.start_monitoring_schedule(MonitoringScheduleName=schedule)
    fast.monitoring.start_execution(schedule, 1_800_000_000.0)
    executions = sm.list_monitoring_executions(
        MonitoringScheduleName=schedule, SortBy="ScheduledTime", SortOrder="Ascending"
    )["MonitoringExecutionSummaries"]
    assert executions[0]["MonitoringExecutionStatus"] == "Failed"
    sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)
    sm.delete_monitoring_schedule(MonitoringScheduleName=schedule)
    sm.delete_data_quality_job_definition(JobDefinitionName=definition)

    s3.put_object(Bucket=bucket, Key="batch/in.csv", Body=b"1,2\n")
    job = unique_name("tj")
    sm.create_transform_job(
        TransformJobName=job,
        ModelName=model,
        MaxPayloadInMB=1,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/batch/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"s3://{bucket}/batch-out", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        Environment={"MODE": "contract"},
    )
    sm.stop_transform_job(TransformJobName=job)
    wait_for(lambda: sm.describe_transform_job(TransformJobName=job), "TransformJobStatus", 60)
    sm.list_transform_jobs(StatusEquals="Stopped", SortBy="Name")

    sm.delete_endpoint(EndpointName=endpoint)
    sm.delete_endpoint_config(EndpointConfigName=cfg)
    sm.delete_endpoint_config(EndpointConfigName=cfg2)

    contract.assert_clean()
    assert ACTIONS <= set(contract.checked), sorted(ACTIONS - set(contract.checked))


def test_endpoints_are_restarted_after_a_service_restart(
    moto_endpoint: str, tmp_path: Any, s3: Any, bucket: str, unique_name: Any
) -> None:
    state = tmp_path / "state"
    first = SageMakerService(state, moto_endpoint, "us-east-1", stop_grace_seconds=2.0)
    first.start("127.0.0.1", 0)
    try:
        sm = client("sagemaker", first.url)
        model = unique_name("model")
        create_model(sm, model, put_scale_model(s3, bucket, "restart/model.tar.gz", 4.0))
        cfg = unique_name("cfg")
        sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[variant("AllTraffic", model)])
        endpoint = unique_name("ep")
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=cfg)
        assert wait_endpoint(sm, endpoint)["EndpointStatus"] == "InService"
    finally:
        first.stop()

    second = SageMakerService(state, moto_endpoint, "us-east-1", stop_grace_seconds=2.0)
    second.start("127.0.0.1", 0)
    try:
        runtime = client("sagemaker-runtime", second.url)

        def answer() -> bytes | None:
            try:
                return runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1", ContentType="text/csv")["Body"].read()
            except Exception:
                return None

        from tests.integration.devstack.hosting_support import eventually

        assert eventually(answer, timeout=60) == b"4.0"
        desc = client("sagemaker", second.url).describe_endpoint(EndpointName=endpoint)
        assert desc["EndpointStatus"] == "InService"
        assert json.dumps(desc, default=str)
    finally:
        second.stop()
