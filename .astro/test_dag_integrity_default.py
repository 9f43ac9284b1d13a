"""Astro's DAG integrity check for this project: every DAG file imports without error.

Paths listed in ``.astro/dag_integrity_exceptions.txt`` are tolerated. The deeper project rules (tags,
owner, retries, failure callback, parse-time hygiene) are in ``tests/dags/``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXCEPTIONS = {
    line.strip()
    for line in (Path(__file__).with_name("dag_integrity_exceptions.txt")).read_text().splitlines()
    if line.strip() and not line.startswith("#")
}


def _import_errors() -> dict[str, str]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    return {str(Path(path).resolve().relative_to(ROOT)): error for path, error in bag.import_errors.items()}


def test_dag_files_import_without_errors():
    errors = {path: error for path, error in _import_errors().items() if path not in EXCEPTIONS}
    assert not errors, "\n\n".join(f"{path}:\n{error}" for path, error in errors.items())


def test_listed_exceptions_still_exist():
    stale = sorted(path for path in EXCEPTIONS if not (ROOT / path).exists())
    assert not stale, f"listed in dag_integrity_exceptions.txt but no longer exist: {stale}"
