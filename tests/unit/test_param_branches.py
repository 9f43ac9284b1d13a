"""The params branches of the DAGs (``choose_strategy``, ``choose_source``, ``train_or_tune``): each follows the
task its params name, skips the others and keeps its function's docstring as the task's docs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from ml_lifecycle.config import CONFIG_DIR_VAR
from ml_lifecycle.operators.branch import ParamBranchOperator
from ml_lifecycle.strategies import FROM_CONFIG, REGISTRY, task_for

ROOT = Path(__file__).resolve().parents[2]


def _dag(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_branch_under_test", ROOT / "dags" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def _model_monitor_dag(name: str, folder: Path):
    """``name`` parsed under ``monitoring.engine: model_monitor`` (the only engine with ``choose_source``)."""
    text = (ROOT / "include" / "config" / "local.yaml").read_text()
    text, count = re.subn(r"(?m)^(  engine:) .*$", r"\1 model_monitor", text)
    assert count == 1, "local.yaml sets monitoring.engine once"
    (folder / "local.yaml").write_text(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONFIG_DIR_VAR, str(folder))
        patch.setenv("ML_LIFECYCLE_ENV", "local")
        return _dag(name)


@pytest.fixture(scope="module")
def dags(tmp_path_factory):
    found = {name: _dag(name) for name in ("deploy_model", "train_model")}
    found["monitor_model"] = _model_monitor_dag("monitor_model", tmp_path_factory.mktemp("model_monitor"))
    return found


class _Skips:
    """Records what :meth:`~airflow.providers.standard.operators.branch.BranchMixIn.skip_all_except` is given."""

    followed: list[str] | None = None

    def __call__(self, ti, branch_task_ids):
        self.followed = sorted(branch_task_ids)


def _run(dag, task_id: str, params: dict, monkeypatch) -> tuple[str, list[str]]:
    """Execute the branch task as a worker does (``execute``); what it returns (its XCom) and what it follows."""
    task = dag.get_task(task_id)
    assert isinstance(task, ParamBranchOperator)
    skips = _Skips()
    monkeypatch.setattr(task, "skip_all_except", skips)

    class _TI:
        pass

    ti = _TI()
    ti.task = task
    returned = task.execute({"params": params, "ti": ti})
    return returned, skips.followed


@pytest.mark.parametrize(
    ("dag_id", "task_id", "params", "expected"),
    [
        ("monitor_model", "choose_source", {"run_now": True}, "run_now"),
        ("monitor_model", "choose_source", {"run_now": False}, "read_latest"),
        ("train_model", "train_or_tune", {"tuning": True}, "tune"),
        ("train_model", "train_or_tune", {"tuning": False}, "train"),
        *[("deploy_model", "choose_strategy", {"strategy": name}, task_for(name)) for name in REGISTRY],
    ],
)
def test_the_branch_follows_the_params(dags, monkeypatch, dag_id, task_id, params, expected):
    returned, followed = _run(dags[dag_id], task_id, params, monkeypatch)
    assert returned == expected
    assert followed == [expected]


def test_the_strategy_from_config_is_the_environments(dags, monkeypatch):
    from ml_lifecycle.config import load_config

    expected = task_for(load_config().deployment.strategy)
    assert _run(dags["deploy_model"], "choose_strategy", {"strategy": FROM_CONFIG}, monkeypatch)[0] == expected


@pytest.mark.parametrize(
    ("dag_id", "task_id", "words"),
    [
        ("deploy_model", "choose_strategy", "from the strategy registry"),
        ("monitor_model", "choose_source", "A one-off analysis when asked"),
        ("train_model", "train_or_tune", "Follow the `tuning` param"),
    ],
)
def test_the_function_docstring_is_the_task_doc(dags, dag_id, task_id, words):
    assert words in dags[dag_id].get_task(task_id).doc_md


def test_choose_must_be_a_function():
    with pytest.raises(TypeError, match="choose must be a function of the run's params, not str"):
        ParamBranchOperator(task_id="x", choose="run_now")
