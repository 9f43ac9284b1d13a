"""Parse the DAG folder of a built bundle the way an MWAA container sees it; print one JSON report.

Run with ``AIRFLOW_HOME`` laid out like MWAA's (``dags/`` synced from S3, ``plugins/`` extracted from
``plugins.zip``) and ``PYTHONPATH`` holding only that ``plugins/`` folder, after ``startup.sh`` has been
sourced. Reports where the package was imported from, which config file was loaded, the DAG ids and
any import errors.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

report: dict[str, object] = {"error": None}
try:
    import ml_lifecycle
    from ml_lifecycle.config import load_config

    report["package_file"] = ml_lifecycle.__file__
    config = load_config()
    report["environment"] = config.environment
    report["config_file"] = config.source_file

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(os.environ["AIRFLOW_HOME"]) / "dags"))
    report["dag_ids"] = sorted(bag.dag_ids)
    report["import_errors"] = {str(k): str(v)[-2000:] for k, v in bag.import_errors.items()}
    report["parsed_files"] = sorted(Path(p).name for p in bag.file_last_changed)
except Exception as exc:  # the report carries any failure to the test, which prints it
    report["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(report))
sys.exit(0)
