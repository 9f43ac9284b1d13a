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

from tests.faults.conftest import (
    ROOT,
    extract_operator,
    jobs_named,
    notifications,
    run_task,
    s3_json,
    task_context,
)

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

    # what the run does with the skip: every task after extract only runs when its upstream succeeded
    spec = importlib.util.spec_from_file_location("faults_train_model_dag", ROOT / "dags" / "train_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    downstream = dag.get_task("extract").get_flat_relatives(upstream=False)
    rules = {task.task_id: getattr(task.trigger_rule, "value", task.trigger_rule) for task in downstream}
    assert rules["validate"] == "all_success" and rules["preprocess"] == "all_success"
    assert rules["evaluate"] == "none_failed_min_one_success", "skipped when neither train nor tune ran"


def test_an_empty_interval_run_ends_successful_with_nothing_trained(aws: SimpleNamespace, airflow_db) -> None:
    """The whole train_model DAG over the empty interval: every task after extract is skipped, the run
    succeeds, and the devstack has no job of the run and SNS no failure notification, checked after the
    run has passed every point where a job would start."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from ml_lifecycle.config import load_config
    from ml_lifecycle.naming import RunPlan

    bag = DagBag(dag_folder=str(ROOT / "dags" / "train_model.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("train_model")
    # after the DAG's start date (a run before it has no tasks at all) and after the seeded history ends
    when = dt.datetime(2026, 6, 10, tzinfo=dt.UTC)
    run = dag.test(logical_date=when, run_after=when, run_conf={"window_days": 3})
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        states = {ti.task_id: getattr(ti.state, "value", ti.state) for ti in tis}
    assert states.get("plan") == "success" and states.get("extract") == "skipped", states
    del states["plan"], states["extract"]
    assert set(states.values()) == {"skipped"}, f"every task after extract is skipped: {states}"
    assert getattr(run.state, "value", run.state) == "success"

    plan = RunPlan.create(load_config(), dag_id="train_model", run_id=run.run_id, anchor=when, window_days=3)
    for kind in ("processing", "training"):
        assert not jobs_named(aws.sm, kind, plan.run_hash), f"a {kind} job of the empty run"
    tuning = aws.sm.list_hyper_parameter_tuning_jobs(NameContains=plan.run_hash)["HyperParameterTuningJobSummaries"]
    assert tuning == []
    assert notifications(aws, run.run_id, timeout=2) == [], "no failure notification for a skipped run"
