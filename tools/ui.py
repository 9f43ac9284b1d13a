"""Run the Airflow UI locally against the devstack: ``python -m tools.ui`` (``make ui``).

Starts the devstack when it is not running (``python -m devstack up``), then Airflow's four components, each
as its own process with its own log and pid: ``api-server`` (the UI and REST API), ``scheduler`` (with the
LocalExecutor, which runs tasks as its own child processes), ``dag-processor`` and ``triggerer``. The
metadata database is SQLite under ``<home>`` (default ``.devstack/airflow``); Airflow 3 runs the
LocalExecutor on SQLite (tasks reach the database through the API server, not directly).

The DAGs come from ``dags/``, the package from ``plugins/``; connections and AWS endpoints from the
devstack (``AIRFLOW_CONN_AWS_DEFAULT``, ``AIRFLOW_CONN_SNOWFLAKE_DEFAULT``, ``AWS_ENDPOINT_URL_*``);
``ML_LIFECYCLE_ENV=local``. Login: user ``admin`` with a password generated on first start and kept in
``<home>/simple_auth_manager_passwords.json.generated`` (mode 0600). Locally, DAGs do not catch up on
missed schedules (``--catchup`` keeps the DAGs' own setting), and the scheduler, triggerer and dag-processor
import the DAG files' modules before they fork (see ``tools/ui_settings/airflow_local_settings.py``).

Usage::

    python -m tools.ui                 # start, print URL and login, stay in the foreground (Ctrl-C stops)
    python -m tools.ui --background    # start and return; the components keep running
    python -m tools.ui --status        # what runs where
    python -m tools.ui --stop          # stop the Airflow components (the devstack keeps running)

Python API (what the browser test uses)::

    ui = AirflowUI(home, devstack_env=info.env(), port=free_port())
    ui.start()            # -> UIInfo (url, components, logs)
    token = ui.token()    # a JWT for the REST API
    ui.stop()
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.processes import HOST, free_port, group_alive, pid_alive, port_free, start_ticks, tail
from tools.metadb import MetaDBError, PostgresServer

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "plugins") not in sys.path:  # the package, as Airflow sees it; the Makefile sets PYTHONPATH too
    sys.path.insert(0, str(ROOT / "plugins"))

log = logging.getLogger("tools.ui")

#: seconds one REST API call may take: the API server shares two cores with the scheduler, the triggerer, the
#: devstack and its jobs, and answers a request only between their bursts (30 s ran out at load average 8-9)
API_TIMEOUT = 120
DEFAULT_PORT = 8080
ADMIN_USER = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# stopped last: the task processes of the other components report their end to it
STOP_LAST = ("api-server",)
# the keys of /api/v2/monitor/health for the components that heartbeat
HEALTH_KEYS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
SECRETS_FILE = "ui-secrets.json"
STATE_FILE = "ui.json"
#: the metadata databases a local Airflow can run on
DATABASES = ("sqlite", "postgres")
#: the PostgreSQL role's password (mode 0600), beside the other secrets of the home
METADB_SECRETS = "metadb.json"
POLICY_DIR = ROOT / "tools" / "ui_settings"
#: what the last ``airflow db migrate`` of a home left: the Airflow version and the schema revision
MIGRATED_FILE = "db-migrated.json"
STOP_TIMEOUT = 30.0


def _airflow_version() -> str:
    """The installed Airflow's version (its core distribution's, which holds the schema migrations)."""
    import importlib.metadata

    for name in ("apache-airflow-core", "apache-airflow"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _all_healthy(health: Mapping[str, Any]) -> bool:
    """Whether ``/api/v2/monitor/health``'s answer reports every component healthy."""
    return bool(health) and all(health.get(k, {}).get("status") == "healthy" for k in HEALTH_KEYS)


class UIError(RuntimeError):
    """The Airflow components could not be started, reached or stopped; the message says which and why."""


@dataclasses.dataclass
class ComponentInfo:
    """One running Airflow component.

    :param name: ``api-server``, ``scheduler``, ``dag-processor`` or ``triggerer``.
    :param pid: process id (also its process-group id).
    :param log: path of its log file.
    :param start_ticks: process start time from ``/proc/<pid>/stat`` (tells a recycled pid apart).
    """

    name: str
    pid: int
    log: str
    start_ticks: int | None = None


@dataclasses.dataclass
class UIInfo:
    """Where the running Airflow is.

    :param url: base URL of the UI and REST API.
    :param port: its loopback port.
    :param home: ``AIRFLOW_HOME``.
    :param components: running components by name.
    :param started_seconds: how long the start took (``0`` when it was already running).
    """

    url: str
    port: int
    home: Path
    components: dict[str, ComponentInfo]
    started_seconds: float = 0.0

    @property
    def password_file(self) -> Path:
        """The file holding the ``admin`` password."""
        return self.home / PASSWORDS_FILE


def _http(
    method: str,
    url: str,
    *,
    body: Any = None,
    token: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """Send a JSON request to the local Airflow; return ``(status, parsed body)``."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - loopback only
    # never through a proxy: everything here is on 127.0.0.1
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def default_home() -> Path:
    """``<devstack state dir>/airflow``: ``$DEVSTACK_STATE_DIR/airflow``, else ``.devstack/airflow``."""
    from devstack.stack import DEFAULT_STATE_DIR, STATE_DIR_ENV

    state = os.environ.get(STATE_DIR_ENV) or ROOT / DEFAULT_STATE_DIR
    return Path(state).resolve() / "airflow"


def dag_files(dags_folder: Path = ROOT / "dags") -> list[Path]:
    """The DAG files Airflow should list: ``*.py`` in ``dags/`` that ``.airflowignore`` does not exclude."""
    return sorted(p for p in dags_folder.glob("*.py") if not p.name.startswith("_"))


class AirflowUI:
    """Start, stop and describe a local Airflow (api-server, scheduler, dag-processor, triggerer).

    :param home: ``AIRFLOW_HOME`` (SQLite database, logs, password file, ``ui.json``).
    :param devstack_env: the devstack's variables (``StackInfo.env()``): endpoints and connections.
    :param port: loopback port of the API server; ``None``: 8080 when free, else any free port.
    :param ml_env: ``ML_LIFECYCLE_ENV`` of the DAGs.
    :param catchup: keep the DAGs' own ``catchup`` (default: no catchup locally).
    :param extra_env: more variables for the components (override everything else).
    :param database: the metadata database: ``sqlite`` (a file in ``home``) or ``postgres`` (a PostgreSQL server
        of its own under ``home/postgres``, started before and stopped after the components; see
        :mod:`tools.metadb`).
    """

    def __init__(
        self,
        home: Path | str,
        *,
        devstack_env: Mapping[str, str] | None = None,
        port: int | None = None,
        ml_env: str = "local",
        catchup: bool = False,
        extra_env: Mapping[str, str] | None = None,
        database: str = "sqlite",
    ) -> None:
        if database not in DATABASES:
            raise UIError(f"unknown metadata database {database!r}; choose one of {', '.join(DATABASES)}")
        self.home = Path(home).resolve()
        self.devstack_env = dict(devstack_env or {})
        self.port = port
        self.ml_env = ml_env
        self.catchup = catchup
        self.extra_env = dict(extra_env or {})
        self.database = database
        self.metadb = (
            PostgresServer(
                self.home / "postgres", log_file=self.log_file("postgres"), secrets_file=self.home / METADB_SECRETS
            )
            if database == "postgres"
            else None
        )
        self._procs: dict[int, Any] = {}
        #: the scheduler's and the triggerer's log servers (chosen by :meth:`start`)
        self.log_server_ports: tuple[int, int] | None = None

    # ----------------------------------------------------------------- paths
    @property
    def state_file(self) -> Path:
        """``ui.json``: URL, port and pids of the running components."""
        return self.home / STATE_FILE

    @property
    def password_file(self) -> Path:
        """The ``admin`` password (JSON, as Airflow's simple auth manager reads it)."""
        return self.home / PASSWORDS_FILE

    def log_file(self, component: str) -> Path:
        """Log of a component (its stdout and stderr).

        :param component: component name.
        """
        return self.home / "logs" / "components" / f"{component}.log"

    # ----------------------------------------------------------------- state
    def _read_state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise UIError(
                f"{self.state_file} is unreadable ({exc}); remove it after checking no component runs"
            ) from None

    def _write_state(self, info: UIInfo | None) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {}
        if info is not None:
            payload = {
                "url": info.url,
                "port": info.port,
                "home": str(info.home),
                "components": {n: dataclasses.asdict(c) for n, c in info.components.items()},
            }
        tmp = self.state_file.with_name(STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.state_file)

    @staticmethod
    def _owned_and_alive(comp: ComponentInfo) -> bool:
        if not pid_alive(comp.pid):
            return False
        return comp.start_ticks is None or start_ticks(comp.pid) in (None, comp.start_ticks)

    def recorded(self) -> UIInfo | None:
        """The components recorded in ``ui.json`` (running or not), ``None`` when nothing is recorded."""
        data = self._read_state()
        if not data.get("components"):
            return None
        comps = {n: ComponentInfo(**c) for n, c in data["components"].items()}
        return UIInfo(data["url"], data["port"], Path(data["home"]), comps)

    def running(self) -> UIInfo | None:
        """The recorded Airflow when all four components still run, else ``None``."""
        info = self.recorded()
        if info is None or set(info.components) != set(COMPONENTS):
            return None
        if self.metadb is not None and self.metadb.running() is None:
            return None
        if all(self._owned_and_alive(c) for c in info.components.values()):
            return info
        return None

    def database_url(self) -> str:
        """The SQLAlchemy URL of the metadata database (for ``postgres``: of its running server).

        :raises UIError: ``postgres`` and its server does not run.
        """
        if self.metadb is None:
            return f"sqlite:///{self.home / 'airflow.db'}"
        try:
            return self.metadb.url()
        except MetaDBError as exc:
            raise UIError(str(exc)) from None

    # ------------------------------------------------------------- secrets
    def admin_password(self) -> str:
        """The ``admin`` password, generated (and written with mode 0600) the first time.

        :raises UIError: when the password file exists but holds no password for ``admin``.
        """
        path = self.password_file
        if path.exists():
            try:
                return json.loads(path.read_text())[ADMIN_USER]
            except (ValueError, KeyError, TypeError):
                raise UIError(f"{path} holds no password for {ADMIN_USER!r}; delete it to generate a new one") from None
        password = secrets.token_urlsafe(12)
        self._write_private(path, json.dumps({ADMIN_USER: password}) + "\n")
        return password

    def password_is_new(self) -> bool:
        """Whether the next :meth:`admin_password` call generates the password."""
        return not self.password_file.exists()

    def _secrets(self) -> dict[str, str]:
        """JWT and session secrets shared by the components, generated once per home."""
        path = self.home / SECRETS_FILE
        if path.exists():
            with contextlib.suppress(ValueError, OSError):
                data = json.loads(path.read_text())
                if {"jwt_secret", "secret_key"} <= set(data):
                    return data
        data = {"jwt_secret": secrets.token_urlsafe(32), "secret_key": secrets.token_urlsafe(32)}
        self._write_private(path, json.dumps(data) + "\n")
        return data

    def _write_private(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)

    # ----------------------------------------------------------- environment
    def environment(self, port: int) -> dict[str, str]:
        """Variables of every component: Airflow settings, the devstack's endpoints and connections.

        :param port: the API server's port.
        """
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_ENDPOINT_URL", "AIRFLOW_CONN_"))
            and k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
        }
        env |= self.devstack_env
        url = f"http://{HOST}:{port}"
        keys = self._secrets()
        # the local settings: no catch-up (unless asked for) and the DAGs' modules loaded before the forks
        python_path = [str(ROOT / "plugins"), str(ROOT), str(POLICY_DIR)]
        bin_dir = str(Path(sys.executable).parent)
        env |= {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.password_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url(),
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            # a task's supervisor that saw the task's sockets close before the process was reaped sleeps this
            # long before it looks again: Airflow's 5 s default added 5 s to about one task in five
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            # an idle scheduler looks again after this long: the wait between one task's end and the next's
            # start (Airflow's default: 1 s)
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
            # new DAG files show up within half a minute
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "ML_LIFECYCLE_ENV": self.ml_env,
            "ML_LIFECYCLE_LOCAL_CATCHUP": "1" if self.catchup else "0",
            "PYTHONPATH": os.pathsep.join(python_path),
            "PYTHONUNBUFFERED": "1",
            # components start helpers as `airflow ...` by name
            "PATH": os.pathsep.join([bin_dir, env.get("PATH", "")]),
            "NO_PROXY": ",".join(filter(None, [env.get("NO_PROXY"), HOST, "localhost"])),
            "no_proxy": ",".join(filter(None, [env.get("no_proxy"), HOST, "localhost"])),
        }
        env |= self.log_server_environment()
        env |= self.extra_env
        return env

    def log_server_environment(self) -> dict[str, str]:
        """The ports of the scheduler's and the triggerer's log servers, once :meth:`start` chose them.

        Airflow's defaults (8793, 8794, on every address) would be taken by the first of two Airflows on one
        machine (two test sessions at once, or ``make ui`` beside a test run); the second's logs would be
        served by the first.
        """
        if self.log_server_ports is None:
            return {}
        worker, trigger = self.log_server_ports
        return {
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger),
        }

    def _choose_log_server_ports(self) -> tuple[int, int]:
        with socket.socket() as worker, socket.socket() as trigger:  # both bound at once: two different ports
            worker.bind(("", 0))
            trigger.bind(("", 0))
            return worker.getsockname()[1], trigger.getsockname()[1]

    # ------------------------------------------------------------ hooks
    def airflow_command(self) -> list[str]:
        """How a component is started: ``<command> <component>`` (this interpreter's Airflow)."""
        return [sys.executable, "-m", "airflow"]

    @property
    def workdir(self) -> Path:
        """Working directory of the components."""
        return ROOT

    def component_environment(self, name: str, env: Mapping[str, str]) -> Mapping[str, str]:
        """The variables of one component (``db-migrate`` included): :meth:`environment`'s, unchanged here.

        :param name: component name.
        :param env: what :meth:`environment` returned.
        """
        return env

    def expected_dag_files(self) -> list[Path]:
        """The DAG files the dag-processor must have parsed before :meth:`wait_parsed` returns."""
        return dag_files()

    # -------------------------------------------------------------- commands
    def start(self, timeout: float = 240.0) -> UIInfo:
        """Migrate the database, start the four components and wait until the API server reports them healthy.

        A running Airflow recorded in ``<home>/ui.json`` is left as it is and returned.

        :param timeout: seconds the whole start may take.
        :raises UIError: when a component exits or does not become healthy; everything started is stopped.
        """
        current = self.running()
        if current is not None and self._health_ok(current.url):
            log.info("Airflow already running on %s", current.url)
            return current
        if self.recorded() is not None:
            self.stop()
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        port = self._choose_port()
        url = f"http://{HOST}:{port}"
        self.home.mkdir(parents=True, exist_ok=True)
        self.admin_password()
        if self.metadb is not None:
            try:
                self.metadb.start(timeout=max(10.0, deadline - time.monotonic()))
            except MetaDBError as exc:
                raise UIError(f"the metadata database did not start: {exc}") from None
        self.log_server_ports = self._choose_log_server_ports()
        env = self.environment(port)
        self._migrate(env, deadline)
        info = UIInfo(url, port, self.home, {})
        try:
            for name in COMPONENTS:
                info.components[name] = self._spawn(name, env)
                self._write_state(info)
            self._wait_healthy(info, deadline)
        except BaseException:
            self.stop()
            raise
        info.started_seconds = time.perf_counter() - t0
        log.info("Airflow up on %s in %.1fs", url, info.started_seconds)
        return info

    def _choose_port(self) -> int:
        if self.port is not None:
            if not port_free(self.port):
                raise UIError(f"port {self.port} on {HOST} is in use; choose another with --port")
            return self.port
        if port_free(DEFAULT_PORT):
            return DEFAULT_PORT
        return free_port(HOST)

    def migrated_already(self) -> bool:
        """Whether the database is at the revision this Airflow's last ``airflow db migrate`` here left it at.

        ``<home>/db-migrated.json`` records the Airflow version and the schema revision after a migration. The
        same version and the same revision in the database mean there is nothing to migrate: the next start
        skips ``airflow db migrate`` (about 5 s). Another Airflow version, a new or reset database, or no record
        means a migration.
        """
        try:
            stamp = json.loads((self.home / MIGRATED_FILE).read_text())
        except (OSError, ValueError):
            return False
        return (
            isinstance(stamp, dict)
            and stamp.get("airflow") == _airflow_version()
            and stamp.get("revision") is not None
            and stamp.get("revision") == self.schema_revision()
        )

    def schema_revision(self) -> str | None:
        """The metadata database's schema revision (Alembic's ``version_num``), ``None`` when it has none."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        engine = create_engine(self.database_url())
        try:
            with engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:
            return None
        finally:
            engine.dispose()

    def _migrate(self, env: Mapping[str, str], deadline: float) -> None:
        import subprocess

        if self.migrated_already():
            log.info("the metadata database is at this Airflow's schema revision: no migration")
            return
        log_path = self.log_file("db-migrate")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as fh:
            fh.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} airflow db migrate\n".encode())
            fh.flush()
            try:
                proc = subprocess.run(
                    [*self.airflow_command(), "db", "migrate"],
                    env=dict(self.component_environment("db-migrate", env)),
                    cwd=self.workdir,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    timeout=max(10.0, deadline - time.monotonic()),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise UIError(f"`airflow db migrate` did not finish in time; see {log_path}") from None
        if proc.returncode != 0:
            raise UIError(
                f"`airflow db migrate` failed (exit code {proc.returncode}); last lines of {log_path}:\n"
                f"{tail(log_path, 30)}"
            )
        stamp = {"airflow": _airflow_version(), "revision": self.schema_revision()}
        (self.home / MIGRATED_FILE).write_text(json.dumps(stamp) + "\n")

    def _spawn(self, name: str, env: Mapping[str, str]) -> ComponentInfo:
        import subprocess

        log_path = self.log_file(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as fh:
            fh.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting airflow {name}\n".encode())
            fh.flush()
            proc = subprocess.Popen(
                [*self.airflow_command(), name],
                env=dict(self.component_environment(name, env)),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: Ctrl-C reaches us, we stop it cleanly
            )
        self._procs[proc.pid] = proc
        log.info("started airflow %s (pid %d, log %s)", name, proc.pid, log_path)
        return ComponentInfo(name, proc.pid, str(log_path), start_ticks(proc.pid))

    def health(self, url: str | None = None) -> dict[str, Any]:
        """``/api/v2/monitor/health`` of the running Airflow (``{}`` when it does not answer).

        :param url: base URL (default: the recorded one).
        """
        url = url or (self.recorded() or UIInfo("", 0, self.home, {})).url
        if not url:
            return {}
        try:
            status, body = _http("GET", f"{url}/api/v2/monitor/health", timeout=5)
        except (OSError, urllib.error.URLError):
            return {}
        return body if status == 200 and isinstance(body, dict) else {}

    def _health_ok(self, url: str) -> bool:
        return _all_healthy(self.health(url))

    def _wait_healthy(self, info: UIInfo, deadline: float) -> None:
        """Wait until every component reports healthy and the Execution API answers.

        The API server builds its Execution API (the task processes' API) on its first request, which takes
        seconds (6.5 s on two cores): longer than a task supervisor waits for its first call, which then fails
        and is retried. That request is made here, as soon as the API server answers, while the other
        components are still starting.
        """
        warm_up: threading.Thread | None = None
        warmed: list[int] = []
        while True:
            for comp in info.components.values():
                proc = self._procs.get(comp.pid)
                if (proc is not None and proc.poll() is not None) or not pid_alive(comp.pid):
                    code = proc.poll() if proc is not None else None
                    raise UIError(
                        f"airflow {comp.name} exited during start-up (exit code {code}); "
                        f"last lines of {comp.log}:\n{tail(Path(comp.log), 30)}"
                    )
            health = self.health(info.url)
            if health and warm_up is None:
                warm_up = threading.Thread(
                    target=self._warm_execution_api, args=(info.url, deadline, warmed), daemon=True
                )
                warm_up.start()
            healthy = _all_healthy(health)
            if healthy and warm_up is not None and not warm_up.is_alive():
                if warmed:
                    return
                warm_up = None  # the Execution API did not answer yet: ask again
            if time.monotonic() > deadline:
                raise UIError(
                    f"Airflow on {info.url} did not report every component healthy and its Execution API "
                    f"answering in time (health: {json.dumps(health) if health else 'no answer'}); logs in "
                    f"{self.log_file('x').parent}"
                )
            time.sleep(0.5)

    @staticmethod
    def _warm_execution_api(url: str, deadline: float, warmed: list[int]) -> None:
        """``GET /execution/health`` (which builds the Execution API); its HTTP status into ``warmed`` on 200."""
        try:
            status, _ = _http("GET", f"{url}/execution/health", timeout=max(1.0, deadline - time.monotonic()))
        except (OSError, urllib.error.URLError):
            return
        if status == 200:
            warmed.append(status)

    def stop(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Stop every recorded component: SIGTERM to its process group, SIGKILL after ``timeout`` seconds.

        The API server goes last: a task the scheduler is still running when it is told to stop finishes by
        reporting its state through the API server, and would otherwise retry against a closed port until it
        is killed.

        :param timeout: grace period of each component.
        :return: names of the components that were running.
        """
        info = self.recorded()
        if info is None:
            self._stop_database(timeout)
            return []
        alive = {n: c for n, c in info.components.items() if self._owned_and_alive(c)}
        self._stop_group([c for n, c in alive.items() if n not in STOP_LAST], timeout)
        self._stop_group([c for n, c in alive.items() if n in STOP_LAST], timeout)
        self._write_state(None)
        self._stop_database(timeout)
        return list(alive)

    def _stop_group(self, comps: list[ComponentInfo], timeout: float) -> None:
        """SIGTERM to each component's process group, then SIGKILL to what is left after ``timeout``."""
        for comp in comps:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(comp.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for comp in comps:
            while time.monotonic() < deadline and self._exited(comp) is False:
                time.sleep(0.1)
            if not self._exited(comp):
                log.warning("airflow %s (pid %d) ignored SIGTERM for %.0fs; killing it", comp.name, comp.pid, timeout)
        # task processes the scheduler forked live in its group: give them a moment, then kill what is left
        grace = time.monotonic() + 5.0
        while time.monotonic() < grace and any(group_alive(c.pid) for c in comps):
            time.sleep(0.1)
        for comp in comps:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(comp.pid, signal.SIGKILL)
            proc = self._procs.pop(comp.pid, None)
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.wait(timeout=5)

    def _stop_database(self, timeout: float) -> None:
        """Stop the metadata database's server after the components (they hold connections to it)."""
        if self.metadb is not None:
            self.metadb.stop(timeout)

    def _exited(self, comp: ComponentInfo) -> bool:
        proc = self._procs.get(comp.pid)
        if proc is not None:
            return proc.poll() is not None
        return not pid_alive(comp.pid)

    def dead_components(self, info: UIInfo) -> list[str]:
        """Names of the components of ``info`` that no longer run.

        :param info: the started Airflow.
        """
        return [n for n, c in info.components.items() if self._exited(c) or not self._owned_and_alive(c)]

    # ------------------------------------------------------------- REST API
    def token(self, url: str | None = None) -> str:
        """A JWT for the REST API (``POST /auth/token`` as ``admin``).

        :param url: base URL (default: the recorded one).
        :raises UIError: when the login is refused.
        """
        url = url or self._url()
        status, body = _http(
            "POST", f"{url}/auth/token", body={"username": ADMIN_USER, "password": self.admin_password()}
        )
        if status not in (200, 201) or not isinstance(body, dict) or "access_token" not in body:
            raise UIError(f"login to {url} as {ADMIN_USER!r} failed: HTTP {status}")
        return body["access_token"]

    def api(
        self,
        method: str,
        path: str,
        *,
        token: str,
        body: Any = None,
        url: str | None = None,
        timeout: float = API_TIMEOUT,
    ) -> Any:
        """Call the REST API; return the parsed JSON.

        :param method: HTTP method.
        :param path: path under the base URL, e.g. ``/api/v2/dags``.
        :param token: JWT from :meth:`token`.
        :param body: JSON body.
        :param url: base URL (default: the recorded one).
        :param timeout: seconds to wait for the answer.
        :raises UIError: on a non-2xx answer (with the status and the answer's detail).
        """
        url = url or self._url()
        status, answer = _http(method, f"{url}{path}", body=body, token=token, timeout=timeout)
        if not 200 <= status < 300:
            raise UIError(f"{method} {path}: HTTP {status}: {answer}")
        return answer

    def parsed_dags(self, token: str, url: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The DAGs Airflow lists and its import errors.

        :param token: JWT from :meth:`token`.
        :param url: base URL (default: the recorded one).
        """
        dags = self.api("GET", "/api/v2/dags?limit=1000", token=token, url=url)["dags"]
        errors = self.api("GET", "/api/v2/importErrors?limit=1000", token=token, url=url)["import_errors"]
        return dags, errors

    def wait_parsed(self, token: str, timeout: float = 180.0, url: str | None = None) -> tuple[list, list]:
        """Wait until every file of :func:`dag_files` has been parsed (into a DAG or an import error).

        :param token: JWT from :meth:`token`.
        :param timeout: seconds to wait.
        :param url: base URL (default: the recorded one).
        :return: ``(dags, import_errors)`` as :meth:`parsed_dags` returns them.
        :raises UIError: when some files are still unparsed at the deadline.
        """
        wanted = {p.name for p in self.expected_dag_files()}
        deadline = time.monotonic() + timeout
        while True:
            dags, errors = self.parsed_dags(token, url)
            seen = {Path(d.get("fileloc") or "").name for d in dags} | {
                Path(e.get("filename") or "").name for e in errors
            }
            if wanted <= seen:
                return dags, errors
            if time.monotonic() > deadline:
                raise UIError(
                    f"the dag-processor had not parsed {sorted(wanted - seen)} after {timeout:.0f}s; "
                    f"see {self.log_file('dag-processor')}"
                )
            time.sleep(1.0)

    def _url(self) -> str:
        info = self.recorded()
        if info is None:
            raise UIError(f"Airflow is not running (nothing recorded in {self.state_file}); run `make ui`")
        return info.url


# ------------------------------------------------------------------------------------------------- CLI


def ensure_buckets(stack_info: Any, ml_env: str) -> list[str]:
    """Create the environment's bucket in the devstack's S3 when it is missing.

    :param stack_info: the running devstack (``devstack.stack.StackInfo``).
    :param ml_env: environment whose ``storage.bucket`` to create.
    :return: the buckets created.
    """
    from ml_lifecycle.config import load_config

    bucket = load_config(ml_env).storage.bucket
    s3 = stack_info.client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket in existing:
        return []
    s3.create_bucket(Bucket=bucket)
    return [bucket]


def ensure_environment(stack_info: Any, ml_env: str) -> list[str]:
    """Create on the devstack what the environment's stack creates on AWS and its DAGs need at start: the bucket,
    and the approval queue with the EventBridge rule that fills it (:mod:`tools.approval_events`).

    :param stack_info: the running devstack (``devstack.stack.StackInfo``).
    :param ml_env: the environment whose config names them.
    :return: the buckets created.
    """
    from ml_lifecycle.config import load_config
    from tools.approval_events import provision

    created = ensure_buckets(stack_info, ml_env)
    provision(stack_info, load_config(ml_env))
    return created


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.ui",
        description="Run Airflow's UI, scheduler, dag-processor and triggerer locally against the devstack.",
    )
    parser.add_argument("--home", type=Path, help="AIRFLOW_HOME (default: <devstack state dir>/airflow)")
    parser.add_argument("--port", type=int, help=f"API server port on {HOST} (default {DEFAULT_PORT} when free)")
    parser.add_argument("--env", default=os.environ.get("ML_LIFECYCLE_ENV", "local"), help="ML_LIFECYCLE_ENV")
    parser.add_argument("--catchup", action="store_true", help="keep the DAGs' catchup (default: off locally)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds the start may take")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--background", action="store_true", help="start, print the URL and return")
    mode.add_argument("--stop", action="store_true", help="stop the Airflow components (not the devstack)")
    mode.add_argument("--status", action="store_true", help="show what runs where")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI.

    :param argv: arguments (default ``sys.argv[1:]``).
    :return: the exit code.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ("snowflake.connector", "botocore", "urllib3", "devstack"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from devstack.stack import StackError

    try:
        return _run(args)
    except (UIError, StackError) as exc:
        print(f"ui: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # interrupted while starting: start() has already stopped what it had started
        print("ui: interrupted; Airflow is not running (the devstack may be)", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    home = args.home or default_home()
    ui = AirflowUI(home, port=args.port, ml_env=args.env, catchup=args.catchup)
    if args.stop:
        stopped = ui.stop()
        print(f"stopped: {', '.join(stopped)}" if stopped else "Airflow was not running")
        return 0
    if args.status:
        return _status(ui)

    from devstack.stack import Stack

    running = ui.running()
    if running is not None and ui._health_ok(running.url):
        print(f"Airflow already runs on {running.url} (pids in {ui.state_file}); `python -m tools.ui --stop` stops it")
        _banner(ui, running, new_password=None)
        return 0

    t0 = time.perf_counter()
    print("devstack: starting (or reusing) the local AWS + Snowflake stand-in ...", flush=True)
    stack_info = Stack(None).up()
    created = ensure_environment(stack_info, args.env)
    if created:
        print(f"devstack: created bucket(s) {', '.join(created)}")
    ui.devstack_env = stack_info.env()
    new_password = ui.admin_password() if ui.password_is_new() else None
    print("airflow: migrating the database, starting api-server, scheduler, dag-processor, triggerer ...", flush=True)
    info = ui.start(timeout=args.timeout)
    token = ui.token(info.url)
    try:
        dags, errors = ui.wait_parsed(token, timeout=120.0, url=info.url)
    except UIError as exc:
        dags, errors = ui.parsed_dags(token, info.url)
        print(f"airflow: {exc}")
    print(f"airflow: up in {time.perf_counter() - t0:.1f}s (devstack included)")
    _banner(ui, info, new_password, dags, errors)
    if args.background:
        print("running in the background; stop it with `python -m tools.ui --stop`")
        return 0
    return _foreground(ui, info)


def _banner(
    ui: AirflowUI,
    info: UIInfo,
    new_password: str | None,
    dags: list[dict[str, Any]] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> None:
    print()
    print(f"  Airflow UI:  {info.url}")
    if new_password:
        print(f"  login:       {ADMIN_USER} / {new_password}   (generated now; kept in {ui.password_file})")
    else:
        print(f"  login:       {ADMIN_USER}; password in {ui.password_file}")
    if dags is not None:
        print(f"  DAGs:        {', '.join(sorted(d['dag_id'] for d in dags)) or 'none yet'}")
    if errors:
        print(f"  IMPORT ERRORS in {len(errors)} file(s):")
        for err in errors:
            first = (err.get("stack_trace") or "").strip().splitlines()[-1:] or [""]
            print(f"    {err.get('filename')}: {first[0]}")
    print(f"  logs:        {ui.log_file('x').parent}/<component>.log, task logs in {ui.home / 'logs'}")
    if not ui.catchup:
        print("  note:        no catchup locally: unpausing runs the latest interval only (--catchup keeps the DAGs')")
    print()


def _foreground(ui: AirflowUI, info: UIInfo) -> int:
    stop = {"signal": None}

    def _handler(signum: int, _frame: Any) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    print("Ctrl-C stops Airflow (the devstack keeps running; `make devstack-down` stops it)", flush=True)
    code = 0
    while stop["signal"] is None:
        dead = ui.dead_components(info)
        if dead:
            for name in dead:
                comp = info.components[name]
                print(f"airflow {name} stopped unexpectedly; last lines of {comp.log}:\n{tail(Path(comp.log), 30)}")
            code = 1
            break
        time.sleep(1.0)
    print("stopping Airflow ...", flush=True)
    stopped = ui.stop()
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return code


def _status(ui: AirflowUI) -> int:
    info = ui.recorded()
    if info is None:
        print(f"Airflow is not running (home {ui.home})")
        return 1
    health = ui.health(info.url)
    print(f"url        {info.url}")
    for name, comp in info.components.items():
        state = "running" if ui._owned_and_alive(comp) else "stopped"
        print(f"{name:14s} pid {comp.pid:<8d} {state:8s} log {comp.log}")
    if health:
        print("health     " + ", ".join(f"{k}={health.get(k, {}).get('status')}" for k in HEALTH_KEYS))
    else:
        print("health     no answer from the API server")
    return 0 if ui._health_ok(info.url) and all(ui._owned_and_alive(c) for c in info.components.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
