# ruff: noqa: N803  (keyword names mirror the boto3 API)
"""Which attempt of a run-named SageMaker job a try works with, and how a resumed wait ends."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from botocore.exceptions import ClientError

from ml_lifecycle.operators.jobs import BASELINING, TRANSFORM, current_attempt, resumed_description


class FakeTransforms:
    """A SageMaker client that knows some transform jobs by name."""

    def __init__(self, **statuses: str) -> None:
        self.statuses = statuses

    def describe_transform_job(self, *, TransformJobName: str) -> dict[str, Any]:
        if TransformJobName not in self.statuses:
            error = {"Code": "ValidationException", "Message": f"Could not find job {TransformJobName}"}
            raise ClientError({"Error": error}, "DescribeTransformJob")
        status = self.statuses[TransformJobName]
        return {"TransformJobName": TransformJobName, "TransformJobStatus": status, "FailureReason": "OOM"}


def on_try(number: int) -> dict[str, Any]:
    return {"ti": SimpleNamespace(try_number=number)}


def name(number: int) -> str:
    return "score" if number == 1 else f"score-r{number}"


@pytest.mark.parametrize(
    ("statuses", "try_number", "expected"),
    [
        pytest.param({}, 1, (1, "score", False), id="first-try-starts-attempt-1"),
        pytest.param({"score": "InProgress"}, 2, (1, "score", True), id="retry-reattaches-to-a-running-job"),
        pytest.param({"score": "Completed"}, 3, (1, "score", True), id="retry-reuses-a-completed-job"),
        pytest.param({"score": "Failed"}, 2, (2, "score-r2", False), id="retry-after-a-failure-starts-the-next"),
        pytest.param({"score": "Failed", "score-r2": "InProgress"}, 3, (2, "score-r2", True), id="newest-attempt-wins"),
        pytest.param({"score": "Stopped"}, 1, (2, "score-r2", False), id="a-stopped-job-is-not-reused"),
        pytest.param({"score": "Failed"}, 4, (4, "score-r4", False), id="the-new-attempt-follows-the-try"),
    ],
)
def test_current_attempt(statuses, try_number, expected):
    attempt = current_attempt(FakeTransforms(**statuses), TRANSFORM, on_try(try_number), name)
    assert (attempt.number, attempt.name, attempt.description is not None) == expected


def test_an_error_other_than_not_found_is_raised():
    class Throttled:
        def describe_processing_job(self, **_: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Describe")

    with pytest.raises(ClientError, match="slow down"):
        current_attempt(Throttled(), BASELINING, on_try(1), name)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        pytest.param("Failed", "transform job score Failed: OOM", id="failed-names-the-reason"),
        pytest.param("InProgress", "stopped waiting for transform job score", id="still-running"),
    ],
)
def test_a_resumed_wait_fails_unless_the_job_completed(status, message):
    with pytest.raises(AirflowException, match=message):
        resumed_description(FakeTransforms(score=status), TRANSFORM, {"status": "success", "job_name": "score"})


def test_a_failed_jobs_reason_is_reported_with_credentials_masked():
    class Leaky(FakeTransforms):
        def describe_transform_job(self, *, TransformJobName: str) -> dict[str, Any]:
            return {**super().describe_transform_job(TransformJobName=TransformJobName),
                    "FailureReason": "ClientError: cannot connect as ml with password=hunter2x token: t0k"}  # fmt: skip

    with pytest.raises(AirflowException) as failure:
        resumed_description(Leaky(score="Failed"), TRANSFORM, {"status": "success", "job_name": "score"})
    assert (
        str(failure.value)
        == "transform job score Failed: ClientError: cannot connect as ml with password=*** token: ***"
    )


def test_a_resumed_wait_returns_the_completed_job():
    job, description = resumed_description(
        FakeTransforms(score="Completed"), TRANSFORM, {"status": "success", "job_name": "score"}
    )
    assert job == "score" and description["TransformJobStatus"] == "Completed"


def test_an_event_without_a_job_name_is_refused():
    with pytest.raises(AirflowException, match="without a job name"):
        resumed_description(FakeTransforms(), TRANSFORM, {"status": "success"})
