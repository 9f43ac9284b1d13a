"""How long the devstack takes to start (cold and warm), to stop, and to seed Snowflake.

Usage: ``.venv/bin/python benchmarks/devstack_start.py [--repeat 3]``

* cold start: ``Stack.up()`` on an empty state directory, including seeding the default history
  (120 days x 300 rows);
* warm start: ``up`` again after ``down`` on the same state directory (moto snapshot restored, Snowflake
  database re-attached, no seeding);
* stop: ``down`` (moto writes its snapshot);
* seed: re-seeding the default history into the running stack, and the generation alone.

Results go to ``benchmarks/results/devstack_start.json`` and ``.md``, with the machine they ran on and
its load average (the numbers depend on it: every service is a Python process importing its libraries).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from devstack.snowflake.seed import SeedParams, generate  # noqa: E402
from devstack.stack import Stack  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def run(repeat: int) -> dict:
    """Run the benchmark ``repeat`` times and return the results.

    :param repeat: rounds (each with a fresh state directory).
    """
    params = SeedParams()
    rounds = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="devstack-bench-") as tmp:
            stack = Stack(Path(tmp) / "state", seed=params)
            cold, _ = _timed(stack.up)
            seed_seconds, result = _timed(lambda stack=stack: stack.seed(params))
            stop_cold, _ = _timed(stack.down)
            warm, _ = _timed(stack.up)
            stop_warm, _ = _timed(stack.down)
            generate_seconds, _ = _timed(lambda: generate(params))
            rounds.append(
                {
                    "cold_start_s": round(cold, 2),
                    "warm_start_s": round(warm, 2),
                    "stop_s": round(statistics.mean([stop_cold, stop_warm]), 2),
                    "seed_s": round(seed_seconds, 2),
                    "generate_s": round(generate_seconds, 2),
                    "rows": result.rows,
                }
            )
            print(json.dumps(rounds[-1]), flush=True)
    keys = ("cold_start_s", "warm_start_s", "stop_s", "seed_s", "generate_s")
    return {
        "benchmark": "devstack_start",
        "machine": describe_machine(),
        "load_average_at_start": os.getloadavg(),
        "seed_params": params.to_json() | {"start": "history ending yesterday (UTC)"},
        "services": ["aws (moto)", "snowflake (fakesnow)", "sagemaker"],
        "rounds": rounds,
        "median": {k: round(statistics.median(r[k] for r in rounds), 2) for k in keys},
    }


def write(results: dict) -> None:
    """Write the JSON and Markdown results.

    :param results: output of :func:`run`.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "devstack_start.json").write_text(json.dumps(results, indent=2) + "\n")
    med = results["median"]
    load = ", ".join(f"{x:.1f}" for x in results["load_average_at_start"])
    lines = [
        "# Devstack start-up",
        "",
        f"Machine: {results['machine']['summary']}; load average at start: {load}.",
        f"Rounds: {len(results['rounds'])} (fresh state directory each); medians below.",
        "",
        "| measure | seconds |",
        "|---|---|",
        f"| cold start (`up` on an empty state dir, seeding {results['rounds'][0]['rows']} rows) "
        f"| {med['cold_start_s']} |",
        f"| warm start (`up` after `down`: snapshot restored, no seeding) | {med['warm_start_s']} |",
        f"| stop (`down`, moto saves its snapshot) | {med['stop_s']} |",
        f"| re-seed the default history into the running stack | {med['seed_s']} |",
        f"| generate the default history only (no database) | {med['generate_s']} |",
        "",
        "Reproduce: `.venv/bin/python benchmarks/devstack_start.py`. Every service is a Python process",
        "(moto, fakesnow, the SageMaker service); most of the start-up is their imports, so the numbers",
        "scale with CPU speed and with whatever else runs on the machine.",
        "",
    ]
    (RESULTS / "devstack_start.md").write_text("\n".join(lines))


def main() -> int:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = run(args.repeat)
    write(results)
    print(json.dumps(results["median"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
