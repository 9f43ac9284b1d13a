"""scripts/demo.py reads its summary straight from Airflow's SQLite metadata database."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
import sqlite3
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _insert(conn: sqlite3.Connection, table: str, values: dict) -> None:
    """Insert a row, giving every other NOT NULL column without a default a placeholder of its type."""
    for _, name, kind, not_null, default, primary in conn.execute(f"PRAGMA table_info({table})"):
        if name in values or not not_null or default is not None or (primary and kind == "INTEGER"):
            continue
        kind = kind.upper()
        values[name] = 0 if "INT" in kind or "BOOL" in kind or "FLOAT" in kind else f"{name}-placeholder"
    columns = ", ".join(values)
    conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(values))})", list(values.values()))


@pytest.fixture(scope="module")
def empty_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The metadata tables as Airflow's own models define them, created once."""
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from sqlalchemy import create_engine

    import_all_models()
    path = tmp_path_factory.mktemp("schema") / "airflow.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    return path


@pytest.fixture
def database(empty_database: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(empty_database, tmp_path / "airflow.db"))


def _seed(path: Path, runs: list[tuple[str, str]], tasks: list[tuple], xcoms: dict[str, object]) -> None:
    with sqlite3.connect(path) as conn:
        for number, (run_id, state) in enumerate(runs, start=1):
            _insert(conn, "dag_run", {"id": number, "dag_id": "train_model", "run_id": run_id, "state": state})
        latest = runs[-1][0]
        for task_id, state, start, duration in tasks:
            _insert(
                conn,
                "task_instance",
                {
                    "id": f"{task_id}-id",
                    "dag_id": "train_model",
                    "run_id": latest,
                    "task_id": task_id,
                    "map_index": -1,
                    "state": state,
                    "try_number": 1,
                    "start_date": start,
                    "duration": duration,
                },
            )
        for task_id, value in xcoms.items():
            _insert(
                conn,
                "xcom",
                {
                    "dag_run_id": len(runs),
                    "dag_id": "train_model",
                    "run_id": latest,
                    "task_id": task_id,
                    "map_index": -1,
                    "key": "return_value",
                    "value": json.dumps(value),
                    "timestamp": dt.datetime(2026, 3, 1).isoformat(" "),
                },
            )


def test_summary_reads_the_latest_run_in_task_order(demo: ModuleType, database: Path) -> None:
    gate = {"decision": "approved", "passed": True, "metrics": {"auc": 0.93}}
    _seed(
        database,
        runs=[("manual__older", "failed"), ("manual__latest", "success")],
        tasks=[
            ("evaluate", "success", "2026-03-01 10:00:20.000000", 8.25),
            ("plan", "success", "2026-03-01 10:00:00.000000", 2.0),
            ("tune", "skipped", None, None),
        ],
        xcoms={"gate": gate, "plan": {"window": {"days": 60}}},
    )
    result = demo.summary(database)
    assert result["run_id"] == "manual__latest"
    assert result["state"] == "success"
    assert [t["task_id"] for t in result["tasks"]] == ["plan", "evaluate", "tune"]
    assert [t["seconds"] for t in result["tasks"]] == [2.0, 8.2, None]
    assert result["xcom"]["gate"] == gate
    assert result["xcom"]["plan"]["window"]["days"] == 60


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        pytest.param(False, "no Airflow metadata database", id="no-database"),
        pytest.param(True, "no train_model run", id="no-run"),
    ],
)
def test_summary_says_what_is_missing(demo: ModuleType, database: Path, tmp_path: Path, seed: bool, message: str):
    path = database if seed else tmp_path / "absent.db"
    with pytest.raises(SystemExit, match=message):
        demo.summary(path)
