"""Run-named SageMaker jobs: the one routine that re-attaches a retry to its run's job.

Every operator that starts a SageMaker job (preprocessing, training, tuning, evaluation, data validation,
batch transform, data-quality baselining) names the job after the run and the attempt (``...-r<n>`` from
the second attempt on), so a retry finds the job of an earlier try in SageMaker itself: it re-attaches to
one that runs or has completed, and starts the next attempt after one that failed (:func:`find_attempt`).

Why not Airflow 3.3's ``airflow.sdk.ResumableJobMixin`` (re-attach through the task state store)? It keeps
the job's id in Airflow's metadata database after the submission, so a worker that dies between the
``Create*`` call and the store write leaves a retry that submits a duplicate (the mixin documents this
window); its ``poll_until_complete`` holds the worker slot, where these operators defer; and a cleared task
or a run created again (``airflow dags test``) starts with an empty store. A name derived from the run
closes all three: it is known before the job exists, SageMaker refuses a second ``Create*`` of it
(``ResourceInUse``, which joins the job), and SageMaker is the one record of which jobs the run started.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import AirflowException

from ml_lifecycle.operators.base import JOB_COMPLETED, JOB_FAILED, aws_connection, describe_or_none, failure_reason

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
    from airflow.sdk import Context

    from ml_lifecycle.cache import CacheRecord
    from ml_lifecycle.config import Config


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
        return describe_or_none(getattr(client, self.describe_method), **{self.name_key: name})


TRANSFORM = JobKind("transform", "Transform", "describe_transform_job", "TransformJobName", "TransformJobStatus")
BASELINING = JobKind("baselining", "Processing", "describe_processing_job", "ProcessingJobName", "ProcessingJobStatus")
VALIDATION = JobKind("validation", "Processing", "describe_processing_job", "ProcessingJobName", "ProcessingJobStatus")


@dataclass(frozen=True)
class Attempt:
    """The job a try works with: an earlier attempt's to re-attach to (``description`` set), or a new one.

    ``previous`` is the newest earlier attempt when it failed or was stopped (``(name, description)``).
    """

    number: int
    name: str
    description: dict[str, Any] | None
    previous: tuple[str, dict[str, Any]] | None = None


def try_number(context: Context) -> int:
    """The running try of the task (1 outside a task instance)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    return int(getattr(ti, "try_number", 1) or 1)


def find_attempt(
    describe: Callable[[str], dict[str, Any] | None],
    job_name: Callable[[int], str],
    status_key: str,
    try_number: int,
    *,
    scan_past: int = 0,
) -> Attempt:
    """Look up the run's attempts of one job and choose the one this try works with.

    The attempts ``1..try_number`` are looked up, and past ``try_number`` (up to ``scan_past`` more) as long
    as they keep existing: a run that was deleted and created again (``dags test``) or whose try count was
    reset starts again at try 1 although later tries' jobs exist. The newest attempt that exists is
    re-attached to unless it failed or was stopped; otherwise a new attempt is named: 1 when there is none,
    else the later of this try and the one after the failed one.

    :param describe: the job's description by name, ``None`` when SageMaker has no such job
    :param job_name: the job's name for an attempt number
    :param status_key: the description's status key
    :param try_number: the running try of the task
    :param scan_past: how many attempts past ``try_number`` may exist
    """
    latest: tuple[int, str, dict[str, Any]] | None = None
    number = 1
    while number <= try_number + scan_past:
        name = job_name(number)
        if (description := describe(name)) is not None:
            latest = (number, name, description)
        elif number >= try_number:
            break
        number += 1
    if latest is not None and latest[2][status_key] not in JOB_FAILED:
        return Attempt(*latest)
    number = 1 if latest is None else max(try_number, latest[0] + 1)
    return Attempt(number, job_name(number), None, previous=None if latest is None else latest[1:])


def current_attempt(client: Any, kind: JobKind, context: Context, job_name: Callable[[int], str]) -> Attempt:
    """:func:`find_attempt` for a job of ``kind`` and the task's try.

    :param client: the SageMaker client
    :param kind: the kind of job
    :param context: the task's context (its ``ti.try_number``)
    :param job_name: the job's name for an attempt number
    """
    return find_attempt(
        lambda name: kind.describe_or_none(client, name), job_name, kind.status_key, try_number(context)
    )


def completed(kind: JobKind, name: str, description: dict[str, Any]) -> bool:
    """``True`` once the job has completed, ``False`` while it runs; raises, with its reason, when it failed."""
    status = description[kind.status_key]
    if status == JOB_COMPLETED:
        return True
    if status in JOB_FAILED:
        raise AirflowException(f"{kind.label} job {name} {status}: {failure_reason(description)}")
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
            **aws_connection(operator),
        ),
        method_name="execute_complete",
        kwargs=kwargs,
        timeout=dt.timedelta(seconds=interval * attempts + 60),
    )
    raise AssertionError("defer() returns only by raising")  # pragma: no cover


def completed_or_defer(
    operator: Any, kind: JobKind, name: str, description: dict[str, Any], cfg: Config, *, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """``description`` once the job has completed; while it runs, defer (polls from the operator's
    :meth:`~ml_lifecycle.operators.base.PollingOperatorBase.job_polling`).

    :param operator: the waiting task (a :class:`~ml_lifecycle.operators.base.PollingOperatorBase`)
    :param kind: the kind of job
    :param name: the job's name
    :param description: the job's description
    :param cfg: the environment's config
    :param kwargs: passed to ``execute_complete``
    """
    if completed(kind, name, description):
        return description
    interval, attempts = operator.job_polling(cfg)
    defer_until_done(operator, kind, name, interval=interval, attempts=attempts, kwargs=kwargs)


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


# ---------------------------------------------------------------------------------------------- step cache


def s3_client(operator: AwsBaseOperator) -> Any:
    """An S3 client with ``operator``'s AWS connection settings (for the step cache's records)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    settings = aws_connection(operator)
    return S3Hook(
        aws_conn_id=settings["aws_conn_id"],
        region_name=settings["region_name"],
        verify=settings["verify"],
        config=settings["botocore_config"],
    ).conn


def cache_reuse(
    operator: Any, client: Any, cfg: Config, *, dag_id: str, step: str, key: str
) -> tuple[CacheRecord, str] | None:
    """The record of a completed step with cache key ``key`` whose outputs all exist, with its URI; else ``None``.

    Logs the outcome: the reuse (job, run, key), no record, or a record whose outputs are gone.

    :param operator: the step's task (for its log)
    :param client: S3 client
    :param cfg: the environment's config
    :param dag_id: the DAG
    :param step: the step's job kind
    :param key: the step's cache key
    """
    from ml_lifecycle.cache import CacheRecord, missing_outputs, record_uri
    from ml_lifecycle.data.s3 import get_json_or_none

    uri = record_uri(cfg.storage.bucket, cfg.storage.prefixes.cache, dag_id=dag_id, step=step, key=key)
    record = CacheRecord.from_dict(get_json_or_none(client, uri), key=key)
    if record is None:
        operator.log.info("Step cache: no completed %s step with cache key %s (%s); running it", step, key, uri)
        return None
    if missing := missing_outputs(client, record.outputs):
        operator.log.warning(
            "Step cache: %s job %s of run %s matches cache key %s but its outputs are gone (%s); running the step",
            step,
            record.job_name,
            record.run_id,
            key,
            ", ".join(missing),
        )
        return None
    operator.log.info(
        "Step cache: reused outputs of %s job %s from run %s, cache key %s (record %s); no new job started. "
        "Trigger the run with force=true to run the step again.",
        step,
        record.job_name,
        record.run_id,
        key,
        uri,
    )
    return record, uri


def cache_remember(
    operator: Any,
    client: Any,
    cfg: Config,
    *,
    dag_id: str,
    run_id: str,
    step: str,
    key: str,
    job_name: str,
    result: dict[str, Any],
    outputs: list[str],
) -> str | None:
    """Record a completed step under ``key`` once its outputs exist; returns the record's URI (``None`` if not).

    A failure to write is logged, never raised: the step itself completed.

    :param operator: the step's task (for its log)
    :param client: S3 client
    :param cfg: the environment's config
    :param dag_id: the DAG
    :param run_id: the run whose job completed
    :param step: the step's job kind
    :param key: the step's cache key
    :param job_name: the completed job
    :param result: the step's result (XCom) that a reuse returns
    :param outputs: the S3 outputs a reuse needs (checked now and on every reuse)
    """
    from ml_lifecycle.cache import missing_outputs, new_record, record_uri
    from ml_lifecycle.data.s3 import put_json

    uri = record_uri(cfg.storage.bucket, cfg.storage.prefixes.cache, dag_id=dag_id, step=step, key=key)
    try:
        if missing := missing_outputs(client, outputs):
            operator.log.warning(
                "Step cache: not recording %s job %s, outputs missing: %s", step, job_name, ", ".join(missing)
            )
            return None
        record = new_record(
            key=key, dag_id=dag_id, step=step, run_id=run_id, job_name=job_name, result=result, outputs=outputs
        )
        put_json(client, uri, record.as_dict(), **cfg.storage.encryption())
    except Exception as exc:  # the job completed; a cache that cannot be written costs only a later re-run
        operator.log.warning("Step cache: could not record %s job %s at %s: %s", step, job_name, uri, exc)
        return None
    operator.log.info("Step cache: recorded %s job %s under cache key %s (%s)", step, job_name, key, uri)
    return uri


def _job_key_uri(cfg: Config, dag_id: str, step: str, job_name: str) -> str:
    """Where the cache key of the job ``job_name`` is noted when the job is created."""
    return f"s3://{cfg.storage.bucket}/{cfg.storage.prefixes.cache.strip('/')}/{dag_id}/{step}/jobs/{job_name}.json"


def cache_note_job(client: Any, cfg: Config, *, dag_id: str, step: str, job_name: str, key: str) -> None:
    """Note, before the job is created, the cache key of its inputs; its completion records it under that key.

    The key cannot travel with the task: a deferral's resume (and ``dag.test``'s) may carry only the
    trigger's event, and a retry that re-attaches must record the key of the inputs the job started with.
    """
    from ml_lifecycle.data.s3 import put_json

    put_json(
        client,
        _job_key_uri(cfg, dag_id, step, job_name),
        {"key": key, "job_name": job_name},
        **cfg.storage.encryption(),
    )


def cache_job_key(client: Any, cfg: Config, *, dag_id: str, step: str, job_name: str) -> str | None:
    """The cache key noted when ``job_name`` was created (``None`` when none was noted)."""
    from ml_lifecycle.data.s3 import get_json_or_none

    noted = get_json_or_none(client, _job_key_uri(cfg, dag_id, step, job_name))
    key = noted.get("key") if isinstance(noted, dict) else None
    return key if isinstance(key, str) and key else None
