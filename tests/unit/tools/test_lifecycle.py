"""tools/lifecycle.py: the REST driver's progress callbacks and failures, and the drift a demo injects."""

from __future__ import annotations

import datetime as dt
import io
import math
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tools import lifecycle


class FakeRuntime:
    """An Airflow whose run goes through scripted task states, one snapshot per look."""

    def __init__(self, snapshots: list[tuple[str, list[dict[str, Any]]]], home: Path) -> None:
        self.snapshots = snapshots
        self.looks = 0
        self.home = home
        self.info = SimpleNamespace(url="http://127.0.0.1:1", components={})
        self.calls: list[tuple[str, str]] = []

    def token(self, url: str) -> str:
        return "token"

    def dead_components(self, info: Any) -> list[str]:
        return []

    def api(self, method: str, path: str, *, token: str, body: Any, url: str, timeout: float) -> Any:
        self.calls.append((method, path))
        state, tis = self.snapshots[min(self.looks, len(self.snapshots) - 1)]
        if path.endswith("/taskInstances"):
            self.looks += 1
            return {"task_instances": tis}
        return {"state": state}


def ti(task_id: str, state: str | None, try_number: int = 1, start: str | None = None) -> dict[str, Any]:
    return {"task_id": task_id, "state": state, "try_number": try_number, "start_date": start}


def test_wait_reports_each_task_state_change_once(tmp_path: Path) -> None:
    snapshots = [
        ("running", [ti("plan", "queued"), ti("train", None)]),
        ("running", [ti("plan", "running", start="1"), ti("train", None)]),
        ("running", [ti("plan", "running", start="1"), ti("train", None)]),
        ("running", [ti("plan", "success", start="1"), ti("train", "up_for_retry", start="2")]),
        ("success", [ti("plan", "success", start="1"), ti("train", "success", 2, start="2")]),
    ]
    seen = []
    driver = lifecycle.Driver(FakeRuntime(snapshots, tmp_path), on_task=lambda *a: seen.append(a), poll=0)
    states = driver.wait("train_model", "r1", timeout=10)
    assert states == {"plan": "success", "train": "success"}
    assert [(task, state, tries) for _, _, task, state, tries in seen] == [
        ("plan", "queued", 1),
        ("plan", "running", 1),
        ("plan", "success", 1),
        ("train", "up_for_retry", 1),
        ("train", "success", 2),
    ]


def test_wait_raises_with_the_failed_tasks_log(tmp_path: Path) -> None:
    folder = tmp_path / "logs" / "dag_id=train_model" / "run_id=r1" / "task_id=train"
    folder.mkdir(parents=True)
    (folder / "attempt=1.log").write_text('{"level": "error", "event": "the training job failed: OOM"}\n')
    snapshots = [("failed", [ti("plan", "success"), ti("train", "failed")])]
    driver = lifecycle.Driver(FakeRuntime(snapshots, tmp_path), poll=0)
    with pytest.raises(lifecycle.RunFailedError, match="the training job failed: OOM") as raised:
        driver.wait("train_model", "r1", timeout=10)
    assert raised.value.states == {"plan": "success", "train": "failed"}


def test_wait_returns_when_the_named_task_waits_for_a_person(tmp_path: Path) -> None:
    snapshots = [
        ("running", [ti("register", "success"), ti("approve", "running")]),
        ("running", [ti("register", "success"), ti("approve", "awaiting_input")]),
    ]
    driver = lifecycle.Driver(FakeRuntime(snapshots, tmp_path), poll=0)
    states = driver.wait("train_model", "r1", timeout=10, input_task="approve")
    assert states == {"register": "success", "approve": "awaiting_input"}
    # without input_task the wait goes on: the run has not ended
    driver = lifecycle.Driver(FakeRuntime(snapshots[1:], tmp_path), poll=0)
    with pytest.raises(lifecycle.LifecycleError, match="timed out"):
        driver.wait("train_model", "r1", timeout=0)


def test_answer_waits_for_the_scheduler_to_see_the_request_then_answers(tmp_path: Path) -> None:
    runtime = FakeRuntime([("running", [])], tmp_path)
    log = tmp_path / "scheduler.log"
    runtime.log_file = lambda component: log
    finished = (
        "TaskInstance Finished: dag_id=train_model, task_id=approve, run_id=r1, map_index=-1, state=awaiting_input"
    )
    log.write_text("TaskInstance Finished: dag_id=train_model, task_id=approve, run_id=r0, state=awaiting_input\n")
    driver = lifecycle.Driver(runtime, poll=0)
    with pytest.raises(lifecycle.LifecycleError, match="request exit"):
        driver.answer("train_model", "r1", "approve", "Approve", "ok", timeout=0)
    assert not [c for c in runtime.calls if c[0] == "PATCH"], "no answer before the scheduler saw the request"
    log.write_text(finished + "\n")
    driver.answer("train_model", "r1", "approve", "Approve", "ok", timeout=0)
    assert runtime.calls[-1] == ("PATCH", "/api/v2/dags/train_model/dagRuns/r1/taskInstances/approve/-1/hitlDetails")


def test_wait_names_what_it_waited_for_when_time_runs_out(tmp_path: Path) -> None:
    driver = lifecycle.Driver(FakeRuntime([("running", [ti("plan", "running")])], tmp_path), poll=0)
    with pytest.raises(lifecycle.LifecycleError, match="timed out after 0 s waiting for train_model run r1"):
        driver.wait("train_model", "r1", timeout=0)


def test_drifted_rows_shift_spending_and_keep_the_derived_features_consistent() -> None:
    names = lifecycle.feature_names()
    row = ["0"] * len(names)
    at = {n: i for i, n in enumerate(names)}
    row[at["amount"]], row[at["card_avg_amount_7d"]], row[at["channel"]] = "100.0", "50.0", "POS"
    (shifted,) = lifecycle.drifted([row], {"amount": 2.0, "card_avg_amount_7d": 1.0})
    assert float(shifted[at["amount"]]) == 200.0
    assert math.isclose(float(shifted[at["log_amount"]]), math.log1p(200.0))
    assert float(shifted[at["amount_to_card_avg_ratio"]]) == 4.0
    assert shifted[at["channel"]] == "POS" and row[at["amount"]] == "100.0", "other columns and the input unchanged"


def test_a_drifted_count_stays_a_whole_number() -> None:
    names = lifecycle.feature_names()
    at = {n: i for i, n in enumerate(names)}
    row = ["1"] * len(names)
    row[at["card_txn_count_24h"]] = "3"
    (shifted,) = lifecycle.drifted([row], {"card_txn_count_24h": 2.5})
    assert shifted[at["card_txn_count_24h"]] == "8"  # 7.5 to the nearest even whole number


def test_the_injected_drift_moves_more_than_half_of_the_monitored_features() -> None:
    """With the derived features that follow, the demo's drift is found at the local drift share."""
    from ml_lifecycle.config import load_config

    cfg = load_config("local")
    monitored = [f for f in lifecycle.feature_names() if f not in cfg.monitoring.ignore_features]
    moved = set(lifecycle.DRIFT_FACTORS) | {"log_amount", "amount_to_card_avg_ratio"}
    assert moved <= set(monitored)
    assert len(moved) / len(monitored) > cfg.monitoring.drift.share


def test_drifted_refuses_a_factor_for_no_feature() -> None:
    with pytest.raises(ValueError, match=r"name no feature of the model: \['amout'\]"):
        lifecycle.drifted([], {"amout": 2.0})


class SchedulerFake:
    """Unpausing makes the scheduler create the due run after a few looks; the driver must fail it."""

    def __init__(self, home: Path, *, blocked_until_failed: bool = False) -> None:
        self.home = home
        self.info = SimpleNamespace(url="http://127.0.0.1:1", components={})
        self.paused = {"a": True, "b": True}
        self.looks = 0
        self.runs = {"a": [{"dag_run_id": "scheduled__a", "state": "queued"}], "b": []}
        self.patched: list[tuple[str, Any]] = []
        #: ``a``'s earlier run is still going (max_active_runs=1): its due run comes only once that one ended
        self.blocked_until_failed = blocked_until_failed

    def token(self, url: str) -> str:
        return "token"

    def api(self, method: str, path: str, *, token: str, body: Any, url: str, timeout: float) -> Any:
        dag = path.split("/dags/")[1].split("/")[0].split("?")[0]
        if method == "PATCH":
            self.patched.append((path, body))
            for run in self.runs[dag]:
                if path.endswith(f"/dagRuns/{run['dag_run_id']}"):
                    run["state"] = body["state"]
            return {}
        if path.endswith(f"/dags/{dag}"):
            self.looks += 1
            if self.blocked_until_failed and dag == "a":
                if any(r["state"] != "failed" for r in self.runs["a"]):
                    return {"next_dagrun_run_after": "2000-01-01T00:00:00+00:00"}
                if len(self.runs["a"]) == 1:  # the due run, created once the earlier one ended
                    self.runs["a"].append({"dag_run_id": "scheduled__due", "state": "running"})
                return {"next_dagrun_run_after": "2999-01-01T00:00:00+00:00"}
            due = "2000-01-01T00:00:00+00:00" if self.looks < 3 else "2999-01-01T00:00:00+00:00"
            return {"next_dagrun_run_after": due if dag == "a" else None}
        return {"dag_runs": self.runs[dag]}


def test_unpause_waits_for_the_due_runs_and_fails_them(tmp_path: Path) -> None:
    fake = SchedulerFake(tmp_path)
    failed = lifecycle.Driver(fake).unpause("a", "b")
    assert failed == {"a": ["scheduled__a"], "b": []}
    assert fake.patched == [
        ("/api/v2/dags/a", {"is_paused": False}),
        ("/api/v2/dags/b", {"is_paused": False}),
        ("/api/v2/dags/a/dagRuns/scheduled__a", {"state": "failed"}),
    ]
    assert fake.looks >= 3, "the driver waited until the scheduler had moved past the due interval"


def test_unpause_fails_an_earlier_unfinished_run_that_holds_back_the_due_one(tmp_path: Path) -> None:
    fake = SchedulerFake(tmp_path, blocked_until_failed=True)
    failed = lifecycle.Driver(fake).unpause("a", "b")
    assert failed == {"a": ["scheduled__a", "scheduled__due"], "b": []}
    assert all(r["state"] == "failed" for r in fake.runs["a"])


def _stubbed_runtime(requests: list[dict[str, Any]], answers: int) -> Any:
    """A real ``sagemaker-runtime`` client whose calls are checked against botocore's model and recorded."""
    import boto3
    from botocore.response import StreamingBody
    from botocore.stub import ANY, Stubber

    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    for _ in range(answers):
        stubber.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(b"0.01\n"), 5)},
            {"EndpointName": ANY, "Body": ANY, "ContentType": ANY, "Accept": ANY, "InferenceId": ANY},
        )
    client.meta.events.register(
        "before-parameter-build.sagemaker-runtime.InvokeEndpoint", lambda params, **_: requests.append(params)
    )
    stubber.activate()
    return client


def test_real_time_scoring_sends_one_request_per_transaction_with_its_inference_id() -> None:
    requests: list[dict[str, Any]] = []
    client = _stubbed_runtime(requests, answers=3)
    rows = [["12.5", "2.6"], ["80.0", "4.4"], ["3.0", "1.4"]]

    ids = ["tx-20260301-000001", "tx-20260301-000002", "tx-3"]
    sent = lifecycle.send(client, "fraud", rows, inference_ids=ids, clients=1)

    assert sent == 3
    assert [r["InferenceId"] for r in requests] == ["tx-20260301-000001", "tx-20260301-000002", "tx-3"]
    assert [r["Body"] for r in requests] == [b"12.5,2.6\n", b"80.0,4.4\n", b"3.0,1.4\n"]


def test_real_time_scoring_has_several_requests_in_flight_each_row_once_with_its_id() -> None:
    """Point-of-sale clients score at the same time; a barrier of four opens only if four requests overlap."""
    overlap = threading.Barrier(4, timeout=30)
    lock = threading.Lock()
    seen: list[tuple[str, bytes]] = []

    rows = [[str(i), "1.0"] for i in range(40)]
    calls = iter(range(len(rows)))

    def invoke_endpoint(**request: Any) -> dict[str, Any]:
        with lock:
            call = next(calls)
            seen.append((request["InferenceId"], request["Body"]))
        if call < 4:  # the first four wait for each other
            overlap.wait()
        return {"Body": SimpleNamespace(read=lambda: b"0.1\n")}

    rows = [[str(i), "1.0"] for i in range(40)]
    ids = [f"tx-{i}" for i in range(40)]
    assert (
        lifecycle.send(SimpleNamespace(invoke_endpoint=invoke_endpoint), "fraud", rows, inference_ids=ids, clients=4)
        == 40
    )
    assert sorted(seen) == sorted((f"tx-{i}", f"{i},1.0\n".encode()) for i in range(40))


def test_batched_traffic_carries_no_inference_id() -> None:
    requests: list[dict[str, Any]] = []
    client = _stubbed_runtime(requests, answers=0)
    client.invoke_endpoint = lambda **kwargs: requests.append(kwargs) or {"Body": SimpleNamespace(read=lambda: b"")}

    assert lifecycle.send(client, "fraud", [["1"], ["2"], ["3"]], batch=2) == 2
    assert all("InferenceId" not in r for r in requests)


@pytest.mark.parametrize(
    ("ids", "words"),
    [
        pytest.param(["tx-1"], "1 inference ids for 2 rows", id="count"),
        pytest.param(["tx-1", " tx-2"], "must be 1-64 printable characters", id="leading-space"),
        pytest.param(["tx-1", "x" * 65], "must be 1-64 printable characters", id="too-long"),
    ],
)
def test_bad_inference_ids_are_refused_naming_them_before_anything_is_sent(ids: list[str], words: str) -> None:
    sent: list[Any] = []
    client = SimpleNamespace(invoke_endpoint=lambda **r: sent.append(r) or {"Body": SimpleNamespace(read=lambda: b"")})
    with pytest.raises(ValueError, match=words):
        lifecycle.send(client, "fraud", [["1"], ["2"]], inference_ids=ids)
    assert sent == []


def _capture_line(when: str) -> bytes:
    import json

    return json.dumps({"captureData": {}, "eventMetadata": {"eventId": "e", "inferenceTime": when}}).encode()


def test_captured_records_count_the_requests_since_a_time() -> None:
    import datetime as dt

    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="capture")
        first = b"\n".join(_capture_line(t) for t in ("2026-12-07T22:00:09Z", "2026-12-07T22:00:10Z"))
        s3.put_object(Bucket="capture", Key="ep/AllTraffic/2026/12/07/22/00-09-000-a.jsonl", Body=first)
        later = _capture_line("2026-12-07T22:00:11Z")
        s3.put_object(Bucket="capture", Key="ep/AllTraffic/2026/12/07/22/00-11-000-b.jsonl", Body=later)
        s3.put_object(Bucket="capture", Key="other/AllTraffic/2026/12/07/22/x.jsonl", Body=later)
        assert lifecycle.captured_records(s3, "s3://capture/ep/") == 3
        since = dt.datetime(2026, 12, 7, 22, 0, 10, tzinfo=dt.UTC)
        assert lifecycle.captured_records(s3, "s3://capture/ep/", since=since) == 2


def test_an_interval_starts_at_a_whole_second_that_has_come() -> None:
    import datetime as dt

    before = dt.datetime.now(dt.UTC)
    start = lifecycle.interval_start()
    assert start.microsecond == 0 and start > before
    assert dt.datetime.now(dt.UTC) >= start, "every request sent from now on is at or after the start"


def test_traffic_days_are_the_latest_whose_labels_have_arrived() -> None:
    """Labels of genuine transactions arrive 2-5 days late: traffic ends 5 days before today, within the lookback."""
    from devstack.snowflake.seed import GENUINE_REVIEW_DAYS

    start, end = lifecycle.labelled_traffic_days(dt.date(2026, 12, 8), 3)
    assert (start, end) == ("2026-11-30 00:00:00", "2026-12-03 00:00:00")
    newest = dt.datetime.fromisoformat(end)
    assert newest + dt.timedelta(days=GENUINE_REVIEW_DAYS[1]) <= dt.datetime(2026, 12, 8)
    # the oldest label arrives within monitor_model's label lookback of 168 hours
    assert dt.datetime.fromisoformat(start) + dt.timedelta(days=GENUINE_REVIEW_DAYS[0]) >= dt.datetime(
        2026, 12, 8
    ) - dt.timedelta(hours=168)


class QueueFake:
    """An Airflow's queued asset events of one DAG: listed, then deleted (404 when there are none, as Airflow)."""

    def __init__(self, queued: int, home: Path) -> None:
        self.queued = queued
        self.home = home
        self.info = SimpleNamespace(url="http://127.0.0.1:1", components={})
        self.calls: list[tuple[str, str]] = []

    def token(self, url: str) -> str:
        return "token"

    def api(self, method: str, path: str, *, token: str, body: Any, url: str, timeout: float) -> Any:
        self.calls.append((method, path))
        if method == "DELETE":
            if not self.queued:
                raise AssertionError("Airflow answers 404 to a delete with nothing queued")
            self.queued = 0
            return None
        return {"queued_events": [{}] * self.queued, "total_entries": self.queued}


@pytest.mark.parametrize("queued", [0, 2])
def test_asset_events_queued_while_paused_are_dropped(tmp_path: Path, queued: int) -> None:
    fake = QueueFake(queued, tmp_path)
    assert lifecycle.Driver(fake).drop_queued_asset_events("deploy_model") == queued
    assert fake.queued == 0
    assert ("DELETE", "/api/v2/dags/deploy_model/assets/queuedEvents") in fake.calls or not queued
