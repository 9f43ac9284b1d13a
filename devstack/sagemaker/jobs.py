"""Pieces shared by the job kinds: the subprocess environment, running-job handles, interpreter mapping,
and :class:`SandboxJobs`, the life cycle processing and training jobs have in common."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from devstack.sagemaker import isolation
from devstack.sagemaker.awsio import DUMMY_CREDENTIALS, CloudWatchLogSink
from devstack.sagemaker.common import Listing, descriptions, echoed_members, require, stop_wanted
from devstack.sagemaker.dockerfile import DockerfileError
from devstack.sagemaker.environments import EnvironmentBuildError
from devstack.sagemaker.errors import resource_in_use, resource_not_found, validation_error
from devstack.sagemaker.isolation import Confinement
from devstack.sagemaker.paths import PathMapper

if TYPE_CHECKING:
    from collections.abc import Callable

    from devstack.sagemaker.environments import EnvironmentSpec
    from devstack.sagemaker.images import ImageInfo
    from devstack.sagemaker.process import JobProcess
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

_PYTHON = re.compile(r"^python(?:\d+(?:\.\d+)?)?$")

#: FailureReason of jobs that were running when the service process went away.
RESTART_FAILURE = (
    "InternalServerError: The devstack SageMaker service stopped while this job was running; "
    "the job's process was lost. Create a new job to run it again."
)
#: SageMaker's limit on a job's FailureReason.
MAX_FAILURE_REASON = 1024


class JobFailedError(Exception):
    """Ends a job as Failed with this FailureReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:MAX_FAILURE_REASON]


class JobStoppedError(Exception):
    """Ends a job as Stopped (a stop request arrived before the container ran)."""


def is_python(command: str) -> bool:
    """Whether a container command names a Python interpreter (``python3``, ``/usr/bin/python3.11``...)."""
    return bool(_PYTHON.match(Path(command).name))


#: Host variables an image environment's job keeps: locale, time zone, and how this machine reaches the
#: package index (proxies, certificates, index URLs), the way a VPC's routes reach a container.
_PASSED_TO_IMAGES = re.compile(
    r"^(HOME|LANG|LC_[A-Z]+|TZ|TMPDIR|TERM|(HTTPS?|NO|ALL)_PROXY|(https?|no|all)_proxy|SSL_CERT_(FILE|DIR)|"
    r"REQUESTS_CA_BUNDLE|PIP_[A-Z_]+|UV_(INDEX_URL|EXTRA_INDEX_URL|DEFAULT_INDEX|INDEX|CACHE_DIR|NATIVE_TLS))$"
)
#: The PATH of a container, after the image environment's ``bin``.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def image_base_environment(env_dir: Path) -> dict[str, str]:
    """The starting environment of a job in an image environment: nothing of the devstack's own.

    No ``PYTHONPATH``, ``VIRTUAL_ENV`` or devstack ``PATH`` entries reach the job; ``PATH`` starts with the
    environment's ``bin`` (so ``python3`` and ``pip`` are the image's).

    :param env_dir: the image environment.
    """
    env = {k: v for k, v in os.environ.items() if _PASSED_TO_IMAGES.match(k)}
    env["PATH"] = f"{env_dir / 'bin'}:{SYSTEM_PATH}"
    env["UV_LINK_MODE"] = "copy"
    return env


def job_environment(service: ServiceApi, extra: dict[str, str], base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment of a job subprocess.

    The service's own ``AWS_*`` variables are dropped; the job talks to the local AWS endpoint with dummy
    credentials (boto3 honours ``AWS_ENDPOINT_URL``; the training toolkit reads ``S3_ENDPOINT_URL``) and to
    this service for SageMaker.

    :param service: the service.
    :param extra: job-specific variables, applied last.
    :param base: the starting environment (:func:`image_base_environment`); default the service's own.
    """
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("AWS_")}
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


def process_start_time(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def kill_orphan(pid: Any, sandbox: Path, started: Any = None) -> None:
    """Kill a job process group left behind by a previous service process, if it is still ours.

    A job in a private mount namespace has ``/opt/ml/...`` as its working directory, so the process is
    recognised by its start time (recorded when the job started) or, for older records, its working
    directory in the sandbox.
    """
    if not isinstance(pid, int) or pid <= 1:
        return
    if isinstance(started, int):
        if process_start_time(pid) != started:
            return
    else:
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return
        if not cwd.startswith(str(sandbox)):
            return
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        log.debug("Could not kill orphan process group %s", pid)


class SandboxJobs:
    """The life cycle shared by the job kinds that run a container command in a sandbox (processing,
    training): storing a new job and starting its worker thread, Describe, List and Stop, the worker's
    sandbox and CloudWatch log stream, injected faults, how the worker's exceptions end the job, and
    recovery after a restart.

    A subclass sets :attr:`KIND`, :attr:`LOG_GROUP`, :attr:`NOUN`, :attr:`THREAD_PREFIX` and
    :attr:`SUMMARY_FIELDS` and implements :meth:`create` (validate and store a request), :meth:`_execute`
    (the job itself) and the status writes :meth:`_mark_stopping`, :meth:`_finish_failed` and
    :meth:`_finish_stopped`.

    :param service: the owning service.
    """

    #: store kind and sandbox folder, e.g. ``training-jobs``
    KIND: ClassVar[str]
    #: CloudWatch log group of the job logs
    LOG_GROUP: ClassVar[str]
    #: the API's word for the kind (``Training`` names ``TrainingJobName``, ``TrainingJobStatus``...)
    NOUN: ClassVar[str]
    #: worker thread names are this prefix and the job name
    THREAD_PREFIX: ClassVar[str]
    #: the description members a List*Jobs summary shows
    SUMMARY_FIELDS: ClassVar[list[str]]

    def __init__(self, service: ServiceApi) -> None:
        self.service = service
        self.running = RunningJobs()
        self._shutting_down = False
        self._name_key = f"{self.NOUN}JobName"
        self._status_key = f"{self.NOUN}JobStatus"
        self._listing = Listing(
            f"{self.NOUN}JobSummaries", self._name_key, self.SUMMARY_FIELDS, self._status_key, default_order="Ascending"
        )
        #: the Create*Job members the Describe*Job answer repeats
        self._echo = echoed_members(service, f"Create{self.NOUN}Job", f"Describe{self.NOUN}Job")

    # -- to implement ----------------------------------------------------------------------------

    def create(self, params: dict[str, Any]) -> str:
        """Create and start a job from a validated Create*Job request; return its ARN."""
        raise NotImplementedError

    def _execute(
        self, name: str, job: RunningJob, request: dict[str, Any], mapper: PathMapper, sink: CloudWatchLogSink
    ) -> None:
        """Run the job; end it with a status, or raise :class:`JobFailedError` / :class:`JobStoppedError`."""
        raise NotImplementedError

    def _mark_stopping(self, name: str) -> None:
        """Record that a stop was requested (called with the store locked)."""
        raise NotImplementedError

    def _finish_failed(self, name: str, reason: str, mapper: PathMapper | None = None) -> None:
        """End the job as Failed.

        :param mapper: the job's sandbox when the job itself failed (its container may have left a message).
        """
        raise NotImplementedError

    def _finish_stopped(self, name: str) -> None:
        """End the job as Stopped."""
        raise NotImplementedError

    # -- actions ---------------------------------------------------------------------------------

    def register(self) -> None:
        """Register Create, Describe, List and Stop of the kind with the service."""
        noun = self.NOUN
        self.service.register_action(f"Create{noun}Job", self.create_job)
        self.service.register_action(f"Describe{noun}Job", self.describe_job)
        self.service.register_action(f"List{noun}Jobs", self.list_jobs)
        self.service.register_action(f"Stop{noun}Job", self.stop_job)

    def create_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle Create*Job."""
        return {f"{self.NOUN}JobArn": self.create(params)}

    def describe_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle Describe*Job (unknown names: ValidationException, as SageMaker answers)."""
        record = self.service.store.get(self.KIND, params[self._name_key])
        return require(record, validation_error("Requested resource not found."))["desc"]

    def list_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle List*Jobs: the jobs filtered, sorted and paged as asked, each summarised by SUMMARY_FIELDS."""
        return self._listing.answer(descriptions(self.service.store, self.KIND), params)

    def stop_job(self, params: dict[str, Any]) -> None:
        """Handle Stop*Job (see :meth:`stop`)."""
        self.stop(params[self._name_key])

    def _start(self, name: str, arn: str, record: dict[str, Any], tags: Any) -> None:
        """Store a new job and start its worker.

        :raises SageMakerError: ResourceInUse when a job of that name exists.
        """
        if not self.service.store.insert_new(self.KIND, name, record):
            existing = self.service.store.get(self.KIND, name)
            noun = self.NOUN.lower()
            raise resource_in_use(
                f"{self.NOUN} job names must be unique within an AWS account and region, and a {noun} job "
                f"with this name already exists ({existing['desc'][f'{self.NOUN}JobArn'] if existing else arn})"
            )
        self.service.set_tags(arn, tags)
        job = self.running.add(name)
        job.thread = threading.Thread(
            target=self._run, args=(name, job), name=f"{self.THREAD_PREFIX}-{name}", daemon=True
        )
        job.thread.start()

    def stop(self, name: str) -> None:
        """Stop a job: its process gets the kind's stop signal, then SIGKILL after the grace period.

        :raises SageMakerError: when the job does not exist or is not running.
        """
        store = self.service.store
        with store.lock:
            record = require(store.get(self.KIND, name), resource_not_found(f"{self.NOUN} job {name} does not exist."))
            if not stop_wanted(record["desc"][self._status_key], self.NOUN.lower()):
                return
            self._mark_stopping(name)
        job = self.running.get(name)
        if job is not None:
            job.request_stop()

    # -- service life cycle ----------------------------------------------------------------------

    def recover(self) -> None:
        """Fail the jobs that were running when the service stopped (their processes are gone)."""
        for record in self.service.store.values(self.KIND):
            desc = record["desc"]
            if desc[self._status_key] in ("InProgress", "Stopping"):
                kill_orphan(
                    record.get("pid"), self.service.sandbox(self.KIND, desc[self._name_key]), record.get("pid_start")
                )
                self._finish_failed(desc[self._name_key], RESTART_FAILURE)

    def shutdown(self) -> None:
        """Stop every running job: they end Failed, since nobody asked to stop them."""
        self._shutting_down = True
        self.running.stop_all()

    # -- worker ----------------------------------------------------------------------------------

    def _run(self, name: str, job: RunningJob) -> None:
        sandbox = self.service.sandbox(self.KIND, name)
        if sandbox.exists():
            shutil.rmtree(sandbox)
        sandbox.mkdir(parents=True)
        mapper = PathMapper(sandbox, namespaced=isolation.available())
        stream = f"{name}/algo-1-{int(time.time())}"
        sink = CloudWatchLogSink(self.service.client("logs"), self.LOG_GROUP, stream, sandbox / "job.log")
        record = self.service.store.get(self.KIND, name)
        assert record is not None
        if not mapper.namespaced:
            sink.write(isolation.FALLBACK_WARNING, time.time())
        try:
            self._execute(name, job, record["request"], mapper, sink)
        except JobFailedError as failure:
            self._finish_failed(name, failure.reason, mapper)
        except JobStoppedError:
            if self._shutting_down:
                self._finish_failed(name, RESTART_FAILURE)
            else:
                self._finish_stopped(name)
        except Exception as exc:
            log.exception("%s job %s failed inside the devstack", self.NOUN, name)
            self._finish_failed(name, f"InternalServerError: {type(exc).__name__}: {exc}"[:MAX_FAILURE_REASON])
        finally:
            sink.close()
            self.running.remove(name)

    def _record_process(self, name: str, process: JobProcess) -> None:
        """Remember a started process so a restarted service can find it (pid and start time)."""
        started = process_start_time(process.pid)

        def change(record: dict[str, Any]) -> None:
            record["pid"] = process.pid
            record["pid_start"] = started

        self.service.store.update(self.KIND, name, change)

    def _image_environment(self, image: ImageInfo, say: Callable[[str], None]) -> tuple[EnvironmentSpec, Path]:
        """The environment of a job's image, built first if needed (progress lines go to ``say``).

        :raises JobFailedError: ClientError naming the image when the devstack has no environment for it,
            or when it cannot be built.
        """
        try:
            spec = self.service.images.spec_for(image)
        except DockerfileError as exc:
            raise JobFailedError(
                f"ClientError: Cannot derive the image {image.uri} from its Dockerfile: {exc}"
            ) from exc
        if spec is None:
            raise JobFailedError(self.service.images.unknown_image_reason(image))
        try:
            return spec, self.service.images.ensure(spec, say)
        except EnvironmentBuildError as exc:
            raise JobFailedError(f"ClientError: Cannot prepare the image {image.uri}: {exc}") from exc

    def _confinement(self, mapper: PathMapper, cwd: str, env_dir: Path | None, network: bool) -> Confinement | None:
        """See :func:`devstack.sagemaker.isolation.confinement_for`."""
        return isolation.confinement_for(mapper, cwd, env_dir, network)

    def _take_fault(self, name: str, job: RunningJob) -> None:
        """Apply a fault injected for this job: a delay first, then a failure.

        :raises JobStoppedError: a stop came during the delay.
        :raises JobFailedError: the injected failure.
        """
        fault = self.service.faults.take_job_fault(name)
        if fault.delay_seconds and sleep_unless_stopped(job, fault.delay_seconds):
            raise JobStoppedError
        if fault.fail_reason:
            raise JobFailedError(fault.fail_reason)
