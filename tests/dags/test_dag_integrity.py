"""Every DAG file imports cleanly, follows the project's DAG rules, and does nothing at parse time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
PROBE = Path(__file__).with_name("_parse_probe.py")
EXPECTED_DAG_IDS = {"train_model", "deploy_model", "monitor_model", "batch_score"}


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
    for task in dag.tasks:
        assert task.retries >= 2, f"{task.task_id}: retries >= 2"
        assert task.retry_exponential_backoff, f"{task.task_id}: exponential backoff"
        assert task.on_failure_callback, f"{task.task_id}: failure callback"


@pytest.mark.parametrize("dag_file", [pytest.param(p, id=p.name) for p in DAG_FILES])
def test_parse_time_hygiene(dag_file):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"}
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(dag_file)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["error"] is None, report["error"]
    assert report["dag_ids"], f"{dag_file.name} defines no DAG"
    assert report["heavy_modules"] == [], f"imported at parse time: {report['heavy_modules']}"
    assert report["connections"] == [], f"network at parse time: {report['connections']}"
    assert report["variables"] == [], f"Variables read at parse time: {report['variables']}"


BAD_DAG = """
from __future__ import annotations
import socket
import pandas  # heavy import at parse time
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


def test_probe_catches_a_misbehaving_dag(tmp_path):
    """The hygiene check must be able to fail: a DAG that does all three forbidden things is caught."""
    bad = tmp_path / "bad_dag.py"
    bad.write_text(BAD_DAG)
    proc = subprocess.run([sys.executable, str(PROBE), str(bad)], capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["dag_ids"] == ["bad_dag"]
    assert "pandas" in report["heavy_modules"]
    assert report["connections"], "the socket connection was not caught"
    assert report["variables"] == ["threshold"]
