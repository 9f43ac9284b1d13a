"""Shared set-up of the fault-injection suite: one devstack, one trained model, one serving endpoint.

Every test in this folder injects ONE fault into the devstack and checks the end state documented in
``docs/failure-modes.md``. Tasks run at the operator level, as Airflow runs them: ``execute``; on a
deferral the trigger runs to its first event (the triggerer's job) and the resume method is called; on
a failure the DAG's ``on_failure_callback`` is called with the exception (what Airflow does when a task
fails for good), so the notification a person gets is checked too.

Session fixtures, built once and reused:

- ``aws``: clients, the environment's bucket, the SNS topic with an SQS queue subscribed to it (to read
  the notifications) and the suite's own model package group;
- ``trained``: one training run over a small window (plan -> extract -> preprocess -> train);
- ``packages``: registers approved model package versions of that model (or of a broken artefact);
- ``serving``: the suite's own endpoint serving version 1, the "previous model" of the deployment faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The endpoint and model package group of this suite (kept apart from the other e2e tests' ones).
ENDPOINT = "fraud-faults"
GROUP = "fraud-detector-faults"
DAG_ID = "train_model"
#: The training window every shared run uses: 14 days before 2026-02-20 (seeded history).
ANCHOR = dt.datetime(2026, 2, 20, tzinfo=dt.UTC)
WINDOW_DAYS = 14
HYPERPARAMETERS = {"num_round": 15}
#: A feature row in the model's CSV contract (12 columns), used to call the endpoint.
SAMPLE_ROW = b"120.5,4.8,14,2,0,1,0,POS,grocery,2,80.0,1.5"


# ------------------------------------------------------------------------------------------ task running


class FakeTI:
    """The parts of a task instance the operators touch: identity, try number and XCom."""

    def __init__(self, dag_id: str, task_id: str, run_id: str, try_number: int = 1) -> None:
        self.dag_id, self.task_id, self.run_id, self.try_number, self.map_index = (
            dag_id, task_id, run_id, try_number, -1,
        )  # fmt: skip
        self.pushed: dict[str, Any] = {}
        self.upstream: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.upstream.get(task_ids)


def task_context(
    task_id: str,
    run_id: str,
    *,
    dag_id: str = DAG_ID,
    anchor: dt.datetime = ANCHOR,
    params: dict[str, Any] | None = None,
    try_number: int = 1,
) -> dict[str, Any]:
    """The task context a worker would build for ``task_id`` of run ``run_id``."""
    from airflow.sdk import DAG

    ti = FakeTI(dag_id, task_id, run_id, try_number)
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": run_id,
        # a real DAG: the failure notifiers render their templates with its Jinja environment, as on a worker
        "dag": DAG(dag_id=dag_id, schedule=None),
        "dag_run": SimpleNamespace(run_id=run_id, run_after=anchor),
        "logical_date": anchor,
        # force: the suite's runs share one window and inputs, and each fault needs a job of its own to act on
        # (the step cache would hand a later run the shared run's completed job; tests/e2e test the cache)
        "params": {"window_days": WINDOW_DAYS, "force": True, **(params or {})},
    }


#: More deferrals than any operator of the suite needs: a task deferring again and again is looping.
MAX_DEFERRALS = 20


def run_task(op: Any, ctx: dict[str, Any]) -> Any:
    """Run ``op`` as worker + triggerer do: execute, then each deferral's trigger and the resume method.

    :raises AssertionError: when the task defers more than :data:`MAX_DEFERRALS` times (it loops).
    """
    from airflow.providers.common.compat.sdk import TaskDeferred

    async def first_event(trigger: Any) -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    try:
        return op.execute(ctx)
    except TaskDeferred as deferred:
        pending = deferred
    for _ in range(MAX_DEFERRALS):
        event = asyncio.run(first_event(pending.trigger))
        try:
            return getattr(op, pending.method_name)(ctx, event=event, **(pending.kwargs or {}))
        except TaskDeferred as deferred:
            pending = deferred
    raise AssertionError(f"{op.task_id} deferred more than {MAX_DEFERRALS} times: it loops")


def fail_task(op: Any, ctx: dict[str, Any], expected: type[BaseException] = Exception) -> BaseException:
    """Run ``op`` expecting it to fail; call the DAG's failure callback as Airflow does; return the error."""
    from ml_lifecycle.notifications import on_failure_callback

    with pytest.raises(expected) as failure:
        run_task(op, ctx)
    on_failure_callback({**ctx, "exception": failure.value})
    return failure.value


def spawn_task(task: str, run_id: str, plan: dict[str, Any], result_path: Path, **extra: Any) -> subprocess.Popen:
    """Start ``task`` of run ``run_id`` in a process of its own (a worker); see :mod:`tests.faults.task_process`.

    Its output goes to ``<result_path>.log``; its XCom result to ``result_path``.
    """
    spec = {"task": task, "run_id": run_id, "plan": plan, "result_path": str(result_path), **extra}
    with open(f"{result_path}.log", "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "tests.faults.task_process", json.dumps(spec)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )


def task_result(process: subprocess.Popen, result_path: Path, timeout: float) -> dict[str, Any]:
    """Wait for a task process; its XCom result (its log in the failure message otherwise)."""
    code = process.wait(timeout=timeout)
    if code != 0 or not result_path.exists():
        log = Path(f"{result_path}.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"task process exited {code}:\n{log}")
    return json.loads(result_path.read_text())


# ------------------------------------------------------------------------------------------ devstack control


def control(url: str, method: str, path: str, payload: Any = None) -> Any:
    """Call a devstack control route (``/_devstack/...``) and return its JSON answer."""
    request = urllib.request.Request(
        url + path, data=json.dumps(payload).encode() if payload is not None else None, method=method
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


@contextlib.contextmanager
def sagemaker_faults(url: str, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Inject job/throttle faults (``POST /_devstack/faults``) for the block; clear them afterwards."""
    active = control(url, "POST", "/_devstack/faults", spec)
    try:
        yield active
    finally:
        control(url, "DELETE", "/_devstack/faults")


@contextlib.contextmanager
def hosting_faults(url: str, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Inject endpoint faults (``POST /_devstack/hosting/faults``) for the block; clear them afterwards."""
    active = control(url, "POST", "/_devstack/hosting/faults", spec)
    try:
        yield active
    finally:
        control(url, "DELETE", "/_devstack/hosting/faults")


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------------ inspection


#: kind -> (list operation, summaries key, name key, status key)
JOB_LISTS = {
    "training": ("list_training_jobs", "TrainingJobSummaries", "TrainingJobName", "TrainingJobStatus"),
    "processing": ("list_processing_jobs", "ProcessingJobSummaries", "ProcessingJobName", "ProcessingJobStatus"),
    "tuning": (
        "list_hyper_parameter_tuning_jobs",
        "HyperParameterTuningJobSummaries",
        "HyperParameterTuningJobName",
        "HyperParameterTuningJobStatus",
    ),
    "transform": ("list_transform_jobs", "TransformJobSummaries", "TransformJobName", "TransformJobStatus"),
}


def jobs_named(sm: Any, kind: str, contains: str) -> list[dict[str, Any]]:
    """Every training / processing / tuning / transform job whose name contains ``contains`` (all pages)."""
    operation, key, _, _ = JOB_LISTS[kind]
    pages = sm.get_paginator(operation).paginate(NameContains=contains)
    return [job for page in pages for job in page[key]]


def job_states(sm: Any, kind: str, contains: str) -> list[tuple[str, str]]:
    """``(name, status)`` of every job of ``kind`` whose name contains ``contains``, by name."""
    _, _, name_key, status_key = JOB_LISTS[kind]
    return sorted((j[name_key], j[status_key]) for j in jobs_named(sm, kind, contains))


def credential_canary() -> tuple[str, str]:
    """``(text, secret)``: a ``password=<secret>`` pair, as a failing script may print its connection settings;
    the secret is fresh for each call, so finding it anywhere means this very text leaked."""
    import secrets

    secret = f"pwCanary{secrets.token_hex(12)}"
    return f"password={secret}", secret


def s3_keys(s3: Any, uri: str) -> dict[str, str]:
    """``{key: ETag}`` of every object under an ``s3://`` prefix."""
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def s3_json(s3: Any, uri: str) -> Any:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def notifications(aws: SimpleNamespace, contains: str, timeout: float = 10) -> list[dict[str, Any]]:
    """SNS notifications (subject + message) received on the suite's queue that mention ``contains``."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not found and time.monotonic() < deadline:
        response = aws.sqs.receive_message(QueueUrl=aws.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            body = json.loads(message["Body"])
            aws.sqs.delete_message(QueueUrl=aws.queue, ReceiptHandle=message["ReceiptHandle"])
            note = {"subject": body.get("Subject", ""), "message": body.get("Message", "")}
            aws.seen_notifications.append(note)
        found = [n for n in aws.seen_notifications if contains in n["subject"] or contains in n["message"]]
    return found


def served(aws: SimpleNamespace, n: int = 30) -> Counter:
    """What ``n`` requests of :data:`SAMPLE_ROW` answered (the response body, or ``"error"``)."""
    seen: Counter = Counter()
    for _ in range(n):
        try:
            response = aws.runtime.invoke_endpoint(
                EndpointName=ENDPOINT, Body=SAMPLE_ROW, ContentType="text/csv", Accept="text/csv"
            )
            seen[response["Body"].read().decode().strip()] += 1
        except aws.runtime.exceptions.ModelError:
            seen["error"] += 1
    return seen


def serving_config(aws: SimpleNamespace) -> str:
    """The endpoint config the endpoint serves, once it is InService."""
    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert description["EndpointStatus"] == "InService", description
    return description["EndpointConfigName"]


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def cfg() -> Any:
    from ml_lifecycle.config import load_config

    return load_config()


@pytest.fixture(scope="session")
def aws(devstack: Any, cfg: Any) -> SimpleNamespace:
    """Clients, bucket, topic (with a queue subscribed) and model package group of the suite."""
    s3 = devstack.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=cfg.storage.bucket)
    sns, sqs = devstack.client("sns"), devstack.client("sqs")
    topic = sns.create_topic(Name=cfg.notifications.sns_topic_arn.rsplit(":", 1)[1])["TopicArn"]
    queue = sqs.create_queue(QueueName="faults-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    sm = devstack.client("sagemaker")
    with contextlib.suppress(sm.exceptions.ClientError):
        sm.create_model_package_group(ModelPackageGroupName=GROUP)
    return SimpleNamespace(
        s3=s3, sm=sm, sqs=sqs, queue=queue, url=devstack.sagemaker_url, devstack=devstack,
        cloudwatch=devstack.client("cloudwatch"), runtime=devstack.client("sagemaker-runtime"),
        seen_notifications=[],
    )  # fmt: skip


def run_pipeline(
    run_id: str, *, upto: str = "train", anchor: dt.datetime = ANCHOR, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run ``plan -> extract -> preprocess -> train`` (stopping after ``upto``) for one run; their XComs."""
    from ml_lifecycle.operators.sagemaker import PrepareRunOperator

    def ctx(task_id: str) -> dict[str, Any]:
        return task_context(task_id, run_id, anchor=anchor, params=params)

    out: dict[str, Any] = {"run_id": run_id}
    out["plan"] = plan = run_task(PrepareRunOperator(task_id="plan"), ctx("plan"))
    if upto == "plan":
        return out
    out["extract"] = run_task(extract_operator(plan), ctx("extract"))
    if upto == "extract":
        return out
    out["preprocess"] = run_task(preprocess_operator(plan, out["extract"]["dataset_uri"]), ctx("preprocess"))
    if upto == "preprocess":
        return out
    out["train"] = run_task(train_operator(plan, out["preprocess"]), ctx("train"))
    return out


def extract_operator(plan: dict[str, Any], **overrides: Any) -> Any:
    from ml_lifecycle.config import load_config
    from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator

    cfg = load_config()
    kwargs = {
        "task_id": "extract",
        "snowflake_conn_id": cfg.snowflake.conn_id,
        "sql_path": "sql/features.sql",
        "interval_start": plan["window"]["start"],
        "interval_end": plan["window"]["end"],
        "s3_uri": plan["dataset_uri"],
        "batch_rows": cfg.snowflake.extraction.batch_rows,
        "min_rows": 1,
        **overrides,
    }
    return SnowflakeToS3ParquetOperator(**kwargs)


def preprocess_operator(plan: dict[str, Any], dataset_uri: str, **overrides: Any) -> Any:
    from ml_lifecycle.operators.sagemaker import PreprocessJobOperator

    return PreprocessJobOperator(
        task_id="preprocess",
        dataset_uri=dataset_uri,
        code_uri=plan["code"]["preprocessing"]["src_uri"],
        check_interval=1,
        max_attempts=300,
        **overrides,
    )


def train_operator(plan: dict[str, Any], preprocess: dict[str, Any], **overrides: Any) -> Any:
    from ml_lifecycle.operators.sagemaker import TrainingJobOperator

    outputs = preprocess["outputs"]
    splits = {name: outputs[name] for name in ("train", "validation", "preprocessor")}
    splits["inference"] = plan["code"]["inference"]["src_uri"]
    kwargs = {
        "task_id": "train",
        "splits": splits,
        "sourcedir_uri": plan["code"]["training"]["sourcedir_uri"],
        "hyperparameter_overrides": HYPERPARAMETERS,
        "check_interval": 1,
        "max_attempts": 300,
        **overrides,
    }
    return TrainingJobOperator(**kwargs)


@pytest.fixture(scope="session")
def trained(aws: SimpleNamespace) -> dict[str, Any]:
    """One training run over the shared window: its plan, dataset, preprocessing outputs and model."""
    return run_pipeline("faults__shared")


#: decision thresholds that make the suite's models answer differently (``<probability>,<label>``): the first
#: version (the one every rollback returns to) labels every row 0, every later version labels it 1
#: (thresholds lie strictly between 0 and 1; the sample's probability lies between the two)
FIRST_MODEL_THRESHOLD = "0.999999"
NEW_MODEL_THRESHOLD = "0.000001"


def new_model_answer(previous_answer: str) -> str:
    """What a version after the first answers where version 1 answered ``previous_answer`` (same probability,
    label 1 instead of 0: see :data:`NEW_MODEL_THRESHOLD`)."""
    probability, label = previous_answer.rsplit(",", 1)
    assert label == "0", previous_answer
    return f"{probability},1"


def model_archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="session")
def packages(aws: SimpleNamespace, trained: dict[str, Any], cfg: Any) -> Callable[..., str]:
    """``register(model_uri=None, note="", threshold=NEW_MODEL_THRESHOLD)``: a new Approved version of the trained
    model (or of ``model_uri``).

    The versions answer differently: each serves with the decision threshold given (the container's
    ``DECISION_THRESHOLD``), so the endpoint's answers tell which model served a request. The suite's first
    version (``serving``) labels every row 0 and every later one labels every row 1, so a check that "the
    previous model answers every request" fails when the new model served any.
    """
    from ml_lifecycle.builders import model_package_request
    from ml_lifecycle.naming import RunPlan

    plan = RunPlan.create(cfg, dag_id=DAG_ID, run_id=trained["run_id"], anchor=ANCHOR, window_days=WINDOW_DAYS)
    counter = iter(range(1, 1000))

    def register(model_uri: str | None = None, note: str = "", threshold: str = NEW_MODEL_THRESHOLD) -> str:
        request = model_package_request(
            cfg,
            plan,
            model_uri=model_uri or trained["train"]["model_uri"],
            evaluation_uri=plan.report_uri("evaluation", "evaluation.json"),
            approval_status="Approved",
            lineage={
                "dag_id": DAG_ID,
                "dag_run_id": trained["run_id"],
                "window_start": plan.window.start.isoformat(),
                "window_end": plan.window.end.isoformat(),
                "dataset_uri": trained["extract"]["dataset_uri"],
                "training_job": trained["train"]["job_name"],
            },
            metrics={},
            description=f"fault suite {note}".strip(),
        )
        request["ModelPackageGroupName"] = GROUP
        for container in request["InferenceSpecification"]["Containers"]:
            container["Environment"]["DECISION_THRESHOLD"] = threshold
        request["ClientToken"] = f"faults-{next(counter)}-{time.monotonic_ns()}"[:36]
        return aws.sm.create_model_package(**request)["ModelPackageArn"]

    return register


def deploy_operator(arn: str, **overrides: Any) -> Any:
    from ml_lifecycle.operators.deploy import GuardedEndpointDeployOperator

    kwargs = {
        "task_id": "deploy_guarded",
        "model_package_arn": arn,
        "endpoint_name": ENDPOINT,
        "alarm_period_seconds": 10,
        "poll_interval": 1,
        **overrides,
    }
    return GuardedEndpointDeployOperator(**kwargs)


def stepwise_operator(arn: str, **overrides: Any) -> Any:
    from ml_lifecycle.operators.traffic import StepwiseTrafficShiftOperator

    kwargs = {
        "task_id": "deploy_stepwise",
        "model_package_arn": arn,
        "endpoint_name": ENDPOINT,
        "percentages": [50],
        "bake_seconds": 2,
        "alarm_period_seconds": 10,
        "poll_interval": 1,
        **overrides,
    }
    return StepwiseTrafficShiftOperator(**kwargs)


def transform_operator(package_arn: str, base_uri: str, **overrides: Any) -> Any:
    """``batch_score``'s transform of ``<base_uri>input/`` into ``<base_uri>output/`` (interval at :data:`ANCHOR`)."""
    from ml_lifecycle.operators.batch import BatchTransformJobOperator

    kwargs = {
        "task_id": "transform",
        "model_package_arn": package_arn,
        "input_uri": base_uri + "input/",
        "output_uri": base_uri + "output/",
        "interval_start": ANCHOR.isoformat(),
        "poll_interval": 1,
        **overrides,
    }
    return BatchTransformJobOperator(**kwargs)


def deploy_context(run_id: str, try_number: int = 1) -> dict[str, Any]:
    return task_context("deploy_guarded", run_id, dag_id="deploy_model", try_number=try_number)


def alarms_ok(aws: SimpleNamespace) -> bool:
    """Whether none of the endpoint's rollback alarms is in ALARM (a new deployment would roll back at once)."""
    alarms = aws.cloudwatch.describe_alarms(AlarmNamePrefix=f"{ENDPOINT}-")["MetricAlarms"]
    return all(a["StateValue"] != "ALARM" for a in alarms)


@pytest.fixture(scope="session")
def serving(aws: SimpleNamespace, packages: Callable[..., str]) -> Iterator[dict[str, Any]]:
    """The suite's endpoint, created on version 1 of the trained model: the model every rollback returns to.

    Deleted at the end of the session, so its model server does not run through the other tests.
    """
    v1 = packages(note="v1", threshold=FIRST_MODEL_THRESHOLD)
    result = run_task(deploy_operator(v1), deploy_context("faults__serving"))
    assert result["action"] == "created", result
    answers = served(aws, 5)
    assert len(answers) == 1 and "error" not in answers, answers
    probability, label = next(iter(answers)).split(",")
    assert label == "0", f"version 1 labels the sample 0: {answers}"
    assert float(NEW_MODEL_THRESHOLD) <= float(probability) < float(FIRST_MODEL_THRESHOLD), (
        f"the sample's probability {probability} must lie between the thresholds for later versions to label it 1"
    )
    yield {**result, "package_arn": v1, "answer": next(iter(answers))}
    with contextlib.suppress(Exception):
        aws.sm.delete_endpoint(EndpointName=ENDPOINT)


@pytest.fixture
def previous_model(aws: SimpleNamespace, serving: dict[str, Any]) -> dict[str, Any]:
    """Before a deployment fault: the endpoint serves version 1 (the model every rollback returns to), and none
    of its rollback alarms is in ALARM.

    An alarm an earlier fault left in ALARM (its window still holds that fault's 5XX or latency datapoints) makes
    SageMaker roll any guarded update back at once, whatever the new model does.
    """
    assert serving_config(aws) == serving["endpoint_config_name"]
    wait_for(lambda: alarms_ok(aws), 90, "the endpoint's rollback alarms to leave ALARM")
    return serving
