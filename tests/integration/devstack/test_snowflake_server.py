"""The devstack's Snowflake stand-in: the real connector and the project's hook query it over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector

from devstack.snowflake.seed import FQ_LABELS_TABLE, FQ_TABLE, SeedParams, seed

pytestmark = pytest.mark.integration

START = dt.date(2026, 1, 1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack.snowflake.server",
                "--port",
                str(self.port),
                "--db-path",
                str(self.db_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode() if self.proc.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_devstack/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("fakesnow server did not become healthy")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def connect(self, **kwargs: Any) -> Any:
        return snowflake.connector.connect(
            user="dev",
            password="dev",
            account="fakesnow",
            host="127.0.0.1",
            port=self.port,
            protocol="http",
            session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            **kwargs,
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    srv = _Server(tmp_path_factory.mktemp("snowflake") / "db")
    srv.start()
    with srv.connect() as conn:
        seed(conn, SeedParams(days=10, rows_per_day=200, start=START, corrupt_on=START + dt.timedelta(days=3)))
    yield srv
    if srv.proc and srv.proc.poll() is None:
        srv.stop()


def test_real_connector_queries_the_seeded_table(server: _Server) -> None:
    with server.connect(database="FRAUD_DB", schema="RAW") as conn:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*), MIN(EVENT_TS), MAX(EVENT_TS), SUM(IFF(IS_FRAUD, 1, 0)) FROM CARD_TRANSACTIONS")
        count, first, last, fraud = cur.fetchone()
    assert count == 2000
    assert first.date() == START
    assert last.date() == START + dt.timedelta(days=9)
    assert 0 < fraud < 100


def test_reseeding_the_same_range_replaces_rows(server: _Server) -> None:
    params = SeedParams(days=10, rows_per_day=200, start=START, corrupt_on=START + dt.timedelta(days=3))
    with server.connect() as conn:
        before = conn.cursor().execute(f"SELECT TRANSACTION_ID, AMOUNT FROM {FQ_TABLE} ORDER BY 1, 2").fetchall()
        result = seed(conn, params)
        after = conn.cursor().execute(f"SELECT TRANSACTION_ID, AMOUNT FROM {FQ_TABLE} ORDER BY 1, 2").fetchall()
    assert result.rows == 2000
    assert after == before


def test_labels_and_segments_are_seeded_and_reseeding_replaces_them(server: _Server) -> None:
    params = SeedParams(days=10, rows_per_day=200, start=START, corrupt_on=START + dt.timedelta(days=3))
    query = (
        f"SELECT COUNT(*), COUNT(DISTINCT l.TRANSACTION_ID), COUNT_IF(l.IS_FRAUD = t.IS_FRAUD), "
        f"MIN(DATEDIFF(second, t.EVENT_TS, l.LABELED_AT)), COUNT(DISTINCT t.CUSTOMER_SEGMENT) "
        f"FROM {FQ_LABELS_TABLE} l JOIN (SELECT DISTINCT TRANSACTION_ID, EVENT_TS, IS_FRAUD, CUSTOMER_SEGMENT "
        f"FROM {FQ_TABLE}) t ON t.TRANSACTION_ID = l.TRANSACTION_ID"
    )
    with server.connect() as conn:
        before = conn.cursor().execute(query).fetchone()
        result = seed(conn, params)
        after = conn.cursor().execute(query).fetchone()
        labels = conn.cursor().execute(f"SELECT COUNT(*) FROM {FQ_LABELS_TABLE}").fetchone()[0]
    assert result.label_rows == labels == 2000
    assert after == before
    rows, distinct, agreeing, min_delay, segments = after
    assert distinct < rows  # the corrupt day's duplicated ids
    assert agreeing == rows and min_delay >= 86_400 and segments == 4


def test_seeding_a_later_range_keeps_earlier_days(server: _Server) -> None:
    later = START + dt.timedelta(days=10)
    with server.connect() as conn:
        seed(conn, SeedParams(days=2, rows_per_day=200, start=later))
        count = conn.cursor().execute(f"SELECT COUNT(*) FROM {FQ_TABLE}").fetchone()[0]
        conn.cursor().execute(f"DELETE FROM {FQ_TABLE} WHERE EVENT_TS >= '{later.isoformat()}'")
    assert count == 2400


def test_corrupt_rows_are_visible_to_sql(server: _Server) -> None:
    with server.connect() as conn:
        row = (
            conn.cursor()
            .execute(
                f"SELECT COUNT_IF(AMOUNT <= 0), COUNT_IF(CARD_ID IS NULL), COUNT(*) - COUNT(DISTINCT TRANSACTION_ID) "
                f"FROM {FQ_TABLE}"
            )
            .fetchone()
        )
    assert row == (4, 2, 2)


def test_project_hook_queries_through_an_airflow_connection(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_lifecycle.hooks.snowflake_hook import SnowflakeHook

    conn = {
        "conn_type": "snowflake",
        "host": "127.0.0.1",
        "port": server.port,
        "login": "dev",
        "password": "dev",
        "schema": "RAW",
        "extra": {"account": "fakesnow", "database": "FRAUD_DB", "warehouse": "DEV_WH", "protocol": "http"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEVSTACK_TEST", json.dumps(conn))
    hook = SnowflakeHook(snowflake_conn_id="snowflake_devstack_test")
    rows = hook.get_records("SELECT CHANNEL, COUNT(*) FROM CARD_TRANSACTIONS GROUP BY CHANNEL ORDER BY CHANNEL")
    channels = {channel for channel, _ in rows}
    assert {"ATM", "ECOM", "POS"} <= channels
    assert sum(n for _, n in rows) == 2000


def test_data_survives_a_restart(server: _Server) -> None:
    server.stop()
    server.start()
    with server.connect() as conn:
        count = conn.cursor().execute(f"SELECT COUNT(*) FROM {FQ_TABLE}").fetchone()[0]
    assert count == 2000
