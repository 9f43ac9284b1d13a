# ruff: noqa: N803  (keyword names mirror the boto3 API)
"""An in-memory SageMaker hosting control plane for operator tests.

It keeps models, endpoint configs, endpoints and model packages, raises SageMaker's own errors for unknown
names, and lets a test decide how an ``UpdateEndpoint`` ends (``update_outcome``: ``success`` or
``rollback``) and whether operations settle at once (``settle``) or stay in progress until ``finish()``.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

ACCOUNT = "123456789012"
BUCKET = "ml-lifecycle-local"
TOPIC = "ml-lifecycle-local"
REGION = "us-east-1"
#: the ``conn_config`` of a hook on a real AWS connection (no endpoint URL: links go to the AWS console)
AWS_CONNECTION = SimpleNamespace(get_service_endpoint_url=lambda service: None)


def _missing(what: str, name: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": f'Could not find {what} "{name}".'}}, op)


def package(version: int, status: str = "Approved", group: str = "fraud-detector", **metadata: str) -> dict:
    return {
        "ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{version}",
        "ModelPackageGroupName": group,
        "ModelPackageVersion": version,
        "ModelApprovalStatus": status,
        "CreationTime": datetime(2026, 1, version, tzinfo=UTC),
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5",
                    "ModelDataUrl": f"s3://ml-lifecycle-local/jobs/train/v{version}/model.tar.gz",
                    "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                }
            ]
        },
        "CustomerMetadataProperties": dict(metadata),
    }


class FakeSageMaker:
    """The hosting and registry calls of a boto3 SageMaker client."""

    def __init__(self, *, settle: bool = True, update_outcome: str = "success", rollback_reason: str = ""):
        self.packages: dict[str, dict] = {}
        self.models: dict[str, dict] = {}
        self.configs: dict[str, dict] = {}
        self.endpoints: dict[str, dict] = {}
        self.calls: list[tuple[str, dict]] = []
        self.settle = settle
        self.update_outcome = update_outcome
        self.rollback_reason = rollback_reason
        self._pending: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------------------------------------- registry

    def add_package(self, pkg: dict) -> str:
        self.packages[pkg["ModelPackageArn"]] = pkg
        return pkg["ModelPackageArn"]

    def describe_model_package(self, ModelPackageName):
        if ModelPackageName not in self.packages:
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": f"Model package {ModelPackageName} not found."}},
                "DescribeModelPackage",
            )
        return copy.deepcopy(self.packages[ModelPackageName])

    def list_model_packages(self, ModelPackageGroupName, ModelApprovalStatus=None, SortBy=None, SortOrder=None,
                            MaxResults=100, NextToken=None):  # fmt: skip
        items = [p for p in self.packages.values() if p["ModelPackageGroupName"] == ModelPackageGroupName]
        if ModelApprovalStatus:
            items = [p for p in items if p["ModelApprovalStatus"] == ModelApprovalStatus]
        items.sort(key=lambda p: p["CreationTime"], reverse=SortOrder != "Ascending")
        return {
            "ModelPackageSummaryList": [
                {
                    k: p[k]
                    for k in (
                        "ModelPackageArn",
                        "ModelPackageVersion",
                        "ModelApprovalStatus",
                        "CreationTime",
                        "ModelLifeCycle",
                    )
                    if k in p
                }
                for p in items[:MaxResults]
            ]
        }

    def update_model_package(
        self,
        ModelPackageArn,
        ModelApprovalStatus=None,
        ApprovalDescription=None,
        CustomerMetadataProperties=None,
        ModelLifeCycle=None,
    ):
        if ModelLifeCycle is not None:  # the champion's marking, apart from approval decisions
            self.calls.append(("mark_lifecycle", {"arn": ModelPackageArn, **ModelLifeCycle}))
        else:
            self.calls.append(("update_model_package", {"arn": ModelPackageArn, "status": ModelApprovalStatus}))
        pkg = self.packages[ModelPackageArn]
        if ModelLifeCycle is not None:
            pkg["ModelLifeCycle"] = dict(ModelLifeCycle)
        if ModelApprovalStatus is not None:
            pkg["ModelApprovalStatus"] = ModelApprovalStatus
        if ApprovalDescription is not None:
            pkg["ApprovalDescription"] = ApprovalDescription
        if CustomerMetadataProperties:
            metadata = pkg.get("CustomerMetadataProperties", {})
            pkg["CustomerMetadataProperties"] = {**metadata, **CustomerMetadataProperties}
        return {"ModelPackageArn": ModelPackageArn}

    # --------------------------------------------------------------------------------------------- models

    def describe_model(self, ModelName):
        if ModelName not in self.models:
            raise _missing("model", ModelName, "DescribeModel")
        return self.models[ModelName]

    def create_model(self, **request):
        self.calls.append(("create_model", request))
        self.models[request["ModelName"]] = request
        return {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{request['ModelName']}"}

    def describe_endpoint_config(self, EndpointConfigName):
        if EndpointConfigName not in self.configs:
            raise _missing("endpoint configuration", EndpointConfigName, "DescribeEndpointConfig")
        return self.configs[EndpointConfigName]

    def create_endpoint_config(self, **request):
        self.calls.append(("create_endpoint_config", request))
        self.configs[request["EndpointConfigName"]] = request
        return {"EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/x"}

    # ------------------------------------------------------------------------------------------ endpoints

    def _variants(self, config_name: str) -> list[dict]:
        return [
            {
                "VariantName": v["VariantName"],
                "CurrentWeight": v.get("InitialVariantWeight", 1.0),
                "DesiredWeight": v.get("InitialVariantWeight", 1.0),
                "CurrentInstanceCount": v["InitialInstanceCount"],
                "DesiredInstanceCount": v["InitialInstanceCount"],
            }
            for v in self.configs[config_name]["ProductionVariants"]
        ]

    def describe_endpoint(self, EndpointName):
        if EndpointName not in self.endpoints:
            raise _missing(
                "endpoint", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{EndpointName}", "DescribeEndpoint"
            )
        return copy.deepcopy(self.endpoints[EndpointName])

    def serve(self, endpoint: str, config_name: str) -> None:
        """Put ``endpoint`` InService on ``config_name`` (test setup)."""
        self.endpoints[endpoint] = {
            "EndpointName": endpoint,
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{endpoint}",
            "EndpointConfigName": config_name,
            "EndpointStatus": "InService",
            "ProductionVariants": self._variants(config_name),
        }

    def create_endpoint(self, EndpointName, EndpointConfigName, Tags=None):
        self.calls.append(
            ("create_endpoint", {"EndpointName": EndpointName, "EndpointConfigName": EndpointConfigName, "Tags": Tags})
        )
        if EndpointConfigName not in self.configs:
            raise _missing("endpoint configuration", EndpointConfigName, "CreateEndpoint")
        self.serve(EndpointName, EndpointConfigName)
        self.endpoints[EndpointName]["EndpointStatus"] = "Creating"
        self._pending[EndpointName] = ("create", EndpointConfigName)
        if self.settle:
            self.finish(EndpointName)
        return {"EndpointArn": self.endpoints[EndpointName]["EndpointArn"]}

    def update_endpoint(self, EndpointName, EndpointConfigName, DeploymentConfig=None, **kwargs):
        self.calls.append(
            ("update_endpoint", {"EndpointConfigName": EndpointConfigName, "DeploymentConfig": DeploymentConfig})
        )
        desc = self.endpoints[EndpointName]
        if desc["EndpointStatus"] != "InService":
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": "Cannot update in-progress endpoint"}},
                "UpdateEndpoint",
            )
        if EndpointConfigName not in self.configs:
            raise _missing("endpoint configuration", EndpointConfigName, "UpdateEndpoint")
        self._refuse_removing_scaled_variants(EndpointName, EndpointConfigName)
        desc["EndpointStatus"] = "Updating"
        desc["PendingDeploymentSummary"] = {"EndpointConfigName": EndpointConfigName}
        self._pending[EndpointName] = ("update", EndpointConfigName)
        if self.settle:
            self.finish(EndpointName)
        return {"EndpointArn": desc["EndpointArn"]}

    def _refuse_removing_scaled_variants(self, endpoint: str, config_name: str) -> None:
        """SageMaker refuses an update that removes a variant registered with Application Auto Scaling."""
        kept = {v["VariantName"] for v in self.configs[config_name]["ProductionVariants"]}
        removed = [
            v["VariantName"] for v in self.endpoints[endpoint]["ProductionVariants"] if v["VariantName"] not in kept
        ]
        if not removed:
            return
        targets = boto3.client("application-autoscaling").describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=[f"endpoint/{endpoint}/variant/{v}" for v in removed]
        )["ScalableTargets"]
        if targets:
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": f"variant(s) {removed} use auto scaling"}},
                "UpdateEndpoint",
            )

    def finish(self, endpoint: str) -> None:
        """Let the endpoint's pending operation end (per ``update_outcome``)."""
        kind, config = self._pending.pop(endpoint)
        desc = self.endpoints[endpoint]
        desc.pop("PendingDeploymentSummary", None)
        desc["EndpointStatus"] = "InService"
        if kind == "update" and self.update_outcome == "rollback":
            desc["FailureReason"] = self.rollback_reason
            return
        desc.pop("FailureReason", None)
        desc["EndpointConfigName"] = config
        desc["ProductionVariants"] = self._variants(config)

    def update_endpoint_weights_and_capacities(self, EndpointName, DesiredWeightsAndCapacities):
        self.calls.append(
            ("update_weights", {w["VariantName"]: w["DesiredWeight"] for w in DesiredWeightsAndCapacities})
        )
        desc = self.endpoints[EndpointName]
        for change in DesiredWeightsAndCapacities:
            for variant in desc["ProductionVariants"]:
                if variant["VariantName"] == change["VariantName"]:
                    variant["CurrentWeight"] = variant["DesiredWeight"] = change["DesiredWeight"]
        return {"EndpointArn": desc["EndpointArn"]}

    def delete_endpoint(self, EndpointName):
        self.calls.append(("delete_endpoint", {"EndpointName": EndpointName}))
        self.endpoints.pop(EndpointName, None)
        return {}

    def add_tags(self, ResourceArn, Tags):
        self.calls.append(("add_tags", {"ResourceArn": ResourceArn, "Tags": Tags}))
        return {"Tags": Tags}

    def tags_of(self, call: str) -> list[dict[str, str]]:
        """The configured-tag part of each ``call`` made (``Tags`` or ``tags`` of the recorded request)."""
        return [
            {t["Key"]: t["Value"] for t in (args.get("Tags") or args.get("tags") or [])}
            for args in self.calls_named(call)
        ]

    def calls_named(self, name: str) -> list[dict]:
        return [args for call, args in self.calls if call == name]


class FakeTI:
    """Enough of a task instance for operators: XCom push/pull and identity."""

    def __init__(self, xcoms: dict[str, Any] | None = None):
        self.pushed: dict[str, Any] = {}
        self.xcoms = xcoms or {}
        self.dag_id = "deploy_model"
        self.task_id = "deploy"
        self.run_id = "manual__2026-03-01T00:00:00+00:00"
        self.try_number = 1
        self.map_index = -1

    def xcom_push(self, key, value):
        self.pushed[key] = value

    def xcom_pull(self, task_ids=None, key="return_value"):
        return self.xcoms.get(task_ids)


def context(ti: FakeTI | None = None, **extra: Any) -> dict[str, Any]:
    ti = ti or FakeTI()
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": ti.run_id,
        "dag": SimpleNamespace(dag_id=ti.dag_id),
        "dag_run": SimpleNamespace(run_id=ti.run_id, run_after=datetime(2026, 3, 1, tzinfo=UTC)),
        "logical_date": datetime(2026, 3, 1, tzinfo=UTC),
        **extra,
    }


class FakeMonitoring(FakeSageMaker):
    """Adds processing jobs, data-quality job definitions, monitoring schedules and their executions."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.jobs: dict[str, dict] = {}
        self.definitions: dict[str, dict] = {}
        self.schedules: dict[str, dict] = {}
        self.executions: list[dict] = []
        self.job_status = "Completed"
        #: the columns of the constraints.json a baselining job writes (to the moto S3 of ``aws``)
        self.baseline_columns = ["fraud_probability", "is_fraud", "amount", "hour_of_day", "day_of_week",
                                 "is_weekend", "channel"]  # fmt: skip

    def create_processing_job(self, **request):
        self.calls.append(("create_processing_job", request))
        name = request["ProcessingJobName"]
        self.jobs[name] = {
            **request,
            "ProcessingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{name}",
            "ProcessingJobStatus": self.job_status,
        }
        if request["AppSpecification"]["ImageUri"].endswith("sagemaker-model-monitor-analyzer"):
            self._write_baseline(request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"])
        return {"ProcessingJobArn": self.jobs[name]["ProcessingJobArn"]}

    def _write_baseline(self, output_uri):
        bucket, prefix = output_uri.removeprefix("s3://").split("/", 1)
        features = [
            {"name": c, "inferred_type": "String", "completeness": 1.0, "string_constraints": {"domains": ["POS"]}}
            if c == "channel"
            else {"name": c, "inferred_type": "Fractional", "completeness": 1.0}
            for c in self.baseline_columns
        ]
        constraints = {"version": 0.0, "features": features, "monitoring_config": {"evaluate_constraints": "Enabled"}}
        s3 = boto3.client("s3")
        s3.put_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/constraints.json", Body=json.dumps(constraints))
        s3.put_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/statistics.json", Body=b'{"features": []}')

    def describe_processing_job(self, ProcessingJobName):
        if ProcessingJobName not in self.jobs:
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": f"Could not find job {ProcessingJobName}"}},
                "DescribeProcessingJob",
            )
        return copy.deepcopy(self.jobs[ProcessingJobName])

    def describe_data_quality_job_definition(self, JobDefinitionName):
        if JobDefinitionName not in self.definitions:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFound", "Message": f"{JobDefinitionName} not found"}},
                "DescribeDataQualityJobDefinition",
            )
        return self.definitions[JobDefinitionName]

    def create_data_quality_job_definition(self, **request):
        self.calls.append(("create_definition", request))
        self.definitions[request["JobDefinitionName"]] = request
        return {"JobDefinitionArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:data-quality-job-definition/x"}

    def delete_data_quality_job_definition(self, JobDefinitionName):
        self.calls.append(("delete_definition", {"name": JobDefinitionName}))
        self.definitions.pop(JobDefinitionName)
        return {}

    def describe_monitoring_schedule(self, MonitoringScheduleName):
        if MonitoringScheduleName not in self.schedules:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFound", "Message": f"{MonitoringScheduleName} not found"}},
                "DescribeMonitoringSchedule",
            )
        return copy.deepcopy(self.schedules[MonitoringScheduleName])

    def create_monitoring_schedule(self, MonitoringScheduleName, MonitoringScheduleConfig, Tags=None):
        self.calls.append(
            ("create_schedule", {"name": MonitoringScheduleName, "config": MonitoringScheduleConfig, "tags": Tags})
        )
        self.schedules[MonitoringScheduleName] = {
            "MonitoringScheduleName": MonitoringScheduleName,
            "MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:schedule/{MonitoringScheduleName}",
            "MonitoringScheduleStatus": "Scheduled",
            "MonitoringScheduleConfig": MonitoringScheduleConfig,
        }
        return {"MonitoringScheduleArn": self.schedules[MonitoringScheduleName]["MonitoringScheduleArn"]}

    def update_monitoring_schedule(self, MonitoringScheduleName, MonitoringScheduleConfig):
        self.calls.append(("update_schedule", {"name": MonitoringScheduleName, "config": MonitoringScheduleConfig}))
        self.schedules[MonitoringScheduleName]["MonitoringScheduleConfig"] = MonitoringScheduleConfig
        return {"MonitoringScheduleArn": self.schedules[MonitoringScheduleName]["MonitoringScheduleArn"]}

    def delete_monitoring_schedule(self, MonitoringScheduleName):
        self.calls.append(("delete_schedule", {"name": MonitoringScheduleName}))
        self.schedules.pop(MonitoringScheduleName)
        return {}

    def start_monitoring_schedule(self, MonitoringScheduleName):
        self.schedules[MonitoringScheduleName]["MonitoringScheduleStatus"] = "Scheduled"
        return {}

    def add_execution(self, schedule: str, hour: int, status: str, output_uri: str, endpoint: str = "ep") -> dict:
        name = f"model-monitoring-2026030{1}{hour:02d}00-{len(self.executions):024x}"
        self.jobs[name] = {
            "ProcessingJobName": name,
            "ProcessingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{name}",
            "ProcessingJobStatus": "Completed",
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "result", "S3Output": {"S3Uri": output_uri}}]},
        }
        summary = {
            "MonitoringScheduleName": schedule,
            "ScheduledTime": datetime(2026, 3, 1, hour, tzinfo=UTC),
            "CreationTime": datetime(2026, 3, 1, hour, tzinfo=UTC),
            "LastModifiedTime": datetime(2026, 3, 1, hour, 5, tzinfo=UTC),
            "MonitoringExecutionStatus": status,
            "ProcessingJobArn": self.jobs[name]["ProcessingJobArn"],
            "EndpointName": endpoint,
        }
        self.executions.append(summary)
        return summary

    def list_monitoring_executions(self, MonitoringScheduleName, SortBy=None, SortOrder=None, MaxResults=10,
                                   ScheduledTimeAfter=None):  # fmt: skip
        items = [e for e in self.executions if e["MonitoringScheduleName"] == MonitoringScheduleName]
        items.sort(key=lambda e: e["ScheduledTime"], reverse=True)
        return {"MonitoringExecutionSummaries": copy.deepcopy(items[:MaxResults])}


@pytest.fixture
def aws(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1"}}),
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SNS", "AWS_ENDPOINT_URL_CLOUDWATCH"):
        monkeypatch.delenv(key, raising=False)
    from devstack.autoscaling import install as install_autoscaling
    from devstack.cloudwatch import install as install_cloudwatch

    install_cloudwatch()  # as the devstack serves CloudWatch: alarm tags are taken on create only
    install_autoscaling()  # tags on scalable targets, which moto does not keep
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        sns = boto3.client("sns")
        topic = sns.create_topic(Name=TOPIC)["TopicArn"]
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield SimpleNamespace(sqs=sqs, queue=queue, cloudwatch=boto3.client("cloudwatch"), s3=boto3.client("s3"))


def notifications(aws) -> list[dict]:
    messages = aws.sqs.receive_message(QueueUrl=aws.queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]
