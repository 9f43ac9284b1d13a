"""A PostgreSQL server of its own for a local Airflow's metadata database, on loopback.

MWAA keeps Airflow's metadata in PostgreSQL (Aurora). A local Airflow whose scheduler, dag-processor, triggerer
and API server write to one SQLite file meets what MWAA never does: "database is locked" when two components
upgrade their locks at once (SQLite returns it at once, whatever its busy timeout), and Airflow refuses some
operations on SQLite altogether (a backfill while the scheduler runs). :class:`PostgresServer` runs Debian's
PostgreSQL server programs on a cluster under the Airflow home:

- ``initdb`` once, with a generated password for the ``airflow`` role (``scram-sha-256``, kept with mode 0600
  beside the cluster, never on a command line);
- ``postgres`` listening on ``127.0.0.1`` on a free port (and a Unix socket inside the cluster folder only);
- as root, both run as the unprivileged ``postgres`` user (Debian's package creates it; else ``nobody``), which
  then owns the cluster folder: PostgreSQL refuses to run as root.

:func:`server_programs` finds the programs (``initdb`` on ``PATH``, else ``/usr/lib/postgresql/<newest>/bin``)
and says how to install them when they are missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DATABASE = "airflow"
ROLE = "airflow"
#: the users the server may run as when this process is root (PostgreSQL refuses root), in order of preference:
#: Debian's package creates ``postgres``
UNPRIVILEGED_USERS = ("postgres", "nobody")
DEBIAN_PROGRAMS = Path("/usr/lib/postgresql")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
#: server settings: enough connections for four components' pools (Airflow's default pool is 5 + 10 overflow
#: per process), and commits that do not wait for the disk (a lost last commit on a power cut is acceptable
#: for a local metadata database; the cluster itself stays consistent)
SETTINGS = {
    "max_connections": "200",
    "synchronous_commit": "off",
    "listen_addresses": HOST,
    "logging_collector": "off",
}


class MetaDBError(RuntimeError):
    """The metadata database could not be set up, started or reached."""


def server_programs() -> Path:
    """The folder holding PostgreSQL's ``initdb``, ``pg_ctl`` and ``postgres``.

    :raises MetaDBError: when they are not installed (with how to install them).
    """
    candidates = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    if DEBIAN_PROGRAMS.is_dir():
        versions = sorted(
            (p for p in DEBIAN_PROGRAMS.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        candidates += [v / "bin" for v in versions]
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise MetaDBError(
        "PostgreSQL's server programs (initdb, pg_ctl, postgres) are not installed; the local Airflow keeps its "
        "metadata in PostgreSQL as MWAA does. Install Debian's package: apt-get install postgresql "
        "(`make setup` does it when run as root)"
    )


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int
    name: str

    def kwargs(self) -> dict[str, Any]:
        if self.uid == os.geteuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _run_as() -> _RunAs:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return _RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
    for name in UNPRIVILEGED_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return _RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
    raise MetaDBError(
        "running as root, the PostgreSQL server needs an unprivileged user to run as "
        f"({' or '.join(UNPRIVILEGED_USERS)}), and this machine has neither"
    )


def _blocking_parent(folder: Path, user: _RunAs) -> Path | None:
    """The first parent of ``folder`` that ``user`` may not enter (PostgreSQL opens its files by path)."""
    if user.uid == os.geteuid():
        return None
    for parent in reversed(folder.parents):
        try:
            st = parent.stat()
        except FileNotFoundError:
            return None
        if st.st_uid == user.uid:
            ok = st.st_mode & 0o100
        elif st.st_gid == user.gid:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return parent
    return None


def _chown_tree(folder: Path, user: _RunAs) -> None:
    if user.uid == os.geteuid():
        return
    for path in [folder, *folder.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):
            os.lchown(path, user.uid, user.gid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PostgresServer:
    """One PostgreSQL cluster under ``root`` (``root/data``), started on demand on a free loopback port.

    When the server's user may not enter a parent of ``root`` (a home under a private temporary folder, run as
    root), the cluster lives in ``<tmp>/ml-lifecycle-metadb-<digest of root>`` instead, which is logged.

    :param root: folder of the cluster, its socket and its state (created; owned by the server's user).
    :param log_file: where the server writes its log.
    :param secrets_file: where the ``airflow`` role's password is kept (mode 0600, owned by the caller).
    """

    def __init__(self, root: Path | str, *, log_file: Path | str, secrets_file: Path | str) -> None:
        self.root = Path(root).resolve()
        if os.geteuid() == 0:
            blocking = _blocking_parent(self.root, _run_as())
            if blocking is not None:
                digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
                moved = Path(tempfile.gettempdir()) / f"ml-lifecycle-metadb-{digest}"
                log.info("the server's user cannot enter %s: the cluster for %s lives in %s", blocking, root, moved)
                self.root = moved
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log_file = Path(log_file)
        self.secrets_file = Path(secrets_file)
        self._proc: subprocess.Popen[bytes] | None = None

    # ---------------------------------------------------------------- state
    def password(self) -> str:
        """The ``airflow`` role's password, generated (mode 0600) the first time."""
        try:
            return json.loads(self.secrets_file.read_text())["password"]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError) as exc:
            raise MetaDBError(f"{self.secrets_file} is unreadable ({exc}); remove it and {self.root}") from None
        password = secrets.token_urlsafe(24)
        self.secrets_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"password": password}, fh)
        return password

    def running(self) -> tuple[int, int] | None:
        """``(pid, port)`` of the cluster's server when it runs, else ``None`` (from its ``postmaster.pid``)."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        if not _alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            return None
        return (pid, port) if Path(os.fsdecode(cmdline)).name in ("postgres", "postmaster") else None

    def url(self, database: str = DATABASE) -> str:
        """The SQLAlchemy URL of ``database`` on the running server.

        :param database: the database's name.
        :raises MetaDBError: when the server does not run.
        """
        running = self.running()
        if running is None:
            raise MetaDBError(f"the metadata database's server ({self.data}) does not run")
        return f"postgresql+psycopg2://{ROLE}:{self.password()}@{HOST}:{running[1]}/{database}"

    # ------------------------------------------------------------- commands
    def start(self, timeout: float = START_TIMEOUT) -> str:
        """Create the cluster when needed, start its server unless it runs, create the database; return its URL.

        :param timeout: seconds the server may take to accept connections.
        :raises MetaDBError: on any failure (with the server's last log lines).
        """
        if self.running() is None:
            programs = server_programs()
            user = _run_as()
            self.root.mkdir(parents=True, exist_ok=True)
            blocking = _blocking_parent(self.root, user)
            if blocking is not None:
                raise MetaDBError(f"the PostgreSQL server runs as {user.name!r}, which cannot enter {blocking}")
            if not (self.data / "PG_VERSION").is_file():
                self._initdb(programs, user)
            self.socket_dir.mkdir(exist_ok=True)
            _chown_tree(self.root, user)
            self._spawn(programs, user, timeout)
        return self.create_database(DATABASE, timeout=timeout)

    def _initdb(self, programs: Path, user: _RunAs) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)  # a cluster initdb never finished: nothing in it is kept
        pwfile = self.root / ".initdb-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.password() + "\n")
        _chown_tree(self.root, user)
        try:
            proc = subprocess.run(
                [
                    str(programs / "initdb"),
                    "--pgdata",
                    str(self.data),
                    "--username",
                    ROLE,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                check=False,
                cwd=self.root,
                timeout=300,
                **user.kwargs(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise MetaDBError(f"initdb failed (exit code {proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
        log.info("created the metadata database's cluster in %s", self.data)

    def _spawn(self, programs: Path, user: _RunAs, timeout: float) -> None:
        from devstack.stack import free_port

        port = free_port(HOST)
        settings = [arg for key, value in SETTINGS.items() for arg in ("-c", f"{key}={value}")]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as fh:
            fh.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting postgres on port {port}\n".encode())
            fh.flush()
            self._proc = subprocess.Popen(
                [
                    str(programs / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(port),
                    "-k",
                    str(self.socket_dir),
                    *settings,
                ],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
                **user.kwargs(),
            )
        deadline = time.monotonic() + timeout
        while self.running() is None or not self._accepts(timeout=2):
            if self._proc.poll() is not None:
                raise MetaDBError(
                    f"postgres exited during start-up (exit code {self._proc.returncode}); last lines of "
                    f"{self.log_file}:\n{self._tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise MetaDBError(f"postgres did not accept connections in {timeout:.0f}s; see {self.log_file}")
            time.sleep(0.2)
        log.info("metadata database up on %s:%d (pid %d)", HOST, port, self._proc.pid)

    def _connect(self, database: str, timeout: float) -> Any:
        import psycopg2

        running = self.running()
        if running is None:
            raise MetaDBError(f"the metadata database's server ({self.data}) does not run")
        return psycopg2.connect(
            host=HOST,
            port=running[1],
            user=ROLE,
            password=self.password(),
            dbname=database,
            connect_timeout=max(1, int(timeout)),
        )

    def _accepts(self, timeout: float) -> bool:
        import psycopg2

        try:
            self._connect("postgres", timeout).close()
        except (psycopg2.OperationalError, MetaDBError):
            return False
        return True

    def create_database(self, name: str, *, timeout: float = 10.0) -> str:
        """Create database ``name`` on the running server unless it exists; return its SQLAlchemy URL.

        :param name: database name (letters, digits and ``_``).
        :param timeout: seconds a connection attempt may take.
        :raises MetaDBError: a name PostgreSQL would need quoted, or the server does not run.
        """
        if not name.replace("_", "").isalnum():
            raise MetaDBError(f"database name {name!r}: use letters, digits and '_' only")
        conn = self._connect("postgres", timeout)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}" OWNER "{ROLE}"')
        finally:
            conn.close()
        return self.url(name)

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop the server (fast shutdown: open sessions end, committed data stays); ``True`` when one ran.

        :param timeout: seconds before the server is killed (its next start recovers the cluster).
        """
        running = self.running()
        if running is None:
            self._reap()
            return False
        pid = running[0]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._exists(pid):
            time.sleep(0.1)
        if self._exists(pid):
            log.warning("postgres (pid %d) did not stop in %.0fs; killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self._reap()
        return True

    def remove(self) -> None:
        """Stop the server and delete the cluster (every database in it)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _exists(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return _alive(pid)

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            self._proc = None

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
