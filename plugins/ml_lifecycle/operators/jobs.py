"""Run-named SageMaker jobs that a task starts once, waits on deferred, and re-attaches to on a retry.

The operators that start such a job (batch transform, data-quality baselining) name it after the run and
the attempt (``...-r<n>`` from the second attempt on), so a retry finds the job of an earlier try: it
re-attaches to one that runs or has completed, and starts the next attempt after one that failed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import AirflowException

from ml_lifecycle.operators.deploy import is_not_found

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
    from airflow.sdk import Context

FAILED = frozenset({"Failed", "Stopped"})


@dataclass(frozen=True)
class JobKind:
    """How one kind of SageMaker job is described, waited on and named in messages."""

    label: str  #: in messages: "<label> job <name> ..."
    trigger_type: str  #: ``job_type`` of the provider's ``SageMakerTrigger``
    describe_method: str  #: the SageMaker client's describe call
    name_key: str  #: request (and response) key of the job's name
    status_key: str  #: response key of the job's status

    def describe(self, client: Any, name: str) -> dict[str, Any]:
        return getattr(client, self.describe_method)(**{self.name_key: name})

    def describe_or_none(self, client: Any, name: str) -> dict[str, Any] | None:
        """The job's description, or ``None`` when SageMaker has no job of that name."""
        try:
            return self.describe(client, name)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise


TRANSFORM = JobKind("transform", "Transform", "describe_transform_job", "TransformJobName", "TransformJobStatus")
BASELINING = JobKind("baselining", "Processing", "describe_processing_job", "ProcessingJobName", "ProcessingJobStatus")


@dataclass(frozen=True)
class Attempt:
    """The job a try works with: an earlier attempt's to re-attach to (``description`` set), or a new one."""

    number: int
    name: str
    description: dict[str, Any] | None


def current_attempt(client: Any, kind: JobKind, context: Context, job_name: Callable[[int], str]) -> Attempt:
    """Look up attempts ``1..try_number`` of the run's job and choose the one this try works with.

    The newest attempt that exists is re-attached to unless it failed or was stopped; otherwise a new
    attempt is named: 1 when there is none, else the later of this try and the one after the failed one.

    :param client: the SageMaker client
    :param kind: the kind of job
    :param context: the task's context (its ``ti.try_number``)
    :param job_name: the job's name for an attempt number
    """
    try_number = int(getattr(context["ti"], "try_number", 1) or 1)
    latest: Attempt | None = None
    for number in range(1, try_number + 1):
        name = job_name(number)
        if (description := kind.describe_or_none(client, name)) is not None:
            latest = Attempt(number, name, description)
    if latest is not None and latest.description[kind.status_key] not in FAILED:  # type: ignore[index]
        return latest
    number = 1 if latest is None else max(try_number, latest.number + 1)
    return Attempt(number, job_name(number), None)


def completed(kind: JobKind, name: str, description: dict[str, Any]) -> bool:
    """``True`` once the job has completed, ``False`` while it runs; raises, with its reason, when it failed."""
    status = description[kind.status_key]
    if status == "Completed":
        return True
    if status in FAILED:
        raise AirflowException(f"{kind.label} job {name} {status}: {description.get('FailureReason')}")
    return False


def defer_until_done(
    operator: AwsBaseOperator,
    kind: JobKind,
    name: str,
    *,
    interval: float,
    attempts: int,
    kwargs: dict[str, Any],
) -> NoReturn:
    """Hand the wait for the job to the triggerer; the task resumes in ``execute_complete(**kwargs)``.

    :param operator: the waiting task (its AWS connection settings go to the trigger)
    :param kind: the kind of job
    :param name: the job's name
    :param interval: seconds between polls (whole seconds for the trigger)
    :param attempts: polls before the wait gives up (the deferral times out a minute after)
    :param kwargs: passed to ``execute_complete``
    """
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    operator.defer(
        trigger=SageMakerTrigger(
            job_name=name,
            job_type=kind.trigger_type,
            waiter_delay=int(interval),
            waiter_max_attempts=attempts,
            aws_conn_id=operator.aws_conn_id,
            region_name=operator.region_name,
            verify=operator.verify,
            botocore_config=operator.botocore_config,
        ),
        method_name="execute_complete",
        kwargs=kwargs,
        timeout=dt.timedelta(seconds=interval * attempts + 60),
    )
    raise AssertionError("defer() returns only by raising")  # pragma: no cover


def resumed_description(client: Any, kind: JobKind, event: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """``(name, description)`` of the job a trigger event reports on; raises unless the job has completed.

    :param client: the SageMaker client
    :param kind: the kind of job
    :param event: the trigger's event
    """
    event = validate_execute_complete_event(event)
    name = event.get("job_name")
    if not name:
        raise AirflowException(f"trigger event without a job name: {event}")
    description = kind.describe(client, name)
    if not completed(kind, name, description):
        raise AirflowException(
            f"stopped waiting for {kind.label} job {name} ({description[kind.status_key]}); a retry re-attaches to it"
        )
    return name, description
