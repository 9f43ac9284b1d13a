"""``tools.ui`` without starting Airflow: its settings, the admin password, the port and the catchup policy."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tools import ui as ui_module
from tools.ui import ADMIN_USER, AirflowUI, UIError

ROOT = Path(__file__).resolve().parents[2]
DEVSTACK_ENV = {
    "AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws"}',
    "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5999",
}


def test_components_get_the_project_settings_and_the_devstack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "someone-real")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", "https://sns.us-east-1.amazonaws.com")
    env = AirflowUI(tmp_path, devstack_env=DEVSTACK_ENV).environment(8123)
    assert env["AIRFLOW_HOME"] == str(tmp_path)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(ROOT / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"] == "0"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] == "0.25"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow.db'}"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1" and env["AIRFLOW__API__PORT"] == "8123"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert env["ML_LIFECYCLE_ENV"] == "local"
    assert env["PYTHONPATH"].split(":")[:2] == [str(ROOT / "plugins"), str(ROOT)]
    assert env["AIRFLOW_CONN_AWS_DEFAULT"] == DEVSTACK_ENV["AIRFLOW_CONN_AWS_DEFAULT"]
    assert env["AWS_ENDPOINT_URL_S3"] == DEVSTACK_ENV["AWS_ENDPOINT_URL_S3"]
    # nothing may route the components to a real account
    assert "AWS_PROFILE" not in env
    assert "AWS_ENDPOINT_URL_SNS" not in env


def test_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    ui = AirflowUI(tmp_path)
    assert ui.password_is_new()
    password = ui.admin_password()
    assert len(password) >= 16
    assert json.loads(ui.password_file.read_text()) == {ADMIN_USER: password}
    assert stat.S_IMODE(ui.password_file.stat().st_mode) == 0o600
    again = AirflowUI(tmp_path)
    assert not again.password_is_new() and again.admin_password() == password
    first, second = ui.environment(8080), again.environment(8080)
    assert first["AIRFLOW__API_AUTH__JWT_SECRET"] == second["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert (
        first["AIRFLOW__API_AUTH__JWT_SECRET"]
        != AirflowUI(tmp_path / "other").environment(8080)["AIRFLOW__API_AUTH__JWT_SECRET"]
    )


def test_a_broken_password_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / ui_module.PASSWORDS_FILE).write_text('{"bob": "x"}')
    with pytest.raises(UIError, match="no password for 'admin'"):
        AirflowUI(tmp_path).admin_password()


def test_a_taken_port_is_refused_or_avoided(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UIError, match=f"port {port} on 127.0.0.1 is in use"):
            AirflowUI(tmp_path, port=port)._choose_port()
        monkeypatch.setattr(ui_module, "DEFAULT_PORT", port)
        chosen = AirflowUI(tmp_path)._choose_port()
    assert chosen != port


def test_stop_with_nothing_running(tmp_path: Path) -> None:
    assert AirflowUI(tmp_path).stop() == []
    assert AirflowUI(tmp_path).running() is None


# a stand-in component: exits on SIGTERM, after looking whether the API server (argv[2]) still runs when asked to
_COMPONENT = """
import signal, sys, time
def stop(*_):
    if sys.argv[1] == "scheduler":
        time.sleep(0.3)  # a task still reporting its state
        try:  # an exited process not yet reaped is a zombie ("Z"): gone too
            state = open(f"/proc/{sys.argv[2]}/stat").read().rsplit(")", 1)[1].split()[0]
            seen = "api-server gone" if state == "Z" else "api-server up"
        except FileNotFoundError:
            seen = "api-server gone"
        open(sys.argv[3], "w").write(seen)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_the_api_server_stops_after_the_components_whose_tasks_report_to_it(tmp_path: Path) -> None:
    """A task still running when the scheduler is told to stop reports its end through the API server."""
    seen = tmp_path / "seen"
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
            api_pid = str(procs["api-server"].pid) if "api-server" in procs else "0"
            procs[name] = subprocess.Popen(
                [sys.executable, "-c", _COMPONENT, name, api_pid, str(seen)],
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            assert procs[name].stdout is not None and procs[name].stdout.readline().strip() == "ready"
        ui = AirflowUI(tmp_path)
        components = {n: ui_module.ComponentInfo(n, p.pid, str(tmp_path / f"{n}.log")) for n, p in procs.items()}
        ui._write_state(ui_module.UIInfo("http://127.0.0.1:1", 1, tmp_path, components))
        assert sorted(ui.stop(timeout=10)) == sorted(procs)
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
    assert seen.read_text() == "api-server up"
    assert all(proc.returncode == 0 for proc in procs.values())  # each exited on SIGTERM, none was killed


@pytest.mark.parametrize(
    ("catchup", "expected"),
    [pytest.param(False, False, id="local-default-no-catchup"), pytest.param(True, True, id="catchup-kept")],
)
def test_the_catchup_policy_applies_when_airflow_parses_the_dags(tmp_path: Path, catchup: bool, expected: bool) -> None:
    env = AirflowUI(tmp_path / "home", catchup=catchup).environment(8080)
    # the dev example turns catch-up on for train_model (local turns it off), so "kept" is observable
    env["ML_LIFECYCLE_ENV"] = "dev"
    probe = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        "bag = DagBag()\n"
        "import json; print(json.dumps({d: bag.dags[d].catchup for d in bag.dags}), flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    catchups = json.loads(out.stdout.strip().splitlines()[-1])
    assert "train_model" in catchups
    assert catchups["train_model"] is expected


def test_the_log_servers_get_ports_of_their_own(tmp_path: Path) -> None:
    """Airflow's fixed log server ports (8793, 8794) would be shared by two Airflows on one machine."""
    ui = AirflowUI(tmp_path)
    assert "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT" not in ui.environment(8080)  # chosen when it starts
    ui.log_server_ports = ui._choose_log_server_ports()
    env = ui.environment(8080)
    worker = int(env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"])
    trigger = int(env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"])
    assert worker != trigger and not {worker, trigger} & {8793, 8794}


def test_a_database_at_the_migrated_revision_is_not_migrated_again(tmp_path: Path) -> None:
    """``airflow db migrate`` takes seconds even with nothing to do: a start skips it when the record matches."""
    import sqlite3

    ui = AirflowUI(tmp_path)
    assert not ui.migrated_already()  # no database, no record
    with sqlite3.connect(tmp_path / "airflow.db") as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES ('rev-a')")
    assert ui.schema_revision() == "rev-a"
    assert not ui.migrated_already()  # never migrated from here

    stamp = tmp_path / ui_module.MIGRATED_FILE
    stamp.write_text(json.dumps({"airflow": ui_module._airflow_version(), "revision": "rev-a"}))
    assert ui.migrated_already()

    stamp.write_text(json.dumps({"airflow": "0.0.1", "revision": "rev-a"}))
    assert not ui.migrated_already(), "another Airflow version migrates"
    stamp.write_text(json.dumps({"airflow": ui_module._airflow_version(), "revision": "rev-b"}))
    assert not ui.migrated_already(), "a database at another revision migrates"
    stamp.write_text("{not json")
    assert not ui.migrated_already()


class _FakeAirflowAPI:
    """An API server whose components are healthy at once and whose Execution API answers ``execution`` codes."""

    def __init__(self, execution: list[int]) -> None:
        import http.server
        import threading

        self.execution = execution
        self.asked: list[str] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                fake.asked.append(self.path)
                if self.path == "/api/v2/monitor/health":
                    status = 200
                    body = {k: {"status": "healthy"} for k in ui_module.HEALTH_KEYS}
                else:
                    status = fake.execution.pop(0) if len(fake.execution) > 1 else fake.execution[0]
                    body = {"status": "healthy"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("execution", [[200], [503, 200]], ids=["at-once", "after-a-refusal"])
def test_start_waits_until_the_execution_api_answers(tmp_path: Path, execution: list[int]) -> None:
    """The Execution API is built on its first request: a start asks it, so no task's first call times out."""
    import time

    answers = len(execution)
    api = _FakeAirflowAPI(execution)
    try:
        info = ui_module.UIInfo(api.url, 1, tmp_path, {})
        AirflowUI(tmp_path)._wait_healthy(info, deadline=time.monotonic() + 30)
    finally:
        api.close()
    assert api.asked.count("/execution/health") == answers


def test_a_start_whose_execution_api_never_answers_fails_naming_it(tmp_path: Path) -> None:
    import time

    api = _FakeAirflowAPI([503])
    try:
        info = ui_module.UIInfo(api.url, 1, tmp_path, {})
        with pytest.raises(UIError, match="Execution API"):
            AirflowUI(tmp_path)._wait_healthy(info, deadline=time.monotonic() + 2)
    finally:
        api.close()
