"""Container path mapping, S3 key placement and image URI recognition."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.sagemaker.awsio import relative_key
from devstack.sagemaker.images import parse_image_uri
from devstack.sagemaker.jobs import is_python
from devstack.sagemaker.paths import PathMapper


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("/opt/ml/processing/input", "/sb/opt/ml/processing/input", id="path"),
        pytest.param("--input=/opt/ml/processing/in", "--input=/sb/opt/ml/processing/in", id="flag-value"),
        pytest.param("/opt/ml", "/sb/opt/ml", id="root"),
        pytest.param("a:/opt/ml/x,/opt/ml/y", "a:/sb/opt/ml/x,/sb/opt/ml/y", id="several"),
        pytest.param("/data/opt/ml/x", "/data/opt/ml/x", id="not-a-prefix"),
        pytest.param("/opt/mlx", "/opt/mlx", id="other-dir"),
        pytest.param("python3", "python3", id="untouched"),
    ],
)
def test_rewrite(text: str, expected: str) -> None:
    assert PathMapper(Path("/sb")).rewrite(text) == expected


def test_map_path_refuses_paths_outside_opt_ml() -> None:
    mapper = PathMapper(Path("/sb"))
    assert mapper.map_path("/opt/ml/processing/output/") == Path("/sb/opt/ml/processing/output")
    with pytest.raises(ValueError, match="not under /opt/ml"):
        mapper.map_path("/etc/passwd")
    with pytest.raises(ValueError, match="must not contain"):
        mapper.map_path("/opt/ml/../../etc")


@pytest.mark.parametrize(
    ("prefix", "key", "expected"),
    [
        pytest.param("data/train/", "data/train/a.csv", "a.csv", id="slash-prefix"),
        pytest.param("data/train", "data/train/sub/a.csv", "sub/a.csv", id="directory-prefix"),
        pytest.param("data/train.csv", "data/train.csv", "train.csv", id="single-object"),
        pytest.param("data/train", "data/train_x.csv", "train_x.csv", id="partial-name"),
        pytest.param("", "a/b.csv", "a/b.csv", id="whole-bucket"),
    ],
)
def test_relative_key(prefix: str, key: str, expected: str) -> None:
    assert relative_key(prefix, key) == expected


@pytest.mark.parametrize(
    ("uri", "family"),
    [
        pytest.param(
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3", "sklearn", id="sklearn"
        ),
        pytest.param("246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1", "xgboost", id="xgboost"),
        pytest.param(
            "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.1.0-gpu-py310", "pytorch", id="pytorch"
        ),
        pytest.param(
            "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-training:"
            "2.1.0-transformers4.36.0-gpu-py310-cu121-ubuntu20.04",
            "huggingface",
            id="huggingface",
        ),
        pytest.param(
            "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.13.0-cpu-py310", "tensorflow", id="tf"
        ),
        pytest.param("811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1", "xgboost-legacy", id="legacy-xgboost"),
        pytest.param(
            "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer",
            "model-monitor",
            id="monitor",
        ),
        pytest.param(
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            None,
            id="wrong-account",
        ),
        pytest.param("111122223333.dkr.ecr.us-east-1.amazonaws.com/team/trainer:1.0", None, id="custom"),
        pytest.param("python:3.11", None, id="docker-hub"),
    ],
)
def test_image_families(uri: str, family: str | None) -> None:
    assert parse_image_uri(uri).family == family


def test_framework_version() -> None:
    image = parse_image_uri("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3")
    assert image.is_framework
    assert image.framework_version == "1.2-1"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        pytest.param("python3", True, id="python3"),
        pytest.param("/usr/local/bin/python3.11", True, id="absolute"),
        pytest.param("python", True, id="python"),
        pytest.param("/bin/bash", False, id="bash"),
        pytest.param("pythonista", False, id="lookalike"),
    ],
)
def test_is_python(command: str, expected: bool) -> None:
    assert is_python(command) is expected
