"""Start, stop and describe the devstack: moto, the SageMaker service and the Snowflake stand-in.

Every service runs as a detached process in its own session (process group), listens on a free
loopback port, writes its log under ``<state-dir>/logs/`` and is recorded in ``<state-dir>/stack.json``.
:meth:`Stack.up` waits until each one answers its health check, seeds Snowflake when it holds no history
yet, and writes ``<state-dir>/env``, a shell file with the endpoints and Airflow connections.
:meth:`Stack.down` stops them with SIGTERM, then SIGKILL, including every process they started.

The CLI (``python -m devstack``) and the pytest fixture both use this class.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from devstack.processes import (
    HOST,
    descendants,
    free_port,
    group_alive,
    pgid,
    pid_alive,
    signal_group,
    start_ticks,
    tail,
)
from devstack.snowflake.seed import DATABASE, SCHEMA, SeedParams, SeedResult
from devstack.snowflake.seed import LAYOUT as SEED_LAYOUT

log = logging.getLogger("devstack")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = ".devstack"
STATE_DIR_ENV = "DEVSTACK_STATE_DIR"
REGION = "us-east-1"
ACCESS_KEY_ID = "devstack"
SECRET_ACCESS_KEY = "devstack"  # noqa: S105 - a dummy credential the local services accept
SNOWFLAKE_ACCOUNT = "fakesnow"
SNOWFLAKE_USER = "devstack"
SNOWFLAKE_PASSWORD = "devstack"  # noqa: S105 - fakesnow accepts any password
SNOWFLAKE_WAREHOUSE = "DEVSTACK_WH"
SNOWFLAKE_ROLE = "DEVSTACK_ROLE"

# The Snowflake objects prod's unload extraction uses, provisioned on the devstack's S3: a storage integration
# and an external stage on the local config's bucket (include/config/local.yaml names the same objects)
LOCAL_BUCKET = "ml-lifecycle-local"
STORAGE_INTEGRATION = "ML_LIFECYCLE_S3"
EXTERNAL_STAGE = "ML_LIFECYCLE_STAGE"
STORAGE_ROLE_ARN = "arn:aws:iam::123456789012:role/ml-lifecycle-snowflake-storage"

AWS = "aws"
SNOWFLAKE = "snowflake"
SAGEMAKER = "sagemaker"
SERVICE_ORDER = (AWS, SNOWFLAKE, SAGEMAKER)

# boto3 service name -> the service that answers it
MOTO_SERVICES = (
    "s3",
    "cloudwatch",
    "logs",
    "sns",
    "sts",
    "iam",
    "application-autoscaling",
    "secretsmanager",
    "events",
    "sqs",
)
SAGEMAKER_SERVICES = ("sagemaker", "sagemaker-runtime")
# boto3 service name -> the AWS_ENDPOINT_URL_<SUFFIX> boto3 reads (botocore's service id, upper snake case)
ENDPOINT_ENV_SUFFIX = {
    "s3": "S3",
    "cloudwatch": "CLOUDWATCH",
    "logs": "CLOUDWATCH_LOGS",
    "sns": "SNS",
    "sts": "STS",
    "iam": "IAM",
    "application-autoscaling": "APPLICATION_AUTO_SCALING",
    "secretsmanager": "SECRETS_MANAGER",
    "events": "EVENTBRIDGE",
    "sqs": "SQS",
    "sagemaker": "SAGEMAKER",
    "sagemaker-runtime": "SAGEMAKER_RUNTIME",
}
# also exported under the boto3 service name, for tools that build the variable name from it
ENDPOINT_ENV_ALIASES = {"logs": "LOGS", "application-autoscaling": "APPLICATION_AUTOSCALING", "events": "EVENTS"}

STOP_TIMEOUT = {AWS: 90.0, SNOWFLAKE: 30.0, SAGEMAKER: 30.0}


class StackError(RuntimeError):
    """The stack could not be started, reached or stopped; the message says which service and why."""


@dataclasses.dataclass
class ServiceInfo:
    """One running service.

    :param name: ``aws``, ``snowflake`` or ``sagemaker``.
    :param pid: process id (also its process-group id).
    :param port: loopback port.
    :param url: base URL.
    :param log: path of its log file.
    :param started_at: UNIX time it was started.
    :param start_ticks: the process start time from ``/proc/<pid>/stat`` (tells a recycled pid apart).
    """

    name: str
    pid: int
    port: int
    url: str
    log: str
    started_at: float
    start_ticks: int | None = None


@dataclasses.dataclass
class StackInfo:
    """Where the running stack's services are, and how to reach them.

    :param state_dir: the stack's state directory.
    :param services: running services by name.
    :param region: AWS region.
    """

    state_dir: Path
    services: dict[str, ServiceInfo]
    region: str = REGION

    @property
    def moto_url(self) -> str:
        """Endpoint of S3, CloudWatch, Logs, SNS, STS, IAM and the other moto services."""
        return self.services[AWS].url

    @property
    def sagemaker_url(self) -> str | None:
        """Endpoint of the SageMaker service (``sagemaker`` and ``sagemaker-runtime``), if it runs."""
        info = self.services.get(SAGEMAKER)
        return info.url if info else None

    @property
    def snowflake_port(self) -> int:
        """Port of the Snowflake stand-in on 127.0.0.1."""
        return self.services[SNOWFLAKE].port

    def endpoint_for(self, service: str) -> str:
        """Return the endpoint URL that serves a boto3 service.

        :param service: boto3 service name, e.g. ``s3`` or ``sagemaker-runtime``.
        """
        if service in SAGEMAKER_SERVICES:
            if self.sagemaker_url is None:
                raise StackError("the SageMaker service is not running in this stack (started without it)")
            return self.sagemaker_url
        return self.moto_url

    def client(self, service: str, **kwargs: Any) -> Any:
        """Return a boto3 client for a service of the stack.

        :param service: boto3 service name.
        :param kwargs: passed to ``boto3.client`` (override region, config, ...).
        """
        import boto3

        params: dict[str, Any] = {
            "endpoint_url": self.endpoint_for(service),
            "region_name": self.region,
            "aws_access_key_id": ACCESS_KEY_ID,
            "aws_secret_access_key": SECRET_ACCESS_KEY,
        }
        return boto3.client(service, **(params | kwargs))

    def snowflake_connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``snowflake.connector.connect`` to reach the Snowflake stand-in."""
        return {
            "user": SNOWFLAKE_USER,
            "password": SNOWFLAKE_PASSWORD,
            "account": SNOWFLAKE_ACCOUNT,
            "host": HOST,
            "port": self.snowflake_port,
            "protocol": "http",
            "database": DATABASE,
            "schema": SCHEMA,
            "warehouse": SNOWFLAKE_WAREHOUSE,
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }

    def snowflake_connect(self, **kwargs: Any) -> Any:
        """Open a ``snowflake.connector`` connection to the Snowflake stand-in.

        :param kwargs: override any of :meth:`snowflake_connect_kwargs`.
        """
        import snowflake.connector

        return snowflake.connector.connect(**(self.snowflake_connect_kwargs() | kwargs))

    def airflow_aws_connection(self) -> dict[str, Any]:
        """The ``aws_default`` Airflow connection (JSON form) routing every service to the stack."""
        service_config = {service: {"endpoint_url": self.endpoint_for_or_moto(service)} for service in _all()}
        return {
            "conn_type": "aws",
            "login": ACCESS_KEY_ID,
            "password": SECRET_ACCESS_KEY,
            "extra": {
                "region_name": self.region,
                "endpoint_url": self.moto_url,
                "service_config": service_config,
            },
        }

    def endpoint_for_or_moto(self, service: str) -> str:
        """Like :meth:`endpoint_for`, but SageMaker falls back to moto when the service is not running.

        :param service: boto3 service name.
        """
        if service in SAGEMAKER_SERVICES and self.sagemaker_url is None:
            return self.moto_url
        return self.endpoint_for(service)

    def airflow_snowflake_connection(self) -> dict[str, Any]:
        """The ``snowflake_default`` Airflow connection (JSON form) for the Snowflake stand-in."""
        return {
            "conn_type": "snowflake",
            "host": HOST,
            "port": self.snowflake_port,
            "login": SNOWFLAKE_USER,
            "password": SNOWFLAKE_PASSWORD,
            "schema": SCHEMA,
            "extra": {
                "account": SNOWFLAKE_ACCOUNT,
                "database": DATABASE,
                "warehouse": SNOWFLAKE_WAREHOUSE,
                "role": SNOWFLAKE_ROLE,
                "protocol": "http",
                "host": HOST,
                "port": self.snowflake_port,
            },
        }

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3, the AWS CLI and Airflow at the stack."""
        env = {
            f"AWS_ENDPOINT_URL_{ENDPOINT_ENV_SUFFIX[service]}": self.endpoint_for_or_moto(service) for service in _all()
        }
        env |= {
            f"AWS_ENDPOINT_URL_{alias}": self.endpoint_for_or_moto(service)
            for service, alias in ENDPOINT_ENV_ALIASES.items()
        }
        env |= {
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(self.airflow_aws_connection(), sort_keys=True),
            "AIRFLOW_CONN_SNOWFLAKE_DEFAULT": json.dumps(self.airflow_snowflake_connection(), sort_keys=True),
            "DEVSTACK_STATE_DIR": str(self.state_dir),
            "DEVSTACK_MOTO_URL": self.moto_url,
            "DEVSTACK_SNOWFLAKE_PORT": str(self.snowflake_port),
        }
        if self.sagemaker_url:
            env["DEVSTACK_SAGEMAKER_URL"] = self.sagemaker_url
        return env

    def to_json(self) -> dict[str, Any]:
        """The content of ``stack.json``."""
        return {
            "state_dir": str(self.state_dir),
            "region": self.region,
            "services": {name: dataclasses.asdict(info) for name, info in self.services.items()},
            "urls": {
                "moto": self.moto_url,
                "sagemaker": self.sagemaker_url,
                "snowflake": self.services[SNOWFLAKE].url,
            },
        }


def _all() -> tuple[str, ...]:
    return MOTO_SERVICES + SAGEMAKER_SERVICES


def render_env_file(env: Mapping[str, str]) -> str:
    """Render variables as a POSIX shell file of ``export`` lines.

    :param env: the variables.
    """
    lines = ["# Written by `python -m devstack up`; load with: source .devstack/env"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    return "\n".join(lines) + "\n"


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback http only
            return response.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


class Stack:
    """The devstack rooted at one state directory.

    :param state_dir: where state, logs, pid files and the env file live (default ``$DEVSTACK_STATE_DIR``
        or ``.devstack`` in the repository root).
    :param sagemaker: start the SageMaker service (set ``False`` to run only moto and Snowflake).
    :param buckets: S3 buckets to create at start.
    :param seed: history to seed when Snowflake holds none yet; ``None`` seeds nothing. The default is
        :class:`SeedParams` defaults: 120 days x 300 rows ending yesterday (UTC).
    :param region: AWS region of the stack.
    :param python: interpreter that runs the services (default: this one).
    :param startup_timeout: seconds each service may take to become healthy.
    :param persist: keep moto's state across restarts (snapshot on stop, restore on start).
    :param stop_with_parent: pid of a process whose death stops the stack (a watchdog process runs
        ``down`` then); the pytest fixture passes its own pid so a killed test run leaves nothing behind.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        sagemaker: bool = True,
        buckets: Iterable[str] = (),
        seed: SeedParams | None = SeedParams(),  # noqa: B008 - frozen dataclass, safe as a default
        region: str = REGION,
        python: str | None = None,
        startup_timeout: float = 120.0,
        persist: bool = True,
        stop_with_parent: int | None = None,
    ) -> None:
        state = state_dir or os.environ.get(STATE_DIR_ENV) or ROOT / DEFAULT_STATE_DIR
        self.state_dir = Path(state).resolve()
        self.sagemaker = sagemaker
        self.buckets = list(buckets)
        self.seed_params = seed
        self.region = region
        self.python = python or sys.executable
        self.startup_timeout = startup_timeout
        self.persist = persist
        self.stop_with_parent = stop_with_parent
        self._popen: dict[int, subprocess.Popen[bytes]] = {}
        self._watchdog: subprocess.Popen[bytes] | None = None

    # ----------------------------------------------------------------- paths
    @property
    def stack_file(self) -> Path:
        """``stack.json``: the running services (ports, pids, URLs)."""
        return self.state_dir / "stack.json"

    @property
    def env_file(self) -> Path:
        """``env``: a shell file exporting the endpoints and Airflow connections."""
        return self.state_dir / "env"

    @property
    def staging_file(self) -> Path:
        """``snowflake/staging.json``: the Snowflake stand-in's storage integrations and external stages."""
        return self.state_dir / "snowflake" / "staging.json"

    def _provision_staging(self) -> None:
        """Create the storage integration and external stage of the unload mode, unless they exist.

        Written to the stand-in's staging file before it starts (in production an administrator creates them
        once; see docs/data-path.md). The stand-in is not running at this point, so nothing else writes it.
        """
        from devstack.snowflake.staging import ExternalStage, Integration, Registry

        registry = Registry(self.staging_file)
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        location = f"s3://{LOCAL_BUCKET}/"
        changed = False
        if STORAGE_INTEGRATION not in registry.integrations:
            registry.integrations[STORAGE_INTEGRATION] = Integration(
                STORAGE_INTEGRATION, True, [location], [], STORAGE_ROLE_ARN, now
            )
            changed = True
        stage = ExternalStage(DATABASE, SCHEMA, EXTERNAL_STAGE, location, STORAGE_INTEGRATION, {}, now)
        if stage.fqn not in registry.stages:
            registry.stages[stage.fqn] = stage
            changed = True
        if changed:
            registry.save()

    @property
    def seed_file(self) -> Path:
        """``snowflake/seed.json``: what the last seeding wrote."""
        return self.state_dir / "snowflake" / "seed.json"

    def log_file(self, service: str) -> Path:
        """Path of a service's log file.

        :param service: service name.
        """
        return self.state_dir / "logs" / f"{service}.log"

    def _pid_file(self, service: str) -> Path:
        return self.state_dir / "run" / f"{service}.pid"

    # ----------------------------------------------------------------- state
    def _read_stack_file(self) -> dict[str, Any]:
        try:
            return json.loads(self.stack_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StackError(
                f"{self.stack_file} is unreadable ({exc}); remove it after checking no service runs"
            ) from None

    def _write_stack_file(self, data: Mapping[str, Any]) -> None:
        tmp = self.stack_file.with_name("stack.json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.stack_file)

    def _recorded(self) -> dict[str, ServiceInfo]:
        services = self._read_stack_file().get("services", {})
        return {name: ServiceInfo(**info) for name, info in services.items()}

    def _owned_and_alive(self, info: ServiceInfo) -> bool:
        if not pid_alive(info.pid):
            return False
        # guard against a recycled pid: the process must have the start time recorded at launch
        return info.start_ticks is None or start_ticks(info.pid) in (None, info.start_ticks)

    def info(self) -> StackInfo:
        """Return the running stack as recorded in ``stack.json``.

        :raises StackError: when the stack is not running.
        """
        services = self._recorded()
        if AWS not in services or SNOWFLAKE not in services:
            raise StackError(f"the devstack is not running (no services in {self.stack_file}); run `make devstack-up`")
        dead = [name for name, info in services.items() if not self._owned_and_alive(info)]
        if dead:
            raise StackError(
                f"devstack service(s) {', '.join(dead)} are not running; see {self.state_dir / 'logs'} "
                "and run `python -m devstack down` then `python -m devstack up`"
            )
        return StackInfo(self.state_dir, services, self._read_stack_file().get("region", self.region))

    # -------------------------------------------------------------- services
    def _argv(self, service: str, port: int, moto_url: str | None) -> list[str]:
        if service == AWS:
            argv = [
                self.python,
                "-m",
                "devstack.moto_server",
                "--host",
                HOST,
                "--port",
                str(port),
                "--state-dir",
                str(self.state_dir / "aws"),
                "--region",
                self.region,
            ]
            for bucket in self.buckets:
                argv += ["--bucket", bucket]
            if not self.persist:
                argv.append("--no-persist")
            return argv
        if service == SNOWFLAKE:
            return [
                self.python,
                "-m",
                "devstack.snowflake.server",
                "--host",
                HOST,
                "--port",
                str(port),
                "--db-path",
                str(self.state_dir / "snowflake" / "db"),
                "--stage-path",
                str(self.state_dir / "snowflake" / "stages"),
                "--staging-file",
                str(self.staging_file),
                "--s3-endpoint-url",
                str(moto_url),
                "--region",
                self.region,
            ]
        assert moto_url is not None
        return [
            self.python,
            "-m",
            "devstack.sagemaker",
            "--host",
            HOST,
            "--port",
            str(port),
            "--state-dir",
            str(self.state_dir / "sagemaker"),
            "--aws-endpoint-url",
            moto_url,
            "--region",
            self.region,
        ]

    def _child_env(self, moto_url: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            env.pop(key, None)
        env |= {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "PYTHONUNBUFFERED": "1",
        }
        if moto_url:
            # anything a service asks of AWS goes to moto, never to a real endpoint
            env["AWS_ENDPOINT_URL"] = moto_url
        pythonpath = [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        env["PYTHONPATH"] = os.pathsep.join(pythonpath)
        return env

    def _start(self, service: str, port: int, moto_url: str | None) -> ServiceInfo:
        log_path = self.log_file(service)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_fh:
            log_fh.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {service} on port {port}\n".encode())
            log_fh.flush()
            proc = subprocess.Popen(
                self._argv(service, port, moto_url),
                cwd=ROOT,
                env=self._child_env(moto_url),
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: `down` signals the whole group
            )
        self._popen[proc.pid] = proc
        pid_file = self._pid_file(service)
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{proc.pid}\n")
        return ServiceInfo(
            service, proc.pid, port, f"http://{HOST}:{port}", str(log_path), time.time(), start_ticks(proc.pid)
        )

    def _healthy(self, info: ServiceInfo) -> bool:
        if info.name == AWS:
            ready = self.state_dir / "aws" / "ready.json"
            try:
                pid = json.loads(ready.read_text()).get("pid")
            except (OSError, ValueError):
                return False
            return pid == info.pid and _http_ok(f"{info.url}/moto-api/")
        return _http_ok(f"{info.url}/_devstack/health")

    def _wait_healthy(self, info: ServiceInfo, deadline: float) -> None:
        while True:
            if not pid_alive(info.pid):
                proc = self._popen.get(info.pid)
                code = proc.poll() if proc else None
                raise StackError(
                    f"devstack service {info.name} exited during start-up (exit code {code}); "
                    f"last lines of {info.log}:\n{tail(Path(info.log))}"
                )
            if self._healthy(info):
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"devstack service {info.name} did not become healthy on {info.url} within "
                    f"{self.startup_timeout:.0f}s; last lines of {info.log}:\n{tail(Path(info.log))}"
                )
            time.sleep(0.1)

    # -------------------------------------------------------------- commands
    def up(self) -> StackInfo:
        """Start every service (if not running), wait until healthy, seed, write ``env`` and ``stack.json``.

        Idempotent: a healthy running stack is left as it is.

        :raises StackError: when a service does not start; everything started is stopped again.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        recorded = self._recorded()
        wanted = [AWS, SNOWFLAKE] + ([SAGEMAKER] if self.sagemaker else [])
        if recorded and all(n in recorded for n in wanted):
            alive = {n: i for n, i in recorded.items() if self._owned_and_alive(i) and self._healthy(i)}
            if set(alive) == set(recorded):
                log.info("devstack already running in %s", self.state_dir)
                info = StackInfo(self.state_dir, recorded, self.region)
                if self.seed_params is not None and self.seed_outdated():
                    self.seed(self.seed_params, info)
                self._finish(info)
                return info
        if any(self._owned_and_alive(i) for i in recorded.values()):
            log.info("devstack partly running in %s; restarting it", self.state_dir)
            self.down()
        previous_ports = self._read_stack_file().get("ports", {})
        if self.seed_params is not None and not self.seed_file.exists():
            # the Snowflake connector takes seconds to import: overlap that with the services' start-up. pyarrow
            # (which it imports) is loaded here first, on this thread: pyarrow 25's bundled allocator crashes the
            # process later when libarrow was first loaded on a thread that has exited (docs/data-path.md,
            # "Known native issues")
            _import_quietly("pyarrow")
            threading.Thread(target=_import_quietly, args=("snowflake.connector",), daemon=True).start()
        started: dict[str, ServiceInfo] = {}
        if self.stop_with_parent is not None:
            self._start_watchdog(self.stop_with_parent)
        deadline = time.monotonic() + self.startup_timeout
        t0 = time.perf_counter()
        try:
            ports = {}
            for name in wanted:
                ports[name] = free_port(HOST, previous_ports.get(name))
            # moto and Snowflake start side by side; Snowflake's external stages and the SageMaker service use
            # moto's URL (known from its port before it answers)
            self._provision_staging()
            for name in (AWS, SNOWFLAKE):
                started[name] = self._start(name, ports[name], None if name == AWS else f"http://{HOST}:{ports[AWS]}")
                self._record(started)
            moto_url = started[AWS].url
            self._wait_healthy(started[AWS], deadline)
            if self.sagemaker:
                started[SAGEMAKER] = self._start(SAGEMAKER, ports[SAGEMAKER], moto_url)
                self._record(started)
            self._wait_healthy(started[SNOWFLAKE], deadline)
            info = StackInfo(self.state_dir, dict(started), self.region)
            if self.seed_params is not None and (not self.is_seeded(info) or self.seed_outdated()):
                self.seed(self.seed_params, info)
            if self.sagemaker:
                self._wait_healthy(started[SAGEMAKER], deadline)
        except BaseException:
            self._stop_services(started)
            self._record({})
            raise
        log.info("devstack up in %.1fs (state in %s)", time.perf_counter() - t0, self.state_dir)
        self._finish(info)
        return info

    def _start_watchdog(self, parent: int) -> None:
        log_path = self.log_file("watchdog")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_fh:
            self._watchdog = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "devstack._watchdog",
                    "--parent",
                    str(parent),
                    "--state-dir",
                    str(self.state_dir),
                ],
                cwd=ROOT,
                env=self._child_env(None),
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _record(self, services: Mapping[str, ServiceInfo]) -> None:
        data = self._read_stack_file()
        ports = dict(data.get("ports", {}))
        ports.update({name: info.port for name, info in services.items()})
        if services:
            info = StackInfo(self.state_dir, dict(services), self.region)
            payload: dict[str, Any] = {
                "state_dir": str(self.state_dir),
                "region": self.region,
                "services": {n: dataclasses.asdict(i) for n, i in services.items()},
            }
            if AWS in services and SNOWFLAKE in services:
                payload = info.to_json()
        else:
            payload = {"state_dir": str(self.state_dir), "region": self.region, "services": {}}
        payload["ports"] = ports
        self._write_stack_file(payload)

    def _finish(self, info: StackInfo) -> None:
        self._record(info.services)
        tmp = self.env_file.with_name("env.tmp")
        tmp.write_text(render_env_file(info.env()))
        os.replace(tmp, self.env_file)

    def down(self) -> list[str]:
        """Stop every recorded service (SIGTERM, then SIGKILL after its grace period), children included.

        :return: names of the services that were running.
        """
        recorded = self._recorded()
        stopped = [name for name, info in recorded.items() if self._owned_and_alive(info)]
        self._stop_services(recorded)
        if recorded:
            self._record({})
        if self._watchdog is not None:
            # it sees the stack stopped and exits within a second; reap it
            try:
                self._watchdog.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None
        return stopped

    def _stop_services(self, services: Mapping[str, ServiceInfo]) -> None:
        # the SageMaker service first (it may still write to S3), moto last (it saves its snapshot)
        for name in reversed(SERVICE_ORDER):
            info = services.get(name)
            if info is None:
                continue
            if self._owned_and_alive(info):
                self._terminate(info)
            self._pid_file(name).unlink(missing_ok=True)
            proc = self._popen.pop(info.pid, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1)

    def _terminate(self, info: ServiceInfo) -> None:
        pid = info.pid
        # processes a service started in sessions of their own (job sandboxes) are outside its group
        family = descendants(pid)
        groups = {pid} | {pgid(p) for p in family} - {None, os.getpgid(0)}
        for group in groups:
            signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT.get(info.name, 30.0)
        proc = self._popen.get(pid)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                break
            if proc is None and not pid_alive(pid):
                break
            time.sleep(0.05)
        else:
            log.warning("%s (pid %d) ignored SIGTERM for %.0fs; killing it", info.name, pid, STOP_TIMEOUT[info.name])
        # give what is left of its process groups a moment, then kill it
        grace = time.monotonic() + 3.0
        while time.monotonic() < grace and any(group_alive(g) for g in groups):
            time.sleep(0.05)
        for group in groups:
            signal_group(group, signal.SIGKILL)
        for p in family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def status(self) -> dict[str, dict[str, Any]]:
        """Describe each recorded service: pid, port, URL, whether it runs and answers its health check."""
        out: dict[str, dict[str, Any]] = {}
        for name, info in self._recorded().items():
            running = self._owned_and_alive(info)
            out[name] = {
                "pid": info.pid,
                "port": info.port,
                "url": info.url,
                "running": running,
                "healthy": running and self._healthy(info),
                "log": info.log,
            }
        return out

    def is_seeded(self, info: StackInfo | None = None) -> bool:
        """Whether this state directory's Snowflake already holds a seeded history.

        True when a seeding of the current layout was recorded (``snowflake/seed.json``) and the stand-in
        attached the ``FRAUD_DB`` database file at start; cheap, no Snowflake client needed.

        :param info: the running stack (default: read from ``stack.json``).
        """
        info = info or self.info()
        if self.seeded_layout() != SEED_LAYOUT:
            return False
        try:
            with urllib.request.urlopen(f"{info.services[SNOWFLAKE].url}/_devstack/health", timeout=5) as resp:  # noqa: S310
                databases = json.loads(resp.read()).get("databases", [])
        except (OSError, ValueError):
            return False
        return DATABASE in databases

    def seed_outdated(self, today: dt.date | None = None) -> str | None:
        """Why the recorded seeding must be done again (``None``: it need not).

        An older layout (:data:`devstack.snowflake.seed.LAYOUT`); or, for a history that ends yesterday (seed
        parameters without a ``start``), a history that ended before yesterday: the state directory was seeded
        days ago, and the data a day's run reads (training windows, the latest transactions, labels arrived by
        now) is missing. Re-seeding loads the days up to yesterday; the earlier days are left as they are.

        :param today: today's date (UTC; default: now).
        """
        layout = self.seeded_layout()
        if layout is None:
            return None
        if layout != SEED_LAYOUT:
            return f"seeded with layout {layout}, the seed now writes layout {SEED_LAYOUT}"
        if self.seed_params is None or self.seed_params.start is not None:
            return None
        today = today or dt.datetime.now(dt.UTC).date()
        try:
            last_day = dt.date.fromisoformat(json.loads(self.seed_file.read_text())["last_day"])
        except (OSError, ValueError, KeyError, TypeError):
            return "the seed record names no last day"
        if last_day < today - dt.timedelta(days=1):
            return f"the history ends {last_day}, before yesterday ({today - dt.timedelta(days=1)})"
        return None

    def seeded_layout(self) -> int | None:
        """The seed layout this state directory's Snowflake holds (``None``: never seeded; 1: before layouts were
        recorded)."""
        if not self.seed_file.exists():
            return None
        try:
            return int(json.loads(self.seed_file.read_text()).get("layout", 1))
        except (ValueError, AttributeError):
            return None

    def seed(self, params: SeedParams, info: StackInfo | None = None) -> SeedResult:
        """Seed (or re-seed) the synthetic history into the running Snowflake stand-in.

        Tables seeded with an older layout (:data:`devstack.snowflake.seed.LAYOUT`) are dropped and seeded anew.

        :param params: what to generate.
        :param info: the running stack (default: read from ``stack.json``).
        """
        from devstack.snowflake.seed import seed

        info = info or self.info()
        outdated = self.seeded_layout() not in (None, SEED_LAYOUT)
        if outdated:
            log.info("Snowflake was seeded with an older layout: seeding its tables anew")
        elif reason := self.seed_outdated():
            log.info("Seeding Snowflake again: %s", reason)
        with info.snowflake_connect(database=None, schema=None) as conn:
            result = seed(conn, params, replace=outdated)
        self.seed_file.parent.mkdir(parents=True, exist_ok=True)
        record = dataclasses.asdict(result) | {"params": result.params.to_json(), "layout": SEED_LAYOUT}
        record["first_day"], record["last_day"] = str(result.first_day), str(result.last_day)
        self.seed_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        return result

    @contextlib.contextmanager
    def running(self) -> Iterator[StackInfo]:
        """Context manager: ``up`` on entry, ``down`` on exit."""
        info = self.up()
        try:
            yield info
        finally:
            self.down()


def _import_quietly(module: str) -> None:
    with contextlib.suppress(ImportError):
        importlib.import_module(module)
