"""Every DAG file imports cleanly, follows the project's DAG rules, and does nothing at parse time."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
PROBE = Path(__file__).with_name("_parse_probe.py")
REFERENCE_DAG = ROOT / "benchmarks" / "reference" / "ten_sagemaker_operators.py"
EXPECTED_DAG_IDS = {"train_model", "deploy_model", "monitor_model", "batch_score"}

#: what a DAG file may import at parse time beyond a DAG of ten provider SageMaker operators, and why
ALLOWED_BEYOND_REFERENCE = {
    "ml_lifecycle": "the project's package (config, notifications, operator classes)",
    "airflow.models": "airflow.models.asset, loaded by the Amazon provider's s3:// asset URI handler; "
    "airflow.models.variable, loaded by @task",
    "sqlalchemy": "the ORM under airflow.models.asset",
    "airflow.utils": "the ORM under airflow.models.asset",
    "airflow.providers.snowflake": "its asset URI handler, loaded with every provider's when an asset URI is "
    "normalised (its hooks and the connector are heavy modules, checked separately)",
    "airflow.providers.standard": "@task (the standard provider's Python decorators)",
    "packaging": "@task (the standard provider's Python operator)",
    "jsonpath_ng": "the Amazon provider's SQS trigger (its JSONPath message filter), which the approval queue's "
    "asset watcher is: an asset watcher's trigger is built when the DAG file is parsed",
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_dag_files_exist():
    assert DAG_FILES, "no DAG files under dags/"


def test_no_import_errors(dagbag):
    assert not dagbag.import_errors, "\n".join(f"{k}: {v}" for k, v in dagbag.import_errors.items())


def test_expected_dags_are_defined(dagbag):
    assert EXPECTED_DAG_IDS <= set(dagbag.dag_ids)


def _dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    return [pytest.param(dag, id=dag_id) for dag_id, dag in sorted(bag.dags.items())]


@pytest.mark.parametrize("dag", _dags())
def test_dag_follows_the_rules(dag):
    assert dag.tags, "every DAG has tags"
    assert dag.doc_md and "->" in dag.doc_md, "doc_md draws the flow in one line (a -> b -> c)"
    assert dag.owner and dag.owner != "airflow", "every DAG names its owner"
    assert dag.on_failure_callback or all(t.on_failure_callback for t in dag.tasks), "failure callback"
    from airflow.providers.standard.operators.hitl import HITLOperator

    for task in dag.tasks:
        if isinstance(task, HITLOperator):
            # a Human-in-the-loop task's new try asks the person again: it has none
            assert task.retries == 0, f"{task.task_id}: a Human-in-the-loop task is not retried"
        else:
            assert task.retries >= 2, f"{task.task_id}: retries >= 2"
        assert task.retry_exponential_backoff, f"{task.task_id}: exponential backoff"
        assert task.on_failure_callback, f"{task.task_id}: failure callback"


@functools.cache
def _probe(dag_file: Path) -> dict:
    """What importing ``dag_file`` in a fresh interpreter did (see ``_parse_probe.py``)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"}
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(dag_file)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["error"] is None, report["error"]
    return report


@pytest.fixture(scope="module")
def reference_packages() -> set[str]:
    return set(_probe(REFERENCE_DAG)["packages"])


@pytest.mark.parametrize("dag_file", [pytest.param(p, id=p.name) for p in DAG_FILES])
def test_parse_time_hygiene(dag_file):
    report = _probe(dag_file)
    assert report["dag_ids"], f"{dag_file.name} defines no DAG"
    assert report["heavy_modules"] == [], f"imported at parse time: {report['heavy_modules']}"
    assert report["connections"] == [], f"network at parse time: {report['connections']}"
    assert report["variables"] == [], f"Variables read at parse time: {report['variables']}"


@pytest.mark.parametrize("dag_file", [pytest.param(p, id=p.name) for p in DAG_FILES])
def test_parse_imports_no_more_than_the_provider_reference(dag_file, reference_packages):
    """Parse cost: a DAG file imports the packages a DAG of ten provider SageMaker operators imports, and
    only the named extras; anything else belongs inside the task that uses it."""
    extra = _beyond_reference(_probe(dag_file), reference_packages)
    assert not extra, f"{dag_file.name} imports at parse time, beyond the reference DAG: {extra}"


def _beyond_reference(report: dict, reference_packages: set[str]) -> list[str]:
    return sorted(set(report["packages"]) - reference_packages - set(ALLOWED_BEYOND_REFERENCE))


BAD_DAG = """
from __future__ import annotations
import socket
import pandas  # heavy import at parse time
import ml_lifecycle.data.s3  # a task's helper, imported at parse time
from airflow.sdk import DAG, Variable

try:
    socket.create_connection(("192.0.2.1", 443), timeout=0.1)
except OSError:
    pass
try:
    Variable.get("threshold")
except Exception:
    pass
with DAG(dag_id="bad_dag", schedule=None):
    pass
"""


def test_probe_catches_a_misbehaving_dag(tmp_path, reference_packages):
    """The hygiene checks must be able to fail: a DAG that does every forbidden thing is caught."""
    bad = tmp_path / "bad_dag.py"
    bad.write_text(BAD_DAG)
    report = _probe(bad)
    assert report["dag_ids"] == ["bad_dag"]
    assert {"pandas", "numpy", "ml_lifecycle.data"} <= set(report["heavy_modules"])
    assert "pandas" in _beyond_reference(report, reference_packages)
    assert report["connections"], "the socket connection was not caught"
    assert report["variables"] == ["threshold"]


def test_every_deployment_strategy_has_its_task_in_deploy_model(dagbag):
    """The strategy registry is where a strategy is added: the DAG's param offers it and its task exists."""
    from ml_lifecycle.strategies import FROM_CONFIG, REGISTRY, task_for

    dag = dagbag.dags["deploy_model"]
    assert dag.params.get_param("strategy").schema["enum"] == [FROM_CONFIG, *REGISTRY]
    branch = dag.get_task("choose_strategy")
    for strategy in REGISTRY:
        assert task_for(strategy) in branch.downstream_task_ids, strategy


def test_every_dag_with_cached_steps_has_the_force_param(dagbag):
    """A DAG with a step the step cache may reuse (SageMaker job steps, data validation, batch transform) has
    the ``force`` param of train_model: boolean, off by default."""
    from ml_lifecycle.operators.batch import BatchTransformJobOperator
    from ml_lifecycle.operators.sagemaker import _ReattachingJobMixin
    from ml_lifecycle.operators.validation import DataValidationOperator

    cached = (_ReattachingJobMixin, DataValidationOperator, BatchTransformJobOperator)
    reference = dagbag.dags["train_model"].params.get_param("force")
    with_cache = {
        dag_id: [t.task_id for t in dag.tasks if isinstance(t, cached)] for dag_id, dag in dagbag.dags.items()
    }
    with_cache = {dag_id: tasks for dag_id, tasks in with_cache.items() if tasks}
    assert {"train_model", "batch_score"} <= set(with_cache), with_cache
    for dag_id in with_cache:
        param = dagbag.dags[dag_id].params.get_param("force")
        assert param.value is False and param.schema == reference.schema, dag_id
