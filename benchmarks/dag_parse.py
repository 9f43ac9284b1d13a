"""DAG parse time per DAG file, beyond the cost of importing Airflow.

Each DAG file is imported in a fresh interpreter that has already imported ``airflow.sdk`` (the cost every
DAG file pays); the time of the DAG file's own import (its modules, its config, building the DAG) is
measured, repeated, and the median reported, next to a reference DAG built from ten of the Amazon
provider's SageMaker operators.

Two figures per sample: wall-clock time, and the CPU time of the interpreter. On a shared machine the wall
time grows with the load average (recorded at the start and the end of the run); the CPU time much less.
The files are measured in turns (every file once, then every file again), so a change of load during the
run touches all of them alike.

Bytecode: the DAG processor parses a file again and again with its modules' bytecode cached, so the
measured runs use a bytecode cache (``PYTHONPYCACHEPREFIX`` in a temporary directory, written by one
unmeasured warm-up import per file). ``--cold`` measures with ``PYTHONDONTWRITEBYTECODE=1`` instead: the
project's modules are compiled from source at every import (installed packages keep their bytecode).

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
import tempfile
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
w0, c0 = time.perf_counter(), time.process_time()
spec.loader.exec_module(module)
print(time.perf_counter() - w0, time.process_time() - c0)
"""


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _environment(pycache: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"}}
    env["PYTHONPATH"] = f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # installed packages keep their own bytecode
    else:
        env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def _sample(path: Path, env: dict[str, str]) -> tuple[float, float]:
    proc = subprocess.run(
        [sys.executable, "-c", _TIMER, str(path)], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"importing {path} failed:\n{proc.stderr[-3000:]}")
    wall, cpu = proc.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def measure(paths: list[Path], repeats: int, *, cold: bool) -> dict[Path, list[tuple[float, float]]]:
    """``repeats`` samples ``(wall, cpu)`` of each file, the files measured in turns."""
    with tempfile.TemporaryDirectory(prefix="dag-parse-pycache-") as pycache:
        env = _environment(None if cold else pycache)
        if not cold:
            for path in paths:  # writes the bytecode cache; not measured
                _sample(path, env)
        samples: dict[Path, list[tuple[float, float]]] = {p: [] for p in paths}
        for _ in range(repeats):
            for path in paths:
                samples[path].append(_sample(path, env))
        return samples


def _row(path: Path, samples: list[tuple[float, float]]) -> dict:
    walls = [w for w, _ in samples]
    cpus = [c for _, c in samples]
    return {
        "file": str(path.relative_to(ROOT)),
        "median_s": round(statistics.median(walls), 4),
        "min_s": round(min(walls), 4),
        "max_s": round(max(walls), 4),
        "cpu_median_s": round(statistics.median(cpus), 4),
        "reference": path == REFERENCE,
    }


def _verdict(rows: list[dict], key: str) -> tuple[float, float, bool]:
    project = [r[key] for r in rows if not r["reference"]]
    total = round(sum(project), 4)
    worst = max(project, default=0.0)
    return total, worst, worst <= PER_FILE_TARGET_S and total <= ALL_FILES_TARGET_S


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cold", action="store_true", help="measure without a bytecode cache of the project's modules")
    args = parser.parse_args()
    files = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    load_start = _load()
    samples = measure([*files, REFERENCE], args.repeats, cold=args.cold)
    load_end = _load()
    rows = [_row(path, samples[path]) for path in [*files, REFERENCE]]
    for row in rows:
        print(f"{row['file']}: median {row['median_s']:.3f} s wall, {row['cpu_median_s']:.3f} s CPU")
    total, _, met = _verdict(rows, "median_s")
    cpu_total, _, cpu_met = _verdict(rows, "cpu_median_s")
    bytecode = "none (compiled from source at every import)" if args.cold else "cached (warm)"
    result = {
        "benchmark": "dag_parse",
        "machine": describe_machine(),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "bytecode": "cold" if args.cold else "warm",
        "repeats": args.repeats,
        "files": rows,
        "total_project_s": total,
        "total_project_cpu_s": cpu_total,
        "targets": {"per_file_s": PER_FILE_TARGET_S, "all_files_s": ALL_FILES_TARGET_S},
        "met": met,
        "met_on_cpu_time": cpu_met,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dag_parse.json").write_text(json.dumps(result, indent=2) + "\n")
    load = "load average (1, 5, 15 min) {} at the start, {} at the end".format(
        " / ".join(map(str, load_start)) or "unknown", " / ".join(map(str, load_end)) or "unknown"
    )
    lines = [
        "# DAG parse time (beyond importing Airflow)",
        "",
        f"Machine: {result['machine']['summary']}; {load}.",
        f"Median of {args.repeats} fresh interpreters per file (files measured in turns); bytecode of the "
        f"project's modules: {bytecode}. Reproduce: `make bench-parse`.",
        "",
        "| DAG file | median wall (s) | min wall (s) | max wall (s) | median CPU (s) |",
        "|---|---|---|---|---|",
        *[
            f"| {r['file']}{' (reference)' if r['reference'] else ''} | {r['median_s']:.3f} | {r['min_s']:.3f} | "
            f"{r['max_s']:.3f} | {r['cpu_median_s']:.3f} |"
            for r in rows
        ],
        "",
        f"All project DAG files: {total:.3f} s wall, {cpu_total:.3f} s CPU. Targets: <= {PER_FILE_TARGET_S} s "
        f"per file, <= {ALL_FILES_TARGET_S} s for all: {'met' if met else 'NOT met'} on wall time, "
        f"{'met' if cpu_met else 'NOT met'} on CPU time.",
    ]
    (RESULTS / "dag_parse.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
