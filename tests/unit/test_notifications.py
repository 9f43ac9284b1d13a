from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from ml_lifecycle import notifications
from ml_lifecycle.config import load_config

CFG = load_config("local")


class RecordingSns:
    calls: list[dict] = []

    def __init__(self, aws_conn_id=None, region_name=None):
        self.aws_conn_id = aws_conn_id

    def publish_to_target(self, **kwargs):
        RecordingSns.calls.append(kwargs)


class BrokenSns(RecordingSns):
    def publish_to_target(self, **kwargs):
        raise RuntimeError("NotFound: Topic does not exist")


def _context(error):
    ti = SimpleNamespace(dag_id="train_model", task_id="train", try_number=3, map_index=-1, run_id="manual__a b")
    return {"ti": ti, "run_id": "manual__a b", "exception": error, "dag": _dag()}


def _dag():
    from airflow.sdk import DAG

    return DAG("train_model", schedule=None, dagrun_timeout=dt.timedelta(hours=12))


@pytest.fixture(autouse=True)
def _sns(monkeypatch):
    RecordingSns.calls = []
    # the provider's SnsNotifier makes its hook from the name it imported
    monkeypatch.setattr("airflow.providers.amazon.aws.notifications.sns.SnsHook", RecordingSns)


def test_failure_message_names_task_run_try_log_and_error():
    subject, body = notifications.failure_message(_context(ValueError("boom")), CFG)
    assert "train_model.train" in subject and subject.startswith("[local]")
    assert "Try: 3" in body and "ValueError: boom" in body
    assert "http://localhost:8080/dags/train_model/runs/manual__a%20b/tasks/train?try_number=3" in body


def test_failure_callback_publishes_to_the_configured_topic():
    notifications.on_failure_callback(_context(RuntimeError("SageMaker job failed")))
    (call,) = RecordingSns.calls
    assert call["target_arn"] == CFG.notifications.sns_topic_arn
    assert "SageMaker job failed" in call["message"]


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("password=hunter2", id="password"),
        pytest.param("AKIAABCDEFGHIJKLMNOP", id="access-key"),
        pytest.param("aws_secret_access_key: abc/def+ghi", id="secret-key"),
    ],
)
def test_secrets_never_reach_the_message(secret):
    notifications.on_failure_callback(_context(RuntimeError(f"connect failed with {secret}")))
    message = RecordingSns.calls[0]["message"]
    assert "hunter2" not in message and "AKIAABCDEFGHIJKLMNOP" not in message and "abc/def+ghi" not in message


def test_sns_failure_is_logged_not_raised(monkeypatch, caplog):
    monkeypatch.setattr("airflow.providers.amazon.aws.notifications.sns.SnsHook", BrokenSns)
    notifications.on_failure_callback(_context(RuntimeError("original failure")))
    assert notifications.publish("s", "m", cfg=CFG) is False


def test_no_topic_configured_sends_nothing():
    cfg = CFG.model_copy(update={"notifications": CFG.notifications.model_copy(update={"sns_topic_arn": None})})
    assert notifications.publish("s", "m", cfg=cfg) is False
    assert RecordingSns.calls == []


def test_credentials_are_masked_even_when_the_masker_knows_part_of_a_key_name():
    from airflow.sdk._shared.secrets_masker import mask_secret

    mask_secret("secret")  # e.g. a connection whose password is the word "secret"
    notifications.on_failure_callback(_context(RuntimeError("connect failed with aws_secret_access_key: abc/def+ghi")))
    assert "abc/def+ghi" not in RecordingSns.calls[0]["message"]


def test_the_notifiers_are_the_providers_sns_notifier():
    from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

    assert isinstance(notifications.on_failure_callback, SnsNotifier)
    assert isinstance(notifications.DagFailureNotifier(cfg=CFG), SnsNotifier)


def test_task_callback_called_as_airflow_calls_it_publishes_once_with_the_topic_and_connection():
    notifications.on_failure_callback(_context(RuntimeError("boom")))
    (call,) = RecordingSns.calls
    assert call["target_arn"] == CFG.notifications.sns_topic_arn
    assert call["subject"].startswith("[local] Airflow task failed")


def _dag_context(reason, run_id="scheduled__2026-01-04T00:00:00+00:00", ti=True):
    context = {"dag": _dag(), "run_id": run_id, "reason": reason}
    if ti:
        ti = SimpleNamespace(dag_id="train_model", task_id="train", try_number=1, map_index=-1, run_id=run_id)
        context["ti"] = ti
    return context


def test_dag_timeout_is_published_with_the_run_reason_and_last_task():
    notifier = notifications.DagFailureNotifier(cfg=CFG)
    notifier(_dag_context("timed_out"))
    (call,) = RecordingSns.calls
    assert call["subject"] == "[local] Airflow DAG run timed out: train_model"
    assert "dagrun_timeout: 12:00:00" in call["message"]
    assert "Reason: timed_out" in call["message"]
    assert "Last task started: train (try 1)" in call["message"]
    assert "/dags/train_model/runs/scheduled__2026-01-04T00%3A00%3A00%2B00%3A00" in call["message"]


def test_dag_failure_without_a_started_task_is_published():
    notifications.DagFailureNotifier(cfg=CFG)(_dag_context("all_tasks_deadlocked", ti=False))
    (call,) = RecordingSns.calls
    assert "can never run" in call["message"] and "Last task" not in call["message"]


def test_dag_failure_on_a_task_failure_is_not_reported_twice():
    notifications.DagFailureNotifier(cfg=CFG)(_dag_context("task_failure"))
    assert RecordingSns.calls == []


def test_dag_notifier_masks_secrets_and_is_not_a_template():
    notifier = notifications.DagFailureNotifier(cfg=CFG)
    run_id = "manual__{{ 7 * 7 }}__AKIAABCDEFGHIJKLMNOP__token:hunter2"
    notifier(_dag_context("timed_out", run_id=run_id))
    notifier(_dag_context("timed_out", run_id=run_id))  # the same object serves every run
    assert len(RecordingSns.calls) == 2
    for call in RecordingSns.calls:
        assert "hunter2" not in call["message"] and "AKIAABCDEFGHIJKLMNOP" not in call["message"]
        assert "token:***" in call["message"] and "{{ 7 * 7 }}" in call["message"]
        assert "49" not in call["message"]


def test_dag_notifier_never_raises(monkeypatch):
    monkeypatch.setattr("airflow.providers.amazon.aws.notifications.sns.SnsHook", BrokenSns)
    notifications.DagFailureNotifier(cfg=CFG)(_dag_context("timed_out"))


def test_every_dag_reports_its_own_failures():
    from airflow.dag_processing.dagbag import DagBag

    from ml_lifecycle.config import _repo_root

    bag = DagBag(dag_folder=str(_repo_root() / "dags"))
    assert bag.dags and not bag.import_errors
    for dag in bag.dags.values():
        assert isinstance(dag.on_failure_callback, notifications.DagFailureNotifier), dag.dag_id
        assert dag.dagrun_timeout is not None, dag.dag_id
