"""Test-session environment shared by every test folder.

Airflow reads its configuration when first imported, so an isolated ``AIRFLOW_HOME`` (SQLite, no example
DAGs, this repository's DAGs and plugins) is set here, before any test module imports Airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

_AIRFLOW_HOME = Path(os.environ.get("ML_LIFECYCLE_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="airflow-home-"))
for key, value in {
    "AIRFLOW_HOME": str(_AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
    "ML_LIFECYCLE_ENV": os.environ.get("ML_LIFECYCLE_ENV", "local"),
}.items():
    os.environ[key] = value
os.environ.setdefault("PYTHONPATH", f"{ROOT / 'plugins'}{os.pathsep}{ROOT}")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database in the session's ``AIRFLOW_HOME`` (migrated once, ~10 s)."""
    marker = _AIRFLOW_HOME / ".migrated"
    if not marker.exists():
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
            timeout=600,
        )
        marker.touch()
    return _AIRFLOW_HOME
