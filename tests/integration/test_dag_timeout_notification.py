"""A DAG run that exceeds ``dagrun_timeout`` is reported on SNS, with secrets masked, by a real Airflow.

A real Airflow (api-server, scheduler, dag-processor, triggerer; ``tools.ui``) runs on the devstack with an
AWS connection whose secret access key is a fresh random canary. Its one DAG uses the project's DAG-level
failure callback (``dag_failure_callback``, the provider's ``SnsNotifier``) and a ``dagrun_timeout`` of a few
seconds; its one task sleeps far longer. The scheduler fails the run for the timeout and asks the
dag-processor to run the DAG's callback, which publishes to the environment's topic. An SQS queue subscribed
to the topic before the run receives the message.

The run is triggered with a run id that carries three secrets a message could leak: the canary itself
(which the secrets masker knows from the connection), a ``token:<value>`` pair and an access key id. The
message must name the DAG, the run and the timeout, and carry none of them.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ml_lifecycle.config import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

DAG_ID = "timeout_probe"
TIMEOUT_SECONDS = 15
PROBE_DAG = f"""
from __future__ import annotations

import datetime as dt
import time

from airflow.sdk import DAG, task

from ml_lifecycle.config import load_config
from ml_lifecycle.dag_defaults import dag_failure_callback

with DAG(
    {DAG_ID!r},
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    dagrun_timeout=dt.timedelta(seconds={TIMEOUT_SECONDS}),
    on_failure_callback=dag_failure_callback(load_config()),
    default_args={{"retries": 0}},
):

    @task
    def outlive_the_run():
        time.sleep(900)

    outlive_the_run()
"""


@pytest.fixture(scope="module")
def canaries() -> dict[str, str]:
    return {
        "aws secret access key": f"awsCanary{secrets.token_hex(16)}",
        "token": f"tokCanary{secrets.token_hex(8)}",
        "access key id": "AKIA" + secrets.token_hex(8).upper(),
    }


@pytest.fixture(scope="module")
def queue(devstack: Any) -> dict[str, Any]:
    """An SQS queue subscribed to the environment's topic (SNS envelopes: subject and message)."""
    cfg = load_config("local")
    sns, sqs = devstack.client("sns"), devstack.client("sqs")
    topic = sns.create_topic(Name=cfg.notifications.sns_topic_arn.rsplit(":", 1)[1])["TopicArn"]
    url = sqs.create_queue(QueueName="dag-timeout-notifications")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return {"sqs": sqs, "url": url}


@pytest.fixture(scope="module")
def airflow(devstack: Any, canaries: dict[str, str], queue: dict[str, Any], tmp_path_factory) -> Iterator[Any]:
    from devstack.stack import free_port
    from tools.ui import AirflowUI

    dags = tmp_path_factory.mktemp("timeout-dags")
    (dags / f"{DAG_ID}.py").write_text(PROBE_DAG)
    env = dict(devstack.env)
    aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    aws["password"] = canaries["aws secret access key"]
    env |= {"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws), "AWS_SECRET_ACCESS_KEY": aws["password"]}
    ui = AirflowUI(
        tmp_path_factory.mktemp("timeout-airflow"),
        devstack_env=env,
        port=free_port(),
        extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(dags)},
    )
    ui.start(timeout=600)
    try:
        yield ui
    finally:
        ui.stop()


def _trigger(ui: Any, run_id: str) -> None:
    token = ui.token()
    deadline = time.monotonic() + 180
    while DAG_ID not in {d["dag_id"] for d in ui.api("GET", "/api/v2/dags?limit=100", token=token)["dags"]}:
        if time.monotonic() > deadline:
            raise AssertionError(f"{DAG_ID} was not parsed: {ui.api('GET', '/api/v2/importErrors', token=token)}")
        time.sleep(1)
    ui.api("PATCH", f"/api/v2/dags/{DAG_ID}", token=token, body={"is_paused": False})
    ui.api(
        "POST",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        token=token,
        body={"dag_run_id": run_id, "logical_date": dt.datetime.now(dt.UTC).isoformat(), "conf": {}},
    )


def _run_state(ui: Any, run_id: str) -> tuple[str, dict[str, str]]:
    token = ui.token()
    state = ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", token=token)["state"]
    tis = ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", token=token)["task_instances"]
    return state, {ti["task_id"]: ti["state"] for ti in tis}


def _receive(queue: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    """The SNS envelopes received within ``timeout`` seconds (returns at the first batch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = queue["sqs"].receive_message(QueueUrl=queue["url"], MaxNumberOfMessages=10, WaitTimeSeconds=5)
        if messages := answer.get("Messages", []):
            return [json.loads(m["Body"]) for m in messages]
    return []


@pytest.fixture(scope="module")
def timed_out(airflow: Any, canaries: dict[str, str], queue: dict[str, Any]) -> dict[str, Any]:
    run_id = f"timeout__{canaries['aws secret access key']}__{canaries['access key id']}__token:{canaries['token']}"
    _trigger(airflow, run_id)
    envelopes = _receive(queue, timeout=600)
    state, tasks = _run_state(airflow, run_id)
    return {"run_id": run_id, "envelopes": envelopes, "state": state, "tasks": tasks}


def test_the_run_timed_out_while_its_task_ran(timed_out: dict[str, Any]) -> None:
    assert timed_out["state"] == "failed"
    # the scheduler sets the unfinished tasks of a timed-out run to skipped
    assert timed_out["tasks"] == {"outlive_the_run": "skipped"}


def test_the_timeout_is_published_once_naming_the_dag_and_the_timeout(timed_out: dict[str, Any]) -> None:
    (envelope,) = timed_out["envelopes"]
    assert envelope["Subject"] == f"[local] Airflow DAG run timed out: {DAG_ID}"
    message = envelope["Message"]
    assert f"of DAG {DAG_ID} timed out" in message
    assert "Reason: timed_out" in message
    assert f"dagrun_timeout: {dt.timedelta(seconds=TIMEOUT_SECONDS)}" in message
    assert "Last task started: outlive_the_run" in message


def test_no_secret_of_the_run_reaches_the_message(timed_out: dict[str, Any], canaries: dict[str, str]) -> None:
    (envelope,) = timed_out["envelopes"]
    text = json.dumps(envelope)
    leaked = [name for name, value in canaries.items() if value in text]
    assert leaked == [], f"{leaked} in {envelope['Message']}"
    assert "token:***" in envelope["Message"]
