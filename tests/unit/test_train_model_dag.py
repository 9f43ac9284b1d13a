"""The train_model DAG's wiring: schedule, params, order, outlets (its behaviour is in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_lifecycle.assets import approved_model_asset, drift_asset
from ml_lifecycle.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CFG = load_config()


@pytest.fixture(scope="module")
def dag():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_model_dag_under_test", ROOT / "dags" / "train_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_schedule_is_weekly_cron_or_drift(dag):
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert isinstance(dag.timetable.timetable, CronTriggerTimetable)
    assert [a.uri for a in dag.timetable.asset_condition.objects] == [drift_asset(CFG).uri]
    assert dag.catchup is CFG.training.catchup
    assert dag.start_date.date() == CFG.training.start_date
    assert dag.max_active_runs == CFG.training.max_active_runs


def test_flow(dag):
    downstream = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    # the plan's outputs feed every step that names a job, a key or a code archive (XComArgs)
    assert downstream["plan"] == ["extract", "preprocess", "register", "train", "tune", "validate"]
    assert downstream["extract"] == ["preprocess", "register", "validate"]
    assert downstream["validate"] == ["preprocess", "register"]
    assert downstream["train_or_tune"] == ["train", "tune"]
    assert downstream["evaluate"] == ["gate", "register"]
    assert downstream["gate"] == ["register"]
    assert downstream["register"] == ["approve", "publish_approval"]
    assert downstream["approve"] == ["publish_approval"]
    assert dag.get_task("evaluate").trigger_rule == "none_failed_min_one_success"
    # only train and tune feed evaluate: any other upstream's success would let it run when neither trained
    assert sorted(dag.get_task("evaluate").upstream_task_ids) == ["train", "tune"]


def test_publish_approval_emits_the_approved_model_asset(dag):
    assert [o.uri for o in dag.get_task("publish_approval").outlets] == [approved_model_asset(CFG).uri]


def test_approval_waits_for_the_configured_users_and_never_answers_itself(dag):
    approve = dag.get_task("approve")
    manual = CFG.training.manual_approval
    assert approve.options == ["Approve", "Reject"]
    assert approve.defaults is None, "a default would answer on timeout"
    assert approve.response_timeout == manual.timeout
    assert approve.assigned_users == manual.assigned_users()
    assert approve.retries == 0, "a new try would ask again"
    assert list(approve.serialized_params) == ["comment"]
    # publish runs after an approval or an automatic one (approve skipped), never after a failed approve
    assert dag.get_task("publish_approval").trigger_rule == "none_failed_min_one_success"
    # a run outlives the longest approval wait: the timeout rejects the package before the run times out
    assert dag.dagrun_timeout > manual.timeout


@pytest.mark.parametrize(
    ("name", "value", "valid"),
    [
        pytest.param("window_days", 0, False, id="window-zero"),
        pytest.param("window_days", 30, True, id="window-ok"),
        pytest.param("tuning_max_jobs", 1000, False, id="budget-too-big"),
        pytest.param("training_instance_type", "ml.p5.48xlarge", False, id="instance-not-offered"),
        pytest.param("approval", "maybe", False, id="approval-unknown"),
        pytest.param("hyperparameters", {"num_round": 5}, True, id="overrides-object"),
        pytest.param("hyperparameters", "num_round=5", False, id="overrides-not-object"),
        pytest.param("force", True, True, id="force-true"),
        pytest.param("force", False, True, id="force-false"),
        pytest.param("force", "yes", False, id="force-not-boolean"),
        pytest.param("force", 1, False, id="force-number"),
    ],
)
def test_params_are_validated_by_the_trigger_form(dag, name, value, valid):
    from airflow.sdk import Param

    spec = dag.params.get_param(name)
    assert spec.schema.get("title") and spec.description, "the trigger form shows a title and a description"
    param = Param(value, **spec.schema)
    if valid:
        param.resolve()
    else:
        with pytest.raises(Exception):  # noqa: B017,PT011 - Param raises ParamValidationError
            param.resolve()
