"""Training jobs on the devstack SageMaker service: script mode, artifacts, metrics, logs, failures, limits."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.devstack.sagemaker_support import (
    ROLE,
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    put_sourcedir,
    put_text,
    read_tarball,
    wait_for,
)

pytestmark = pytest.mark.integration

TRAIN_PY = """
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--learning-rate", type=float)
parser.add_argument("--use_gpu")
args = parser.parse_args()
rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "data.csv")).read().splitlines()
for epoch in range(args.epochs):
    print(f"[{epoch}]\\ttrain-loss:{1.0 / (epoch + 1):.4f}\\tvalidation-auc:{0.5 + epoch / 10:.2f}")
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as fh:
    json.dump({"rows": len(rows), "lr": args.learning_rate}, fh)
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "report.txt"), "w") as fh:
    fh.write("ok")
env = {k: v for k, v in os.environ.items() if k.startswith("SM_") or k.startswith("TRAINING_JOB")}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "env.json"), "w") as fh:
    json.dump({"env": env, "argv": sys.argv[1:], "cwd": os.getcwd()}, fh)
"""


def training_request(
    name: str,
    bucket: str,
    *,
    hyperparameters: dict[str, str],
    image: str = SKLEARN_IMAGE,
    max_runtime: int = 60,
    metrics: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metrics or [],
        },
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{bucket}/data/train",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }


def script_job(
    s3: Any, bucket: str, name: str, script: str, hps: dict[str, str] | None = None, **kwargs: Any
) -> dict[str, Any]:
    put_text(s3, bucket, "data/train/data.csv", "1,0.5\n0,0.1\n1,0.9\n")
    source = put_sourcedir(s3, bucket, f"{name}/source/sourcedir.tar.gz", {"train.py": script})
    hyperparameters = {
        "sagemaker_program": json.dumps("train.py"),
        "sagemaker_submit_directory": json.dumps(source),
        **(hps or {}),
    }
    return training_request(name, bucket, hyperparameters=hyperparameters, **kwargs)


def test_script_mode_job_trains_uploads_model_and_reports_metrics(
    sm: Any, s3: Any, logs: Any, bucket: str, unique_name: Any
) -> None:
    name = unique_name("train-ok")
    metrics = [
        {"Name": "train:loss", "Regex": r"train-loss:([0-9\.]+)"},
        {"Name": "validation:auc", "Regex": r".*\[[0-9]+\].*#011validation-auc:([0-9\.]+).*"},
        {"Name": "never:seen", "Regex": r"never-seen:([0-9\.]+)"},
    ]
    request = script_job(
        s3,
        bucket,
        name,
        TRAIN_PY,
        {"epochs": "3", "learning-rate": "0.05", "use_gpu": "false"},
        metrics=metrics,
    )
    arn = sm.create_training_job(**request)["TrainingJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}"

    desc = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")

    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert all(t["StatusMessage"] for t in desc["SecondaryStatusTransitions"])
    model_uri = desc["ModelArtifacts"]["S3ModelArtifacts"]
    assert model_uri == f"s3://{bucket}/models/{name}/output/model.tar.gz"
    model = read_tarball(s3, model_uri)
    assert json.loads(model["model.json"]) == {"rows": 3, "lr": 0.05}
    assert read_tarball(s3, f"s3://{bucket}/models/{name}/output/output.tar.gz") == {"report.txt": b"ok"}

    final = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert final == {"train:loss": pytest.approx(1 / 3, abs=1e-3), "validation:auc": pytest.approx(0.7)}
    assert desc["TrainingStartTime"] <= desc["TrainingEndTime"]
    assert desc["BillableTimeInSeconds"] >= 1
    assert desc["ResourceConfig"]["InstanceCount"] == 1

    seen = json.loads(model["env.json"])
    assert seen["argv"] == ["--epochs", "3", "--learning-rate", "0.05", "--use_gpu", "False"]
    env = seen["env"]
    assert env["SM_CHANNELS"] == '["train"]'
    assert env["SM_CHANNEL_TRAIN"].endswith("/opt/ml/input/data/train")
    assert env["SM_HPS"] == '{"epochs":3,"learning-rate":0.05,"use_gpu":false}'
    assert env["SM_HP_LEARNING-RATE"] == "0.05"
    assert env["SM_USER_ARGS"] == '["--epochs","3","--learning-rate","0.05","--use_gpu","False"]'
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_HOSTS"] == '["algo-1"]'
    assert env["TRAINING_JOB_NAME"] == name
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == name
    assert seen["cwd"].endswith("/opt/ml/code")

    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=name + "/", orderBy="LogStreamName"
    )["logStreams"]
    assert len(streams) == 1
    assert streams[0]["logStreamName"].startswith(f"{name}/algo-1-")
    messages = [
        e["message"]
        for e in logs.get_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs",
            logStreamName=streams[0]["logStreamName"],
            startFromHead=True,
        )["events"]
    ]
    assert "[2]#011train-loss:0.3333#011validation-auc:0.70" in messages


def test_failing_script_fails_with_its_last_error_lines(sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    name = unique_name("train-fail")
    script = "import sys\nprint('working')\nraise ValueError('label column missing from train.csv')\n"
    sm.create_training_job(**script_job(s3, bucket, name, script))

    desc = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")

    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["SecondaryStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:")
    assert "ValueError: label column missing from train.csv" in reason
    assert "ExitCode 1" in reason
    assert reason.endswith(", exit code: 1")
    assert len(reason) <= 1024


def test_max_runtime_stops_the_job(sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    name = unique_name("train-slow")
    script = "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n"
    started = time.monotonic()
    sm.create_training_job(**script_job(s3, bucket, name, script, max_runtime=1))

    desc = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus", timeout=30)

    assert time.monotonic() - started < 20
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert "MaxRuntimeInSeconds" in desc["FailureReason"]


def test_stop_training_job_stops_a_running_job(sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    name = unique_name("train-stop")
    script = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
    sm.create_training_job(**script_job(s3, bucket, name, script))
    deadline = time.monotonic() + 20
    while sm.describe_training_job(TrainingJobName=name)["SecondaryStatus"] != "Training":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    sm.stop_training_job(TrainingJobName=name)

    desc = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus", timeout=30)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert "Stopping" in [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    with pytest.raises(ClientError, match="ValidationException"):
        sm.stop_training_job(TrainingJobName=name)


@pytest.mark.parametrize(
    ("image", "hyperparameters", "expected"),
    [
        pytest.param(
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/my-team/trainer:1.0",
            {"sagemaker_program": '"train.py"'},
            "nor one of the project's own images",
            id="custom-ecr-image",
        ),
        pytest.param(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/no-such-image:1",
            {"sagemaker_program": '"train.py"'},
            "has no Dockerfile at include/images/no-such-image/Dockerfile",
            id="own-account-without-dockerfile",
        ),
        pytest.param(
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:0.23-1-cpu-py3",
            {"sagemaker_program": '"train.py"'},
            "tag 0.23-1-cpu-py3 of sagemaker-scikit-learn is not in the devstack's image catalogue",
            id="uncatalogued-tag",
        ),
    ],
)
def test_images_the_devstack_cannot_run_fail_with_a_client_error(
    sm: Any,
    s3: Any,
    bucket: str,
    unique_name: Any,
    image: str,
    hyperparameters: dict[str, str],
    expected: str,
) -> None:
    name = unique_name("train-image")
    put_text(s3, bucket, "data/train/data.csv", "1,2\n")
    sm.create_training_job(**training_request(name, bucket, hyperparameters=hyperparameters, image=image))

    desc = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")

    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith(f"ClientError: The devstack cannot run the image {image}: ")
    assert expected in desc["FailureReason"]


def test_xgboost_script_mode_trains_a_real_booster(sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    name = unique_name("train-xgb")
    script = """
import argparse, os
import numpy as np, xgboost as xgb
parser = argparse.ArgumentParser()
parser.add_argument("--num_round", type=int)
args = parser.parse_args()
rng = np.random.default_rng(0)
x = rng.normal(size=(200, 3)); y = (x[:, 0] > 0).astype(int)
dtrain = xgb.DMatrix(x, label=y)
booster = xgb.train({"objective": "binary:logistic", "eval_metric": "auc"}, dtrain, args.num_round,
                    evals=[(dtrain, "validation")])
booster.save_model(os.path.join(os.environ["SM_MODEL_DIR"], "xgboost-model"))
"""
    request = script_job(
        s3,
        bucket,
        name,
        script,
        {"num_round": "5"},
        image=XGBOOST_IMAGE,
        metrics=[{"Name": "validation:auc", "Regex": r".*\[[0-9]+\].*#011validation-auc:([-+]?[0-9]*\.?[0-9]+)"}],
    )
    sm.create_training_job(**request)

    desc = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus", timeout=120)

    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert "xgboost-model" in read_tarball(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])
    assert desc["FinalMetricDataList"][0]["MetricName"] == "validation:auc"
    assert desc["FinalMetricDataList"][0]["Value"] > 0.9


def test_create_time_errors(sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    name = unique_name("train-dup")
    request = script_job(s3, bucket, name, "print('hi')\n")
    sm.create_training_job(**request)
    with pytest.raises(ClientError) as duplicate:
        sm.create_training_job(**request)
    assert duplicate.value.response["Error"]["Code"] == "ResourceInUse"
    assert "a training job with this name already exists" in duplicate.value.response["Error"]["Message"]

    empty = training_request(unique_name("train-empty"), bucket, hyperparameters={})
    empty["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{bucket}/nothing/here"
    with pytest.raises(ClientError) as no_objects:
        sm.create_training_job(**empty)
    assert no_objects.value.response["Error"]["Code"] == "ValidationException"
    assert no_objects.value.response["Error"]["Message"].startswith(
        f'No S3 objects found under S3 URL "s3://{bucket}/nothing/here"'
    )

    with pytest.raises(ClientError) as unknown:
        sm.describe_training_job(TrainingJobName="does-not-exist")
    assert unknown.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Requested resource not found.",
    }

    bad = training_request("bad_name", bucket, hyperparameters={})
    with pytest.raises(ClientError) as pattern:
        sm.create_training_job(**bad)
    assert pattern.value.response["Error"]["Message"] == (
        "1 validation error detected: Value 'bad_name' at 'trainingJobName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    )
    wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")


def test_list_training_jobs_filters_sorts_and_pages(sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    prefix = unique_name("lst")
    names = [f"{prefix}-{i}" for i in range(3)]
    for name in names:
        sm.create_training_job(**script_job(s3, bucket, name, "print('x')\n"))
    for name in names:
        wait_for(lambda n=name: sm.describe_training_job(TrainingJobName=n), "TrainingJobStatus")

    first = sm.list_training_jobs(NameContains=prefix, SortBy="Name", SortOrder="Descending", MaxResults=2)
    assert [s["TrainingJobName"] for s in first["TrainingJobSummaries"]] == names[:0:-1]
    second = sm.list_training_jobs(
        NameContains=prefix, SortBy="Name", SortOrder="Descending", MaxResults=2, NextToken=first["NextToken"]
    )
    assert [s["TrainingJobName"] for s in second["TrainingJobSummaries"]] == [names[0]]
    assert "NextToken" not in second
    completed = sm.list_training_jobs(NameContains=prefix, StatusEquals="Completed")["TrainingJobSummaries"]
    assert len(completed) == 3
