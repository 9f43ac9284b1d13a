"""Test doubles shared by the operator tests: a SageMaker model registry and a hook around it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from botocore.exceptions import ClientError

from tests.unit.operators._hosting_fakes import AWS_CONNECTION

ACCOUNT = "123456789012"


class FakeRegistry:
    """The model-registry calls of a boto3 SageMaker client, in memory."""

    def __init__(self):
        self.groups: set[str] = set()
        self.tags: dict[str, dict[str, str]] = {}  # group ARN -> tags
        self.packages: list[dict] = []
        self.create_calls = 0
        self.update_calls: list[dict] = []
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)

    def create_model_package_group(self, **request):
        name = request["ModelPackageGroupName"]
        if name in self.groups:
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": "Model Package Group already exists: x"}},
                "CreateModelPackageGroup",
            )
        self.groups.add(name)
        arn = self._group_arn(name)
        self.tags[arn] = {t["Key"]: t["Value"] for t in request.get("Tags") or []}
        return {"ModelPackageGroupArn": arn}

    @staticmethod
    def _group_arn(name):
        return f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package-group/{name.lower()}"

    def describe_model_package_group(self, ModelPackageGroupName):  # noqa: N803 - the boto3 name
        if ModelPackageGroupName not in self.groups:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationException",
                        "Message": f"ModelPackageGroup {ModelPackageGroupName} does not exist.",
                    }
                },
                "DescribeModelPackageGroup",
            )
        return {
            "ModelPackageGroupName": ModelPackageGroupName,
            "ModelPackageGroupArn": self._group_arn(ModelPackageGroupName),
        }

    def add_tags(self, ResourceArn, Tags):  # noqa: N803 - the boto3 names
        self.tags.setdefault(ResourceArn, {}).update({t["Key"]: t["Value"] for t in Tags})
        return {"Tags": Tags}

    def create_model_package(self, **request):
        self.create_calls += 1
        group = request["ModelPackageGroupName"]
        if group not in self.groups:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "no group"}}, "Create")
        version = 1 + sum(1 for p in self.packages if p["ModelPackageGroupName"] == group)
        self._clock += timedelta(minutes=1)
        package = {
            **copy.deepcopy(request),
            "ModelPackageArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/{group}/{version}",
            "ModelPackageVersion": version,
            "CreationTime": self._clock,
        }
        package.pop("ClientToken", None)
        self.packages.append(package)
        return {"ModelPackageArn": package["ModelPackageArn"]}

    def add(self, group, status, metadata, evaluation_uri=None):
        self.groups.add(group)
        request = {
            "ModelPackageGroupName": group,
            "ModelApprovalStatus": status,
            "CustomerMetadataProperties": metadata,
            "InferenceSpecification": {"Containers": [{"Image": "img", "ModelDataUrl": "s3://b/m.tar.gz"}]},
        }
        if evaluation_uri:
            request["ModelMetrics"] = {
                "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}}
            }
        return self.create_model_package(**request)["ModelPackageArn"]

    def describe_model_package(self, **request):
        for package in self.packages:
            if package["ModelPackageArn"] == request["ModelPackageName"]:
                return copy.deepcopy(package)
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "not found"}}, "Describe")

    def list_model_packages(self, **request):
        group = request["ModelPackageGroupName"]
        if group not in self.groups:
            message = f"ModelPackageGroup {group} does not exist."  # the devstack's text
            raise ClientError({"Error": {"Code": "ValidationException", "Message": message}}, "List")
        packages = [p for p in self.packages if p["ModelPackageGroupName"] == group]
        if status := request.get("ModelApprovalStatus"):
            packages = [p for p in packages if p["ModelApprovalStatus"] == status]
        if after := request.get("CreationTimeAfter"):
            packages = [p for p in packages if p["CreationTime"] > after]
        packages.sort(key=lambda p: p["CreationTime"], reverse=request.get("SortOrder") == "Descending")
        return {
            "ModelPackageSummaryList": [
                {k: p[k] for k in ("ModelPackageArn", "ModelApprovalStatus", "ModelLifeCycle") if k in p}
                for p in packages[: request.get("MaxResults", 10)]
            ]
        }

    def update_model_package(self, **request):
        self.update_calls.append(copy.deepcopy(request))
        package = next(p for p in self.packages if p["ModelPackageArn"] == request["ModelPackageArn"])
        for member in ("ModelApprovalStatus", "ApprovalDescription", "ModelLifeCycle"):
            if member in request:
                package[member] = copy.deepcopy(request[member])
        # metadata is merged key by key, as SageMaker does
        metadata = {**package.get("CustomerMetadataProperties", {}), **request.get("CustomerMetadataProperties", {})}
        for key in request.get("CustomerMetadataPropertiesToRemove", []):
            metadata.pop(key, None)
        if metadata:
            package["CustomerMetadataProperties"] = metadata
        self._clock += timedelta(minutes=1)
        package["LastModifiedTime"] = self._clock
        return {"ModelPackageArn": request["ModelPackageArn"]}

    def set_lifecycle(self, arn, stage, status, description=""):
        """Put a package in a ``ModelLifeCycle`` state, as a deployment would have."""
        self.update_model_package(
            ModelPackageArn=arn,
            ModelLifeCycle={"Stage": stage, "StageStatus": status, "StageDescription": description},
        )
        self.update_calls.pop()


class FakeHook:
    """What the operators use of ``SageMakerHook``: ``conn``, ``s3_hook``, region, group creation."""

    def __init__(self, registry: FakeRegistry, s3_client):
        self.conn = registry
        self.s3_hook = SimpleNamespace(get_conn=lambda: s3_client)
        self.conn_region_name = "us-east-1"
        self.conn_partition = "aws"
        self.conn_config = AWS_CONNECTION

    def create_model_package_group(self, name, description=""):
        try:
            self.conn.create_model_package_group(ModelPackageGroupName=name, ModelPackageGroupDescription=description)
        except ClientError:
            return False
        return True
