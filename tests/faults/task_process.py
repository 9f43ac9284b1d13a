"""Run one task of the fault suite in its own process, as an Airflow worker would.

``python -m tests.faults.task_process '<json>'`` with ``{"task": "extract" | "train", "run_id", "plan",
"try_number", "preprocess"?, "result_path"}``, or with ``{"factory": "<module>:<function>", "args": [...],
"kwargs": {...}, "task_id", "dag_id"?, "run_id", "try_number"?, "result_path"}`` for any operator a factory
of the suite builds from JSON arguments. It builds the operator, runs it as worker and triggerer do
(execute, trigger, resume: :func:`tests.faults.conftest.run_task`) and writes its XCom result as JSON to
``result_path``. The devstack and Airflow environment come from the parent's environment variables.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any


def build(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The operator and task context ``spec`` describes."""
    from tests.faults.conftest import extract_operator, task_context, train_operator

    try_number = int(spec.get("try_number", 1))
    if "factory" in spec:
        module, _, function = spec["factory"].partition(":")
        op = getattr(importlib.import_module(module), function)(*spec.get("args", []), **spec.get("kwargs", {}))
        dag_id = spec.get("dag_id", "train_model")
        return op, task_context(spec["task_id"], spec["run_id"], dag_id=dag_id, try_number=try_number)
    plan = spec["plan"]
    if spec["task"] == "extract":
        op = extract_operator(plan)
    elif spec["task"] == "train":
        op = train_operator(plan, spec["preprocess"])
    else:
        raise SystemExit(f"unknown task {spec['task']!r}")
    return op, task_context(spec["task"], spec["run_id"], try_number=try_number)


def main(argv: list[str]) -> int:
    from tests.faults.conftest import run_task

    spec = json.loads(argv[0])
    op, ctx = build(spec)
    result = run_task(op, ctx)
    Path(spec["result_path"]).write_text(json.dumps(result, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
