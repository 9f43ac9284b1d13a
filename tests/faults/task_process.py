"""Run one task of the fault suite in its own process, as an Airflow worker would.

``python -m tests.faults.task_process '<json>'`` with ``{"task": "extract" | "train", "run_id", "plan",
"try_number", "preprocess"?, "result_path"}``: builds the operator as the suite does, runs it (execute,
trigger, resume) and writes its XCom result as JSON to ``result_path``. The devstack and Airflow
environment come from the parent's environment variables.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from tests.faults.conftest import extract_operator, run_task, task_context, train_operator

    spec = json.loads(argv[0])
    plan = spec["plan"]
    if spec["task"] == "extract":
        op = extract_operator(plan)
    elif spec["task"] == "train":
        op = train_operator(plan, spec["preprocess"])
    else:
        raise SystemExit(f"unknown task {spec['task']!r}")
    ctx = task_context(spec["task"], spec["run_id"], try_number=int(spec.get("try_number", 1)))
    result = run_task(op, ctx)
    Path(spec["result_path"]).write_text(json.dumps(result, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
