"""DAG parse time per DAG file, beyond the cost of importing Airflow.

Each DAG file is imported in a fresh interpreter that has already imported ``airflow.sdk`` (the cost every
DAG file pays); the time of the DAG file's own import is measured, repeated, and the median reported, next
to a reference DAG built from ten of the Amazon provider's SageMaker operators.

Reproduce: ``make bench-parse`` (or ``.venv/bin/python benchmarks/dag_parse.py``).
Targets: <= 0.3 s per file, <= 1 s for all files together.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "benchmarks" / "reference" / "ten_sagemaker_operators.py"
RESULTS = ROOT / "benchmarks" / "results"
PER_FILE_TARGET_S = 0.3
ALL_FILES_TARGET_S = 1.0

_TIMER = """
import importlib.util, sys, time
import airflow.sdk  # baseline paid by every DAG file
from airflow.sdk.definitions._internal.contextmanager import DagContext
path = sys.argv[1]
spec = importlib.util.spec_from_file_location("dag_under_test", path)
module = importlib.util.module_from_spec(spec)
sys.modules["dag_under_test"] = module
DagContext.current_autoregister_module_name = "dag_under_test"
t0 = time.perf_counter()
spec.loader.exec_module(module)
print(time.perf_counter() - t0)
"""


def measure(path: Path, repeats: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"}
    samples = []
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, "-c", _TIMER, str(path)], capture_output=True, text=True, env=env, check=True
        )
        samples.append(float(proc.stdout.strip().splitlines()[-1]))
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    files = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    rows = []
    for path in [*files, REFERENCE]:
        samples = measure(path, args.repeats)
        rows.append(
            {
                "file": str(path.relative_to(ROOT)),
                "median_s": round(statistics.median(samples), 4),
                "min_s": round(min(samples), 4),
                "max_s": round(max(samples), 4),
                "reference": path == REFERENCE,
            }
        )
        print(f"{rows[-1]['file']}: median {rows[-1]['median_s']:.3f} s")
    total = round(sum(r["median_s"] for r in rows if not r["reference"]), 4)
    worst = max((r["median_s"] for r in rows if not r["reference"]), default=0.0)
    result = {
        "benchmark": "dag_parse",
        "machine": describe_machine(),
        "repeats": args.repeats,
        "files": rows,
        "total_project_s": total,
        "targets": {"per_file_s": PER_FILE_TARGET_S, "all_files_s": ALL_FILES_TARGET_S},
        "met": worst <= PER_FILE_TARGET_S and total <= ALL_FILES_TARGET_S,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dag_parse.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# DAG parse time (beyond importing Airflow)",
        "",
        f"Machine: {result['machine']['summary']}. Median of {args.repeats} fresh interpreters per file.",
        "Reproduce: `make bench-parse`.",
        "",
        "| DAG file | median (s) | min (s) | max (s) |",
        "|---|---|---|---|",
        *[
            f"| {r['file']}{' (reference)' if r['reference'] else ''} | {r['median_s']:.3f} | {r['min_s']:.3f} | "
            f"{r['max_s']:.3f} |"
            for r in rows
        ],
        "",
        f"All project DAG files: {total:.3f} s. Targets: <= {PER_FILE_TARGET_S} s per file, "
        f"<= {ALL_FILES_TARGET_S} s for all: {'met' if result['met'] else 'NOT met'}.",
    ]
    (RESULTS / "dag_parse.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
