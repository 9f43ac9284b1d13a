"""Server-side request validation and the response contract checker."""

from __future__ import annotations

import botocore.session
import pytest

from devstack.contract import check_output
from devstack.sagemaker.errors import SageMakerError
from devstack.sagemaker.process import MetricTracker, stderr_excerpt
from devstack.sagemaker.validation import validate_request

MODEL = botocore.session.get_session().get_service_model("sagemaker")


def create_group_error(params: dict[str, object]) -> SageMakerError:
    with pytest.raises(SageMakerError) as caught:
        validate_request(MODEL.operation_model("CreateModelPackageGroup").input_shape, params)
    return caught.value


def test_pattern_and_length_messages_follow_aws() -> None:
    error = create_group_error({"ModelPackageGroupName": "x" * 64})
    assert error.code == "ValidationException"
    assert error.message.startswith("2 validation errors detected: ")
    assert f"Value '{'x' * 64}' at 'modelPackageGroupName' failed to satisfy constraint: " in error.message
    assert "Member must have length less than or equal to 63" in error.message
    assert "Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}" in error.message


def test_missing_required_and_nested_enum() -> None:
    shape = MODEL.operation_model("CreateTrainingJob").input_shape
    with pytest.raises(SageMakerError) as caught:
        validate_request(
            shape,
            {
                "TrainingJobName": "ok",
                "AlgorithmSpecification": {"TrainingInputMode": "Sideways"},
                "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
                "ResourceConfig": {"VolumeSizeInGB": 1},
                "StoppingCondition": {},
            },
        )
    message = caught.value.message
    assert "Value null at 'roleArn' failed to satisfy constraint: Member must not be null" in message
    assert "Value 'Sideways' at 'algorithmSpecification.trainingInputMode'" in message
    assert "Member must satisfy enum value set: [Pipe, File, FastFile]" in message


def test_wrong_type_is_a_serialization_error() -> None:
    error = create_group_error({"ModelPackageGroupName": 5})
    assert error.code == "SerializationException"


def test_contract_checker_reports_unknown_members_types_enums_and_missing_required() -> None:
    operation = MODEL.operation_model("DescribeTrainingJob")
    problems = check_output(
        operation,
        {
            "TrainingJobName": "j",
            "TrainingJobArn": "arn",
            "TrainingJobStatus": "Running",
            "SecondaryStatus": "Training",
            "StoppingCondition": {"MaxRuntimeInSeconds": "60"},
            "CreationTime": "yesterday",
            "Surprise": 1,
        },
    )
    found = {(p.path, p.problem.split(" ")[0]) for p in problems}
    assert ("TrainingJobStatus", "'Running'") in found
    assert ("StoppingCondition.MaxRuntimeInSeconds", "expected") in found
    assert ("CreationTime", "expected") in found
    assert ("Surprise", "not") in found
    assert ("ModelArtifacts", "required") in found
    assert check_output(MODEL.operation_model("StopTrainingJob"), b"{}") == []


def test_metric_tracker_keeps_the_last_float_match_and_skips_non_numbers() -> None:
    tracker = MetricTracker(
        [
            {"Name": "auc", "Regex": r"auc:(\S+)"},
            {"Name": "loss", "Regex": r"loss=(\S+)"},
            {"Name": "none", "Regex": "x"},
        ]
    )
    tracker.feed("[0]#011auc:0.5", 1.0)
    tracker.feed("[1]#011auc:0.75", 2.0)
    tracker.feed("[2]#011auc:nan-ish", 3.0)
    tracker.feed("loss=0.1", 4.0)
    assert tracker.final_metric_data() == [
        {"MetricName": "auc", "Value": 0.75, "Timestamp": 2.0},
        {"MetricName": "loss", "Value": 0.1, "Timestamp": 4.0},
    ]


def test_stderr_excerpt_keeps_the_newest_lines() -> None:
    lines = [f"line {i}" for i in range(200)]
    excerpt = stderr_excerpt(lines, limit=30)
    assert excerpt.endswith("line 199")
    assert len(excerpt) <= 30
