"""The training toolkit emulation: hyperparameter decoding, CLI rendering and SM_* variables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.sagemaker.toolkit import (
    TrainingLayout,
    decode_value,
    entry_point_type,
    split_hyperparameters,
    to_cmd_args,
    training_env,
)

# The worked example of the contract (checked there against the toolkit's own functions).
RAW = {
    "epochs": "10",
    "lr": "0.05",
    "use_gpu": "false",
    "layers": "[64, 32]",
    "opt": '{"name":"adam","beta":0.9}',
    "n": "3",
    "tag": "plain-text",
    "sagemaker_program": '"train.py"',
    "sagemaker_submit_directory": '"s3://bkt/job-1/source/sourcedir.tar.gz"',
    "sagemaker_mpi_enabled": "false",
    "_tuning_objective_metric": "validation:auc",
}


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        pytest.param("10", 10, id="int"),
        pytest.param("false", False, id="bool"),
        pytest.param('"xgb"', "xgb", id="json-string"),
        pytest.param("plain-text", "plain-text", id="not-json"),
        pytest.param("[1, 2]", [1, 2], id="list"),
    ],
)
def test_decode_value(raw: str, decoded: object) -> None:
    assert decode_value(raw) == decoded


def test_cli_rendering_matches_the_toolkit() -> None:
    user, reserved = split_hyperparameters({k: decode_value(v) for k, v in RAW.items()})

    assert to_cmd_args(user) == [
        "--epochs", "10", "--layers", "[64, 32]", "--lr", "0.05", "-n", "3",
        "--opt", "beta=0.9,name=adam", "--tag", "plain-text", "--use_gpu", "False",
    ]  # fmt: skip
    assert set(reserved) == {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_mpi_enabled",
        "_tuning_objective_metric",
    }


def test_sm_environment(tmp_path: Path) -> None:
    layout = TrainingLayout(tmp_path / "opt" / "ml")
    resource = {"current_host": "algo-1", "hosts": ["algo-1"], "current_instance_type": "ml.m5.xlarge"}
    user, _ = split_hyperparameters({k: decode_value(v) for k, v in RAW.items()})
    env = training_env(
        layout=layout,
        job_name="job-1",
        region="us-east-1",
        hyperparameters=RAW,
        input_data_config={"validation": {}, "train": {"ContentType": "text/csv"}},
        resource_config=resource,
        framework_module="sagemaker_sklearn_container.training:main",
        entry_point="train.py",
        module_dir="s3://bkt/job-1/source/sourcedir.tar.gz",
        user_args=to_cmd_args(user),
    )

    assert env["SM_CHANNELS"] == '["train","validation"]'
    assert env["SM_CHANNEL_TRAIN"] == str(layout.root / "input" / "data" / "train")
    assert env["SM_MODEL_DIR"] == str(layout.root / "model")
    assert env["SM_OUTPUT_DATA_DIR"] == str(layout.root / "output" / "data")
    assert env["SM_HP_USE_GPU"] == "false"
    assert env["SM_HP_OPT"] == '{"beta":0.9,"name":"adam"}'
    assert env["SM_HP_LAYERS"] == "[64,32]"
    assert env["SM_HP_TAG"] == "plain-text"
    assert "SM_HP_SAGEMAKER_PROGRAM" not in env
    assert "SM_HP__TUNING_OBJECTIVE_METRIC" not in env
    assert json.loads(env["SM_HPS"])["epochs"] == 10
    assert env["SM_FRAMEWORK_PARAMS"] == '{"sagemaker_mpi_enabled":false}'
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["SM_MODULE_NAME"] == "train"
    assert env["SM_MODULE_DIR"] == "s3://bkt/job-1/source/sourcedir.tar.gz"
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_HOSTS"] == '["algo-1"]'
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "ml.m5.xlarge"
    assert env["SM_NUM_GPUS"] == "0"
    assert int(env["SM_NUM_CPUS"]) >= 1
    assert env["SM_LOG_LEVEL"] == "20"
    training = json.loads(env["SM_TRAINING_ENV"])
    assert training["job_name"] == "job-1"
    assert training["hyperparameters"]["lr"] == 0.05
    assert training["user_args"][:2] == ["--epochs", "10"]
    assert env["SAGEMAKER_REGION"] == "us-east-1"


@pytest.mark.parametrize(
    ("files", "program", "kind"),
    [
        pytest.param([], "train.py", "python_program", id="program"),
        pytest.param([], "run.sh", "command", id="shell"),
        pytest.param(["setup.py"], "train.py", "python_package", id="package"),
        pytest.param([], "train", "command", id="other"),
    ],
)
def test_entry_point_type(tmp_path: Path, files: list[str], program: str, kind: str) -> None:
    for name in files:
        (tmp_path / name).write_text("")
    assert entry_point_type(tmp_path, program).kind == kind
