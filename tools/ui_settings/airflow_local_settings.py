"""Airflow local settings of the local Airflow (``python -m tools.ui``, ``make demo``); never in the MWAA bundle.

Two things, both only for the Airflow that ``tools.ui`` starts (it puts this folder on ``PYTHONPATH``):

- **No catch-up** (:func:`dag_policy`, a cluster policy Airflow applies when it parses a DAG). The DAGs start
  in the past with ``catchup=True`` so that, on MWAA, unpausing a DAG runs the intervals it missed. On a laptop
  that turns the first unpause of ``train_model`` into dozens of weekly runs at once: locally, unpausing runs
  the latest interval only, and earlier intervals are run on purpose with a backfill. ``--catchup`` (the
  environment variable :data:`KEEP_CATCHUP` set to ``1``) keeps the DAGs' own setting.
- **Modules loaded before the fork** (:func:`preload`). The LocalExecutor's workers are forked from the
  scheduler, and every task process from a worker; the triggerer runs the triggers in its own process and the
  dag-processor forks one process per DAG file. Each task process parses its DAG file, which imports boto3,
  the Amazon provider and the project's operators: about half a second per task on two cores, paid again
  after every deferral. Imported once in the scheduler, the triggerer and the dag-processor before they fork,
  these modules are shared, and a task starts without importing them. Nothing runs that a task would not
  run itself: the modules the DAG files import, and the providers' asset URI handlers that an ``s3://`` asset
  loads. An edited module is not reloaded by a running component: restart Airflow after changing
  ``plugins/`` (a DAG file or ``include/config`` is read again by each task, as before).
"""

from __future__ import annotations

import ast
import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``1``: the DAGs keep their own ``catchup`` (``python -m tools.ui --catchup``)
KEEP_CATCHUP = "ML_LIFECYCLE_LOCAL_CATCHUP"
#: the components that fork task or parsing processes, or run triggers
PRELOADING_COMPONENTS = ("scheduler", "triggerer", "dag-processor")


def dag_policy(dag: Any) -> None:
    """Turn off catchup for every DAG of the local Airflow, unless :data:`KEEP_CATCHUP` is ``1``.

    :param dag: the DAG being parsed.
    """
    if os.environ.get(KEEP_CATCHUP) != "1":
        dag.catchup = False


def dag_imports(dags_folder: Path) -> list[str]:
    """The modules the DAG files of ``dags_folder`` import (``import x`` and ``from x import y``), sorted.

    :param dags_folder: the DAGs folder.
    """
    modules: set[str] = set()
    for path in sorted(dags_folder.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(), str(path))
        except (OSError, SyntaxError, ValueError):
            continue  # the dag-processor reports a broken file as an import error
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module != "__future__":
                modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
    return sorted(modules)


def preload(dags_folder: Path) -> list[str]:
    """Import the modules the DAG files import and load the asset URI handlers; the modules that failed.

    A module that fails to import is skipped (logged): the task that needs it reports the error itself.

    :param dags_folder: the DAGs folder.
    """
    failed = []
    for module in dag_imports(dags_folder):
        try:
            importlib.import_module(module)
        except Exception:  # a preload never stops a component
            log.warning("preloading %s failed; tasks import it themselves", module, exc_info=True)
            failed.append(module)
    try:
        from airflow.sdk import Asset

        Asset("s3://preload/asset")  # loads the providers' asset URI handlers, as every s3:// asset does
    except Exception:
        log.warning("loading the asset URI handlers failed", exc_info=True)
    return failed


def _component() -> str | None:
    """The component this process runs (``airflow scheduler`` -> ``scheduler``), ``None`` for other commands.

    Started as ``python -m airflow scheduler``, ``sys.argv[0]`` is ``-m`` while the package is imported.
    """
    command = sys.argv[0] if sys.argv else ""
    started_as_airflow = command == "-m" or Path(command).name in ("airflow", "__main__.py")
    if started_as_airflow and len(sys.argv) > 1 and sys.argv[1] in PRELOADING_COMPONENTS:
        return sys.argv[1]
    return None


if (component := _component()) is not None and (folder := os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")):
    started = time.perf_counter()
    missing = preload(Path(folder))
    # stderr: Airflow's logging is not configured yet when it imports this module
    print(
        f"airflow {component}: loaded the DAG files' modules before forking in {time.perf_counter() - started:.1f}s"
        + (f" (not loaded: {', '.join(missing)})" if missing else ""),
        file=sys.stderr,
        flush=True,
    )
