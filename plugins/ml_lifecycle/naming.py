"""Names, windows and S3 keys that derive from the DAG run, never from the clock.

Every SageMaker job name, S3 key and resource name the pipeline writes is a pure function of the run: the
DAG id, the run id and the run's *training window*. A retried or cleared task therefore computes the same
names as the attempt before it and re-attaches to (or overwrites) what that attempt started, and a
backfilled interval writes under its own prefix.

The training window
-------------------
Airflow 3.3 cron schedules (``CronTriggerTimetable``) and manual, asset-triggered and backfill runs all have
a zero-length data interval, so the period to train on cannot be read from ``data_interval_start/end``. It
is derived from the run's anchor (its logical date; ``run_after`` for asset-triggered runs, which have no
logical date) and the typed ``window_days`` param::

    end   = anchor truncated to 00:00 UTC        (exclusive)
    start = end - window_days days               (inclusive)

The window's key (``20260101-20260301``) names the dataset prefix, so one interval has one dataset.

S3 layout (``<x>`` = configured prefix)::

    s3://<bucket>/<datasets>/<dag_id>/<window>/                          extracted Parquet + manifest
    s3://<bucket>/<jobs>/<dag_id>/<window>/<run_hash>/<step>/...         job inputs and outputs
    s3://<bucket>/<reports>/<dag_id>/<window>/<run_hash>/<report>/...    validation, evaluation, gate

Job names: ``<name_prefix>-<kind>-<window end YYYYMMDD>-<run_hash>[-r<try>]``, at most 63 characters (32 for
tuning jobs, whose child training jobs append 13 characters); when too long the date is dropped first.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

SAGEMAKER_NAME_MAX = 63
TUNING_JOB_NAME_MAX = 32
RUN_HASH_LENGTH = 8
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
_INVALID = re.compile(r"[^a-zA-Z0-9-]+")

#: SageMaker job kinds and the longest name SageMaker accepts for each.
JOB_KINDS: dict[str, int] = {
    "preprocess": SAGEMAKER_NAME_MAX,
    "validate": SAGEMAKER_NAME_MAX,
    "train": SAGEMAKER_NAME_MAX,
    "tune": TUNING_JOB_NAME_MAX,
    "evaluate": SAGEMAKER_NAME_MAX,
}


class NamingError(ValueError):
    """A name or window cannot be derived from the run (bad anchor, window or name part)."""


@dataclass(frozen=True)
class TrainingWindow:
    """The half-open period ``[start, end)`` of data a run trains on, both at 00:00 UTC."""

    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def key(self) -> str:
        """``YYYYMMDD-YYYYMMDD`` (start inclusive, end exclusive): the interval's S3 key segment."""
        return f"{self.start:%Y%m%d}-{self.end:%Y%m%d}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "key": self.key,
            "days": self.days,
        }


def training_window(anchor: datetime, window_days: int) -> TrainingWindow:
    """The window of ``window_days`` days that ends at 00:00 UTC of ``anchor``'s day.

    :param anchor: the run's logical date (or ``run_after``); must be timezone-aware
    :param window_days: length of the window in days, at least 1
    :raises NamingError: naive anchor or a window length below 1
    """
    if anchor.tzinfo is None or anchor.utcoffset() is None:
        raise NamingError(f"the run anchor {anchor!r} has no timezone; Airflow dates are always UTC-aware")
    if isinstance(window_days, bool) or not isinstance(window_days, int) or window_days < 1:
        raise NamingError(f"window_days must be a whole number of days >= 1, got {window_days!r}")
    end = anchor.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return TrainingWindow(start=end - timedelta(days=window_days), end=end)


def run_anchor(context: Any) -> datetime:
    """The instant a run is *for*: its logical date, else (asset-triggered runs) its ``run_after``."""
    logical_date = context.get("logical_date")
    if logical_date is not None:
        return logical_date
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if run_after is None:
        raise NamingError("the run has neither a logical date nor a run_after date; cannot derive its window")
    return run_after


def run_hash(dag_id: str, run_id: str, length: int = RUN_HASH_LENGTH) -> str:
    """A short, stable hex digest of the run identity, unique per run for naming purposes."""
    return hashlib.sha256(f"{dag_id}\x00{run_id}".encode()).hexdigest()[:length]


def sagemaker_name(*parts: str, max_len: int = SAGEMAKER_NAME_MAX) -> str:
    """Join ``parts`` into a SageMaker-safe name (``[a-zA-Z0-9](-*[a-zA-Z0-9])*``, at most ``max_len``).

    Characters outside ``[a-zA-Z0-9-]`` become ``-``, runs of ``-`` collapse, and a name that is still too
    long is cut from the *front* part, so the distinguishing tail (hash, try) survives.

    :raises NamingError: nothing usable is left
    """
    cleaned = [_INVALID.sub("-", p).strip("-") for p in parts]
    cleaned = [re.sub("-{2,}", "-", p) for p in cleaned if p]
    if not cleaned:
        raise NamingError(f"no usable characters in name parts {parts!r}")
    name = "-".join(cleaned)
    if len(name) > max_len:
        tail = "-".join(cleaned[1:])
        room = max_len - len(tail) - 1
        if room < 1:
            raise NamingError(f"name parts {parts!r} cannot fit in {max_len} characters")
        name = f"{cleaned[0][:room].rstrip('-')}-{tail}"
    if not _SAGEMAKER_NAME.match(name):
        raise NamingError(f"derived name {name!r} is not a valid SageMaker name")
    return name


@dataclass(frozen=True)
class RunPlan:
    """Everything a run names: its window, job names and S3 locations.

    Build it with :meth:`from_context` inside a task (or :meth:`create` in tests); it is cheap and pure, so
    every task of a run computes the same plan.
    """

    dag_id: str
    run_id: str
    window: TrainingWindow
    bucket: str
    name_prefix: str
    datasets_prefix: str = "datasets"
    jobs_prefix: str = "jobs"
    reports_prefix: str = "reports"

    @classmethod
    def create(
        cls, cfg: Config, *, dag_id: str, run_id: str, anchor: datetime, window_days: int | None = None
    ) -> RunPlan:
        """Plan for a run given explicitly (dag id, run id, anchor date, window length)."""
        days = cfg.training.window_days if window_days is None else window_days
        prefixes = cfg.storage.prefixes
        return cls(
            dag_id=dag_id,
            run_id=run_id,
            window=training_window(anchor, days),
            bucket=cfg.storage.bucket,
            name_prefix=cfg.sagemaker.name_prefix,
            datasets_prefix=prefixes.datasets,
            jobs_prefix=prefixes.jobs,
            reports_prefix=prefixes.reports,
        )

    @classmethod
    def from_context(cls, context: Any, cfg: Config) -> RunPlan:
        """Plan for the running task's DAG run (``window_days`` from the run's params, else config)."""
        params = context.get("params") or {}
        window_days = params.get("window_days")
        if window_days is not None:
            try:
                window_days = int(window_days)
            except (TypeError, ValueError):
                raise NamingError(f"param window_days must be an integer, got {window_days!r}") from None
        return cls.create(
            cfg,
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            anchor=run_anchor(context),
            window_days=window_days,
        )

    @property
    def run_hash(self) -> str:
        return run_hash(self.dag_id, self.run_id)

    # ---------------------------------------------------------------------------------------------- names

    def job_name(self, kind: str, try_number: int = 1) -> str:
        """Deterministic job name for ``kind`` in this run; tries after the first get ``-r<try>``.

        :param kind: one of :data:`JOB_KINDS`
        :param try_number: the task try that creates the job (1 = no suffix)
        """
        if kind not in JOB_KINDS:
            raise NamingError(f"unknown job kind {kind!r}; expected one of {sorted(JOB_KINDS)}")
        max_len = JOB_KINDS[kind]
        suffix = [f"r{try_number}"] if try_number > 1 else []
        date = f"{self.window.end:%Y%m%d}"
        full = [self.name_prefix, kind, date, self.run_hash, *suffix]
        if len("-".join(full)) <= max_len:
            return sagemaker_name(*full, max_len=max_len)
        return sagemaker_name(self.name_prefix, kind, self.run_hash, *suffix, max_len=max_len)

    # ----------------------------------------------------------------------------------------- locations

    @property
    def dataset_uri(self) -> str:
        """Prefix of the interval's extracted dataset (shared by every run over the same window)."""
        return f"s3://{self.bucket}/{self.datasets_prefix}/{self.dag_id}/{self.window.key}/"

    def job_uri(self, step: str, *parts: str) -> str:
        """``s3://<bucket>/<jobs>/<dag_id>/<window>/<run_hash>/<step>/<parts...>``."""
        tail = "/".join(p.strip("/") for p in (step, *parts) if p)
        return f"s3://{self.bucket}/{self.jobs_prefix}/{self.dag_id}/{self.window.key}/{self.run_hash}/{tail}"

    def report_uri(self, report: str, *parts: str) -> str:
        """``s3://<bucket>/<reports>/<dag_id>/<window>/<run_hash>/<report>/<parts...>``."""
        tail = "/".join(p.strip("/") for p in (report, *parts) if p)
        return f"s3://{self.bucket}/{self.reports_prefix}/{self.dag_id}/{self.window.key}/{self.run_hash}/{tail}"

    def as_dict(self) -> dict[str, Any]:
        """Small JSON summary for XCom and logs."""
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "run_hash": self.run_hash,
            "window": self.window.as_dict(),
            "dataset_uri": self.dataset_uri,
            "jobs_uri": self.job_uri(""),
            "reports_uri": self.report_uri(""),
            "job_names": {kind: self.job_name(kind) for kind in JOB_KINDS},
        }
