"""``python -m devstack up|status|env|seed|down``, and state that survives a restart."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import snowflake.connector

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
SEED = ["--days", "5", "--rows-per-day", "50", "--start", "2026-01-01"]


def _cli(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    return subprocess.run(
        [sys.executable, "-m", "devstack", "--state-dir", str(state), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=check,
    )


def _client(env: dict[str, str], service: str) -> Any:
    key = {"s3": "AWS_ENDPOINT_URL_S3", "sagemaker": "AWS_ENDPOINT_URL_SAGEMAKER"}[service]
    return boto3.client(
        service,
        endpoint_url=env[key],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def _env(state: Path) -> dict[str, str]:
    out = _cli(state, "env").stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = subprocess.run(["bash", "-c", f"printf %s {value}"], capture_output=True, text=True).stdout
    return env


def _snowflake(env: dict[str, str]) -> Any:
    """A connection to the stack's Snowflake stand-in, from the Airflow connection ``env`` names."""
    conn = json.loads(env["AIRFLOW_CONN_SNOWFLAKE_DEFAULT"])
    return snowflake.connector.connect(
        user=conn["login"],
        password=conn["password"],
        account=conn["extra"]["account"],
        host=conn["host"],
        port=conn["port"],
        protocol="http",
    )


def _count(env: dict[str, str]) -> int:
    with _snowflake(env) as sf:
        return sf.cursor().execute("SELECT COUNT(*) FROM FRAUD_DB.RAW.CARD_TRANSACTIONS").fetchone()[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_down_restart_keeps_state_and_leaves_no_process(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    try:
        started = time.monotonic()
        _cli(state, "up", *SEED)
        cold = time.monotonic() - started
        stack = json.loads((state / "stack.json").read_text())
        assert set(stack["services"]) == {"aws", "snowflake", "sagemaker"}
        assert (state / "env").read_text().startswith("# ")

        status = _cli(state, "status", "--json")
        assert all(s["healthy"] for s in json.loads(status.stdout).values())

        env = _env(state)
        assert env["AWS_ENDPOINT_URL_SAGEMAKER"] == env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]
        assert _count(env) == 250
        s3 = _client(env, "s3")
        s3.create_bucket(Bucket="lifecycle-keep")
        s3.put_object(Bucket="lifecycle-keep", Key="models/m.tar.gz", Body=b"\x1f\x8bmodel", Metadata={"run": "r1"})
        sm = _client(env, "sagemaker")
        sm.create_model_package_group(ModelPackageGroupName="lifecycle-group")

        # up again while running: nothing restarts
        _cli(state, "up", *SEED)
        assert json.loads((state / "stack.json").read_text())["services"] == stack["services"]

        # re-seeding the same range replaces it
        out = _cli(state, "seed", *SEED, "--corrupt-on", "2026-01-03").stdout
        assert "seeded 250 rows" in out
        assert "duplicate_transaction_id" in out
        assert _count(env) == 250

        pids = [s["pid"] for s in stack["services"].values()]
        _cli(state, "down")
        assert not any(_alive(pid) for pid in pids)
        leftovers = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True).stdout.split()
        assert leftovers == []
        assert _cli(state, "status", check=False).returncode == 1

        started = time.monotonic()
        _cli(state, "up", *SEED)
        warm = time.monotonic() - started
        restarted = json.loads((state / "stack.json").read_text())
        assert {n: s["port"] for n, s in restarted["services"].items()} == {
            n: s["port"] for n, s in stack["services"].items()
        }
        env = _env(state)
        obj = _client(env, "s3").get_object(Bucket="lifecycle-keep", Key="models/m.tar.gz")
        assert obj["Body"].read() == b"\x1f\x8bmodel"
        assert obj["Metadata"] == {"run": "r1"}
        groups = _client(env, "sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"]
        assert [g["ModelPackageGroupName"] for g in groups] == ["lifecycle-group"]
        assert _count(env) == 250
        print(f"cold up {cold:.1f}s, warm up {warm:.1f}s")
    finally:
        _cli(state, "down", check=False)


def test_stack_stops_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    state = tmp_path / "orphan"
    script = (
        "import os, sys, time\n"
        "from devstack.stack import Stack\n"
        f"Stack({str(state)!r}, sagemaker=False, seed=None, stop_with_parent=os.getpid()).up()\n"
        "print('UP', flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "UP"
        pids = [s["pid"] for s in json.loads((state / "stack.json").read_text())["services"].values()]
        assert pids and all(_alive(pid) for pid in pids)
        owner.kill()
        owner.wait()
        # the watchdog writes its line after it has stopped the services and cleared stack.json
        watchdog_log = state / "logs" / "watchdog.log"
        deadline = time.monotonic() + 120
        while "is gone; stopped" not in watchdog_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "is gone; stopped" in watchdog_log.read_text()
        assert not any(_alive(pid) for pid in pids)
        assert json.loads((state / "stack.json").read_text())["services"] == {}
    finally:
        if owner.poll() is None:
            owner.kill()
        _cli(state, "down", check=False)


def test_a_history_seeded_days_ago_is_extended_to_yesterday_at_the_next_up(tmp_path: Path) -> None:
    """Without a fixed start the history ends yesterday: an ``up`` days after the seeding loads the days since."""
    state = tmp_path / "stack"
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    try:
        _cli(state, "up", "--days", "3", "--rows-per-day", "40")
        seed_file = state / "snowflake" / "seed.json"
        assert json.loads(seed_file.read_text())["last_day"] == str(yesterday)
        # what a seeding four days ago recorded (its rows are today's minus the newest days)
        record = json.loads(seed_file.read_text())
        record["last_day"] = str(yesterday - dt.timedelta(days=4))
        seed_file.write_text(json.dumps(record))
        env = _env(state)
        with _snowflake(env) as sf:
            sf.cursor().execute(f"DELETE FROM FRAUD_DB.RAW.CARD_TRANSACTIONS WHERE EVENT_TS >= '{yesterday}'")
        assert _count(env) == 80

        _cli(state, "up", "--days", "3", "--rows-per-day", "40")  # running: seeded again in place
        assert json.loads(seed_file.read_text())["last_day"] == str(yesterday)
        assert _count(env) == 120
    finally:
        _cli(state, "down", check=False)


def test_a_state_seeded_with_an_older_layout_is_seeded_anew(tmp_path: Path) -> None:
    """A state directory seeded before the tables changed (no ``layout`` recorded, no FRAUD_LABELS) gets the
    current tables at the next ``up``, running or not; a seeding of the current layout is left alone."""
    from devstack.snowflake.seed import LAYOUT

    state = tmp_path / "stack"
    try:
        _cli(state, "up", *SEED)
        seed_file = state / "snowflake" / "seed.json"
        assert json.loads(seed_file.read_text())["layout"] == LAYOUT
        env = _env(state)
        seeded = seed_file.read_text()
        _cli(state, "up", *SEED)  # the current layout is recorded: nothing is seeded again
        assert seed_file.read_text() == seeded

        # what an older seeding recorded: no layout
        record = json.loads(seed_file.read_text())
        del record["layout"]
        seed_file.write_text(json.dumps(record))
        with _snowflake(env) as sf:  # a row of the old table outside the seeded range: dropped with its table
            sf.cursor().execute(
                "INSERT INTO FRAUD_DB.RAW.CARD_TRANSACTIONS (TRANSACTION_ID, EVENT_TS) VALUES ('old', '2025-01-01')"
            )
        _cli(state, "up", *SEED)
        assert json.loads(seed_file.read_text())["layout"] == LAYOUT
        with _snowflake(env) as sf:
            labels = sf.cursor().execute("SELECT COUNT(*) FROM FRAUD_DB.RAW.FRAUD_LABELS").fetchone()[0]
        assert labels > 0
        assert _count(env) == 250, "the old table was replaced, not added to"
    finally:
        _cli(state, "down", check=False)
