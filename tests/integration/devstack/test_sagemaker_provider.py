"""The Amazon provider's SageMaker operators, unchanged, against the devstack (synchronous mode)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.devstack.sagemaker_support import (
    ROLE,
    SKLEARN_IMAGE,
    put_sourcedir,
    put_text,
    read_tarball,
)

pytestmark = pytest.mark.integration

TRAIN_PY = """
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--depth", type=int, default=3)
args = parser.parse_args()
print(f"validation-auc={0.8 + args.depth / 100:.3f}")
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write(str(args.depth))
"""


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, sagemaker_service: Any, moto_endpoint: str) -> None:
    """Point the provider's hooks at the devstack through the AWS connection's endpoints."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {
                    "region_name": "us-east-1",
                    "endpoint_url": moto_endpoint,
                    "service_config": {"sagemaker": {"endpoint_url": sagemaker_service.url}},
                },
            }
        ),
    )


def _training_config(name: str, bucket: str, source: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": SKLEARN_IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "validation:auc", "Regex": r"validation-auc=([0-9\.]+)"}],
        },
        "HyperParameters": {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": json.dumps(source)},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/"}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }


def test_training_tuning_processing_and_registration_operators(
    aws_env: None, s3: Any, bucket: str, unique_name: Any
) -> None:
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerProcessingOperator,
        SageMakerRegisterModelVersionOperator,
        SageMakerTrainingOperator,
        SageMakerTuningOperator,
    )

    put_text(s3, bucket, "train/data.csv", "1,2\n")
    put_text(
        s3, bucket, "code/evaluate.py", "import sys, pathlib\npathlib.Path(sys.argv[1], 'r.json').write_text('{}')\n"
    )
    source = put_sourcedir(s3, bucket, "code/sourcedir.tar.gz", {"train.py": TRAIN_PY})

    training_name = unique_name("op-train")
    trained = SageMakerTrainingOperator(
        task_id="train",
        config=_training_config(training_name, bucket, source),
        print_log=False,
        check_interval=1,
        max_ingestion_time=120,
    ).execute({})
    model_uri = trained["Training"]["ModelArtifacts"]["S3ModelArtifacts"]
    assert trained["Training"]["TrainingJobStatus"] == "Completed"
    assert read_tarball(s3, model_uri) == {"model.txt": b"3"}

    tuning_name = unique_name("op-tune")[:32]
    definition = _training_config("unused", bucket, source)
    definition.pop("TrainingJobName")
    hps = definition.pop("HyperParameters")
    tuned = SageMakerTuningOperator(
        task_id="tune",
        config={
            "HyperParameterTuningJobName": tuning_name,
            "HyperParameterTuningJobConfig": {
                "Strategy": "Grid",
                "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"},
                "ResourceLimits": {"MaxParallelTrainingJobs": 2},
                "ParameterRanges": {"CategoricalParameterRanges": [{"Name": "depth", "Values": ["2", "5"]}]},
            },
            "TrainingJobDefinition": {**definition, "StaticHyperParameters": hps},
        },
        check_interval=1,
        max_ingestion_time=120,
    ).execute({})
    best = tuned["Tuning"]["BestTrainingJob"]
    assert best["TunedHyperParameters"] == {"depth": "5"}

    processing_name = unique_name("op-proc")
    processed = SageMakerProcessingOperator(
        task_id="evaluate",
        config={
            "ProcessingJobName": processing_name,
            "RoleArn": ROLE,
            "AppSpecification": {
                "ImageUri": SKLEARN_IMAGE,
                "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/evaluate.py"],
                "ContainerArguments": ["/opt/ml/processing/evaluation"],
            },
            "ProcessingInputs": [
                {
                    "InputName": "code",
                    "S3Input": {
                        "S3Uri": f"s3://{bucket}/code/evaluate.py",
                        "LocalPath": "/opt/ml/processing/input/code",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                    },
                }
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "evaluation",
                        "S3Output": {
                            "S3Uri": f"s3://{bucket}/evaluation/{processing_name}",
                            "LocalPath": "/opt/ml/processing/evaluation",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
            "ProcessingResources": {
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}
            },
        },
        check_interval=1,
        max_ingestion_time=120,
    ).execute({})
    assert processed["Processing"]["ProcessingJobStatus"] == "Completed"
    assert s3.get_object(Bucket=bucket, Key=f"evaluation/{processing_name}/r.json")["Body"].read() == b"{}"

    group = unique_name("op-group")
    first = SageMakerRegisterModelVersionOperator(
        task_id="register", image_uri=SKLEARN_IMAGE, model_url=model_uri, package_group_name=group
    ).execute({})
    second = SageMakerRegisterModelVersionOperator(
        task_id="register-again", image_uri=SKLEARN_IMAGE, model_url=model_uri, package_group_name=group
    ).execute({})
    assert first.endswith(f"model-package/{group}/1")
    assert second.endswith(f"model-package/{group}/2")
