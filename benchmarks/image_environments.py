"""Image environments: the first build of each one, and the job start overhead they add once cached.

1. **First build.** Every environment of the catalogue and every project image (include/images) is built
   into a fresh, empty environment cache, one after the other: wall time and the CPU time of uv and its
   children. uv's own download cache is left as it is (state which in the results: on a machine that
   never downloaded the wheels, add the download time).
2. **Job start overhead with a warm cache.** ``benchmarks/devstack_overhead.py`` (processing and training
   jobs whose script only records its start and end) runs against this tree, and against the tree of a
   baseline commit without image environments (``git archive`` into a temporary folder, its own
   ``devstack_overhead.py``), alternating, so both see the same machine load. The target: at most 1 s more
   ``create_to_start`` than the baseline.

Reproduce: ``.venv/bin/python benchmarks/image_environments.py [--runs 10] [--baseline-commit bfbbd2d]``.
Writes ``benchmarks/results/image_environments.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
#: The commit before image environments, private mount namespaces and requirements installs.
BASELINE = "bfbbd2d"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def first_builds() -> list[dict[str, Any]]:
    """Build every known environment into an empty cache; return wall and CPU seconds of each."""
    from devstack.sagemaker.catalogue import CATALOGUE, ImageEnvironments
    from devstack.sagemaker.environments import EnvironmentCache
    from devstack.sagemaker.images import parse_image_uri

    rows = []
    with tempfile.TemporaryDirectory(prefix="image-envs-") as cache_dir:
        images = ImageEnvironments(EnvironmentCache(Path(cache_dir)), "123456789012")
        specs = list(CATALOGUE.values())
        for dockerfile in sorted((ROOT / "include" / "images").glob("*/Dockerfile")):
            uri = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{dockerfile.parent.name}:1"
            spec = images.spec_for(parse_image_uri(uri))
            assert spec is not None
            specs.append(spec)
        for spec in specs:
            load = os.getloadavg()[0]
            cpu, wall = _children_cpu(), time.perf_counter()
            env = images.ensure(spec, lambda _line: None)
            wall, cpu = time.perf_counter() - wall, _children_cpu() - cpu
            marker = images.cache.describe(spec) or {}
            size = sum(f.stat().st_size for f in env.rglob("*") if f.is_file() and not f.is_symlink())
            rows.append(
                {
                    "image": spec.image,
                    "wall_s": round(wall, 1),
                    "cpu_s": round(cpu, 1),
                    "load_1m": round(load, 2),
                    "packages": len(marker.get("installed", [])),
                    "size_mb": round(size / 2**20),
                }
            )
            print("build", json.dumps(rows[-1]), flush=True)
    return rows


def _overhead(tree: Path, runs: int) -> dict[str, Any]:
    """Run ``devstack_overhead.py`` of ``tree`` and return its results."""
    subprocess.run(
        [sys.executable, str(tree / "benchmarks" / "devstack_overhead.py"), "--runs", str(runs)],
        cwd=tree,
        check=True,
        env={
            **os.environ,
            "PYTHONPATH": f"{tree / 'plugins'}:{tree}",
            "DEVSTACK_IMAGE_CACHE": str(ROOT / ".devstack" / "images"),
        },
    )
    return json.loads((tree / "benchmarks" / "results" / "devstack_overhead.json").read_text())["results"]


def start_overhead(runs: int, rounds: int, baseline_commit: str) -> dict[str, Any]:
    """Alternate baseline and current runs of the per-job overhead benchmark."""
    out: dict[str, Any] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory(prefix="image-envs-tree-") as tmp:
        base, current = Path(tmp) / "baseline", Path(tmp) / "current"
        for tree, commit in ((base, baseline_commit), (current, "HEAD")):
            tree.mkdir()
            archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        for _ in range(rounds):
            for name, tree in (("baseline", base), ("current", current)):
                load = os.getloadavg()[0]
                results = _overhead(tree, runs)
                out[name].append({"load_1m": round(load, 2), **results})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="measured jobs per kind and round (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating baseline/current rounds (default 2)")
    parser.add_argument("--baseline-commit", default=BASELINE)
    parser.add_argument("--skip-builds", action="store_true")
    args = parser.parse_args()

    builds = [] if args.skip_builds else first_builds()
    overhead = start_overhead(args.runs, args.rounds, args.baseline_commit)
    machine = describe_machine()
    payload = {
        "benchmark": "image_environments",
        "machine": machine,
        "command": " ".join(sys.argv),
        "first_builds": builds,
        "start_overhead": overhead,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "image_environments.json").write_text(json.dumps(payload, indent=2) + "\n")

    def median(name: str, kind: str) -> float:
        values = sorted(r[kind]["create_to_start"]["median_s"] for r in overhead[name])
        return values[len(values) // 2]

    lines = [
        "# Image environments: first builds and job start overhead",
        "",
        f"Machine: {machine['summary']} (commit {machine['git_commit']}).",
        f"Command: `{payload['command']}`. uv's download cache was warm (wheels already downloaded once).",
        "",
        "## First build of each environment (empty environment cache)",
        "",
        "| image | wall (s) | CPU of uv (s) | load (1 min) | packages | size (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for row in builds:
        lines.append(
            f"| {row['image']} | {row['wall_s']} | {row['cpu_s']} | {row['load_1m']} | {row['packages']} "
            f"| {row['size_mb']} |"
        )
    lines += [
        "",
        f"## Job start overhead, warm cache (median create_to_start of {args.runs} jobs per round)",
        "",
        f"Baseline: commit {args.baseline_commit} (jobs on the devstack's own venv, no namespaces). "
        "Rounds alternate so both see the same load.",
        "",
        "| kind | round | baseline (s) | load | current (s) | load | difference (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("processing", "training"):
        for i, (b, c) in enumerate(zip(overhead["baseline"], overhead["current"], strict=True), start=1):
            bm, cm = b[kind]["create_to_start"]["median_s"], c[kind]["create_to_start"]["median_s"]
            lines.append(f"| {kind} | {i} | {bm} | {b['load_1m']} | {cm} | {c['load_1m']} | {round(cm - bm, 3)} |")
    for kind in ("processing", "training"):
        diff = round(median("current", kind) - median("baseline", kind), 3)
        verdict = "met" if diff <= 1.0 else "missed"
        lines.append("")
        lines.append(
            f"{kind}: current minus baseline, median of the round medians: {diff} s (target <= 1 s: {verdict})."
        )
    (RESULTS / "image_environments.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
