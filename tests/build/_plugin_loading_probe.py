"""Load the plugins folder with Airflow's own plugin managers, then import what the tasks import; print JSON.

Run with ``AIRFLOW__CORE__PLUGINS_FOLDER`` and ``PYTHONPATH`` both set to the plugins folder only (as on MWAA,
where plugins.zip is unpacked into ``$AIRFLOW_HOME/plugins``, which is on ``sys.path``). It does what every
process does: the server side's ``ensure_plugins_loaded()`` (scheduler, dag-processor, API server) and the
task runner's ``integrate_macros_plugins()`` (every task process), then imports the libraries the tasks use.
Reports the plugin import errors, each import's outcome and every module registered under a name outside
``ml_lifecycle`` whose file lies in the plugins folder.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

folder = Path(os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"]).resolve()
report: dict[str, object] = {"imports": {}}

from airflow import plugins_manager  # noqa: E402
from airflow.sdk import plugins_manager as task_plugins_manager  # noqa: E402

plugins_manager.ensure_plugins_loaded()
task_plugins_manager.integrate_macros_plugins()
report["plugin_import_errors"] = {str(k): str(v) for k, v in plugins_manager.get_import_errors().items()}

for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
        report["imports"][name] = {"ok": True, "file": getattr(module, "__file__", None)}
    except Exception as exc:  # the test prints the failure
        report["imports"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _inside(file: str | None) -> bool:
    return bool(file) and Path(file).resolve().is_relative_to(folder)


report["foreign_modules"] = sorted(
    name
    for name, module in list(sys.modules.items())
    if name != "ml_lifecycle" and not name.startswith("ml_lifecycle.") and _inside(getattr(module, "__file__", None))
)
print(json.dumps(report))
