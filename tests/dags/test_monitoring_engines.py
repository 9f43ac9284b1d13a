"""monitor_model and deploy_model hold only the tasks of the environment's monitoring engine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("_parse_probe.py")

_SHAPE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
out = {}
for dag_id, dag in bag.dags.items():
    out[dag_id] = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    out[dag_id + ".params"] = sorted(dag.params.keys())
print(json.dumps(out))
"""


def _config_dir(tmp_path: Path, engine: str) -> Path:
    text = (ROOT / "include" / "config" / "local.yaml").read_text()
    text, count = re.subn(r"(?m)^(  engine:) .*$", rf"\1 {engine}", text)
    assert count == 1, "local.yaml sets monitoring.engine once"
    folder = tmp_path / engine
    folder.mkdir()
    (folder / "local.yaml").write_text(text)
    return folder


def _env(config_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}",
        "ML_LIFECYCLE_CONFIG_DIR": str(config_dir),
        "ML_LIFECYCLE_ENV": "local",
    }


def _shapes(tmp_path: Path, engine: str) -> dict:
    env = _env(_config_dir(tmp_path, engine))
    shapes = {}
    for name in ("monitor_model.py", "deploy_model.py"):
        proc = subprocess.run(
            [sys.executable, "-c", _SHAPE, str(ROOT / "dags" / name)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        shapes.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return shapes


def test_evidently_engine_has_its_own_tasks_and_no_model_monitor_ones(tmp_path):
    shapes = _shapes(tmp_path, "evidently")
    assert shapes["monitor_model"] == {
        "export_labels": ["run_monitoring"],
        "run_monitoring": ["publish_drift"],
        "publish_drift": [],
    }
    assert shapes["monitor_model.params"] == ["interval_end", "interval_start"]
    deploy = shapes["deploy_model"]
    assert "baseline" not in deploy and "schedule_monitoring" not in deploy
    assert deploy["autoscale"] == []


def test_model_monitor_engine_keeps_todays_tasks(tmp_path):
    shapes = _shapes(tmp_path, "model_monitor")
    assert shapes["monitor_model"] == {
        "choose_source": ["read_latest", "run_now"],
        "read_latest": ["publish_drift"],
        "run_now": ["publish_drift"],
        "publish_drift": [],
    }
    assert shapes["monitor_model.params"] == ["run_now", "violation_threshold", "window_hours"]
    deploy = shapes["deploy_model"]
    assert deploy["autoscale"] == ["baseline"] and deploy["baseline"] == ["schedule_monitoring"]


@pytest.mark.parametrize("name", ["monitor_model.py", "deploy_model.py"])
def test_evidently_dags_do_nothing_at_parse_time(tmp_path, name):
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(ROOT / "dags" / name)],
        capture_output=True,
        text=True,
        env=_env(_config_dir(tmp_path, "evidently")),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["error"] is None, report["error"]
    assert report["heavy_modules"] == [] and report["connections"] == [], report
