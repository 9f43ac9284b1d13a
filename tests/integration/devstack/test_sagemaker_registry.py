"""Model registry, models and tags on the devstack SageMaker service."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.devstack.sagemaker_support import ROLE, SKLEARN_IMAGE

pytestmark = pytest.mark.integration

INFERENCE = {
    "Containers": [{"Image": SKLEARN_IMAGE, "ModelDataUrl": "s3://bkt/models/job/output/model.tar.gz"}],
    "SupportedContentTypes": ["text/csv"],
    "SupportedResponseMIMETypes": ["text/csv"],
}


def register(sm: Any, group: str, auc: str, status: str = "PendingManualApproval") -> str:
    return sm.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=f"auc {auc}",
        InferenceSpecification=INFERENCE,
        ModelApprovalStatus=status,
        CustomerMetadataProperties={"auc": auc, "run_id": "manual__1"},
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": "s3://bkt/eval/evaluation.json"}
            }
        },
    )["ModelPackageArn"]


def test_versions_increment_and_approval_filters_and_sorts(sm: Any, unique_name: Any) -> None:
    group = unique_name("fraud-models")
    group_arn = sm.create_model_package_group(ModelPackageGroupName=group, ModelPackageGroupDescription="fraud")[
        "ModelPackageGroupArn"
    ]
    assert group_arn == f"arn:aws:sagemaker:us-east-1:123456789012:model-package-group/{group}"
    with pytest.raises(ClientError) as exists:
        sm.create_model_package_group(ModelPackageGroupName=group)
    assert exists.value.response["Error"]["Code"] == "ValidationException"
    assert exists.value.response["Error"]["Message"].startswith("Model Package Group already exists")

    arns = [register(sm, group, auc) for auc in ("0.81", "0.85", "0.83")]
    assert arns == [f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/{v}" for v in (1, 2, 3)]

    v2 = sm.describe_model_package(ModelPackageName=arns[1])
    assert v2["ModelPackageVersion"] == 2
    assert v2["ModelPackageGroupName"] == group
    assert v2["ModelPackageStatus"] == "Completed"
    assert v2["ModelApprovalStatus"] == "PendingManualApproval"
    assert v2["CustomerMetadataProperties"] == {"auc": "0.85", "run_id": "manual__1"}
    assert v2["InferenceSpecification"]["Containers"][0]["Image"] == SKLEARN_IMAGE
    assert sm.describe_model_package(ModelPackageName=f"{group}/2")["ModelPackageArn"] == arns[1]

    sm.update_model_package(
        ModelPackageArn=arns[1],
        ModelApprovalStatus="Approved",
        ApprovalDescription="passed the gate",
        CustomerMetadataProperties={"gate": "passed"},
        CustomerMetadataPropertiesToRemove=["run_id"],
    )
    sm.update_model_package(ModelPackageArn=arns[2], ModelApprovalStatus="Rejected")
    approved = sm.describe_model_package(ModelPackageName=arns[1])
    assert approved["ModelApprovalStatus"] == "Approved"
    assert approved["ApprovalDescription"] == "passed the gate"
    assert approved["CustomerMetadataProperties"] == {"auc": "0.85", "gate": "passed"}
    assert approved["LastModifiedTime"] >= approved["CreationTime"]

    latest_approved = sm.list_model_packages(
        ModelPackageGroupName=group, ModelApprovalStatus="Approved", SortBy="CreationTime", SortOrder="Descending"
    )["ModelPackageSummaryList"]
    assert [s["ModelPackageVersion"] for s in latest_approved] == [2]

    newest_first = sm.list_model_packages(ModelPackageGroupName=group, SortOrder="Descending", MaxResults=2)
    assert [s["ModelPackageVersion"] for s in newest_first["ModelPackageSummaryList"]] == [3, 2]
    rest = sm.list_model_packages(
        ModelPackageGroupName=group, SortOrder="Descending", MaxResults=2, NextToken=newest_first["NextToken"]
    )
    assert [s["ModelPackageVersion"] for s in rest["ModelPackageSummaryList"]] == [1]

    groups = sm.list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == [group]

    with pytest.raises(ClientError) as not_empty:
        sm.delete_model_package_group(ModelPackageGroupName=group)
    assert not_empty.value.response["Error"]["Code"] == "ConflictException"
    for arn in arns:
        sm.delete_model_package(ModelPackageName=arn)
    sm.delete_model_package_group(ModelPackageGroupName=group)
    with pytest.raises(ClientError) as gone:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    assert gone.value.response["Error"]["Code"] == "ValidationException"


def test_registry_errors(sm: Any, unique_name: Any) -> None:
    with pytest.raises(ClientError) as no_group:
        register(sm, unique_name("missing-group"), "0.9")
    assert no_group.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as no_package:
        sm.describe_model_package(ModelPackageName="arn:aws:sagemaker:us-east-1:123456789012:model-package/nothing/1")
    assert no_package.value.response["Error"]["Code"] == "ValidationException"
    group = unique_name("grp")
    sm.create_model_package_group(ModelPackageGroupName=group)
    with pytest.raises(ClientError) as bad_status:
        sm.update_model_package(ModelPackageArn=register(sm, group, "0.7"), ModelApprovalStatus="Maybe")
    assert "Member must satisfy enum value set: [Approved, Rejected, PendingManualApproval]" in str(bad_status.value)


def test_models_and_tags(sm: Any, unique_name: Any) -> None:
    name = unique_name("fraud-model")
    arn = sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": "s3://bkt/model.tar.gz"},
        ExecutionRoleArn=ROLE,
        Tags=[{"Key": "team", "Value": "fraud"}],
    )["ModelArn"]
    desc = sm.describe_model(ModelName=name)
    assert desc["ModelArn"] == arn
    assert desc["PrimaryContainer"]["ModelDataUrl"] == "s3://bkt/model.tar.gz"
    with pytest.raises(ClientError) as duplicate:
        sm.create_model(ModelName=name, PrimaryContainer={"Image": SKLEARN_IMAGE}, ExecutionRoleArn=ROLE)
    assert duplicate.value.response["Error"]["Code"] == "ValidationException"
    assert name in [m["ModelName"] for m in sm.list_models(NameContains=name)["Models"]]

    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}, {"Key": "team", "Value": "risk"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "team", "Value": "risk"},
        {"Key": "stage", "Value": "dev"},
    ]
    sm.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]

    sm.delete_model(ModelName=name)
    with pytest.raises(ClientError) as gone:
        sm.describe_model(ModelName=name)
    assert gone.value.response["Error"]["Message"] == f'Could not find model "{arn}".'
    with pytest.raises(ClientError) as untaggable:
        sm.list_tags(ResourceArn=arn)
    assert untaggable.value.response["Error"]["Code"] == "ResourceNotFound"


def test_model_lifecycle_is_set_returned_listed_and_validated(
    sm: Any, sagemaker_service: Any, unique_name: Any
) -> None:
    """``ModelLifeCycle`` as SageMaker takes it: on Create and Update, in Describe and in the list summaries,
    ``Stage``/``StageStatus`` required and ``EntityName``-shaped."""
    import boto3
    from botocore.config import Config

    from tests.integration.devstack.sagemaker_support import CREDENTIALS, REGION

    group = unique_name("lifecycle")
    sm.create_model_package_group(ModelPackageGroupName=group)
    staged = sm.create_model_package(
        ModelPackageGroupName=group,
        InferenceSpecification=INFERENCE,
        ModelApprovalStatus="Approved",
        ModelLifeCycle={"Stage": "Development", "StageStatus": "InProgress"},
    )["ModelPackageArn"]
    plain = register(sm, group, "0.8", status="Approved")
    assert sm.describe_model_package(ModelPackageName=staged)["ModelLifeCycle"] == {
        "Stage": "Development",
        "StageStatus": "InProgress",
    }
    assert "ModelLifeCycle" not in sm.describe_model_package(ModelPackageName=plain)

    champion = {"Stage": "Production", "StageStatus": "Deployed", "StageDescription": "Serves 100% of fraud-ep"}
    sm.update_model_package(ModelPackageArn=plain, ModelLifeCycle=champion)
    described = sm.describe_model_package(ModelPackageName=plain)
    assert described["ModelLifeCycle"] == champion and described["ModelApprovalStatus"] == "Approved"
    listed = {
        s["ModelPackageArn"]: s.get("ModelLifeCycle")
        for s in sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    }
    assert listed == {staged: {"Stage": "Development", "StageStatus": "InProgress"}, plain: champion}

    for bad, constraint in (
        ({"Stage": "In Production", "StageStatus": "Deployed"}, "regular expression pattern"),
        ({"Stage": "Production", "StageStatus": "rolled_back"}, "regular expression pattern"),
        ({"Stage": "P" * 64, "StageStatus": "Deployed"}, "length less than or equal to 63"),
        ({"Stage": "Production", "StageStatus": "Deployed", "StageDescription": "x" * 1025}, "1024"),
    ):
        with pytest.raises(ClientError) as refused:
            sm.update_model_package(ModelPackageArn=plain, ModelLifeCycle=bad)
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert "modelLifeCycle." in str(refused.value) and constraint in str(refused.value), str(refused.value)
    # botocore refuses a missing member before sending; a client that does not check shows the service does too
    unchecked = boto3.client(
        "sagemaker",
        endpoint_url=sagemaker_service.url,
        region_name=REGION,
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
        **CREDENTIALS,
    )
    with pytest.raises(ClientError) as missing:
        unchecked.update_model_package(ModelPackageArn=plain, ModelLifeCycle={"Stage": "Production"})
    assert "Value null at 'modelLifeCycle.stageStatus' failed to satisfy constraint" in str(missing.value)
    assert sm.describe_model_package(ModelPackageName=plain)["ModelLifeCycle"] == champion, "nothing changed"
