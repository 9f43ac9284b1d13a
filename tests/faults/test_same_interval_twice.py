"""Fault: the same interval is triggered twice at once.

Two runs over the same training window start together, and one task of a run executes twice at the same
time (a worker presumed dead while it still runs, and the retry Airflow started meanwhile).

Expected: both extractions succeed and leave ONE consistent dataset for the interval (the manifest lists
exactly the part files under the prefix, with their sizes, and their rows are the window's rows); the two
executions of ``preprocess`` share ONE processing job, both finish with its result, neither fails.
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.faults.conftest import (
    jobs_named,
    preprocess_operator,
    run_task,
    s3_json,
    spawn_task,
    task_context,
    task_result,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_same_interval_twice_at_once_one_dataset_and_no_duplicate_job(
    aws: SimpleNamespace, trained: dict[str, Any], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from ml_lifecycle.operators.sagemaker import PrepareRunOperator

    runs = ["faults__twice_a", "faults__twice_b"]
    plans = [run_task(PrepareRunOperator(task_id="plan"), task_context("plan", r)) for r in runs]
    assert plans[0]["dataset_uri"] == plans[1]["dataset_uri"] == trained["plan"]["dataset_uri"], "same interval"
    dataset = plans[0]["dataset_uri"]

    # 1. both runs extract the interval at the same time, each in its own worker process
    paths = [tmp_path / f"extract-{i}.json" for i in range(2)]
    workers = [spawn_task("extract", runs[i], plans[i], paths[i]) for i in range(2)]
    results = [task_result(workers[i], paths[i], timeout=180) for i in range(2)]
    assert results[0]["row_count"] == results[1]["row_count"] == trained["extract"]["row_count"]

    manifest = s3_json(aws.s3, results[0]["manifest_uri"])
    bucket, prefix = dataset.removeprefix("s3://").split("/", 1)
    listed = {
        o["Key"][len(prefix) :]: o["Size"]
        for o in aws.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        if "/" not in o["Key"][len(prefix) :] and o["Key"].endswith(".parquet")
    }
    assert {p["name"]: p["bytes"] for p in manifest["parts"]} == listed, "manifest and part files agree"
    rows = 0
    for part in manifest["parts"]:
        body = aws.s3.get_object(Bucket=bucket, Key=prefix + part["name"])["Body"].read()
        table = pq.read_table(io.BytesIO(body))
        assert table.num_rows == part["rows"]
        rows += table.num_rows
    assert rows == manifest["row_count"] == trained["extract"]["row_count"]

    # 2. run A's preprocess executes twice at once: the stale try 1 and the retry (try 2)
    from ml_lifecycle.operators.sagemaker import PreprocessJobOperator

    both_decided = threading.Barrier(2)
    real_create = PreprocessJobOperator._create

    def create_after_both_decided(self: Any) -> None:
        # both executions found no job for the run and decided to create it: the race, made deterministic
        both_decided.wait(timeout=60)
        real_create(self)

    def preprocess(try_number: int) -> Any:
        op = preprocess_operator(plans[0], dataset)
        op._create = create_after_both_decided.__get__(op)
        try:
            return run_task(op, task_context("preprocess", runs[0], try_number=try_number))
        except Exception as exc:  # reported below with the other execution's outcome
            return exc

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(preprocess, (1, 2)))
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, f"an execution failed instead of re-attaching: {errors}"
    jobs = jobs_named(aws.sm, "processing", plans[0]["run_hash"])
    assert [j["ProcessingJobName"] for j in jobs] == [plans[0]["job_names"]["preprocess"]], "exactly one job"
    assert outcomes[0]["job_name"] == outcomes[1]["job_name"] == jobs[0]["ProcessingJobName"]
    assert outcomes[0]["status"] == "Completed"
    assert not jobs_named(aws.sm, "processing", plans[1]["run_hash"]), "run B started no job of its own yet"
