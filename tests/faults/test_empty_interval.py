"""Fault: the data interval holds no rows (a window before the history starts).

Expected: ``extract`` writes a manifest with ``row_count`` 0 and raises ``AirflowSkipException`` naming
the interval; the downstream tasks are skipped by their trigger rules (the run ends successful, nothing
trained); no SageMaker job; no failure notification.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import AirflowSkipException

from tests.faults.conftest import ROOT, extract_operator, jobs_named, run_task, s3_json, task_context

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ANCHOR = dt.datetime(2025, 6, 10, tzinfo=dt.UTC)


def test_empty_interval_skips_the_run(aws: SimpleNamespace) -> None:
    import importlib.util

    from ml_lifecycle.operators.sagemaker import PrepareRunOperator

    run_id = "faults__empty_interval"
    params = {"window_days": 3}
    plan = run_task(PrepareRunOperator(task_id="plan"), task_context("plan", run_id, anchor=ANCHOR, params=params))

    with pytest.raises(AirflowSkipException) as skipped:
        run_task(extract_operator(plan), task_context("extract", run_id, anchor=ANCHOR, params=params))

    assert "no rows in" in str(skipped.value)
    assert plan["window"]["start"] in str(skipped.value).replace(" ", "T") or "2025-06-07" in str(skipped.value)
    manifest = s3_json(aws.s3, plan["dataset_uri"] + "_manifest.json")
    assert manifest["row_count"] == 0 and manifest["parts"] == []
    for kind in ("processing", "training"):
        assert not jobs_named(aws.sm, kind, plan["run_hash"])

    # what the run does with the skip: every task after extract only runs when its upstream succeeded
    spec = importlib.util.spec_from_file_location("faults_train_model_dag", ROOT / "dags" / "train_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    downstream = dag.get_task("extract").get_flat_relatives(upstream=False)
    rules = {task.task_id: getattr(task.trigger_rule, "value", task.trigger_rule) for task in downstream}
    assert rules["validate"] == "all_success" and rules["preprocess"] == "all_success"
    assert rules["evaluate"] == "none_failed_min_one_success", "skipped when neither train nor tune ran"
