"""Long-lived model workers: one model-server subprocess per production variant or transform job.

A :class:`ModelWorker` prepares a sandbox the way SageMaker prepares an inference container:

- ``ModelDataUrl`` (a ``model.tar.gz``) is downloaded and extracted to ``<sandbox>/opt/ml/model``
  (``ModelDataSource`` with an uncompressed S3 prefix is downloaded as is);
- the user code comes from ``SAGEMAKER_SUBMIT_DIRECTORY`` (an S3 ``sourcedir.tar.gz`` or a path under
  ``/opt/ml``), by default ``/opt/ml/model/code``; the entry point is ``SAGEMAKER_PROGRAM``;
- the container's ``Environment`` is passed as it is (``/opt/ml`` paths mapped into the sandbox only in
  the fallback without mount namespaces).

It then starts a copy of :mod:`devstack.sagemaker.model_server` with the interpreter of the image's
environment (built first if needed; an image the devstack does not know fails the start with a
ClientError naming it), in a private mount namespace where the sandbox is ``/opt/ml``, waits until the
model is loaded and the server answers ``/ping``, and forwards invocations to it over loopback HTTP. The
worker's output goes to CloudWatch Logs like a container's.
"""

from __future__ import annotations

import http.client
import logging
import shutil
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.sagemaker import awsio, isolation
from devstack.sagemaker.dockerfile import DockerfileError
from devstack.sagemaker.environments import EnvironmentBuildError, find_uv
from devstack.sagemaker.images import parse_image_uri
from devstack.sagemaker.jobs import image_base_environment, job_environment
from devstack.sagemaker.paths import PathMapper
from devstack.sagemaker.process import JobProcess, stderr_excerpt

if TYPE_CHECKING:
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

MODEL_SERVER = Path(__file__).with_name("model_server.py")
#: Seconds SageMaker gives a container to answer (the InvokeEndpoint timing rule).
INVOCATION_TIMEOUT = 60.0
#: Default for ``ContainerStartupHealthCheckTimeoutInSeconds``.
DEFAULT_STARTUP_TIMEOUT = 600.0


class WorkerStartError(Exception):
    """The model could not be loaded or served; ``reason`` is the FailureReason to report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:1024]


@dataclass(frozen=True)
class InvocationResult:
    """What the model server answered.

    :param status: the HTTP status (0 when the container did not answer in time or died).
    :param body: the response body.
    :param content_type: the response Content-Type.
    :param model_latency_us: the round trip to the container, in microseconds.
    """

    status: int
    body: bytes
    content_type: str
    model_latency_us: int


def instance_id() -> str:
    """Return an EC2-style instance id for log stream names."""
    return "i-" + uuid.uuid4().hex[:17]


class ModelWorker:
    """One model served by a model-server subprocess.

    :param service: the owning service.
    :param model_name: the SageMaker model to serve.
    :param sandbox: a fresh directory for this worker (``<sandbox>/opt/ml`` plays ``/opt/ml``).
    :param log_group: the CloudWatch Logs group of its output.
    :param log_stream: the stream of its output.
    :param extra_env: variables added to the container environment (batch transform settings, ...).
    :param startup_timeout: seconds to wait for the model to load and ``/ping`` to answer.
    """

    def __init__(
        self,
        service: ServiceApi,
        model_name: str,
        sandbox: Path,
        log_group: str,
        log_stream: str,
        extra_env: dict[str, str] | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    ) -> None:
        self.service = service
        self.model_name = model_name
        self.sandbox = sandbox
        self.log_group = log_group
        self.log_stream = log_stream
        self.extra_env = extra_env or {}
        self.startup_timeout = startup_timeout
        self.image: str | None = None
        self.port: int | None = None
        self._process: JobProcess | None = None
        self._sink: awsio.CloudWatchLogSink | None = None
        self.network_isolated = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the sandbox, start the server and wait until it answers ``/ping``.

        :raises WorkerStartError: with the reason, when the model cannot be served.
        """
        if self.sandbox.exists():
            shutil.rmtree(self.sandbox)
        self.sandbox.mkdir(parents=True)
        mapper = PathMapper(self.sandbox, namespaced=isolation.available())
        container = self._container()
        self.image = container.get("Image") or ""
        image = parse_image_uri(self.image)
        env = dict(container.get("Environment") or {})
        program = env.get("SAGEMAKER_PROGRAM")
        try:
            spec = self.service.images.spec_for(image)
        except DockerfileError as exc:
            reason = f"ClientError: Cannot derive the image {image.uri} from its Dockerfile: {exc}"
            raise WorkerStartError(reason) from exc
        if spec is None:
            raise WorkerStartError(self.service.images.unknown_image_reason(image))
        if not program and spec.toolkit != "xgboost":
            raise WorkerStartError(
                f"ClientError: The model {self.model_name} sets no SAGEMAKER_PROGRAM; the devstack serves "
                "script-mode models (inference.py contract) and the built-in XGBoost algorithm only."
            )
        self._sink = awsio.CloudWatchLogSink(
            self.service.client("logs"), self.log_group, self.log_stream, self.sandbox / "container.log"
        )
        if not mapper.namespaced:
            self._sink.write(isolation.FALLBACK_WARNING, time.time())
        try:
            env_dir = self.service.images.ensure(spec, lambda line: self._say(line))
        except EnvironmentBuildError as exc:
            self._close_sink()
            raise WorkerStartError(f"ClientError: Cannot prepare the image {image.uri}: {exc}") from exc
        model_dir = mapper.map_path("/opt/ml/model")
        model_dir.mkdir(parents=True, exist_ok=True)
        self._fetch_model(container, model_dir)
        code_dir = self._fetch_code(env.get("SAGEMAKER_SUBMIT_DIRECTORY"), mapper, model_dir)
        env = {k: mapper.rewrite(v) for k, v in env.items()}
        env.update(self.extra_env)
        env["SAGEMAKER_REGION"] = self.service.region
        env["SM_MODEL_DIR"] = mapper.job_path(model_dir)
        env["PYTHONPATH"] = mapper.job_path(code_dir)
        ready = self.sandbox / "ready"
        server = self.sandbox / "server" / MODEL_SERVER.name
        server.parent.mkdir()
        shutil.copy2(MODEL_SERVER, server)
        python = str(env_dir / "bin" / "python")
        argv = [python, str(server), "--model-dir", mapper.job_path(model_dir), "--ready-file", str(ready)]
        if program:
            argv += ["--program", program, "--code-dir", mapper.job_path(code_dir)]
        confinement = isolation.confinement_for(mapper, "/", env_dir, network=not self.network_isolated)
        container_env = {**dict(spec.environment), **env}
        process_env = job_environment(self.service, container_env, base=image_base_environment(env_dir))
        if program:
            self._install_requirements(code_dir, mapper, env_dir, process_env, confinement)
        try:
            self._process = JobProcess(
                argv,
                process_env,
                self.sandbox,
                self._sink.write,
                stop_signal=signal.SIGTERM,
                grace_seconds=5.0,
                confinement=confinement,
            )
        except OSError as exc:
            raise WorkerStartError(f"ClientError: Cannot start the model server: {exc}") from exc
        self._wait_ready(ready)

    def _install_requirements(
        self,
        code_dir: Path,
        mapper: PathMapper,
        env_dir: Path,
        env: dict[str, str],
        confinement: isolation.Confinement | None,
    ) -> None:
        """Install the inference code's ``requirements.txt`` before the server starts, as the inference toolkit does.

        The install runs confined like the server (its writes go to the server's layer of the image
        environment, not the cached environment). Under network isolation nothing can be fetched, so only what
        the image already has satisfies the requirements; a failed install stops the model from ever serving
        (the toolkit raises ``ValueError("failed to install required packages")``).
        """
        requirements = code_dir / "requirements.txt"
        if not requirements.is_file():
            return
        python = str(env_dir / "bin" / "python")
        self._say(f"Installing the inference code's requirements: {python} -m pip install -r requirements.txt")
        argv = [find_uv(self.service.python), "pip", "install", "--python", python, "-r", mapper.job_path(requirements)]
        if self.network_isolated:
            argv += ["--offline", "--no-cache"]
        if confinement is None or not confinement.overlays:
            # no copy-on-write layer over the cached environment: install into the server's own folder
            target = self.sandbox / "site-packages"
            argv += ["--target", str(target)]
            env["PYTHONPATH"] = f"{env.get('PYTHONPATH', '')}:{target}".strip(":")
        lines: list[str] = []

        def keep(line: str, ts: float) -> None:
            lines.append(line)
            if self._sink is not None:
                self._sink.write(line, ts)

        result = JobProcess(argv, env, self.sandbox, keep, confinement=confinement).wait(max_runtime=3600)
        if result.exit_code != 0:
            excerpt = stderr_excerpt(lines, limit=500)
            raise WorkerStartError(
                f"ClientError: The inference code's requirements.txt could not be installed for model "
                f"{self.model_name} (failed to install required packages, exit code {result.exit_code}"
                f"{', network isolation: nothing can be downloaded' if self.network_isolated else ''}): {excerpt}"
            )

    def _say(self, line: str) -> None:
        if self._sink is not None:
            self._sink.write(line, time.time())

    def _container(self) -> dict[str, Any]:
        try:
            model = self.service.invoke("DescribeModel", {"ModelName": self.model_name})
        except Exception as exc:
            raise WorkerStartError(f"ClientError: Could not find model {self.model_name}: {exc}") from exc
        self.network_isolated = bool(model.get("EnableNetworkIsolation"))
        if model.get("PrimaryContainer"):
            return model["PrimaryContainer"]
        containers = model.get("Containers") or []
        if len(containers) != 1:
            raise WorkerStartError(
                f"ClientError: Model {self.model_name} has {len(containers)} containers; the devstack serves "
                "single-container models only (no inference pipelines)."
            )
        return containers[0]

    def _fetch_model(self, container: dict[str, Any], model_dir: Path) -> None:
        s3 = self.service.client("s3")
        url = container.get("ModelDataUrl")
        source = (container.get("ModelDataSource") or {}).get("S3DataSource")
        try:
            if url:
                bucket, key = awsio.parse_s3_uri(url)
                tarball = self.sandbox / "model.tar.gz"
                s3.download_file(bucket, key, str(tarball))
                awsio.extract_tarball(tarball, model_dir)
                tarball.unlink()
            elif source:
                if source.get("CompressionType") == "Gzip":
                    bucket, key = awsio.parse_s3_uri(source["S3Uri"])
                    tarball = self.sandbox / "model.tar.gz"
                    s3.download_file(bucket, key, str(tarball))
                    awsio.extract_tarball(tarball, model_dir)
                    tarball.unlink()
                else:
                    awsio.download_prefix(s3, source["S3Uri"], model_dir)
        except Exception as exc:
            where = url or (source or {}).get("S3Uri")
            raise WorkerStartError(
                f"ClientError: Failed to download model data from {where} for model {self.model_name}: {exc}"
            ) from exc

    def _fetch_code(self, submit: str | None, mapper: PathMapper, model_dir: Path) -> Path:
        if not submit:
            return model_dir / "code"
        if submit.startswith("s3://"):
            code_dir = mapper.map_path("/opt/ml/code")
            try:
                bucket, key = awsio.parse_s3_uri(submit)
                tarball = self.sandbox / "sourcedir.tar.gz"
                self.service.client("s3").download_file(bucket, key, str(tarball))
                awsio.extract_tarball(tarball, code_dir)
            except Exception as exc:
                raise WorkerStartError(
                    f"ClientError: Failed to download the inference code from {submit}: {exc}"
                ) from exc
            return code_dir
        try:
            return mapper.map_path(submit)
        except ValueError as exc:
            raise WorkerStartError(
                f"ClientError: SAGEMAKER_SUBMIT_DIRECTORY {submit!r} must be an s3:// URI or a path under /opt/ml."
            ) from exc

    def _wait_ready(self, ready: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.popen.poll() is not None:
                result = self._process.wait()
                self._close_sink()
                excerpt = stderr_excerpt(result.stderr_tail)
                raise WorkerStartError(
                    f"ClientError: The model server for model {self.model_name} exited with code "
                    f"{result.exit_code} before it was ready: {excerpt}"
                )
            if ready.is_file():
                try:
                    self.port = int(ready.read_text().strip())
                except ValueError:
                    time.sleep(0.05)
                    continue
                if self.ping():
                    return
            time.sleep(0.05)
        self.stop()
        raise WorkerStartError(
            f"ClientError: The primary container for model {self.model_name} did not pass the ping health "
            f"check within {self.startup_timeout:.0f} seconds. Please check CloudWatch logs for this endpoint."
        )

    def ping(self) -> bool:
        """Return whether the server answers ``GET /ping`` with 200 within 2 seconds."""
        if self.port is None:
            return False
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/ping")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    @property
    def alive(self) -> bool:
        """Whether the server process is running."""
        return self._process is not None and self._process.popen.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after 5 s) and ship its remaining log lines."""
        process, self._process = self._process, None
        if process is not None:
            process.stop()
            process.wait()
        self._close_sink()

    def _close_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()

    # -- requests --------------------------------------------------------------------------------

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None = None,
        timeout: float = INVOCATION_TIMEOUT,
    ) -> InvocationResult:
        """Send one request to ``/invocations`` and return the container's answer."""
        headers = {"Content-Length": str(len(body))}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        if custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
        started = time.perf_counter()
        if self.port is None or not self.alive:
            return InvocationResult(
                0, b"The model container is not running.", "text/plain", int((time.perf_counter() - started) * 1e6)
            )
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            conn.request("POST", "/invocations", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            status = response.status
            ctype = response.getheader("Content-Type") or "application/octet-stream"
            conn.close()
        except TimeoutError:
            return InvocationResult(
                0,
                b"Your invocation timed out while waiting for a response from container primary.",
                "text/plain",
                int((time.perf_counter() - started) * 1e6),
            )
        except OSError as exc:
            return InvocationResult(
                0,
                f"The model container closed the connection: {exc}".encode(),
                "text/plain",
                int((time.perf_counter() - started) * 1e6),
            )
        return InvocationResult(status, data, ctype, int((time.perf_counter() - started) * 1e6))
