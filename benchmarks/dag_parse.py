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
unmeasured warm-up import per file). A second measurement runs with ``PYTHONDONTWRITEBYTECODE=1`` instead
(``--no-cold`` skips it): the project's modules compiled from source at every import, installed packages
keeping their bytecode. Last, the parts the parse time is made of are measured one by one.

Reproduce: ``make bench-parse`` (or ``.venv/bin/python benchmarks/dag_parse.py``).
Targets: <= 0.3 s per file, <= 1 s for all files together; on a shared machine, where absolute times follow
the load, the figure that holds is each file's CPU time over the reference's in the same run: <= 1.2 x.
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
#: a DAG file's median CPU time over the reference's, measured in the same run
RATIO_TARGET = 1.2

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


def _row(path: Path, warm: list[tuple[float, float]], cold: list[tuple[float, float]] | None) -> dict:
    walls = [w for w, _ in warm]
    row = {
        "file": str(path.relative_to(ROOT)),
        "median_s": round(statistics.median(walls), 4),
        "min_s": round(min(walls), 4),
        "max_s": round(max(walls), 4),
        "cpu_median_s": round(statistics.median(c for _, c in warm), 4),
        "reference": path == REFERENCE,
    }
    if cold:
        row["cold_median_s"] = round(statistics.median(w for w, _ in cold), 4)
        row["cold_cpu_median_s"] = round(statistics.median(c for _, c in cold), 4)
    return row


def _verdict(rows: list[dict], key: str) -> tuple[float, bool]:
    project = [r[key] for r in rows if not r["reference"]]
    total = round(sum(project), 4)
    return total, max(project, default=0.0) <= PER_FILE_TARGET_S and total <= ALL_FILES_TARGET_S


#: where the parse time of the DAG files goes: (what, set-up not measured, code measured), each after
#: ``import airflow.sdk`` in a fresh interpreter with a warm bytecode cache
COMPONENTS = (
    (
        "AwsBaseOperator (boto3, botocore, requests; every operator here, and the reference, pays it)",
        "",
        "import airflow.providers.amazon.aws.operators.base_aws",
    ),
    (
        "the provider's SageMaker operators module, on top of AwsBaseOperator (the reference pays it)",
        "import airflow.providers.amazon.aws.operators.base_aws",
        "import airflow.providers.amazon.aws.operators.sagemaker",
    ),
    (
        "an s3:// Asset, on top of AwsBaseOperator (the providers' asset URI handlers; the Amazon one loads "
        "airflow.models.asset, the SQLAlchemy ORM)",
        "import airflow.providers.amazon.aws.operators.base_aws\nfrom airflow.sdk import Asset",
        "Asset(name='a', uri='s3://bucket/key')",
    ),
    ("@task (the standard provider's Python decorators)", "", "from airflow.sdk import task"),
    (
        "ml_lifecycle.config: import (pydantic models) and load_config()",
        "",
        "from ml_lifecycle.config import load_config\nload_config()",
    ),
)

_COMPONENT_TIMER = """
import sys, time
import airflow.sdk
exec(sys.argv[1])
w0, c0 = time.perf_counter(), time.process_time()
exec(sys.argv[2])
print(time.perf_counter() - w0, time.process_time() - c0)
"""


def measure_components(repeats: int) -> list[dict]:
    """Median CPU and wall time of each of ``COMPONENTS``."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="dag-parse-pycache-") as pycache:
        env = _environment(pycache)
        for label, setup, code in COMPONENTS:
            samples = []
            for index in range(repeats + 1):  # the first writes the bytecode cache
                proc = subprocess.run(
                    [sys.executable, "-c", _COMPONENT_TIMER, setup, code],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=ROOT,
                    check=False,
                )
                if proc.returncode != 0:
                    raise SystemExit(f"measuring {label!r} failed:\n{proc.stderr[-3000:]}")
                if index:
                    wall, cpu = proc.stdout.strip().splitlines()[-1].split()
                    samples.append((float(wall), float(cpu)))
            rows.append(
                {
                    "component": label,
                    "median_s": round(statistics.median(w for w, _ in samples), 4),
                    "cpu_median_s": round(statistics.median(c for _, c in samples), 4),
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-cold", action="store_true", help="skip the second measurement without a bytecode cache")
    args = parser.parse_args()
    files = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    paths = [*files, REFERENCE]
    load_start = _load()
    warm = measure(paths, args.repeats, cold=False)
    cold = None if args.no_cold else measure(paths, args.repeats, cold=True)
    components = measure_components(args.repeats)
    load_end = _load()
    rows = [_row(path, warm[path], cold[path] if cold else None) for path in paths]
    for row in rows:
        print(f"{row['file']}: median {row['median_s']:.3f} s wall, {row['cpu_median_s']:.3f} s CPU")
    reference = next(r for r in rows if r["reference"])
    for row in rows:
        row["cpu_ratio_to_reference"] = round(row["cpu_median_s"] / reference["cpu_median_s"], 3)
    ratio_met = all(r["cpu_ratio_to_reference"] <= RATIO_TARGET for r in rows)
    total, met = _verdict(rows, "median_s")
    cpu_total, cpu_met = _verdict(rows, "cpu_median_s")
    result = {
        "benchmark": "dag_parse",
        "machine": describe_machine(),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "repeats": args.repeats,
        "files": rows,
        "total_project_s": total,
        "total_project_cpu_s": cpu_total,
        "components": components,
        "targets": {
            "per_file_s": PER_FILE_TARGET_S,
            "all_files_s": ALL_FILES_TARGET_S,
            "cpu_ratio_to_reference": RATIO_TARGET,
        },
        "met": met,
        "met_on_cpu_time": cpu_met,
        "met_on_cpu_ratio": ratio_met,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dag_parse.json").write_text(json.dumps(result, indent=2) + "\n")
    load = "load average (1, 5, 15 min) {} at the start, {} at the end".format(
        " / ".join(map(str, load_start)) or "unknown", " / ".join(map(str, load_end)) or "unknown"
    )
    cold_header = " median wall, no bytecode cache (s) |" if cold else ""
    lines = [
        "# DAG parse time (beyond importing Airflow)",
        "",
        f"Machine: {result['machine']['summary']}; {load}.",
        f"Median of {args.repeats} fresh interpreters per file, the files measured in turns, with the bytecode "
        "of every module cached as in a running DAG processor"
        + ("; the last column without a bytecode cache of the project's modules" if cold else "")
        + ". Reproduce: `make bench-parse`.",
        "",
        f"| DAG file | median wall (s) | min wall (s) | max wall (s) | median CPU (s) | CPU / reference |{cold_header}",
        "|---|---|---|---|---|---|" + ("---|" if cold else ""),
        *[
            f"| {r['file']}{' (reference)' if r['reference'] else ''} | {r['median_s']:.3f} | {r['min_s']:.3f} | "
            f"{r['max_s']:.3f} | {r['cpu_median_s']:.3f} | {r['cpu_ratio_to_reference']:.2f} |"
            + (f" {r['cold_median_s']:.3f} |" if cold else "")
            for r in rows
        ],
        "",
        f"All project DAG files: {total:.3f} s wall, {cpu_total:.3f} s CPU. Targets: <= {PER_FILE_TARGET_S} s "
        f"per file, <= {ALL_FILES_TARGET_S} s for all: {'met' if met else 'NOT met'} on wall time, "
        f"{'met' if cpu_met else 'NOT met'} on CPU time. CPU time over the reference's, <= {RATIO_TARGET} x for "
        f"every file: {'met' if ratio_met else 'NOT met'}.",
        "",
        "## Where the time goes",
        "",
        f"Each part measured alone, after `import airflow.sdk`, in the same way (median of {args.repeats}):",
        "",
        "| part | median wall (s) | median CPU (s) |",
        "|---|---|---|",
        *[f"| {c['component']} | {c['median_s']:.3f} | {c['cpu_median_s']:.3f} |" for c in components],
        "",
        f"A DAG file with any operator built on the Amazon provider's AwsBaseOperator pays the first part "
        f"({components[0]['cpu_median_s']:.3f} s CPU) before anything of its own; the reference DAG takes "
        f"{reference['cpu_median_s']:.3f} s CPU in all.",
    ]
    (RESULTS / "dag_parse.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
