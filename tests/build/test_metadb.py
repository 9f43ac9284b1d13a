"""The local Airflow's PostgreSQL metadata database (``tools.metadb``): a real server on loopback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg2
import pytest

from tools import metadb
from tools.metadb import MetaDBError, PostgresServer


def _installed() -> bool:
    try:
        metadb.server_programs()
    except MetaDBError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _installed(), reason="PostgreSQL's server programs are missing (make postgres)")


@pytest.fixture
def server(tmp_path: Path):
    pg = PostgresServer(tmp_path / "pg", log_file=tmp_path / "pg.log", secrets_file=tmp_path / "metadb.json")
    yield pg
    pg.remove()


def _query(url: str, sql: str) -> list[tuple]:
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    conn = psycopg2.connect(
        host=parts.host, port=parts.port, user=parts.username, password=parts.password, dbname=parts.database
    )
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def test_a_started_server_serves_the_airflow_database_on_loopback(server: PostgresServer, tmp_path: Path) -> None:
    url = server.start()
    assert url.startswith("postgresql+psycopg2://airflow:") and "@127.0.0.1:" in url and url.endswith("/airflow")
    assert _query(url, "SELECT current_database(), current_user") == [("airflow", "airflow")]
    assert _query(url, "SHOW listen_addresses") == [("127.0.0.1",)]
    assert stat.S_IMODE((tmp_path / "metadb.json").stat().st_mode) == 0o600
    pid, _ = server.running()
    password = server.password()
    assert password not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    assert password not in (tmp_path / "pg.log").read_text(errors="replace")
    assert not list(server.root.rglob(".initdb-password")), "the password file initdb read is gone"


def test_a_wrong_password_is_refused(server: PostgresServer) -> None:
    url = server.start()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        _query(url.replace(f":{server.password()}@", ":wrong@"), "SELECT 1")


def test_start_twice_reuses_the_server_and_a_restart_keeps_the_data(server: PostgresServer) -> None:
    url = server.start()
    first = server.running()
    assert server.start() == url and server.running() == first, "a running server is reused"
    _query(url, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    assert server.stop() is True and server.running() is None
    assert server.stop() is False, "stopping a stopped server is a no-op"
    url = server.start()
    assert _query(url, "SELECT x FROM kept") == [(42,)]


def test_databases_by_name(server: PostgresServer) -> None:
    server.start()
    url = server.create_database("airflow_parallel")
    assert server.create_database("airflow_parallel") == url, "creating it again is a no-op"
    assert _query(url, "SELECT current_database()") == [("airflow_parallel",)]
    with pytest.raises(MetaDBError, match="letters, digits"):
        server.create_database('x"; DROP DATABASE airflow; --')


def test_a_stopped_server_has_no_url(server: PostgresServer) -> None:
    with pytest.raises(MetaDBError, match="does not run"):
        server.url()


def test_missing_server_programs_say_how_to_install_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(metadb.shutil, "which", lambda name: None)
    monkeypatch.setattr(metadb, "DEBIAN_PROGRAMS", tmp_path / "none")
    with pytest.raises(MetaDBError, match="apt-get install postgresql"):
        metadb.server_programs()


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only: the server runs as an unprivileged user")
def test_as_root_the_server_runs_unprivileged(server: PostgresServer) -> None:
    server.start()
    pid, _ = server.running()
    assert os.stat(f"/proc/{pid}").st_uid != 0
    assert server.data.stat().st_uid == os.stat(f"/proc/{pid}").st_uid
