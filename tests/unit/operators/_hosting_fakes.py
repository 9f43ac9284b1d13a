# ruff: noqa: N803  (keyword names mirror the boto3 API)
"""An in-memory SageMaker hosting control plane for operator tests.

It keeps models, endpoint configs, endpoints and model packages, raises SageMaker's own errors for unknown
names, and lets a test decide how an ``UpdateEndpoint`` ends (``update_outcome``: ``success`` or
``rollback``) and whether operations settle at once (``settle``) or stay in progress until ``finish()``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError

ACCOUNT = "123456789012"
REGION = "us-east-1"


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
                {k: p[k] for k in ("ModelPackageArn", "ModelPackageVersion", "ModelApprovalStatus", "CreationTime")}
                for p in items[:MaxResults]
            ]
        }

    def update_model_package(self, ModelPackageArn, ModelApprovalStatus=None, ApprovalDescription=None):
        self.calls.append(("update_model_package", {"arn": ModelPackageArn, "status": ModelApprovalStatus}))
        pkg = self.packages[ModelPackageArn]
        pkg["ModelApprovalStatus"] = ModelApprovalStatus
        if ApprovalDescription is not None:
            pkg["ApprovalDescription"] = ApprovalDescription
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
        self.calls.append(("create_endpoint", {"EndpointName": EndpointName, "EndpointConfigName": EndpointConfigName}))
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
        desc["EndpointStatus"] = "Updating"
        desc["PendingDeploymentSummary"] = {"EndpointConfigName": EndpointConfigName}
        self._pending[EndpointName] = ("update", EndpointConfigName)
        if self.settle:
            self.finish(EndpointName)
        return {"EndpointArn": desc["EndpointArn"]}

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
