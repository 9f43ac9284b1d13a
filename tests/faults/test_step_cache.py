"""The step cache beyond training's job steps: data validation (both modes) and batch transform.

Expected (docs/training-pipeline.md, "Step caching"; docs/deployment-and-monitoring.md): a second run of the
same interval with the same inputs reuses the completed step's outputs and starts no job; the task log names
the reused job and its run; the step's result says ``cache.reused``; ``force: true`` starts a job anyway. For
batch transform, another model misses (a new job), and a model whose output was since replaced by another
model's misses too. Counted against the devstack's job list, per run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from tests.faults.conftest import (
    ANCHOR,
    FIRST_MODEL_THRESHOLD,
    SAMPLE_ROW,
    job_states,
    run_task,
    s3_keys,
    task_context,
    transform_operator,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NO_FORCE = {"force": False}
FORCE = {"force": True}


class TaskLog:
    """What the tasks of the test wrote to their log (the task logger writes to the process's stdout/stderr)."""

    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self.capfd, self.text = capfd, ""

    def __contains__(self, line: str) -> bool:
        out, err = self.capfd.readouterr()
        self.text += out + err
        return line in self.text

    @staticmethod
    def reused(step: str, job: str, run_id: str) -> str:
        return f"Step cache: reused outputs of {step} job {job} from run {run_id}"


def test_validation_runs_once_for_the_same_inputs_and_again_with_force(
    aws: SimpleNamespace, trained: dict[str, Any], cfg: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """Processing-mode validation (prod's mode) of the same dataset in three runs: the first starts its job, the
    second reuses it (no job of its own), the third, forced, starts one. Worker mode caches the same way."""
    from ml_lifecycle.dag_defaults import validation_job_settings
    from ml_lifecycle.operators.sagemaker import PrepareRunOperator
    from ml_lifecycle.operators.validation import SUMMARY_XCOM_KEY, DataValidationOperator

    log = TaskLog(capfd)
    dataset = trained["extract"]["dataset_uri"]

    def validate(run_id: str, mode: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any]:
        plan = run_task(PrepareRunOperator(task_id="plan"), task_context("plan", run_id, params=params))
        op = DataValidationOperator(
            task_id="validate",
            dataset_uri=dataset,
            suite_path=cfg.training.validation.suite,
            contract_path="code/common/features_schema.json",
            report_uri=plan["validation_report_uri"],
            mode=mode,
            batch_rows=cfg.training.validation.batch_rows,
            processing_job=validation_job_settings(cfg, job_name=plan["validate_job_name"]),
            check_interval=1,
            max_attempts=300,
        )
        ctx = task_context("validate", run_id, params=params)
        return plan, run_task(op, ctx), ctx["ti"]

    first_plan, first, _ = validate("faults__cache_validate_a", "processing", FORCE)  # a job of its own to reuse
    second_plan, second, ti = validate("faults__cache_validate_b", "processing", NO_FORCE)
    forced_plan, forced, _ = validate("faults__cache_validate_c", "processing", FORCE)

    name = first_plan["validate_job_name"]
    assert job_states(aws.sm, "processing", first_plan["run_hash"]) == [(name, "Completed")]
    assert job_states(aws.sm, "processing", second_plan["run_hash"]) == [], "the second run starts no job"
    assert job_states(aws.sm, "processing", forced_plan["run_hash"]) == [
        (forced_plan["validate_job_name"], "Completed")
    ], "force starts a job"
    assert first["cache"]["reused"] is False and first["cache"]["record_uri"]
    assert second["cache"] == {
        "reused": True,
        "key": first["cache"]["key"],
        "step": "validate",
        "source_run_id": "faults__cache_validate_a",
        "source_job_name": name,
        "record_uri": first["cache"]["record_uri"],
    }
    assert second["job_name"] == name and second["result_uri"] == first["result_uri"]
    assert ti.pushed[SUMMARY_XCOM_KEY]["success"] is True, "the reused step pushes the verdict's summary"
    assert TaskLog.reused("validate", name, "faults__cache_validate_a") in log
    assert forced["cache"]["reused"] is False and forced["job_name"] == forced_plan["validate_job_name"]

    # worker mode: no job, the same reuse (its key differs from processing mode's: the mode is an input)
    _, worker_first, _ = validate("faults__cache_validate_w1", "worker", FORCE)
    _, worker_second, _ = validate("faults__cache_validate_w2", "worker", NO_FORCE)
    assert worker_first["cache"]["key"] != first["cache"]["key"]
    assert worker_second["cache"]["reused"] is True
    assert worker_second["cache"]["source_run_id"] == "faults__cache_validate_w1"
    assert worker_second["result_uri"] == worker_first["result_uri"]


def test_transform_runs_once_per_model_for_the_same_interval_and_again_with_force(
    aws: SimpleNamespace,
    packages: Callable[..., str],
    trained: dict[str, Any],
    cfg: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """batch_score's transform over one interval in five runs: A scores (a job); B, same inputs, reuses A's job;
    C, forced, starts a job; D, another model, starts a job (and replaces the interval's output); E, A's model
    again, starts a job, because the output A's record names was replaced by D's."""
    from ml_lifecycle.builders.transform import transform_job_name
    from ml_lifecycle.naming import run_hash

    log = TaskLog(capfd)
    base = f"s3://{cfg.storage.bucket}/faults/step-cache-transform/"
    aws.s3.put_object(
        Bucket=cfg.storage.bucket, Key="faults/step-cache-transform/input/part-0.csv", Body=SAMPLE_ROW + b"\n"
    )
    first_model = packages(note="cache first", threshold=FIRST_MODEL_THRESHOLD)
    other_model = packages(note="cache other")
    end = (ANCHOR + dt.timedelta(days=1)).isoformat()
    dataset = trained["extract"]["dataset_uri"]

    def transform(run_id: str, package: str, params: dict[str, Any]) -> dict[str, Any]:
        op = transform_operator(package, base, interval_end=end, dataset_uri=dataset)
        return run_task(op, task_context("transform", run_id, dag_id="batch_score", params=params))

    def jobs(run_id: str) -> list[tuple[str, str]]:
        return job_states(aws.sm, "transform", run_hash("batch_score", run_id))

    def name(run_id: str) -> str:
        return transform_job_name(cfg, dag_id="batch_score", run_id=run_id, start=ANCHOR)

    a = transform("faults__cache_score_a", first_model, FORCE)  # a job of its own, whatever ran before
    output = s3_keys(aws.s3, base + "output/")
    b = transform("faults__cache_score_b", first_model, NO_FORCE)
    assert jobs("faults__cache_score_a") == [(name("faults__cache_score_a"), "Completed")]
    assert jobs("faults__cache_score_b") == [], "same inputs: no job"
    assert b["cache"]["reused"] is True and b["cache"]["key"] == a["cache"]["key"]
    assert b["job_name"] == a["job_name"] and b["output_uri"] == a["output_uri"]
    assert s3_keys(aws.s3, base + "output/") == output, "the reused output is A's, untouched"
    assert TaskLog.reused("transform", a["job_name"], "faults__cache_score_a") in log

    c = transform("faults__cache_score_c", first_model, FORCE)
    assert jobs("faults__cache_score_c") == [(name("faults__cache_score_c"), "Completed")], "force: a job"
    assert c["cache"]["reused"] is False and c["cache"]["key"] == a["cache"]["key"]

    d = transform("faults__cache_score_d", other_model, NO_FORCE)
    assert jobs("faults__cache_score_d") == [(name("faults__cache_score_d"), "Completed")], "another model: a job"
    assert d["cache"]["reused"] is False and d["cache"]["key"] != a["cache"]["key"]
    assert s3_keys(aws.s3, base + "output/") != output, "the other model's output replaced the first's"

    e = transform("faults__cache_score_e", first_model, NO_FORCE)
    assert jobs("faults__cache_score_e") == [(name("faults__cache_score_e"), "Completed")], (
        "the first model's recorded output was replaced: a job, not a reuse of another model's predictions"
    )
    assert e["cache"]["reused"] is False
    assert "was replaced since it completed" in log
