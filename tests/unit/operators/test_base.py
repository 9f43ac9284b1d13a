"""The one reading of SageMaker's "no such resource" and "name taken" answers."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from ml_lifecycle.operators.base import describe_or_none, is_in_use, is_not_found


def error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Describe")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(error("ValidationException", "Requested resource not found."), True, id="unknown-training-job"),
        pytest.param(error("ValidationException", 'Could not find endpoint "arn:x".'), True, id="unknown-endpoint"),
        pytest.param(error("ValidationException", "ModelPackage x does not exist."), True, id="unknown-package"),
        pytest.param(
            error("ResourceNotFound", "Amazon SageMaker can't find a tuning job called x."), True, id="unknown-tuning"
        ),
        pytest.param(
            error("ValidationException", "1 validation error detected: Value 'x' at 'name' failed to satisfy"),
            False,
            id="bad-input-is-not-absence",
        ),
        pytest.param(error("ThrottlingException", "Rate exceeded"), False, id="throttling"),
        pytest.param(ValueError("not found"), False, id="not-a-client-error"),
    ],
)
def test_is_not_found(exc, expected):
    assert is_not_found(exc) is expected


def test_is_in_use():
    assert is_in_use(error("ResourceInUse", "Job name in use"))
    assert not is_in_use(error("ValidationException", "Job name in use"))


def test_describe_or_none_returns_none_only_for_absence():
    def missing(**_):
        raise error("ValidationException", "Requested resource not found.")

    def throttled(**_):
        raise error("ThrottlingException", "Rate exceeded")

    assert describe_or_none(missing, TrainingJobName="x") is None
    assert describe_or_none(lambda **kw: kw, TrainingJobName="x") == {"TrainingJobName": "x"}
    with pytest.raises(ClientError, match="Rate exceeded"):
        describe_or_none(throttled, TrainingJobName="x")
