"""The approval task: who is asked and with what, and what each answer (or none) does to the model package."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from airflow.sdk.exceptions import DownstreamTasksSkipped, TaskAwaitingInput

from ml_lifecycle.config import load_config
from ml_lifecycle.operators import human_approval
from ml_lifecycle.operators.human_approval import ApprovalRequestNotifier, ModelApprovalOperator, format_timeout
from tests.unit.operators._hosting_fakes import AWS_CONNECTION, FakeSageMaker, FakeTI, context, package

CFG = load_config("local")
ARN = package(4)["ModelPackageArn"]
RESPONDED_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
REGISTRATION = {
    "model_package_arn": ARN,
    "model_package_group": "fraud-detector",
    "version": 4,
    "approval_status": "PendingManualApproval",
    "metrics": {"auc": 0.9731, "recall": 0.81},
    "evaluation_uri": "s3://ml-lifecycle-local/reports/train_model/w/evaluation/evaluation.json",
    "gate_uri": "s3://ml-lifecycle-local/reports/train_model/w/gate/gate.json",
    "reused_steps": {"train": "train-abc from run manual__1"},
}
LINEAGE = {"git_commit": "0123abc", "dag_run_id": "manual__2026-03-01", "training_job": "train-abc"}


@pytest.fixture
def registry() -> FakeSageMaker:
    fake = FakeSageMaker()
    fake.add_package(package(4, status="PendingManualApproval", **LINEAGE))
    return fake


@pytest.fixture(autouse=True)
def s3(monkeypatch):
    """The environment's bucket in moto: where the bias hold lives."""
    import boto3
    from moto import mock_aws

    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        client.create_bucket(Bucket=CFG.storage.bucket)
        yield client


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, str]]:
    messages: list[tuple[str, str]] = []
    monkeypatch.setattr(human_approval, "publish", lambda subject, body, cfg=None: messages.append((subject, body)))
    return messages


@pytest.fixture
def requests(monkeypatch) -> list[dict]:
    """What the operator writes as the Human-in-the-loop request (``upsert_hitl_detail``)."""
    written: list[dict] = []
    monkeypatch.setattr(
        "airflow.providers.standard.operators.hitl.upsert_hitl_detail", lambda **kwargs: written.append(kwargs)
    )
    return written


def _operator(registry: FakeSageMaker, s3_client=None, **kwargs) -> ModelApprovalOperator:
    """The operator in a DAG, followed by ``publish_approval`` (which a rejection skips)."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG("train_model", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)):
        op = ModelApprovalOperator(task_id="approve", registration=REGISTRATION, cfg=CFG, **kwargs)
        op >> EmptyOperator(task_id="publish_approval")
    op.__dict__["hook"] = SimpleNamespace(
        conn=registry,
        conn_region_name="us-east-1",
        conn_partition="aws",
        conn_config=AWS_CONNECTION,
        s3_hook=SimpleNamespace(get_conn=lambda: s3_client),
    )
    return op


def _context(op: ModelApprovalOperator) -> dict:
    ti = FakeTI()
    ti.dag_id, ti.task_id, ti.id = "train_model", "approve", "0198a3c2-0000-7000-8000-000000000001"
    return context(ti, task=op)


def _answer(option: str, comment: str | None = "checked the recall on the holdout") -> dict:
    return {
        "chosen_options": [option],
        "params_input": {} if comment is None else {"comment": comment},
        "responded_at": RESPONDED_AT,
        "responded_by_user": {"id": "42", "name": "alice"},
        "timedout": False,
    }


def _stored(registry: FakeSageMaker) -> dict:
    return registry.packages[ARN]


# ------------------------------------------------------------------------------------------ asking


def test_an_automatically_approved_package_asks_nobody(registry, requests, sent):
    registry.packages[ARN]["ModelApprovalStatus"] = "Approved"
    op = _operator(registry)
    with pytest.raises(AirflowSkipException, match="approved automatically"):
        op.execute(_context(op))
    assert requests == [] and sent == []
    assert registry.calls_named("update_model_package") == []


def test_a_pending_package_is_asked_with_its_evidence_and_waits_without_a_worker(registry, requests):
    called = []
    op = _operator(registry, notifiers=[called.append])
    ctx = _context(op)
    with pytest.raises(TaskAwaitingInput) as waiting:
        op.execute(ctx)
    # parked in awaiting_input until a response or the scheduler's deadline
    assert waiting.value.timeout == CFG.training.manual_approval.timeout
    (request,) = requests
    assert request["options"] == ["Approve", "Reject"]
    assert request["defaults"] is None, "nothing is chosen on timeout"
    assert request["assigned_users"] == [{"id": "admin", "name": "admin"}]
    assert list(request["params"]) == ["comment"]
    assert request["subject"] == "[local] Approve model fraud-detector version 4?"
    body = request["body"]
    for expected in (
        ARN,
        "#/model-packages/fraud-detector/4",  # console link of the version
        "| auc | 0.9731 |",
        REGISTRATION["gate_uri"],
        REGISTRATION["evaluation_uri"],
        "reports/train_model/w/evaluation/roc_curve.png",
        "git_commit: `0123abc`",
        "training_job: `train-abc`",
        "reused train: train-abc from run manual__1",
        "No answer within 1 h: the package is Rejected.",
    ):
        assert expected in body, expected
    assert called == [ctx], "the request notification goes out before the task waits"
    link = ctx["ti"].pushed["ml_lifecycle_model_package"]
    assert (link["group"], link["version"]) == ("fraud-detector", 4), "the console link of the version"


def test_on_the_devstack_the_request_links_the_devstack_console(registry, requests):
    op = _operator(registry, notifiers=[])
    op.hook.conn_config = SimpleNamespace(get_service_endpoint_url=lambda service: "http://127.0.0.1:4599")
    with pytest.raises(TaskAwaitingInput):
        op.execute(_context(op))
    body = requests[0]["body"]
    assert "http://127.0.0.1:4599/console/model-packages/fraud-detector/4" in body
    gate = REGISTRATION["gate_uri"].removeprefix("s3://")
    assert f"http://127.0.0.1:4599/console/s3/{gate}" in body
    assert "console.aws.amazon.com" not in body


def test_a_package_that_is_no_longer_pending_is_not_asked_about(registry, requests):
    registry.packages[ARN]["ModelApprovalStatus"] = "Rejected"
    op = _operator(registry)
    with pytest.raises(AirflowFailException, match="is Rejected, not PendingManualApproval"):
        op.execute(_context(op))
    assert requests == []


def test_the_request_notification_links_to_required_actions(registry):
    op = _operator(registry)
    op.subject, op.body = "[local] Approve model fraud-detector version 4?", "the body"
    subject, body = ApprovalRequestNotifier(cfg=CFG).compose(_context(op), CFG)
    assert subject == op.subject
    link = f"{CFG.notifications.airflow_base_url}/dags/train_model/runs/"
    assert body.startswith(f"Answer in Airflow (Required Actions): {link}")
    assert "/tasks/approve/required_actions?map_index=-1" in body
    assert body.endswith("the body")


def test_the_operator_never_answers_by_itself():
    with pytest.raises(ValueError, match="defaults must not be set"):
        ModelApprovalOperator(task_id="approve", registration=REGISTRATION, cfg=CFG, defaults="Approve")


# ------------------------------------------------------------------------------------------ answers


def test_approve_records_who_approved_and_why(registry, sent, s3):
    op = _operator(registry, s3)
    result = op.execute_complete(_context(op), _answer("Approve"))
    stored = _stored(registry)
    assert stored["ModelApprovalStatus"] == "Approved"
    assert stored["ApprovalDescription"] == (
        "Approved by alice (id 42) in Airflow at 2026-03-02T09:30:00+00:00: checked the recall on the holdout"
    )
    meta = stored["CustomerMetadataProperties"]
    assert meta["approval:decision"] == "approved"
    assert meta["approval:by"] == "alice (id 42)"
    assert meta["approval:comment"] == "checked the recall on the holdout"
    assert meta["git_commit"] == "0123abc", "the lineage stays"
    assert result["decision"] == "approved" and result["responded_by"] == {"id": "42", "name": "alice"}
    (message,) = sent
    assert message[0] == "[local] Model approval Approved: fraud-detector version 4"
    assert "deploy_model starts" in message[1]


def test_reject_records_the_reason_and_skips_publishing(registry, sent):
    op = _operator(registry)
    ctx = _context(op)
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        op.execute_complete(ctx, _answer("Reject", "precision below what fraud ops accepts"))
    assert skipped.value.tasks == ["publish_approval"]
    stored = _stored(registry)
    assert stored["ModelApprovalStatus"] == "Rejected"
    assert stored["ApprovalDescription"].endswith(": precision below what fraud ops accepts")
    assert stored["ApprovalDescription"].startswith("Rejected by alice (id 42)")
    assert ctx["ti"].pushed["return_value"]["decision"] == "rejected"
    (message,) = sent
    assert "Rejected" in message[0] and "Nothing is deployed." in message[1]


def test_an_answer_without_a_comment_says_so(registry, sent, s3):
    op = _operator(registry, s3)
    op.execute_complete(_context(op), _answer("Approve", comment=None))
    assert _stored(registry)["ApprovalDescription"].endswith(": no comment given")


def test_no_answer_by_the_deadline_rejects_and_fails(registry, sent):
    op = _operator(registry, response_timeout=timedelta(seconds=20))
    timeout = {"error": "The Human-in-the-loop response timeout has passed without a response", "error_type": "timeout"}
    with pytest.raises(AirflowFailException, match=r"approval timed out after 20 s: .* is now Rejected"):
        op.execute_complete(_context(op), timeout)
    stored = _stored(registry)
    assert stored["ModelApprovalStatus"] == "Rejected"
    assert stored["ApprovalDescription"].startswith("Rejected: approval timed out after 20 s without an answer")
    assert stored["CustomerMetadataProperties"]["approval:decision"] == "timed_out"
    (message,) = sent
    assert "timed out" in message[0] and "Nothing is deployed." in message[1]


def test_a_response_that_is_not_an_option_changes_nothing(registry, sent):
    op = _operator(registry)
    with pytest.raises(ValueError, match="not in"):
        op.execute_complete(_context(op), _answer("Approve please"))
    assert _stored(registry)["ModelApprovalStatus"] == "PendingManualApproval"
    assert registry.calls_named("update_model_package") == [] and sent == []


def test_another_resume_error_never_approves(registry, sent):
    op = _operator(registry)
    with pytest.raises(AirflowFailException, match=r"approval request .* failed"):
        op.execute_complete(_context(op), {"error": "trigger lost", "error_type": "unknown"})
    assert _stored(registry)["ModelApprovalStatus"] == "PendingManualApproval"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(20, "20 s", id="seconds"),
        pytest.param(3600, "1 h", id="hour"),
        pytest.param(172800, "2 days", id="days"),
        pytest.param(90061, "1 day 1 h 1 min 1 s", id="mixed"),
    ],
)
def test_timeouts_read_as_a_person_says_them(seconds, text):
    assert format_timeout(timedelta(seconds=seconds)) == text


def test_the_request_states_the_operators_own_deadline(registry, requests):
    op = _operator(registry, response_timeout=timedelta(hours=6), notifiers=[])
    with pytest.raises(TaskAwaitingInput) as waiting:
        op.execute(_context(op))
    assert waiting.value.timeout == timedelta(hours=6)
    assert "No answer within 6 h: the package is Rejected." in requests[0]["body"]


def test_a_backfill_held_back_from_auto_approval_says_why_in_the_request(registry):
    hold = "Held for manual approval: trained on a window ending 2026-01-20T00:00:00+00:00, older than the champion"
    _, body = human_approval.approval_request(
        {**REGISTRATION, "approval_hold": hold}, registry.describe_model_package(ModelPackageName=ARN), CFG
    )
    assert f"**Why you are asked:** {hold}" in body
    _, plain = human_approval.approval_request(REGISTRATION, registry.describe_model_package(ModelPackageName=ARN), CFG)
    assert "Why you are asked" not in plain


def test_a_persons_approval_clears_the_bias_hold_and_a_rejection_keeps_it(registry, sent, s3):
    from ml_lifecycle.bias_hold import read_hold, write_hold

    write_hold(s3, CFG, CFG.deployment.endpoint_name, reason="bias breach: RD 0.41 > 0.2 for student")
    op = _operator(registry, s3)
    with pytest.raises(DownstreamTasksSkipped):
        op.execute_complete(_context(op), _answer("Reject", "not yet"))
    assert read_hold(s3, CFG, CFG.deployment.endpoint_name) is not None, "a rejection keeps the hold"

    registry.update_model_package(ModelPackageArn=ARN, ModelApprovalStatus="PendingManualApproval")
    op = _operator(registry, s3)
    result = op.execute_complete(_context(op), _answer("Approve", "segment recall checked"))

    assert (
        result["bias_hold_cleared"]
        == f"s3://{CFG.storage.bucket}/monitoring/{CFG.deployment.endpoint_name}/bias-hold.json"
    )
    assert read_hold(s3, CFG, CFG.deployment.endpoint_name) is None
