"""The use case's own code end to end on the devstack: preprocess and train jobs, then an endpoint serving
the trained XGBoost model through ``include/code/inference/inference.py``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from ml_lifecycle.code_package import package_component, publish_component
from tests.integration.devstack.hosting_support import variant, wait_endpoint
from tests.integration.devstack.sagemaker_support import ROLE, SKLEARN_IMAGE, XGBOOST_IMAGE, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CODE = Path(__file__).resolve().parents[4] / "include" / "code"
FEATURES = [
    "amount",
    "log_amount",
    "hour_of_day",
    "day_of_week",
    "is_weekend",
    "card_present",
    "is_foreign",
    "channel",
    "merchant_category",
    "card_txn_count_24h",
    "card_avg_amount_7d",
    "amount_to_card_avg_ratio",
]


def _upload(s3: Any, bucket: str, key: str, body: bytes) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def _input(name: str, uri: str, local: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix", "S3InputMode": "File"},
    }


def _output(name: str, uri: str, local: str) -> dict[str, Any]:
    return {"OutputName": name, "S3Output": {"S3Uri": uri, "LocalPath": local, "S3UploadMode": "EndOfJob"}}


def test_model_trained_by_training_job_serves_real_predictions(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any
) -> None:
    if not (CODE / "training" / "train.py").is_file() or not (CODE / "inference" / "inference.py").is_file():
        pytest.skip("the use case's container code is not in include/code")
    from tests.unit.include.conftest import make_features

    frame = make_features(rows=1500, days=15, seed=5)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = _upload(s3, bucket, "extract/part-00000.parquet", buffer.getvalue())
    # the components as the pipeline ships them (code_package: each with the shared common/ inside)
    code = {
        component: publish_component(s3, package_component(CODE, component), bucket=bucket, prefix="code")
        for component in ("preprocessing", "training", "inference")
    }
    processed = f"s3://{bucket}/processed"
    job = unique_name("preprocess")
    sm.create_processing_job(
        ProcessingJobName=job,
        RoleArn=ROLE,
        AppSpecification={
            "ImageUri": SKLEARN_IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/preprocess.py"],
            "ContainerArguments": [
                "--input-dir",
                "/opt/ml/processing/input/data",
                "--output-root",
                "/opt/ml/processing",
            ],
        },
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
        ProcessingInputs=[
            _input("data", data.rsplit("/", 1)[0] + "/", "/opt/ml/processing/input/data"),
            _input("code", code["preprocessing"]["src_uri"], "/opt/ml/processing/input/code"),
        ],
        ProcessingOutputConfig={
            "Outputs": [
                _output(n, f"{processed}/{n}", f"/opt/ml/processing/{n}")
                for n in ("train", "validation", "preprocessor")
            ]
        },
    )
    processing = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=job), "ProcessingJobStatus", 240)
    assert processing["ProcessingJobStatus"] == "Completed", processing.get("FailureReason")

    sourcedir = code["training"]["sourcedir_uri"]
    # as in the pipeline, the serving handlers (and common/) reach train.py as the ``inference`` channel
    channels = {name: f"{processed}/{name}" for name in ("train", "validation", "preprocessor")}
    channels["inference"] = code["inference"]["src_uri"]
    training = unique_name("train")
    sm.create_training_job(
        TrainingJobName=training,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        HyperParameters={
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(sourcedir),
            "num_round": "30",
            "max_depth": "4",
        },
        InputDataConfig=[
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel, uri in channels.items()
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/models"},
        ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    trained = wait_for(lambda: sm.describe_training_job(TrainingJobName=training), "TrainingJobStatus", 300)
    assert trained["TrainingJobStatus"] == "Completed", trained.get("FailureReason")

    model = unique_name("fraud")
    sm.create_model(
        ModelName=model,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": XGBOOST_IMAGE,
            "ModelDataUrl": trained["ModelArtifacts"]["S3ModelArtifacts"],
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
        },
    )
    cfg = unique_name("cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[variant("AllTraffic", model)])
    endpoint = unique_name("fraud")
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=cfg)
    desc = wait_endpoint(sm, endpoint, timeout=180)
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")

    rows = frame.tail(5)
    instances = [
        {k: (bool(v) if isinstance(v, bool) else v) for k, v in row.items()}
        for row in json.loads(rows[FEATURES].to_json(orient="records"))
    ]
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint,
        Body=json.dumps({"instances": instances}).encode(),
        ContentType="application/json",
        Accept="application/json",
    )
    predictions = json.loads(answer["Body"].read())["predictions"]

    assert len(predictions) == 5
    assert all(0.0 <= p["fraud_probability"] <= 1.0 and p["is_fraud"] in (0, 1) for p in predictions)
    assert len({p["fraud_probability"] for p in predictions}) > 1, "a trained model scores rows differently"
    csv_rows = rows[FEATURES].astype({"is_weekend": int, "card_present": int, "is_foreign": int})
    csv_answer = runtime.invoke_endpoint(
        EndpointName=endpoint,
        Body=csv_rows.to_csv(header=False, index=False).encode(),
        ContentType="text/csv",
        Accept="text/csv",
    )
    lines = csv_answer["Body"].read().decode().splitlines()
    assert [round(float(line.split(",")[0]), 6) for line in lines] == [p["fraud_probability"] for p in predictions]
