"""Contract tests: every action the service implements answers with botocore's output shape.

One test per action: the call goes through boto3 to the service and the raw JSON body is checked
against the operation's output shape (unknown members, types, enums, required members).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from devstack.contract import ContractRecorder
from devstack.sagemaker.service import SageMakerService
from tests.integration.devstack.sagemaker_support import (
    ROLE,
    SKLEARN_IMAGE,
    put_sourcedir,
    put_text,
    wait_for,
)

pytestmark = pytest.mark.integration

TRAIN_PY = "import os\nprint('auc=0.9')\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm'), 'w').write('x')\n"


@pytest.fixture(scope="module")
def world(sagemaker_service: SageMakerService, moto_endpoint: str) -> dict[str, Any]:
    """Resources of every kind, finished, for the Describe/List/Stop calls to act on."""
    import boto3

    kw = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, **kw)
    sm = boto3.client("sagemaker", endpoint_url=sagemaker_service.url, **kw)
    bucket = "contract-world"
    s3.create_bucket(Bucket=bucket)
    put_text(s3, bucket, "train/data.csv", "1\n")
    put_text(s3, bucket, "code/p.py", "print('processed')\n")
    source = put_sourcedir(s3, bucket, "code/sourcedir.tar.gz", {"train.py": TRAIN_PY})
    suffix = str(abs(hash(sagemaker_service.state_dir)) % 10**6)
    names = {
        "training": f"ct-train-{suffix}",
        "processing": f"ct-proc-{suffix}",
        "tuning": f"ct-tune-{suffix}",
        "group": f"ct-group-{suffix}",
        "model": f"ct-model-{suffix}",
    }
    definition = {
        "AlgorithmSpecification": {
            "TrainingImage": SKLEARN_IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "auc", "Regex": r"auc=([0-9\.]+)"}],
        },
        "RoleArn": ROLE,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/"}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    hps = {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": json.dumps(source)}
    sm.create_training_job(TrainingJobName=names["training"], HyperParameters=hps, **definition)
    sm.create_processing_job(
        ProcessingJobName=names["processing"],
        RoleArn=ROLE,
        AppSpecification={"ImageUri": SKLEARN_IMAGE, "ContainerEntrypoint": ["python3", "/opt/ml/processing/c/p.py"]},
        ProcessingInputs=[
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/code/p.py",
                    "LocalPath": "/opt/ml/processing/c",
                    "S3DataType": "S3Prefix",
                },
            }
        ],
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
    )
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=names["tuning"],
        HyperParameterTuningJobConfig={
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "auc"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {"IntegerParameterRanges": [{"Name": "depth", "MinValue": "1", "MaxValue": "3"}]},
        },
        TrainingJobDefinition={**definition, "StaticHyperParameters": hps},
    )
    sm.create_model_package_group(ModelPackageGroupName=names["group"])
    package_arn = sm.create_model_package(
        ModelPackageGroupName=names["group"],
        InferenceSpecification={
            "Containers": [{"Image": SKLEARN_IMAGE}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={"auc": "0.9"},
    )["ModelPackageArn"]
    model_arn = sm.create_model(
        ModelName=names["model"], PrimaryContainer={"Image": SKLEARN_IMAGE}, ExecutionRoleArn=ROLE
    )["ModelArn"]
    wait_for(lambda: sm.describe_training_job(TrainingJobName=names["training"]), "TrainingJobStatus")
    wait_for(lambda: sm.describe_processing_job(ProcessingJobName=names["processing"]), "ProcessingJobStatus")
    wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=names["tuning"]),
        "HyperParameterTuningJobStatus",
        timeout=60,
    )
    return {**names, "package_arn": package_arn, "model_arn": model_arn, "bucket": bucket, "definition": definition}


def _stop_running_training(sm: Any, w: dict[str, Any]) -> None:
    name = w["training"] + "-stop"
    sm.create_training_job(
        TrainingJobName=name,
        HyperParameters={"sagemaker_program": '"train.py"'},
        **{**w["definition"], "AlgorithmSpecification": {**w["definition"]["AlgorithmSpecification"]}},
    )
    sm.stop_training_job(TrainingJobName=name)


CALLS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "CreateTrainingJob": lambda sm, w: sm.create_training_job(
        TrainingJobName=w["training"] + "-2", HyperParameters={"sagemaker_program": '"train.py"'}, **w["definition"]
    ),
    "DescribeTrainingJob": lambda sm, w: sm.describe_training_job(TrainingJobName=w["training"]),
    "ListTrainingJobs": lambda sm, w: sm.list_training_jobs(NameContains="ct-", MaxResults=1),
    "StopTrainingJob": _stop_running_training,
    "CreateProcessingJob": lambda sm, w: sm.create_processing_job(
        ProcessingJobName=w["processing"] + "-2",
        RoleArn=ROLE,
        AppSpecification={"ImageUri": SKLEARN_IMAGE, "ContainerEntrypoint": ["python3", "-c", "print(1)"]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
    ),
    "DescribeProcessingJob": lambda sm, w: sm.describe_processing_job(ProcessingJobName=w["processing"]),
    "ListProcessingJobs": lambda sm, w: sm.list_processing_jobs(NameContains="ct-", MaxResults=1),
    "StopProcessingJob": lambda sm, w: (
        sm.create_processing_job(
            ProcessingJobName=w["processing"] + "-stop",
            RoleArn=ROLE,
            AppSpecification={
                "ImageUri": SKLEARN_IMAGE,
                "ContainerEntrypoint": ["python3", "-c", "import time; time.sleep(30)"],
            },
            ProcessingResources={
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}
            },
        ),
        sm.stop_processing_job(ProcessingJobName=w["processing"] + "-stop"),
    ),
    "CreateHyperParameterTuningJob": lambda sm, w: sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=w["tuning"] + "-2",
        HyperParameterTuningJobConfig={
            "Strategy": "Grid",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "auc"},
            "ResourceLimits": {"MaxParallelTrainingJobs": 1},
            "ParameterRanges": {"CategoricalParameterRanges": [{"Name": "depth", "Values": ["1"]}]},
        },
        TrainingJobDefinition={**w["definition"], "StaticHyperParameters": {"sagemaker_program": '"train.py"'}},
    ),
    "DescribeHyperParameterTuningJob": lambda sm, w: sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=w["tuning"]
    ),
    "ListHyperParameterTuningJobs": lambda sm, w: sm.list_hyper_parameter_tuning_jobs(NameContains="ct-"),
    "StopHyperParameterTuningJob": lambda sm, w: (
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=w["tuning"] + "-stop",
            HyperParameterTuningJobConfig={
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "auc"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
                "ParameterRanges": {"CategoricalParameterRanges": [{"Name": "depth", "Values": ["1"]}]},
            },
            TrainingJobDefinition={**w["definition"], "StaticHyperParameters": {"sagemaker_program": '"x.py"'}},
        ),
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=w["tuning"] + "-stop"),
    ),
    "ListTrainingJobsForHyperParameterTuningJob": lambda sm, w: sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=w["tuning"]
    ),
    "CreateModelPackageGroup": lambda sm, w: sm.create_model_package_group(ModelPackageGroupName=w["group"] + "-2"),
    "DescribeModelPackageGroup": lambda sm, w: sm.describe_model_package_group(ModelPackageGroupName=w["group"]),
    "ListModelPackageGroups": lambda sm, w: sm.list_model_package_groups(NameContains="ct-"),
    "DeleteModelPackageGroup": lambda sm, w: (
        sm.create_model_package_group(ModelPackageGroupName=w["group"] + "-del"),
        sm.delete_model_package_group(ModelPackageGroupName=w["group"] + "-del"),
    ),
    "CreateModelPackage": lambda sm, w: sm.create_model_package(
        ModelPackageGroupName=w["group"], ModelApprovalStatus="Rejected", ModelPackageDescription="contract"
    ),
    "DescribeModelPackage": lambda sm, w: sm.describe_model_package(ModelPackageName=w["package_arn"]),
    "ListModelPackages": lambda sm, w: sm.list_model_packages(ModelPackageGroupName=w["group"]),
    "UpdateModelPackage": lambda sm, w: sm.update_model_package(
        ModelPackageArn=w["package_arn"], ModelApprovalStatus="Approved"
    ),
    "DeleteModelPackage": lambda sm, w: sm.delete_model_package(
        ModelPackageName=sm.create_model_package(ModelPackageName=w["group"] + "-unversioned")["ModelPackageArn"]
    ),
    "CreateModel": lambda sm, w: sm.create_model(
        ModelName=w["model"] + "-2", Containers=[{"Image": SKLEARN_IMAGE}], ExecutionRoleArn=ROLE
    ),
    "DescribeModel": lambda sm, w: sm.describe_model(ModelName=w["model"]),
    "ListModels": lambda sm, w: sm.list_models(NameContains="ct-"),
    "DeleteModel": lambda sm, w: (
        sm.create_model(ModelName=w["model"] + "-del", PrimaryContainer={"Image": SKLEARN_IMAGE}),
        sm.delete_model(ModelName=w["model"] + "-del"),
    ),
    "AddTags": lambda sm, w: sm.add_tags(ResourceArn=w["model_arn"], Tags=[{"Key": "k", "Value": "v"}]),
    "ListTags": lambda sm, w: sm.list_tags(ResourceArn=w["model_arn"]),
    "DeleteTags": lambda sm, w: sm.delete_tags(ResourceArn=w["model_arn"], TagKeys=["k"]),
}


@pytest.mark.parametrize("action", [pytest.param(a, id=a) for a in sorted(CALLS)])
def test_action_response_conforms_to_botocore_shape(
    action: str, sm: Any, contract: ContractRecorder, world: dict[str, Any]
) -> None:
    CALLS[action](sm, world)
    assert contract.checked.get(action, 0) >= 1, f"{action} was not called"
    contract.assert_clean()


def test_every_core_action_has_a_contract_test(moto_endpoint: str, tmp_path: Any) -> None:
    """Every action of the core service (extensions test their own) is in CALLS."""
    core = SageMakerService(tmp_path, moto_endpoint, "us-east-1", load_extensions=False)
    assert set(core.implemented_actions) - set(CALLS) == set()
    assert len(CALLS) == len(core.implemented_actions)


def test_completed_resources_carry_the_members_clients_read(sm: Any, world: dict[str, Any]) -> None:
    training = sm.describe_training_job(TrainingJobName=world["training"])
    assert training["TrainingJobStatus"] == "Completed", training.get("FailureReason")
    for member in ("TrainingStartTime", "TrainingEndTime", "ResourceConfig", "FinalMetricDataList", "ModelArtifacts"):
        assert member in training
    tuning = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=world["tuning"])
    assert tuning["HyperParameterTuningJobStatus"] == "Completed", tuning.get("FailureReason")
    assert tuning["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == 0.9


def _raw_call(url: str, target: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target:
        headers["X-Amz-Target"] = target
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        pytest.param("SageMaker.NoSuchThing", b"{}", "UnknownOperationException", id="unknown-action"),
        pytest.param(None, b"{}", "UnknownOperationException", id="no-target"),
        pytest.param("SageMaker.ListModels", b"{not json", "SerializationException", id="bad-json"),
        pytest.param("SageMaker.DescribeModel", b"{}", "ValidationException", id="missing-member"),
    ],
)
def test_wire_level_errors(sagemaker_service: SageMakerService, target: str | None, body: bytes, code: str) -> None:
    assert sagemaker_service.url is not None
    status, payload = _raw_call(sagemaker_service.url + "/", target, body)
    assert status == 400
    assert payload["__type"] == code
    assert payload["message"]


def test_image_environment_responses_conform_to_botocore_shape(
    sm: Any, s3: Any, contract: ContractRecorder, world: dict[str, Any]
) -> None:
    """Responses that image environments changed: the built-in algorithm's service-filled MetricDefinitions
    and FinalMetricDataList, an unknown image's ClientError, a network-isolated processing job."""
    bucket = world["bucket"]
    put_text(s3, bucket, "builtin/train.csv", "1,0.5,2\n0,0.1,3\n1,0.7,1\n0,0.2,5\n")
    definition = world["definition"]
    builtin = world["training"] + "-builtin"
    sm.create_training_job(
        TrainingJobName=builtin,
        HyperParameters={"num_round": "3", "objective": "reg:squarederror"},
        **{
            **definition,
            "AlgorithmSpecification": {
                "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5",
                "TrainingInputMode": "File",
            },
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "ContentType": "text/csv",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/builtin/"}},
                }
            ],
        },
    )
    unknown = world["training"] + "-unknown"
    sm.create_training_job(
        TrainingJobName=unknown,
        HyperParameters={"sagemaker_program": '"train.py"'},
        **{
            **definition,
            "AlgorithmSpecification": {
                "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8.0-cpu-py312",
                "TrainingInputMode": "File",
            },
        },
    )
    isolated = world["processing"] + "-isolated"
    sm.create_processing_job(
        ProcessingJobName=isolated,
        RoleArn=ROLE,
        AppSpecification={"ImageUri": SKLEARN_IMAGE, "ContainerEntrypoint": ["python3", "/opt/ml/processing/c/p.py"]},
        ProcessingInputs=[
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/code/p.py",
                    "LocalPath": "/opt/ml/processing/c",
                    "S3DataType": "S3Prefix",
                },
            }
        ],
        NetworkConfig={"EnableNetworkIsolation": True},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
    )

    done = wait_for(lambda: sm.describe_training_job(TrainingJobName=builtin), "TrainingJobStatus", 120)
    failed = wait_for(lambda: sm.describe_training_job(TrainingJobName=unknown), "TrainingJobStatus", 120)
    processed = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=isolated), "ProcessingJobStatus", 120)
    sm.list_training_jobs(NameContains=world["training"])

    assert done["TrainingJobStatus"] == "Completed", done.get("FailureReason")
    assert len(done["AlgorithmSpecification"]["MetricDefinitions"]) == 40
    assert {m["MetricName"] for m in done["FinalMetricDataList"]} == {"train:rmse"}
    assert failed["FailureReason"].startswith("ClientError: The devstack cannot run the image 763104351884")
    assert processed["ProcessingJobStatus"] == "Completed", processed.get("FailureReason")
    contract.assert_clean()
