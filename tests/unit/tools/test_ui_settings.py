"""The local Airflow's settings (``tools/ui_settings/airflow_local_settings.py``): no catch-up, modules preloaded."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = ROOT / "tools" / "ui_settings" / "airflow_local_settings.py"


def _settings() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ui_local_settings_under_test", SETTINGS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("keep", "expected"), [(None, False), ("0", False), ("1", True)])
def test_catchup_is_off_unless_kept(monkeypatch: pytest.MonkeyPatch, keep: str | None, expected: bool) -> None:
    settings = _settings()
    if keep is None:
        monkeypatch.delenv(settings.KEEP_CATCHUP, raising=False)
    else:
        monkeypatch.setenv(settings.KEEP_CATCHUP, keep)
    dag = SimpleNamespace(catchup=True)
    settings.dag_policy(dag)
    assert dag.catchup is expected


def test_the_modules_of_the_dag_files_are_found(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from __future__ import annotations\nimport json, os.path\nfrom . import x\n")
    (tmp_path / "b.py").write_text("from ml_lifecycle.config import load_config\n")
    (tmp_path / "broken.py").write_text("from (\n")
    assert _settings().dag_imports(tmp_path) == ["json", "ml_lifecycle.config", "os.path"]
    real = _settings().dag_imports(ROOT / "dags")
    assert {"airflow.sdk", "ml_lifecycle.operators.sagemaker", "ml_lifecycle.operators.deploy"} <= set(real)


def test_a_module_that_fails_to_preload_is_named_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import json\nimport no_such_module_here\n")
    assert _settings().preload(tmp_path) == ["no_such_module_here"]


@pytest.mark.parametrize(
    ("argv", "preloaded"),
    [
        (["/venv/bin/airflow", "scheduler"], True),
        (["/venv/bin/airflow", "triggerer"], True),
        (["-m", "dag-processor"], True),  # python -m airflow dag-processor, while the package is imported
        (["/venv/bin/airflow", "api-server"], False),
        (["/venv/bin/airflow", "db", "migrate"], False),
        (["-m", "api-server"], False),
        (["/venv/bin/python", "scheduler"], False),
    ],
)
def test_only_the_forking_components_preload(tmp_path: Path, argv: list[str], preloaded: bool) -> None:
    """Importing Airflow in a scheduler loads the DAG files' modules; in the API server it does not."""
    (tmp_path / "dag.py").write_text("import xml.dom.minidom\n")
    probe = (
        f"import sys; sys.argv = {argv!r}; sys.path.insert(0, {str(SETTINGS.parent)!r})\n"
        "import airflow_local_settings\n"
        "print('xml.dom.minidom' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == str(preloaded)
