"""Pieces shared by the job kinds: the subprocess environment, running-job handles, interpreter mapping."""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.sagemaker.aws import DUMMY_CREDENTIALS

if TYPE_CHECKING:
    from devstack.sagemaker.process import JobProcess
    from devstack.sagemaker.service import SageMakerService

_PYTHON = re.compile(r"^python(?:\d+(?:\.\d+)?)?$")

#: FailureReason of jobs that were running when the service process went away.
RESTART_FAILURE = (
    "InternalServerError: The devstack SageMaker service stopped while this job was running; "
    "the job's process was lost. Create a new job to run it again."
)


def is_python(command: str) -> bool:
    """Whether a container command names a Python interpreter (``python3``, ``/usr/bin/python3.11``...)."""
    return bool(_PYTHON.match(Path(command).name))


def job_environment(service: SageMakerService, extra: dict[str, str]) -> dict[str, str]:
    """Return the environment of a job subprocess.

    The service's own ``AWS_*`` variables are dropped; the job talks to the local AWS endpoint with dummy
    credentials (boto3 honours ``AWS_ENDPOINT_URL``; the training toolkit reads ``S3_ENDPOINT_URL``) and to
    this service for SageMaker.

    :param service: the service.
    :param extra: job-specific variables, applied last.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": service.region,
            "AWS_REGION": service.region,
            "AWS_ENDPOINT_URL": service.aws_endpoint_url,
            "S3_ENDPOINT_URL": service.aws_endpoint_url,
        }
    )
    if service.url:
        env["AWS_ENDPOINT_URL_SAGEMAKER"] = service.url
    # On SageMaker a job owns its instance; here it shares the machine's cores with Airflow, the services and
    # other jobs. OpenMP's default spin-waiting (XGBoost, scikit-learn) then burns the time slices the other
    # threads need: 40 boosting rounds took 5-8 s instead of 0.3 s on a busy two-core machine. Passive waiting
    # keeps the thread count (and so the results) and removes that stall. A job's Environment may override it.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.update(extra)
    return env


@dataclass
class RunningJob:
    """A job whose worker thread is alive.

    :param name: the job name.
    """

    name: str
    stop_requested: threading.Event = field(default_factory=threading.Event)
    process: JobProcess | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None

    def request_stop(self) -> None:
        """Ask the job to stop: signal its process if it runs, else stop before it starts."""
        with self.lock:
            self.stop_requested.set()
            if self.process is not None:
                self.process.stop()

    def attach(self, process: JobProcess) -> None:
        """Attach the started process; stop it at once if a stop already came."""
        with self.lock:
            self.process = process
            if self.stop_requested.is_set():
                process.stop()


class RunningJobs:
    """The running jobs of one kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, RunningJob] = {}

    def add(self, name: str) -> RunningJob:
        with self._lock:
            job = self._jobs[name] = RunningJob(name)
            return job

    def get(self, name: str) -> RunningJob | None:
        with self._lock:
            return self._jobs.get(name)

    def remove(self, name: str) -> None:
        with self._lock:
            self._jobs.pop(name, None)

    def all(self) -> list[RunningJob]:
        with self._lock:
            return list(self._jobs.values())

    def stop_all(self, timeout: float = 30.0) -> None:
        """Stop every running job and wait (bounded) for the worker threads."""
        jobs = self.all()
        for job in jobs:
            job.request_stop()
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.thread is not None:
                job.thread.join(timeout=max(0.1, deadline - time.monotonic()))


def sleep_unless_stopped(job: RunningJob, seconds: float) -> bool:
    """Sleep up to ``seconds``; return True if a stop was requested meanwhile."""
    return job.stop_requested.wait(seconds)
