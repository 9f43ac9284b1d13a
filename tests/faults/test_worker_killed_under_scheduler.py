"""Fault: a task's process is killed (SIGKILL) under a real Airflow, right after its create or update call went
through; Airflow's own retry runs the task again.

A real Airflow (api-server, scheduler with the LocalExecutor, dag-processor, triggerer, PostgreSQL metadata
database; :mod:`tools.ui`) runs a probe DAG made of the project's waiting operators, each with one retry:
``preprocess`` (processing job), ``train`` (training job), ``tune`` (tuning job), ``transform`` (batch
transform job), ``baseline`` (Model Monitor baselining job) side by side, and ``deploy_guarded`` (creates an
endpoint) then ``deploy_stepwise`` (shifts it to the next model). The devstack holds the answer of each task's
first ``Create*`` / ``UpdateEndpoint`` call (``hold_answers``): the job or endpoint operation exists, and the
task process waits for the answer. The test then kills that process, found by the ``pid`` the REST API reports
for the task instance (and checked to descend from the scheduler), as a worker dies: the supervisor sees its
task process end by SIGKILL and puts the try up for retry.

Expected: each job and endpoint operation goes on; each task's try 2 re-attaches to what try 1 started and the
run succeeds. ``List*`` shows exactly one job per task, named by try 1, ``Completed``; the devstack counted
one create call per job and endpoint, and two ``UpdateEndpoint`` (the stepwise shift adds the new variant
once, then retires the old one).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from tests.faults.conftest import (
    ANCHOR,
    HYPERPARAMETERS,
    SAMPLE_ROW,
    control,
    job_states,
    s3_keys,
    sagemaker_faults,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAG_ID = "worker_death_probe"
RUN_ID = "faults__worker_death_under_scheduler"
#: seconds each job's start is delayed
JOB_START_DELAY = 5
#: the deployments' endpoint (not the suite's: its models and alarms stay as the other faults expect them)
ENDPOINT = "fraud-wd"
#: how long the devstack holds each create call's answer: the time the test has to kill the task process
#: (below botocore's 60 s read timeout, so the client never retries the call by itself)
HOLD_SECONDS = 45
#: the event Airflow 3.3.1's scheduler records when it fails a task whose trigger fired before it processed the
#: deferring try's exit (apache/airflow#67287)
RACE = "finished with state success, but the task instance's state attribute is queued"
PROBE_DAG = f"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from ml_lifecycle.operators.batch import BatchTransformJobOperator
from ml_lifecycle.operators.deploy import GuardedEndpointDeployOperator
from ml_lifecycle.operators.monitor import DataQualityBaselineOperator
from ml_lifecycle.operators.sagemaker import PreprocessJobOperator, TrainingJobOperator, TuningJobOperator
from ml_lifecycle.operators.traffic import StepwiseTrafficShiftOperator

# polls and bakes longer than the scheduler takes to process a deferring try's exit: Airflow 3.3.1 fails a task
# whose trigger fired before that (apache/airflow#67287, #72716). That makes the race rare; when it happens the
# task's next try re-attaches to the same job, as in the product's DAGs (retries 2), and the test checks it did
POLL = 20
SPLITS = {{
    name: "{{{{ dag_run.conf.splits." + name + " }}}}" for name in ("train", "validation", "preprocessor", "inference")
}}

with DAG(
    {DAG_ID!r},
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    params={{"window_days": Param(14, type="integer"), "force": Param(True, type="boolean")}},
    default_args={{"retries": 2, "retry_delay": dt.timedelta(seconds=1), "retry_exponential_backoff": False}},
):
    PreprocessJobOperator(
        task_id="preprocess",
        dataset_uri="{{{{ dag_run.conf.dataset_uri }}}}",
        code_uri="{{{{ dag_run.conf.preprocess_code_uri }}}}",
        check_interval=POLL,
        max_attempts=60,
    )
    TrainingJobOperator(
        task_id="train",
        splits=SPLITS,
        sourcedir_uri="{{{{ dag_run.conf.sourcedir_uri }}}}",
        hyperparameter_overrides={HYPERPARAMETERS!r},
        check_interval=POLL,
        max_attempts=60,
    )
    TuningJobOperator(
        task_id="tune",
        splits=SPLITS,
        sourcedir_uri="{{{{ dag_run.conf.sourcedir_uri }}}}",
        hyperparameter_overrides={HYPERPARAMETERS!r},
        max_jobs="2",
        max_parallel_jobs="2",
        check_interval=POLL,
        max_attempts=60,
    )
    BatchTransformJobOperator(
        task_id="transform",
        model_package_arn="{{{{ dag_run.conf.package_arn }}}}",
        input_uri="{{{{ dag_run.conf.transform_uri }}}}input/",
        output_uri="{{{{ dag_run.conf.transform_uri }}}}output/",
        interval_start="{{{{ dag_run.conf.interval_start }}}}",
        poll_interval=POLL,
    )
    DataQualityBaselineOperator(
        task_id="baseline",
        dataset_uri="{{{{ dag_run.conf.baseline_uri }}}}",
        model_package_version="1",
        endpoint_name="fraud-faults",
        poll_interval=POLL,
    )
    GuardedEndpointDeployOperator(
        task_id="deploy_guarded",
        model_package_arn="{{{{ dag_run.conf.first_package_arn }}}}",
        endpoint_name={ENDPOINT!r},
        alarm_period_seconds=10,
        poll_interval=POLL,
    ) >> StepwiseTrafficShiftOperator(
        task_id="deploy_stepwise",
        model_package_arn="{{{{ dag_run.conf.package_arn }}}}",
        endpoint_name={ENDPOINT!r},
        percentages=[50],
        bake_seconds=POLL,
        alarm_period_seconds=10,
        poll_interval=POLL,
    )
"""
#: the call of each task whose answer is held (its first create or update call)
HELD = {
    "preprocess": "CreateProcessingJob",
    "train": "CreateTrainingJob",
    "tune": "CreateHyperParameterTuningJob",
    "transform": "CreateTransformJob",
    "baseline": "CreateProcessingJob",
    "deploy_guarded": "CreateEndpoint",
    "deploy_stepwise": "UpdateEndpoint",
}
#: the job tasks: their job's kind
JOB_KINDS = {
    "preprocess": "processing",
    "train": "training",
    "tune": "tuning",
    "transform": "transform",
    "baseline": "processing",
}


@pytest.fixture(scope="module")
def airflow(devstack: Any, aws: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from devstack.stack import free_port
    from tools.ui import AirflowUI

    dags = tmp_path_factory.mktemp("probe-dags")
    (dags / f"{DAG_ID}.py").write_text(PROBE_DAG)
    ui = AirflowUI(
        tmp_path_factory.mktemp("probe-airflow"),
        devstack_env=devstack.env,
        port=free_port(),
        extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(dags)},
        # as on MWAA: the scheduler, the API server and six task processes at a time write to it
        database="postgres",
    )
    info = ui.start(timeout=600)
    try:
        yield SimpleNamespace(ui=ui, scheduler=info.components["scheduler"].pid)
    finally:
        ui.stop()


def _trigger(ui: Any, token: str, conf: dict[str, Any]) -> None:
    wait_for(
        lambda: DAG_ID in {d["dag_id"] for d in ui.api("GET", "/api/v2/dags?limit=100", token=token)["dags"]},
        timeout=180,
        what=f"{DAG_ID} to be parsed",
        interval=1,
    )
    ui.api("PATCH", f"/api/v2/dags/{DAG_ID}", token=token, body={"is_paused": False})
    body = {"dag_run_id": RUN_ID, "logical_date": ANCHOR.isoformat(), "conf": conf}
    ui.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", token=token, body=body)


def _task_instances(ui: Any, token: str) -> dict[str, dict[str, Any]] | None:
    """The run's task instances by task id; ``None`` when the API server did not answer in time (it shares two
    cores with the scheduler and the task processes: a poll that times out is simply repeated)."""
    try:
        answer = ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{RUN_ID}/taskInstances", token=token)
    except TimeoutError:
        return None
    return {ti["task_id"]: ti for ti in answer["task_instances"]}


def _tail(path: Any, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return str(exc)


def _task_process(pid: int, scheduler: int) -> psutil.Process:
    """The task process ``pid``, checked to descend from the scheduler (a pid from the API, not a guess)."""
    process = psutil.Process(pid)
    assert scheduler in {p.pid for p in process.parents()}, f"pid {pid} is not a process of the scheduler"
    return process


def _endpoint(aws: SimpleNamespace) -> dict[str, Any] | None:
    try:
        return aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    except aws.sm.exceptions.ClientError:
        return None


@pytest.fixture(scope="module")
def run(
    airflow: SimpleNamespace, aws: SimpleNamespace, trained: dict[str, Any], packages: Callable[..., str], cfg: Any
) -> Iterator[dict[str, Any]]:
    """The probe run: each task's process killed once what it started exists; then the run left to Airflow."""
    from ml_lifecycle.builders.monitor import baseline_job_name
    from ml_lifecycle.builders.transform import transform_job_name
    from ml_lifecycle.naming import RunPlan

    bucket, base = cfg.storage.bucket, "faults/worker-death-scheduler/"
    aws.s3.put_object(Bucket=bucket, Key=f"{base}transform/input/part-0.csv", Body=(SAMPLE_ROW + b"\n") * 20)
    source = trained["preprocess"]["outputs"]["baseline"]
    for key in s3_keys(aws.s3, source):
        copy = f"{base}baseline/{key.removeprefix(source.removeprefix(f's3://{bucket}/')).lstrip('/')}"
        aws.s3.copy_object(Bucket=bucket, Key=copy, CopySource={"Bucket": bucket, "Key": key})
    code = trained["plan"]["code"]
    outputs = trained["preprocess"]["outputs"]
    conf = {
        "dataset_uri": trained["extract"]["dataset_uri"],
        "preprocess_code_uri": code["preprocessing"]["src_uri"],
        "splits": {
            **{name: outputs[name] for name in ("train", "validation", "preprocessor")},
            "inference": code["inference"]["src_uri"],
        },
        "sourcedir_uri": code["training"]["sourcedir_uri"],
        "first_package_arn": packages(note="worker death: endpoint created"),
        "package_arn": packages(note="worker death: transform and stepwise shift"),
        "transform_uri": f"s3://{bucket}/{base}transform/",
        "interval_start": ANCHOR.isoformat(),
        "baseline_uri": f"s3://{bucket}/{base}baseline/",
    }
    plan = RunPlan.create(cfg, dag_id=DAG_ID, run_id=RUN_ID, anchor=ANCHOR, window_days=14)
    #: job task -> its job's name (try 1's)
    names = {
        "preprocess": plan.job_name("preprocess"),
        "train": plan.job_name("train"),
        "tune": plan.job_name("tune"),
        "transform": transform_job_name(cfg, dag_id=DAG_ID, run_id=RUN_ID, start=ANCHOR),
        "baseline": baseline_job_name(cfg, version=1, dataset_uri=conf["baseline_uri"]),
    }

    def started(task: str) -> Any:
        """What the task's try 1 has started, once it exists: its job (name, status), or the endpoint."""
        if task in JOB_KINDS:
            # (NameContains: a tuning job's training jobs carry its name, and later tries' jobs end in -r<try>)
            return job_states(aws.sm, JOB_KINDS[task], names[task])
        endpoint = _endpoint(aws)
        wanted = "Creating" if task == "deploy_guarded" else "Updating"
        return endpoint if endpoint and endpoint["EndpointStatus"] == wanted else None

    holds: dict[str, int] = {}
    for action in HELD.values():
        holds[action] = holds.get(action, 0) + 1
    spec = {
        "hold_answers": [{"action": a, "count": n, "seconds": HOLD_SECONDS} for a, n in holds.items()],
        # each job starts a few seconds late, so it is still InProgress when the process that created it dies
        "delay_jobs": [{"name_prefix": name, "count": 3, "seconds": JOB_START_DELAY} for name in names.values()],
    }
    killed: dict[str, dict[str, Any]] = {}
    control(aws.url, "DELETE", "/_devstack/faults")  # the calls are counted from here
    # the faults stay configured through the run, so the calls are counted until it ends (each hold holds once)
    with sagemaker_faults(aws.url, spec):
        token = airflow.ui.token()
        _trigger(airflow.ui, token, conf)

        def kill_ready() -> bool:
            tis = _task_instances(airflow.ui, token) or {}
            for task in HELD:
                ti = tis.get(task, {})
                if task in killed or ti.get("state") != "running" or not ti.get("pid"):
                    continue
                if found := started(task):
                    assert ti["try_number"] == 1, ti
                    _task_process(ti["pid"], airflow.scheduler).send_signal(signal.SIGKILL)
                    killed[task] = {"pid": ti["pid"], "started": found}
            return len(killed) == len(HELD)

        try:
            wait_for(kill_ready, timeout=480, what="each task to start its work", interval=1)
        except AssertionError as exc:
            logs = {c: _tail(airflow.ui.log_file(c)) for c in ("api-server", "scheduler")}
            raise AssertionError(f"{exc}; killed: {sorted(killed)}; task instances: "
                                 f"{_task_instances(airflow.ui, token)}; logs: {logs}") from None  # fmt: skip

        def finished() -> str | None:
            try:
                state = airflow.ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{RUN_ID}", token=token)["state"]
            except TimeoutError:
                return None
            return state if state in ("success", "failed") else None

        state = wait_for(finished, timeout=600, what="the probe run to finish", interval=2)
        calls = control(aws.url, "GET", "/_devstack/faults")["calls"]
    tis = wait_for(lambda: _task_instances(airflow.ui, token), 120, "the run's task instances")
    # the tasks whose try the scheduler failed by Airflow's resume race: it records a "state mismatch" event
    events = airflow.ui.api("GET", f"/api/v2/eventLogs?dag_id={DAG_ID}&event=state%20mismatch&limit=100", token=token)
    raced = {e["task_id"] for e in events["event_logs"] if e.get("run_id") == RUN_ID and RACE in (e.get("extra") or "")}
    yield {"state": state, "tis": tis, "names": names, "killed": killed, "calls": calls, "raced": raced}
    with contextlib.suppress(aws.sm.exceptions.ClientError):  # its model server does not run on
        aws.sm.delete_endpoint(EndpointName=ENDPOINT)


def test_the_run_completes_after_each_task_process_was_killed(run: dict[str, Any]) -> None:
    tries = {task: (ti["state"], ti["try_number"]) for task, ti in run["tis"].items()}
    assert run["state"] == "success", {task: tried for task, tried in tries.items() if tried[0] != "success"}
    # try 1 was killed, try 2 re-attached; a try 3 only where the scheduler failed try 2 by Airflow's race
    raced = run["raced"]
    expected = {task: ("success", 3 if task in raced else 2) for task in HELD}
    assert tries == expected, f"each task succeeded on its retry (Airflow's resume race hit: {sorted(raced)})"


def test_each_create_and_update_was_made_once(run: dict[str, Any]) -> None:
    counted = {action: run["calls"].get(action, 0) for action in set(HELD.values())}
    assert counted == {
        "CreateProcessingJob": 2,  # preprocess, baseline
        "CreateTrainingJob": 1,  # (the tuning job starts its training jobs itself)
        "CreateHyperParameterTuningJob": 1,
        "CreateTransformJob": 1,
        "CreateEndpoint": 1,
        "UpdateEndpoint": 2,  # the stepwise shift: add the new variant (try 1), retire the old one (try 2)
    }


@pytest.mark.parametrize("task", [pytest.param(task, id=task) for task in JOB_KINDS])
def test_the_retry_reattached_to_the_one_job_try_1_created(
    aws: SimpleNamespace, run: dict[str, Any], task: str
) -> None:
    name = run["names"][task]
    assert run["killed"][task]["started"] == [(name, "InProgress")], "try 1 created it; it outlived the process"
    assert job_states(aws.sm, JOB_KINDS[task], name) == [(name, "Completed")], "one job: the retry re-attached"


def test_the_deployments_reattached_to_the_endpoint_operations_try_1_started(
    aws: SimpleNamespace, run: dict[str, Any]
) -> None:
    creating, updating = run["killed"]["deploy_guarded"]["started"], run["killed"]["deploy_stepwise"]["started"]
    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert description["EndpointStatus"] == "InService" and "PendingDeploymentSummary" not in description
    assert description["CreationTime"] == creating["CreationTime"], "created once"
    assert updating["EndpointConfigName"] == creating["EndpointConfigName"], "killed before its update took over"
    variants = description["ProductionVariants"]
    assert len(variants) == 1 and variants[0]["CurrentWeight"] == 1.0, variants
    assert description["EndpointConfigName"] != creating["EndpointConfigName"], "shifted to the next model"
