"""The devstack's env file, Airflow connections and process handling, without starting real services."""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.processes import descendants, free_port, tail
from devstack.snowflake.seed import SeedParams
from devstack.stack import (
    AWS,
    SAGEMAKER,
    SNOWFLAKE,
    ServiceInfo,
    Stack,
    StackError,
    StackInfo,
    render_env_file,
)

MOTO = "http://127.0.0.1:4001"
SM = "http://127.0.0.1:4002"


def _info(tmp_path: Path, sagemaker: bool = True) -> StackInfo:
    services = {
        AWS: ServiceInfo(AWS, 1, 4001, MOTO, "aws.log", 0.0),
        SNOWFLAKE: ServiceInfo(SNOWFLAKE, 2, 4003, "http://127.0.0.1:4003", "sf.log", 0.0),
    }
    if sagemaker:
        services[SAGEMAKER] = ServiceInfo(SAGEMAKER, 3, 4002, SM, "sm.log", 0.0)
    return StackInfo(tmp_path, services)


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        pytest.param("s3", MOTO, id="s3"),
        pytest.param("logs", MOTO, id="logs"),
        pytest.param("cloudwatch", MOTO, id="cloudwatch"),
        pytest.param("sns", MOTO, id="sns"),
        pytest.param("sts", MOTO, id="sts"),
        pytest.param("iam", MOTO, id="iam"),
        pytest.param("application-autoscaling", MOTO, id="autoscaling"),
        pytest.param("secretsmanager", MOTO, id="secretsmanager"),
        pytest.param("events", MOTO, id="events"),
        pytest.param("sqs", MOTO, id="sqs"),
        pytest.param("sagemaker", SM, id="sagemaker"),
        pytest.param("sagemaker-runtime", SM, id="sagemaker-runtime"),
    ],
)
def test_env_file_routes_boto3_to_the_right_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: str, expected: str
) -> None:
    """boto3 itself, given only the env file, talks to the stack."""
    import boto3

    env_file = tmp_path / "env"
    env_file.write_text(render_env_file(_info(tmp_path).env()))
    exported = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(env_file))} && env -0"], capture_output=True, check=True
    ).stdout
    for item in exported.split(b"\0"):
        key, _, value = item.decode().partition("=")
        if key.startswith(("AWS_", "AIRFLOW_CONN_")):
            monkeypatch.setenv(key, value)
    client = boto3.session.Session().client(service)
    assert client.meta.endpoint_url == expected
    assert client.meta.region_name == "us-east-1"


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        pytest.param("s3", MOTO, id="s3"),
        pytest.param("logs", MOTO, id="logs"),
        pytest.param("sts", MOTO, id="sts"),
        pytest.param("sagemaker", SM, id="sagemaker"),
        pytest.param("sagemaker-runtime", SM, id="sagemaker-runtime"),
    ],
)
def test_airflow_aws_connection_routes_services(tmp_path: Path, service: str, expected: str) -> None:
    """The Amazon provider reads our AIRFLOW_CONN_AWS_DEFAULT the way we mean it."""
    from airflow.models.connection import Connection
    from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

    conn = Connection.from_json(_info(tmp_path).env()["AIRFLOW_CONN_AWS_DEFAULT"], conn_id="aws_default")
    wrapper = AwsConnectionWrapper(conn)
    assert wrapper.get_service_endpoint_url(service) == expected
    assert wrapper.region_name == "us-east-1"
    assert wrapper.aws_access_key_id == "devstack"


def test_without_sagemaker_service_sagemaker_falls_back_to_moto(tmp_path: Path) -> None:
    info = _info(tmp_path, sagemaker=False)
    assert info.env()["AWS_ENDPOINT_URL_SAGEMAKER"] == MOTO
    assert "DEVSTACK_SAGEMAKER_URL" not in info.env()
    with pytest.raises(StackError, match="SageMaker service is not running"):
        info.client("sagemaker")


def test_airflow_snowflake_connection_reaches_the_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_lifecycle.hooks.snowflake_hook import SnowflakeHook

    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEFAULT", _info(tmp_path).env()["AIRFLOW_CONN_SNOWFLAKE_DEFAULT"])
    params = SnowflakeHook(snowflake_conn_id="snowflake_default")._get_conn_params()
    assert (params["host"], params["port"], params["protocol"]) == ("127.0.0.1", 4003, "http")
    assert (params["account"], params["database"], params["schema"]) == ("fakesnow", "FRAUD_DB", "RAW")


def test_env_file_quotes_values_for_the_shell(tmp_path: Path) -> None:
    text = render_env_file({"A": 'it\'s "quoted" $HOME', "B": "plain"})
    out = subprocess.run(
        ["bash", "-c", 'eval "$0"; printf "%s|%s" "$A" "$B"', text], capture_output=True, text=True, check=True
    ).stdout
    assert out == 'it\'s "quoted" $HOME|plain'


def test_free_port_prefers_the_previous_port_when_free() -> None:
    port = free_port()
    assert free_port(preferred=port) == port


def test_free_port_avoids_a_busy_preferred_port() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert free_port(preferred=taken) != taken


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 3).splitlines() == ["line 97", "line 98", "line 99"]
    assert tail(tmp_path / "missing.log") == ""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_descendants_include_processes_in_other_sessions() -> None:
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'], start_new_session=True); "
        "time.sleep(30)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        while not descendants(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        kids = descendants(parent.pid)
        assert len(kids) == 1
        assert os.getpgid(kids[0]) != os.getpgid(parent.pid)
    finally:
        for kid in descendants(parent.pid):
            os.kill(kid, 9)
        parent.kill()
        parent.wait()


def _fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_a_service_that_crashes_fails_up_with_its_log(tmp_path: Path) -> None:
    python = _fake_python(tmp_path, 'echo "bind failed: address in use for $4" >&2; exit 3')
    stack = Stack(tmp_path / "state", python=python, seed=None, sagemaker=False, startup_timeout=20)
    with pytest.raises(StackError, match=r"exited during start-up \(exit code 3\)") as excinfo:
        stack.up()
    assert "bind failed: address in use" in str(excinfo.value)
    assert json.loads(stack.stack_file.read_text())["services"] == {}


def test_a_service_that_never_gets_healthy_times_out_and_is_stopped(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    python = _fake_python(tmp_path, f'echo $$ >> {pids}; echo "still warming up"; exec sleep 60')
    stack = Stack(tmp_path / "state", python=python, seed=None, sagemaker=False, startup_timeout=2)
    started = time.monotonic()
    with pytest.raises(StackError, match="did not become healthy") as excinfo:
        stack.up()
    assert time.monotonic() - started < 30
    assert "still warming up" in str(excinfo.value)
    started_pids = [int(line) for line in pids.read_text().split()]
    assert len(started_pids) == 2
    for pid in started_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not list((tmp_path / "state" / "run").glob("*.pid"))


def test_info_explains_when_the_stack_is_not_running(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="not running"):
        Stack(tmp_path).info()


def test_default_seed_is_the_documented_history() -> None:
    assert Stack().seed_params == SeedParams(days=120, rows_per_day=300, seed=42)


@pytest.mark.parametrize(
    ("record", "params", "expected"),
    [
        pytest.param(None, SeedParams(), None, id="never-seeded"),
        pytest.param({"layout": 2, "last_day": "2026-12-07"}, SeedParams(), None, id="ends-yesterday"),
        pytest.param(
            {"layout": 2, "last_day": "2026-12-05"}, SeedParams(), "the history ends 2026-12-05", id="ended-earlier"
        ),
        pytest.param(
            {"layout": 2, "last_day": "2026-01-05"},
            SeedParams(days=5, start=dt.date(2026, 1, 1)),
            None,
            id="a-fixed-start-is-kept",
        ),
        pytest.param({"last_day": "2026-12-07"}, SeedParams(), "seeded with layout 1", id="older-layout"),
        pytest.param({"layout": 2}, SeedParams(), "names no last day", id="no-last-day"),
    ],
)
def test_a_history_that_ended_before_yesterday_is_seeded_again(
    tmp_path: Path, record: dict[str, object] | None, params: SeedParams, expected: str | None
) -> None:
    """A state directory seeded days ago holds no transactions of the latest days, nor their arrived labels."""
    stack = Stack(tmp_path, seed=params)
    if record is not None:
        stack.seed_file.parent.mkdir(parents=True)
        stack.seed_file.write_text(json.dumps(record))
    reason = stack.seed_outdated(today=dt.date(2026, 12, 8))
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason
