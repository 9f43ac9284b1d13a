"""Processing jobs: CreateProcessingJob, DescribeProcessingJob, ListProcessingJobs, StopProcessingJob.

A job runs its container command as a local subprocess in its image's environment
(:mod:`devstack.sagemaker.catalogue`), inside a private mount namespace where the job's sandbox is
``/opt/ml`` (:mod:`devstack.sagemaker.isolation`; without namespaces every ``/opt/ml/...`` path in the
entrypoint, arguments and environment values is rewritten into the sandbox instead). Inputs are downloaded
from S3 first and outputs uploaded after the command exits 0 (``Continuous`` outputs also every few
seconds while it runs).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.sagemaker import awsio
from devstack.sagemaker.common import now, pick
from devstack.sagemaker.errors import validation_error
from devstack.sagemaker.images import parse_image_uri
from devstack.sagemaker.jobs import (
    RESTART_FAILURE,
    JobFailedError,
    JobStoppedError,
    RunningJob,
    SandboxJobs,
    image_base_environment,
    is_python,
    job_environment,
)
from devstack.sagemaker.process import JobProcess, stderr_excerpt

if TYPE_CHECKING:
    from devstack.sagemaker.awsio import CloudWatchLogSink
    from devstack.sagemaker.environments import EnvironmentSpec
    from devstack.sagemaker.images import ImageInfo
    from devstack.sagemaker.paths import PathMapper
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

KIND = "processing-jobs"
LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
CONTINUOUS_UPLOAD_SECONDS = 5.0
MAX_EXIT_MESSAGE = 1024


class ProcessingJobs(SandboxJobs):
    """CreateProcessingJob, DescribeProcessingJob, ListProcessingJobs and StopProcessingJob: a container
    command between ``/opt/ml/processing`` inputs and outputs, and SIGINT on stop.

    :param service: the owning service.
    """

    KIND = KIND
    LOG_GROUP = LOG_GROUP
    NOUN = "Processing"
    THREAD_PREFIX = "proc"
    SUMMARY_FIELDS = [
        "ProcessingJobName",
        "ProcessingJobArn",
        "CreationTime",
        "ProcessingEndTime",
        "LastModifiedTime",
        "ProcessingJobStatus",
        "FailureReason",
        "ExitMessage",
    ]

    # -- actions ---------------------------------------------------------------------------------

    def create(self, params: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
        """Create and start a processing job; return its ARN.

        :param params: a validated CreateProcessingJob request.
        :param extra: members to add to the description (e.g. ``MonitoringScheduleArn``).
        :raises SageMakerError: for duplicate names and malformed inputs/outputs.
        """
        name = params["ProcessingJobName"]
        arn = self.service.arn("processing-job", name)
        self._check_paths(params)
        created = now()
        desc: dict[str, Any] = pick(params, self._echo)
        desc.update(
            {
                "ProcessingJobName": name,
                "ProcessingJobArn": arn,
                "ProcessingJobStatus": "InProgress",
                "CreationTime": created,
                "LastModifiedTime": created,
            }
        )
        desc.update(extra or {})
        self._start(name, arn, {"desc": desc, "request": params}, params.get("Tags"))
        return arn

    def _check_paths(self, params: dict[str, Any]) -> None:
        local_paths: set[str] = set()
        for index, item in enumerate(params.get("ProcessingInputs", []), start=1):
            s3_input = item.get("S3Input")
            if s3_input is None:
                continue
            local = s3_input.get("LocalPath", "")
            if not local.startswith("/opt/ml/processing/"):
                raise validation_error(
                    f"LocalPath {local!r} of input {item['InputName']} (processingInputs.{index}) must start "
                    "with /opt/ml/processing/."
                )
            if local in local_paths:
                raise validation_error(f"LocalPath {local!r} is used by more than one input.")
            local_paths.add(local)
            if s3_input.get("S3CompressionType") == "Gzip" and s3_input.get("S3InputMode") != "Pipe":
                raise validation_error("S3CompressionType Gzip is only valid with S3InputMode Pipe.")
        names = [i["InputName"] for i in params.get("ProcessingInputs", [])]
        if len(names) != len(set(names)):
            raise validation_error("InputName values must be unique within a processing job.")
        outputs = params.get("ProcessingOutputConfig", {}).get("Outputs", [])
        out_names = [o["OutputName"] for o in outputs]
        if len(out_names) != len(set(out_names)):
            raise validation_error("OutputName values must be unique within a processing job.")
        for output in outputs:
            s3_output = output.get("S3Output")
            if s3_output is not None and not s3_output.get("LocalPath", "").startswith("/opt/ml/processing/"):
                raise validation_error(
                    f"LocalPath {s3_output.get('LocalPath')!r} of output {output['OutputName']} must start "
                    "with "
                    "/opt/ml/processing/."
                )

    # -- state -----------------------------------------------------------------------------------

    def _update(self, name: str, **members: Any) -> None:
        def change(record: dict[str, Any]) -> None:
            record["desc"].update({k: v for k, v in members.items() if v is not None})
            record["desc"]["LastModifiedTime"] = now()

        self.service.store.update(KIND, name, change)

    def _finish(self, name: str, status: str, **members: Any) -> None:
        self._update(name, ProcessingJobStatus=status, ProcessingEndTime=now(), **members)

    def _mark_stopping(self, name: str) -> None:
        self._update(name, ProcessingJobStatus="Stopping")

    def _finish_failed(self, name: str, reason: str, mapper: PathMapper | None = None) -> None:
        exit_message = self._exit_message(mapper) if mapper is not None else None
        self._finish(name, "Failed", FailureReason=reason, ExitMessage=exit_message)

    def _finish_stopped(self, name: str) -> None:
        self._finish(name, "Stopped")

    # -- worker ----------------------------------------------------------------------------------

    def _execute(
        self, name: str, job: RunningJob, request: dict[str, Any], mapper: PathMapper, sink: CloudWatchLogSink
    ) -> None:
        self._take_fault(name, job)
        app = request["AppSpecification"]
        image = parse_image_uri(app["ImageUri"])
        cluster = request["ProcessingResources"]["ClusterConfig"]
        if cluster["InstanceCount"] != 1:
            raise JobFailedError(
                f"ClientError: The devstack runs single-instance jobs only (InstanceCount={cluster['InstanceCount']})."
            )
        runtime = self.service.processing_runtimes.get(image.family or "")
        env_spec = env_dir = None
        if runtime is None:
            env_spec, env_dir = self._image_environment(image, lambda line: sink.write(line, time.time()))
            argv = self._command(image, app, mapper, env_spec, env_dir)
        else:
            argv = list(runtime(image, app, mapper))
        self._write_config(name, request, mapper)
        self._download_inputs(request, mapper)
        outputs = self._prepare_outputs(request, mapper)
        if job.stop_requested.is_set():
            raise JobStoppedError
        self._update(name, ProcessingStartTime=now())
        variables = {k: mapper.rewrite(v) for k, v in request.get("Environment", {}).items()}
        if env_dir is not None and env_spec is not None:
            env = job_environment(
                self.service, {**dict(env_spec.environment), **variables}, base=image_base_environment(env_dir)
            )
        else:
            env = job_environment(self.service, variables)
        network = not request.get("NetworkConfig", {}).get("EnableNetworkIsolation", False)
        confinement = self._confinement(mapper, "/", env_dir, network)
        max_runtime = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
        try:
            process = JobProcess(
                argv,
                env,
                mapper.sandbox,
                sink.write,
                stop_signal=signal.SIGINT,
                grace_seconds=self.service.stop_grace_seconds,
                confinement=confinement,
            )
        except OSError as exc:
            raise JobFailedError(f"AlgorithmError: Cannot start {argv[0]!r}: {exc}, exit code: 127") from exc
        self._record_process(name, process)
        job.attach(process)
        uploader = _ContinuousUploader(self.service, [o for o in outputs if o[2] == "Continuous"])
        try:
            result = process.wait(max_runtime=max_runtime)
        finally:
            uploader.stop()
        exit_message = self._exit_message(mapper)
        if result.stopped and self._shutting_down:
            raise JobFailedError(RESTART_FAILURE)
        if result.timed_out:
            self._finish(
                name,
                "Stopped",
                ExitMessage=exit_message,
                FailureReason=(
                    f"MaxRuntimeExceeded: Processing job runtime exceeded MaxRuntimeInSeconds provided "
                    f"({max_runtime} s); the job was stopped."
                ),
            )
            return
        if result.stopped:
            self._finish(name, "Stopped", ExitMessage=exit_message)
            return
        if result.exit_code != 0:
            code = result.exit_code if result.exit_code >= 0 else 128 - result.exit_code
            raise JobFailedError(f"AlgorithmError: {stderr_excerpt(result.stderr_tail)}, exit code: {code}")
        self._upload_outputs(outputs)
        self._finish(name, "Completed", ExitMessage=exit_message)

    def _command(
        self, image: ImageInfo, app: dict[str, Any], mapper: PathMapper, env_spec: EnvironmentSpec, env_dir: Path
    ) -> list[str]:
        """The container command: ``ContainerEntrypoint`` + ``ContainerArguments``, else the image's ENTRYPOINT
        with the arguments (Docker's rules); a Python interpreter is the image environment's."""
        entrypoint = list(app.get("ContainerEntrypoint", [])) or list(env_spec.entrypoint)
        arguments = list(app.get("ContainerArguments", []))
        if not entrypoint:
            if not arguments:
                raise JobFailedError(
                    f"ClientError: The image {image.uri} has no ENTRYPOINT; set AppSpecification.ContainerEntrypoint."
                )
            entrypoint, arguments = arguments[:1], arguments[1:]
        argv = mapper.rewrite_all(entrypoint) + mapper.rewrite_all(arguments)
        if is_python(argv[0]):
            argv[0] = str(env_dir / "bin" / "python")
        return argv

    def _write_config(self, name: str, request: dict[str, Any], mapper: PathMapper) -> None:
        config_dir = mapper.map_path("/opt/ml/config")
        config_dir.mkdir(parents=True, exist_ok=True)
        echoed = pick(
            request,
            [
                "AppSpecification",
                "Environment",
                "NetworkConfig",
                "ProcessingInputs",
                "ProcessingOutputConfig",
                "ProcessingResources",
                "RoleArn",
                "StoppingCondition",
            ],
        )
        echoed.update({"ProcessingJobArn": self.service.arn("processing-job", name), "ProcessingJobName": name})
        (config_dir / "processingjobconfig.json").write_text(json.dumps(echoed, indent=2))
        (config_dir / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
        mapper.map_path("/opt/ml/output").mkdir(parents=True, exist_ok=True)

    def _download_inputs(self, request: dict[str, Any], mapper: PathMapper) -> None:
        s3 = self.service.client("s3")
        for item in request.get("ProcessingInputs", []):
            name = item["InputName"]
            s3_input = item.get("S3Input")
            if s3_input is None:
                raise JobFailedError(
                    f"ClientError: Input {name} uses a DatasetDefinition, which the devstack does not "
                    "support "
                    "(only S3Input is emulated)."
                )
            if s3_input.get("S3InputMode", "File") == "Pipe":
                raise JobFailedError(f"ClientError: Input {name} uses Pipe mode, which the devstack does not support.")
            dest = mapper.map_path(s3_input["LocalPath"])
            uri = s3_input["S3Uri"]
            try:
                if s3_input["S3DataType"] == "ManifestFile":
                    count = awsio.download_manifest(s3, uri, dest)
                else:
                    count = awsio.download_prefix(s3, uri, dest)
            except Exception as exc:
                raise JobFailedError(
                    f"ClientError: Failed to download data for input {name} from {uri}: {exc}"
                ) from exc
            if count == 0:
                raise JobFailedError(f'ClientError: No S3 objects found under S3 URL "{uri}" given in input {name}.')

    def _prepare_outputs(self, request: dict[str, Any], mapper: PathMapper) -> list[tuple[Path, str, str]]:
        outputs: list[tuple[Path, str, str]] = []
        for output in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
            s3_output = output.get("S3Output")
            if s3_output is None:
                raise JobFailedError(
                    f"ClientError: Output {output['OutputName']} is not an S3Output, which the devstack "
                    "does not "
                    "support."
                )
            local = mapper.map_path(s3_output["LocalPath"])
            local.mkdir(parents=True, exist_ok=True)
            outputs.append((local, s3_output["S3Uri"], s3_output["S3UploadMode"]))
        return outputs

    def _upload_outputs(self, outputs: list[tuple[Path, str, str]]) -> None:
        s3 = self.service.client("s3")
        for local, uri, _mode in outputs:
            try:
                awsio.upload_directory(s3, local, uri)
            except Exception as exc:
                raise JobFailedError(f"ClientError: Failed to upload output {local.name} to {uri}: {exc}") from exc

    def _exit_message(self, mapper: PathMapper) -> str | None:
        path = mapper.map_path("/opt/ml/output/message")
        if not path.is_file():
            return None
        data = path.read_bytes()[:MAX_EXIT_MESSAGE]
        return data.decode("utf-8", errors="replace") or None


class _ContinuousUploader:
    """Uploads ``Continuous`` outputs every few seconds while the job runs, and once more at the end."""

    def __init__(self, service: ServiceApi, outputs: list[tuple[Path, str, str]]) -> None:
        self._service = service
        self._outputs = outputs
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if outputs:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()

    def _upload(self) -> None:
        s3 = self._service.client("s3")
        for local, uri, _mode in self._outputs:
            try:
                awsio.upload_directory(s3, local, uri)
            except Exception:
                log.warning("Continuous upload of %s to %s failed; retrying later", local, uri)

    def _loop(self) -> None:
        while not self._stop.wait(CONTINUOUS_UPLOAD_SECONDS):
            self._upload()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=30)
            self._upload()
