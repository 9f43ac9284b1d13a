"""Fault: the worker process is killed (SIGKILL) while its task waits on SageMaker; Airflow retries the task.

Each waiting operator's try 1 runs in a worker process of its own (:mod:`tests.faults.task_process`: execute,
then the trigger's wait, then the resume, all in that process). The test kills it once the SageMaker job or
endpoint operation it started exists, then runs the task again with ``try_number=2`` as Airflow's retry does.

Expected: the job or operation keeps going in SageMaker; the retry finds it by its deterministic name and
RE-ATTACHES to it instead of starting a second one, and finishes with its result. ``List*`` shows exactly one
job for the run, named by try 1; a deployment's endpoint is created once and its endpoint config made once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.faults.conftest import (
    ANCHOR,
    SAMPLE_ROW,
    control,
    job_states,
    jobs_named,
    run_task,
    s3_keys,
    sagemaker_faults,
    spawn_spec,
    spawn_task,
    task_context,
    task_spec,
    train_operator,
    wait_for,
)
from tests.faults.deploy_checks import endpoint_configs_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: each job's start is held this long, so the job is still InProgress when its worker has been killed
JOB_START_DELAY = 5
#: the endpoint of the deployment cases (not the suite's endpoint: its alarms and models stay as they are)
WD_ENDPOINT = "fraud-wd"


def kill_each(workers: dict[str, tuple[Any, Path, Callable[[], Any]]], timeout: float = 240) -> dict[str, Any]:
    """SIGKILL each worker (``{id: (process, its log, created)}``) as soon as its ``created()`` returns something
    truthy, and return those values by id. Each worker must still be running then: its try was cut short while
    it waited on what it had started."""
    found: dict[str, Any] = {}
    try:

        def kill_ready() -> bool:
            for worker_id, (worker, log, created) in workers.items():
                if worker_id in found:
                    continue
                assert worker.poll() is None, f"{worker_id} ended before it was killed:\n{log.read_text()[-2000:]}"
                if value := created():
                    os.kill(worker.pid, signal.SIGKILL)
                    found[worker_id] = value
            return len(found) == len(workers)

        wait_for(kill_ready, timeout=timeout, what=f"{sorted(set(workers) - set(found))} to start their work")
    finally:
        for worker, _, _ in workers.values():
            if worker.poll() is None:
                worker.kill()
            worker.wait(timeout=30)
    assert {i: w.returncode for i, (w, _, _) in workers.items()} == dict.fromkeys(workers, -signal.SIGKILL)
    return found


def kill_once(worker: Any, log: Path, created: Callable[[], Any]) -> Any:
    """:func:`kill_each` for one worker."""
    return kill_each({"worker": (worker, log, created)})["worker"]


# ------------------------------------------------------------------------------------------ training


def test_worker_killed_during_training_the_retry_reattaches(
    aws: SimpleNamespace, trained: dict[str, Any], tmp_path: Path
) -> None:
    from ml_lifecycle.operators.sagemaker import PrepareRunOperator

    run_id = "faults__worker_killed"
    plan = run_task(PrepareRunOperator(task_id="plan"), task_context("plan", run_id))
    name = plan["job_names"]["train"]

    # try 1 runs in a worker process of its own; it is killed once its job exists
    worker = spawn_task("train", run_id, plan, tmp_path / "try1.json", preprocess=trained["preprocess"])
    created = kill_once(
        worker, Path(f"{tmp_path / 'try1.json'}.log"), lambda: jobs_named(aws.sm, "training", plan["run_hash"])
    )
    assert [j["TrainingJobName"] for j in created] == [name]
    assert aws.sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "InProgress", (
        "the job outlives the worker"
    )

    # try 2: the same task again, as Airflow's retry runs it
    result = run_task(train_operator(plan, trained["preprocess"]), task_context("train", run_id, try_number=2))

    assert result["job_name"] == name and result["status"] == "Completed"
    jobs = jobs_named(aws.sm, "training", plan["run_hash"])
    assert [(j["TrainingJobName"], j["TrainingJobStatus"]) for j in jobs] == [(name, "Completed")], "one job"
    assert result["model_uri"].startswith(f"s3://{plan['dataset_uri'].split('/')[2]}/")


# ------------------------------------------------------------------------- processing, tuning, transform, baseline

JOB_CASES = ("preprocess", "tune", "transform", "baseline")


@pytest.fixture(scope="module")
def killed_jobs(
    aws: SimpleNamespace, trained: dict[str, Any], packages: Callable[..., str], cfg: Any, tmp_path_factory: Any
) -> dict[str, dict[str, Any]]:
    """Try 1 of each job case, started at once in workers of their own, each killed once its job exists.

    ``{case: {"spec": how to build the task, "kind": job kind, "name": the job try 1 created}}``.
    """
    from ml_lifecycle.builders.monitor import baseline_job_name
    from ml_lifecycle.builders.transform import transform_job_name
    from ml_lifecycle.operators.sagemaker import PrepareRunOperator

    run_id = "faults__worker_killed_jobs"
    plan = run_task(PrepareRunOperator(task_id="plan"), task_context("plan", run_id))
    bucket, base = cfg.storage.bucket, "faults/worker-killed/"
    # batch input for the transform; a baseline dataset of its own (the job is named after the dataset)
    aws.s3.put_object(Bucket=bucket, Key=f"{base}transform/input/part-0.csv", Body=(SAMPLE_ROW + b"\n") * 20)
    source = trained["preprocess"]["outputs"]["baseline"].removeprefix(f"s3://{bucket}/")
    for key in s3_keys(aws.s3, trained["preprocess"]["outputs"]["baseline"]):
        copy = f"{base}baseline/{key.removeprefix(source).lstrip('/')}"
        aws.s3.copy_object(Bucket=bucket, Key=copy, CopySource={"Bucket": bucket, "Key": key})
    baseline_uri, version = f"s3://{bucket}/{base}baseline/", 1
    package = packages(note="worker killed during transform")
    train_run = {"run_id": run_id, "dag_id": "train_model"}
    cases: dict[str, dict[str, Any]] = {
        "preprocess": {
            "spec": task_spec(
                "preprocess_operator", plan, trained["extract"]["dataset_uri"], **train_run, task_id="preprocess"
            ),
            "kind": "processing",
            "name": plan["job_names"]["preprocess"],
        },
        "tune": {
            "spec": task_spec("tune_operator", plan, trained["preprocess"], **train_run, task_id="tune"),
            "kind": "tuning",
            "name": plan["job_names"]["tune"],
        },
        "transform": {
            "spec": task_spec(
                "transform_operator",
                package,
                f"s3://{bucket}/{base}transform/",
                task_id="transform",
                run_id=run_id,
                dag_id="batch_score",
            ),
            "kind": "transform",
            "name": transform_job_name(cfg, dag_id="batch_score", run_id=run_id, start=ANCHOR),
        },
        "baseline": {
            "spec": task_spec(
                "baseline_operator", baseline_uri, version, task_id="baseline", run_id=run_id, dag_id="deploy_model"
            ),
            "kind": "processing",
            "name": baseline_job_name(cfg, version=version, dataset_uri=baseline_uri),
        },
    }
    logs = tmp_path_factory.mktemp("worker-killed")
    # every job (and the tuning job's training jobs) starts late, so each is InProgress when its worker dies
    delays = [{"name_prefix": case["name"], "count": 3, "seconds": JOB_START_DELAY} for case in cases.values()]
    with sagemaker_faults(aws.url, {"delay_jobs": delays}):
        workers = {case_id: spawn_spec(case["spec"], logs / f"{case_id}.json") for case_id, case in cases.items()}
        created = kill_each(
            {
                case_id: (
                    workers[case_id],
                    logs / f"{case_id}.json.log",
                    lambda case=case: job_states(aws.sm, case["kind"], case["name"]),
                )
                for case_id, case in cases.items()
            }
        )
    for case_id, case in cases.items():
        case["created"] = created[case_id]
    return cases


@pytest.mark.parametrize("case_id", [pytest.param(case, id=case) for case in JOB_CASES])
def test_worker_killed_while_a_job_runs_the_retry_reattaches(
    aws: SimpleNamespace, killed_jobs: dict[str, dict[str, Any]], case_id: str
) -> None:
    from tests.faults.task_process import build

    case = killed_jobs[case_id]
    name, kind = case["name"], case["kind"]
    assert case["created"] == [(name, "InProgress")], "try 1 created the job, which outlives the worker"

    op, ctx = build({**case["spec"], "try_number": 2})
    result = run_task(op, ctx)

    assert result["job_name"] == name and result["status"] == "Completed", result
    assert job_states(aws.sm, kind, name) == [(name, "Completed")], "one job: the retry re-attached to it"
    if case_id == "tune":  # one search: the budget's training jobs, no second set
        assert len(job_states(aws.sm, "training", name)) == 2


# ------------------------------------------------------------------------------------------ deployment


@pytest.fixture(scope="module")
def wd_endpoint(aws: SimpleNamespace) -> Iterator[str]:
    """The deployment cases' endpoint, deleted at the end (its model server does not run on)."""
    yield WD_ENDPOINT
    with contextlib.suppress(aws.sm.exceptions.ClientError):
        aws.sm.delete_endpoint(EndpointName=WD_ENDPOINT)


def endpoint_state(aws: SimpleNamespace, endpoint: str) -> dict[str, Any] | None:
    try:
        return aws.sm.describe_endpoint(EndpointName=endpoint)
    except aws.sm.exceptions.ClientError:
        return None


def test_worker_killed_while_an_endpoint_is_created_then_updated_the_retries_reattach(
    aws: SimpleNamespace, packages: Callable[..., str], wd_endpoint: str, tmp_path: Path
) -> None:
    from tests.faults.task_process import build

    first, second = packages(note="worker killed: create"), packages(note="worker killed: stepwise")
    versions = [aws.sm.describe_model_package(ModelPackageName=a)["ModelPackageVersion"] for a in (first, second)]

    # deploy_guarded creates the endpoint; its worker dies while the endpoint is Creating
    spec = task_spec("deploy_operator", first, task_id="deploy_guarded", run_id="faults__worker_killed_create",
                     dag_id="deploy_model", endpoint_name=wd_endpoint)  # fmt: skip
    with sagemaker_faults(aws.url, {}):  # (no fault: counts the calls)
        worker = spawn_spec(spec, tmp_path / "create.json")
        creating = kill_once(
            worker,
            tmp_path / "create.json.log",
            lambda: (d := endpoint_state(aws, wd_endpoint)) and d["EndpointStatus"] == "Creating" and d,
        )
        created = run_task(*build({**spec, "try_number": 2}))
        calls = control(aws.url, "GET", "/_devstack/faults")["calls"]

    description = aws.sm.describe_endpoint(EndpointName=wd_endpoint)
    assert description["EndpointStatus"] == "InService"
    assert description["CreationTime"] == creating["CreationTime"], "the retry did not create the endpoint again"
    assert description["EndpointConfigName"] == creating["EndpointConfigName"] == created["endpoint_config_name"]
    assert len(endpoint_configs_of(aws, versions[0])) == 1, "one endpoint config for the model"
    assert calls.get("CreateEndpoint") == 1, calls

    # deploy_stepwise shifts it to the next model; its worker dies while the update that adds the variant runs
    spec = task_spec("stepwise_operator", second, task_id="deploy_stepwise", run_id="faults__worker_killed_stepwise",
                     dag_id="deploy_model", endpoint_name=wd_endpoint)  # fmt: skip
    with sagemaker_faults(aws.url, {}):
        worker = spawn_spec(spec, tmp_path / "stepwise.json")
        updating = kill_once(
            worker,
            tmp_path / "stepwise.json.log",
            lambda: (d := endpoint_state(aws, wd_endpoint)) and d["EndpointStatus"] == "Updating" and d,
        )
        shifted = run_task(*build({**spec, "try_number": 2}))
        calls = control(aws.url, "GET", "/_devstack/faults")["calls"]

    description = aws.sm.describe_endpoint(EndpointName=wd_endpoint)
    assert shifted["action"] == "shifted", shifted
    assert description["EndpointStatus"] == "InService" and "PendingDeploymentSummary" not in description
    assert [(v["VariantName"], v["CurrentWeight"]) for v in description["ProductionVariants"]] == [
        (shifted["variant_name"], 1.0)
    ]
    assert updating["CreationTime"] == description["CreationTime"]
    # one update adds the new variant (the one try 1 started), one retires the old variant
    assert calls.get("UpdateEndpoint") == 2, calls
    assert updating["EndpointConfigName"] != description["EndpointConfigName"]
