from __future__ import annotations

from types import SimpleNamespace

import pytest

from ml_lifecycle import notifications
from ml_lifecycle.config import load_config

CFG = load_config("local")


class RecordingSns:
    calls: list[dict] = []

    def __init__(self, aws_conn_id=None):
        self.aws_conn_id = aws_conn_id

    def publish_to_target(self, **kwargs):
        RecordingSns.calls.append(kwargs)


class BrokenSns(RecordingSns):
    def publish_to_target(self, **kwargs):
        raise RuntimeError("NotFound: Topic does not exist")


def _context(error):
    ti = SimpleNamespace(dag_id="train_model", task_id="train", try_number=3, map_index=-1, run_id="manual__a b")
    return {"ti": ti, "run_id": "manual__a b", "exception": error, "dag": SimpleNamespace(dag_id="train_model")}


@pytest.fixture(autouse=True)
def _sns(monkeypatch):
    RecordingSns.calls = []
    monkeypatch.setattr("airflow.providers.amazon.aws.hooks.sns.SnsHook", RecordingSns)


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
    monkeypatch.setattr("airflow.providers.amazon.aws.hooks.sns.SnsHook", BrokenSns)
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
