"""Manual approval in Airflow, end to end: a real Airflow (api-server, scheduler, dag-processor, triggerer;
``tools.ui``, on PostgreSQL) runs ``train_model`` on the devstack with ``approval: manual``, and a person answers
over the REST API, as the Required Actions page does.

One Airflow serves the three cases, in order, over one training window (the step cache lets the second and the
third run reuse the first run's SageMaker jobs):

1. **approve**: the run waits in ``approve`` (``awaiting_input``) with the request (metrics, gate report,
   assigned users); a user who is not an approver is refused (403); the approver's ``PATCH .../hitlDetails``
   resumes it; the package is Approved with the responder and comment recorded; the approved-model asset
   event starts ``deploy_model``, and so does SageMaker's approval event, which reaches the approval queue
   (the devstack routes it as the stack's EventBridge rule does) and its asset watcher (one run, or two when
   the two arrive apart; those runs are stopped: deploying this model is case 4's subject);
2. **reject**: the package is Rejected with the reason, ``publish_approval`` is skipped, no asset event;
3. **timeout**: with ``training.manual_approval.timeout_seconds: 20`` and no answer, the scheduler resumes the
   task with a timeout; the package is Rejected ("approval timed out after 20 s"), ``approve`` fails,
   ``publish_approval`` never runs, no asset event.
4. **approval outside Airflow**: a model package version registered PendingManualApproval and approved with
   plain boto3 ``update_model_package`` (as Studio, the CLI or another pipeline does) starts a ``deploy_model``
   run through the approval queue's asset watcher within 90 s, which deploys that version; the same event
   delivered once more (SageMaker may send an event twice) starts a run that changes nothing.

Each decision, and the request with its Required Actions link, reaches the environment's SNS topic.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.e2e.own_config import own_config
from tools.lifecycle import Driver, RunFailedError, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2400)]

GROUP = "fraud-detector-hitl-e2e"
ENDPOINT = "fraud-hitl-e2e"
DAG_ID = "train_model"
TASK = "approve"
#: one window for the three runs (logical dates on one day): the later runs reuse the first one's jobs
CONF = {"approval": "manual", "window_days": 28, "hyperparameters": {"num_round": 25}}
DAY = "2026-02-12T{hour}:00:00Z"
#: what the approve and reject cases wait at most; the timeout case shortens it
LONG_TIMEOUT = 1800
SHORT_TIMEOUT = 20
APPROVER = "admin"
OUTSIDER = "bob"


def _set_timeout(folder: Path, seconds: int) -> None:
    """Set ``training.manual_approval.timeout_seconds`` in the config copy the Airflow components read."""
    path = folder / "local.yaml"
    text, count = re.subn(r"(?m)^(\s*timeout_seconds:) .*$", rf"\g<1> {seconds}", path.read_text())
    assert count == 1, "local.yaml has one manual_approval.timeout_seconds"
    path.write_text(text)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    folder = tmp_path_factory.mktemp("hitl-config")
    with own_config(folder, endpoint=ENDPOINT, group=GROUP) as cfg:
        assert [a.id for a in cfg.training.manual_approval.approvers] == [APPROVER]
        _set_timeout(folder, LONG_TIMEOUT)
        yield SimpleNamespace(cfg=cfg, folder=folder)


@pytest.fixture(scope="module")
def topic(devstack: Any, config: SimpleNamespace) -> dict[str, Any]:
    """An SQS queue subscribed to the environment's topic."""
    sns, sqs = devstack.client("sns"), devstack.client("sqs")
    arn = sns.create_topic(Name=config.cfg.notifications.sns_topic_arn.rsplit(":", 1)[1])["TopicArn"]
    url = sqs.create_queue(QueueName="hitl-approval-notifications")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue)
    return {"sqs": sqs, "url": url, "received": []}


@pytest.fixture(scope="module")
def api(devstack: Any, config: SimpleNamespace, topic: dict[str, Any], tmp_path_factory) -> Iterator[Driver]:
    from devstack.stack import free_port
    from tools.ui import AirflowUI, ensure_environment

    ensure_environment(devstack.info, "local")
    ui = AirflowUI(
        tmp_path_factory.mktemp("hitl-airflow"),
        devstack_env=devstack.env,
        port=free_port(),
        extra_env={
            "ML_LIFECYCLE_CONFIG_DIR": str(config.folder),
            # a second user, with the right to answer Required Actions but not named as an approver
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{APPROVER}:admin,{OUTSIDER}:user",
        },
        # PostgreSQL, as MWAA: on one SQLite file, stopping a run while its tasks write fails with "database is
        # locked"
        database="postgres",
    )
    ui.info = ui.start(timeout=600)
    try:
        driver = Driver(ui, poll=2.0)
        _, errors = ui.wait_parsed(driver.token, timeout=300, url=driver.url)
        assert not errors, errors
        # deploy_model is started by the approved-model asset; train_model runs only the runs started here
        driver.unpause("deploy_model", DAG_ID)
        yield driver
    finally:
        ui.stop()
        ui.metadb.remove()


def _hitl_path(run_id: str) -> str:
    return f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK}/-1/hitlDetails"


def _await_request(api: Driver, run_id: str, timeout: float) -> dict[str, Any]:
    """Wait for ``approve`` to wait for input; its request as the API serves it."""

    def waiting() -> bool:
        states = api.tasks(DAG_ID, run_id)
        if states.get(TASK) in ("failed", "skipped", "upstream_failed") or states.get("register") == "skipped":
            raise AssertionError(f"{run_id} did not reach the approval: {states}")
        return states.get(TASK) == "awaiting_input"

    wait_for(waiting, timeout, f"{run_id} to wait for approval", interval=2)
    return api("GET", _hitl_path(run_id))


def _await_parked(api: Driver, run_id: str, timeout: float) -> None:
    """Wait until the scheduler has seen the worker that wrote the request exit (a person answers later; an
    answer before that exit loses the task in Airflow 3.3.1: :meth:`tools.lifecycle.Driver.wait_parked`)."""
    api.wait_parked(DAG_ID, run_id, TASK, timeout)


def _answer(api: Driver, run_id: str, option: str, comment: str, token: str | None = None) -> tuple[int, Any]:
    """``PATCH .../hitlDetails`` as the approver (or with ``token``); ``(status, answer)``."""
    from tools.ui import _http

    body = {"chosen_options": [option], "params_input": {"comment": comment}}
    return _http("PATCH", api.url + _hitl_path(run_id), body=body, token=token or api.token, timeout=120)


def _finish(api: Driver, run_id: str, timeout: float) -> tuple[str, dict[str, str | None]]:
    try:
        return "success", api.wait(DAG_ID, run_id, timeout=timeout)
    except RunFailedError as failed:
        return "failed", failed.states


def _package(aws: Any, api: Driver, run_id: str) -> dict[str, Any]:
    arn = api.xcom(DAG_ID, run_id, "register")["model_package_arn"]
    return aws.describe_model_package(ModelPackageName=arn)


def _asset_events(api: Driver, run_id: str) -> list[dict[str, Any]]:
    return api("GET", f"/api/v2/assets/events?source_dag_id={DAG_ID}&source_run_id={run_id}")["asset_events"]


def _messages(topic: dict[str, Any]) -> list[dict[str, str]]:
    """Every notification received so far (the queue is drained into ``topic["received"]``)."""
    while True:
        batch = topic["sqs"].receive_message(QueueUrl=topic["url"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if not batch.get("Messages"):
            return topic["received"]
        for message in batch["Messages"]:
            envelope = json.loads(message["Body"])
            topic["received"].append({"subject": envelope.get("Subject", ""), "message": envelope["Message"]})
            topic["sqs"].delete_message(QueueUrl=topic["url"], ReceiptHandle=message["ReceiptHandle"])


def _stop_deploy_runs(api: Driver, cfg: Any, timeout: float) -> dict[str, list[dict[str, Any]]]:
    """Stop each ``deploy_model`` run an approval in Airflow starts, until both of its triggers were seen.

    The approval reaches ``deploy_model`` twice: as the approved-model asset event and as SageMaker's event on
    the approval queue. Airflow folds them into one run when both are there before it creates one, else makes
    two (the second queued behind the first: ``max_active_runs`` is 1). Each run is read once it has started
    (Airflow 3.3.1 answers 500 for a queued run's asset events), then stopped.

    :return: ``{run id: the asset events that triggered it}``
    """
    from ml_lifecycle.assets import approvals_asset, approved_model_uri

    wanted = {approved_model_uri(cfg), approvals_asset(cfg).uri}
    stopped: dict[str, list[dict[str, Any]]] = {}

    def both_seen() -> bool:
        for run in api.runs("deploy_model"):
            if run["dag_run_id"] in stopped or not run["start_date"]:
                continue
            path = f"/api/v2/dags/deploy_model/dagRuns/{run['dag_run_id']}"
            stopped[run["dag_run_id"]] = api("GET", f"{path}/upstreamAssetEvents")["asset_events"]
            api("PATCH", path, {"state": "failed"})
        return wanted <= {e["uri"] for events in stopped.values() for e in events}

    wait_for(both_seen, timeout, "deploy_model runs of the approved-model asset and the approval queue", interval=2)
    return stopped


# ------------------------------------------------------------------------------------------ approve


@pytest.fixture(scope="module")
def approved(api: Driver, devstack: Any, config: SimpleNamespace) -> dict[str, Any]:
    from tools.ui import _http

    run_id = api.trigger(DAG_ID, "hitl__approve", logical_date=DAY.format(hour="00"), conf=CONF)["dag_run_id"]
    request = _await_request(api, run_id, timeout=1500)
    pending = _package(devstack.client("sagemaker"), api, run_id)
    # a user allowed to answer Required Actions in general, but not named in training.manual_approval.approvers
    password = json.loads(api.runtime.password_file.read_text())[OUTSIDER]
    _, login = _http("POST", f"{api.url}/auth/token", body={"username": OUTSIDER, "password": password})
    outsider = _answer(api, run_id, "Approve", "not mine to approve", token=login["access_token"])
    _await_parked(api, run_id, timeout=120)
    answer = _answer(api, run_id, "Approve", "recall and precision hold on the holdout")
    status, states = _finish(api, run_id, timeout=600)
    deploy_runs: dict[str, list[dict[str, Any]]] = {}
    events = []
    if status == "success":
        deploy_runs = _stop_deploy_runs(api, config.cfg, timeout=180)
        events = _asset_events(api, run_id)
    return {
        "run_id": run_id,
        "request": request,
        "pending": pending,
        "outsider": outsider,
        "answer": answer,
        "status": status,
        "states": states,
        "package": _package(devstack.client("sagemaker"), api, run_id),
        "xcom": api.xcom(DAG_ID, run_id, TASK),
        "deploy_runs": deploy_runs,
        "events": events,
    }


def test_the_run_waits_for_the_approvers_with_the_evidence(approved: dict[str, Any], config) -> None:
    request = approved["request"]
    assert request["options"] == ["Approve", "Reject"]
    assert request["defaults"] is None
    assert request["assigned_users"] == [{"id": APPROVER, "name": APPROVER}]
    assert request["response_received"] is False
    assert approved["pending"]["ModelApprovalStatus"] == "PendingManualApproval"
    version = approved["pending"]["ModelPackageVersion"]
    assert request["subject"] == f"[local] Approve model {GROUP} version {version}?"
    props = approved["pending"]["CustomerMetadataProperties"]
    for evidence in (props["gate_uri"], props["evaluation_uri"], props["git_commit"], "| auc | ", "roc_curve.png"):
        assert evidence in request["body"], evidence


def test_only_an_approver_may_answer(approved: dict[str, Any]) -> None:
    status, answer = approved["outsider"]
    assert status == 403, answer
    assert "not a respondent" in json.dumps(answer)


def test_approval_over_the_rest_api_approves_the_package_and_records_who(approved: dict[str, Any]) -> None:
    status, answer = approved["answer"]
    assert status == 200, answer
    assert answer["responded_by"] == {"id": APPROVER, "name": APPROVER}
    assert approved["status"] == "success", approved["states"]
    assert approved["states"][TASK] == "success" and approved["states"]["publish_approval"] == "success"
    package = approved["package"]
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"].startswith(f"Approved by {APPROVER} (id {APPROVER}) in Airflow at ")
    assert package["ApprovalDescription"].endswith(": recall and precision hold on the holdout")
    meta = package["CustomerMetadataProperties"]
    assert (meta["approval:decision"], meta["approval:by"]) == ("approved", f"{APPROVER} (id {APPROVER})")
    assert meta["approval:run_id"] == approved["run_id"]
    assert approved["xcom"]["decision"] == "approved"


def test_the_approval_emits_the_asset_event_that_starts_deploy_model(approved: dict[str, Any], config) -> None:
    from ml_lifecycle.assets import approved_model_uri

    assert approved["deploy_runs"], f"the approved run ended {approved['status']}: {approved['states']}"
    (event,) = approved["events"]
    assert event["uri"] == approved_model_uri(config.cfg)
    assert event["extra"]["model_package_arn"] == approved["package"]["ModelPackageArn"]
    (created,) = [r["run_id"] for r in event["created_dagruns"]]
    assert created in approved["deploy_runs"]


def test_the_approval_also_reaches_deploy_model_as_sagemaker_s_event(approved: dict[str, Any], config) -> None:
    """The registry's change to Approved is SageMaker's "Model Package State Change" event, routed to the
    approval queue; its watcher's asset event starts deploy_model too (the deployment is idempotent)."""
    from ml_lifecycle.assets import approvals_asset

    uri = approvals_asset(config.cfg).uri
    queue_events = [e for events in approved["deploy_runs"].values() for e in events if e["uri"] == uri]
    bodies = [json.loads(m["Body"]) for e in queue_events for m in e["extra"]["payload"]["message_batch"]]
    assert [b["detail"]["ModelPackageArn"] for b in bodies] == [approved["package"]["ModelPackageArn"]]
    assert bodies[0]["detail"]["ModelApprovalStatus"] == "Approved"
    assert bodies[0]["detail-type"] == "SageMaker Model Package State Change"
    assert 1 <= len(approved["deploy_runs"]) <= 2, approved["deploy_runs"]


# ------------------------------------------------------------------------------------------ reject


@pytest.fixture(scope="module")
def rejected(api: Driver, devstack: Any, approved: dict[str, Any]) -> dict[str, Any]:
    run_id = api.trigger(DAG_ID, "hitl__reject", logical_date=DAY.format(hour="01"), conf=CONF)["dag_run_id"]
    _await_request(api, run_id, timeout=900)
    _await_parked(api, run_id, timeout=120)
    answer = _answer(api, run_id, "Reject", "false positives too high for the card team")
    status, states = _finish(api, run_id, timeout=600)
    return {
        "run_id": run_id,
        "answer": answer,
        "status": status,
        "states": states,
        "package": _package(devstack.client("sagemaker"), api, run_id),
        "events": _asset_events(api, run_id),
        "deploy_runs": [r["dag_run_id"] for r in api.runs("deploy_model")],
    }


def test_a_rejection_rejects_the_package_with_the_reason(rejected: dict[str, Any]) -> None:
    assert rejected["answer"][0] == 200, rejected["answer"]
    package = rejected["package"]
    assert package["ModelApprovalStatus"] == "Rejected"
    assert package["ApprovalDescription"].startswith(f"Rejected by {APPROVER} (id {APPROVER})")
    assert package["ApprovalDescription"].endswith(": false positives too high for the card team")
    assert package["CustomerMetadataProperties"]["approval:decision"] == "rejected"


def test_a_rejection_deploys_nothing(rejected: dict[str, Any], approved: dict[str, Any]) -> None:
    # a decision, not a failure: the run succeeds, and publishing is skipped
    assert rejected["status"] == "success", rejected["states"]
    assert rejected["states"][TASK] == "success"
    assert rejected["states"]["publish_approval"] == "skipped"
    assert rejected["events"] == []
    # a rejection is no approval: SageMaker's Rejected event does not pass the approval queue's rule
    assert set(rejected["deploy_runs"]) == set(approved["deploy_runs"])


# ------------------------------------------------------------------------------------------ timeout


@pytest.fixture(scope="module")
def timed_out(api: Driver, devstack: Any, config, rejected: dict[str, Any]) -> dict[str, Any]:
    # the task process reads the config when it starts the task: this run's request waits 20 s
    _set_timeout(config.folder, SHORT_TIMEOUT)
    run_id = api.trigger(DAG_ID, "hitl__timeout", logical_date=DAY.format(hour="02"), conf=CONF)["dag_run_id"]
    request = _await_request(api, run_id, timeout=900)
    waiting_since = dt.datetime.now(dt.UTC)
    status, states = _finish(api, run_id, timeout=600)
    return {
        "run_id": run_id,
        "request": request,
        "waited": dt.datetime.now(dt.UTC) - waiting_since,
        "status": status,
        "states": states,
        "after": api("GET", _hitl_path(run_id)),
        "package": _package(devstack.client("sagemaker"), api, run_id),
        "events": _asset_events(api, run_id),
        "deploy_runs": [r["dag_run_id"] for r in api.runs("deploy_model")],
    }


def test_no_answer_rejects_the_package_when_the_request_times_out(timed_out: dict[str, Any]) -> None:
    assert timed_out["after"]["response_received"] is False, "nobody answered, nothing was chosen for them"
    package = timed_out["package"]
    assert package["ModelApprovalStatus"] == "Rejected"
    assert package["ApprovalDescription"].startswith(
        f"Rejected: approval timed out after {SHORT_TIMEOUT} s without an answer"
    )
    assert package["CustomerMetadataProperties"]["approval:decision"] == "timed_out"


def test_a_timeout_fails_closed_and_deploys_nothing(timed_out: dict[str, Any], approved: dict[str, Any]) -> None:
    assert timed_out["status"] == "failed"
    assert timed_out["states"][TASK] == "failed"
    assert timed_out["states"]["publish_approval"] == "upstream_failed"
    assert timed_out["events"] == []
    assert set(timed_out["deploy_runs"]) == set(approved["deploy_runs"])


# ------------------------------------------------------------------------------------------ approval outside Airflow


def _calls(devstack: Any) -> dict[str, int]:
    """How often each SageMaker action was called on the devstack so far."""
    import urllib.request

    with urllib.request.urlopen(devstack.info.sagemaker_url + "/_devstack/faults", timeout=30) as answer:
        return json.loads(answer.read())["calls"]


def _resend(devstack: Any, arn: str) -> dict[str, Any]:
    """Deliver the package's last SageMaker event once more, as SageMaker sometimes does."""
    import urllib.request

    request = urllib.request.Request(
        devstack.info.sagemaker_url + "/_devstack/events/resend",
        data=json.dumps({"ResourceArn": arn}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _deploy_run(api: Driver, known: list[str], timeout: float) -> dict[str, Any]:
    """The next deploy_model run, from its start (within ``timeout`` s) to its end."""
    import time

    started = time.monotonic()
    run_id = api.new_run("deploy_model", known=known, timeout=timeout)
    waited = time.monotonic() - started
    try:
        status, states = "success", api.wait("deploy_model", run_id, timeout=900)
    except RunFailedError as failed:
        status, states = "failed", failed.states
    return {
        "run_id": run_id,
        "waited": waited,
        "status": status,
        "states": states,
        "triggers": api("GET", f"/api/v2/dags/deploy_model/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"],
        "resolve": api.xcom("deploy_model", run_id, "resolve") if states.get("resolve") == "success" else None,
        "deploy": api.xcom("deploy_model", run_id, "deploy_guarded")
        if states.get("deploy_guarded") == "success"
        else None,
    }


def _serving_models(sm: Any, endpoint: str) -> set[str]:
    config = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    return {v["ModelName"] for v in sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]}


@pytest.fixture(scope="module")
def outside(api: Driver, devstack: Any, config: SimpleNamespace, approved: dict[str, Any], timed_out: dict[str, Any]):
    """A version registered PendingManualApproval, approved with plain boto3; then its event delivered twice."""
    sm = devstack.client("sagemaker")
    source = approved["package"]
    lineage = {k: v for k, v in source["CustomerMetadataProperties"].items() if not k.startswith("approval:")}
    arn = sm.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelPackageDescription="registered by another pipeline",
        InferenceSpecification=source["InferenceSpecification"],
        CustomerMetadataProperties=lineage,
        ModelApprovalStatus="PendingManualApproval",
    )["ModelPackageArn"]
    known = [r["dag_run_id"] for r in api.runs("deploy_model")]
    sm.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="approved in SageMaker Studio"
    )
    first = _deploy_run(api, known, timeout=90)
    serving = _serving_models(sm, ENDPOINT)
    calls = _calls(devstack)
    resent = _resend(devstack, arn)
    again = _deploy_run(api, [*known, first["run_id"]], timeout=90)
    yield {
        "arn": arn,
        "package": sm.describe_model_package(ModelPackageName=arn),
        "first": first,
        "serving": serving,
        "calls": calls,
        "resent": resent,
        "again": again,
        "serving_after": _serving_models(sm, ENDPOINT),
        "calls_after": _calls(devstack),
    }
    sm.delete_endpoint(EndpointName=ENDPOINT)  # its model server does not run through the rest of the session


def test_an_approval_outside_airflow_starts_deploy_model_through_the_watcher(outside: dict[str, Any], config) -> None:
    from ml_lifecycle.assets import approvals_asset
    from ml_lifecycle.builders.endpoint import model_name

    first = outside["first"]
    assert first["waited"] < 90
    assert first["status"] == "success", first["states"]
    assert {e["uri"] for e in first["triggers"]} == {approvals_asset(config.cfg).uri}
    assert first["resolve"]["model_package_arn"] == outside["arn"]
    assert first["resolve"]["source"] == "approval_event"
    assert first["resolve"]["already_serving"] is False
    assert first["deploy"]["action"] in ("created", "updated")
    assert outside["serving"] == {model_name(config.cfg, outside["package"])}, "the endpoint serves that version"


def test_a_duplicated_approval_event_deploys_once(outside: dict[str, Any]) -> None:
    """The next run after the deployment (the resent event's, or one started by the champion's own marking,
    which is an update of an Approved version too) names a version deployed before: it is skipped at resolve."""
    again = outside["again"]
    assert outside["resent"]["flushed"] is True
    assert again["status"] == "success", again["states"]
    assert again["states"]["resolve"] == "skipped", again["states"]
    assert {state for task, state in again["states"].items() if task != "resolve"} == {"skipped"}, again["states"]
    lifecycle = outside["package"].get("ModelLifeCycle") or {}
    assert (lifecycle.get("Stage"), lifecycle.get("StageStatus")) == ("Production", "Deployed"), lifecycle
    assert outside["serving_after"] == outside["serving"]
    for action in ("CreateEndpoint", "UpdateEndpoint", "CreateEndpointConfig", "CreateModel", "CreateProcessingJob"):
        assert outside["calls_after"].get(action, 0) == outside["calls"].get(action, 0), action


# ------------------------------------------------------------------------------------------ notifications


def test_the_request_and_every_decision_reach_the_topic(
    topic: dict[str, Any], approved: dict[str, Any], rejected: dict[str, Any], timed_out: dict[str, Any]
) -> None:
    received = _messages(topic)
    requests = [m for m in received if m["subject"].startswith(f"[local] Approve model {GROUP} version")]
    assert len(requests) == 3, [m["subject"] for m in received]
    link = f"/dags/{DAG_ID}/runs/hitl__approve/tasks/{TASK}/required_actions?map_index=-1"
    assert any(link in m["message"] for m in requests), requests[0]["message"][:300]
    decisions = sorted(m["subject"].split(":")[0] for m in received if "Model approval" in m["subject"])
    assert decisions == [
        "[local] Model approval Approved",
        "[local] Model approval Rejected",
        "[local] Model approval timed out",
    ]
