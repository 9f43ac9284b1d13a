"""Backfill of 10 intervals of ``batch_score``: parallel runs against one run at a time.

A real Airflow (``tools.ui.AirflowUI``: api-server, scheduler with the LocalExecutor, dag-processor,
triggerer) runs the repository's DAGs on a devstack of its own, seeded with 120 days of transactions and
one Approved model package (a small rule model speaking the fraud model's CSV contract, so the data path is
real without a training run first). After one warm-up run, two backfills of 10 daily intervals each
(different days, so nothing is re-attached) are created through the REST API, as ``airflow backfill
create`` does:

- sequential: ``max_active_runs=1``;
- parallel: ``max_active_runs=10``.

Wall time is from the backfill's creation to the last run's end. Afterwards the devstack's
``ListTransformJobs`` must show exactly one transform job per interval: parallel runs must not duplicate
SageMaker work.

``batch_score`` is used rather than ``train_model``: its runs are short (extract a day, one batch transform,
load), so ten intervals fit in minutes on a small machine; ``train_model`` backfills the same way.

Airflow refuses to create a backfill on SQLite while the scheduler writes ("not supported on SQLite under
concurrent access"): set ``BENCH_SQL_ALCHEMY_CONN`` to an empty PostgreSQL database (for example the one of
``docker-compose.yaml``) for both halves to complete; on SQLite (the default) the parallel half fails.

Reproduce: ``make bench-backfill`` (or ``.venv/bin/python benchmarks/backfill.py``).
Target: parallel wall time < 0.5 x sequential, no duplicate jobs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DAG_ID = "batch_score"
INTERVALS = 10
TARGET_RATIO = 0.5
RULE_MODEL = """
import csv, io

def model_fn(model_dir):
    return None

def input_fn(data, content_type):
    text = data if isinstance(data, str) else data.decode()
    return [row for row in csv.reader(io.StringIO(text)) if row]

def predict_fn(rows, model):
    return [min(1.0, float(row[0]) / 1000.0) for row in rows]

def output_fn(prediction, accept):
    return "".join(f"{p:.6f},{int(p > 0.5)}\\n" for p in prediction), "text/csv"
"""


def register_rule_model(info: Any, cfg: Any) -> str:
    s3, sm = info.client("s3"), info.client("sagemaker")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        entry = tarfile.TarInfo("code/inference.py")
        entry.size = len(RULE_MODEL.encode())
        tar.addfile(entry, io.BytesIO(RULE_MODEL.encode()))
    key = "bench/models/rule/model.tar.gz"
    s3.put_object(Bucket=cfg.storage.bucket, Key=key, Body=buffer.getvalue())
    sm.create_model_package_group(ModelPackageGroupName=cfg.sagemaker.model_package_group)
    return sm.create_model_package(
        ModelPackageGroupName=cfg.sagemaker.model_package_group,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": cfg.sagemaker.images.inference,
                    "ModelDataUrl": f"s3://{cfg.storage.bucket}/{key}",
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    },
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


def _runs(ui: Any, token: str, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """Runs of batch_score whose logical date is in [start, end] (inclusive)."""
    runs = ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100", token=token)["dag_runs"]
    out = []
    for run in runs:
        logical = run.get("logical_date")
        if logical and start <= dt.datetime.fromisoformat(logical).date() <= end:
            out.append(run)
    return out


def backfill(ui: Any, start: dt.date, days: int, max_active_runs: int, timeout: float) -> dict[str, Any]:
    """Create a backfill of ``days`` daily intervals from ``start``; wait for every run; time it."""
    token = ui.token()
    end = start + dt.timedelta(days=days - 1)
    created = time.monotonic()
    from tools.ui import UIError

    request = {
        "dag_id": DAG_ID,
        "from_date": dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC).isoformat(),
        "to_date": dt.datetime.combine(end, dt.time.min, tzinfo=dt.UTC).isoformat(),
        "max_active_runs": max_active_runs,
        "reprocess_behavior": "none",
        "run_backwards": False,
        "dag_run_conf": {},
    }
    for attempt in range(30):
        try:
            backfill = ui.api("POST", "/api/v2/backfills", token=token, body=request)
            break
        except UIError as exc:
            # SQLite: the API refuses (503) while the scheduler holds the write lock; try again shortly
            if "HTTP 503" not in str(exc) or attempt == 29:
                raise
            time.sleep(2)
    deadline = created + timeout
    peak = 0
    while True:
        token = ui.token() if time.monotonic() - created > 600 else token
        runs = _runs(ui, token, start, end)
        peak = max(peak, sum(1 for r in runs if r["state"] == "running"))
        if len(runs) == days and all(r["state"] in ("success", "failed") for r in runs):
            break
        if time.monotonic() > deadline:
            states = Counter(r["state"] for r in runs)
            raise RuntimeError(f"backfill {backfill['id']} not done after {timeout:.0f}s: {dict(states)}")
        time.sleep(2)
    wall = time.monotonic() - created
    # the scheduler marks the backfill complete a moment later; a DAG takes one running backfill at a time
    while not ui.api("GET", f"/api/v2/backfills/{backfill['id']}", token=token).get("completed_at"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"backfill {backfill['id']}: runs done but not marked complete")
        time.sleep(1)
    return {
        "backfill_id": backfill["id"],
        "from": start.isoformat(),
        "to": end.isoformat(),
        "max_active_runs": max_active_runs,
        "wall_s": round(wall, 2),
        "runs": len(runs),
        "states": dict(Counter(r["state"] for r in runs)),
        "peak_running_runs_seen": peak,
    }


def transform_jobs(info: Any) -> dict[str, list[str]]:
    """{interval key of the job's output path: [transform job names]} from ListTransformJobs."""
    sm = info.client("sagemaker")
    names, token = [], None
    while True:
        page = sm.list_transform_jobs(MaxResults=100, **({"NextToken": token} if token else {}))
        names += [j["TransformJobName"] for j in page["TransformJobSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    by_interval: dict[str, list[str]] = {}
    for name in names:
        output = sm.describe_transform_job(TransformJobName=name)["TransformOutput"]["S3OutputPath"]
        interval = next((part for part in output.split("/") if "T0000-" in part), output)
        by_interval.setdefault(interval, []).append(name)
    return by_interval


def _key(day: dt.date) -> str:
    end = day + dt.timedelta(days=1)
    return f"{day:%Y%m%d}T0000-{end:%Y%m%d}T0000"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=int, default=INTERVALS)
    parser.add_argument("--parallel", type=int, default=10, help="max_active_runs of the parallel backfill")
    args = parser.parse_args()

    from devstack.snowflake.seed import SeedParams
    from devstack.stack import Stack, free_port
    from ml_lifecycle.config import load_config
    from tools.ui import AirflowUI, ensure_buckets

    cfg = load_config("local")
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    seed = SeedParams(days=120, rows_per_day=300, start=yesterday - dt.timedelta(days=119))
    stack = Stack(work / "devstack", seed=seed, startup_timeout=300)
    ui = None
    result: dict[str, Any] = {
        "benchmark": "backfill",
        "dag": DAG_ID,
        "intervals": args.intervals,
        "target_ratio": TARGET_RATIO,
        "machine": describe_machine(),
        "load_average_at_start": os.getloadavg(),
    }
    try:
        info = stack.up()
        ensure_buckets(info, "local")
        package = register_rule_model(info, cfg)
        database = os.environ.get("BENCH_SQL_ALCHEMY_CONN")
        ui = AirflowUI(
            work / "airflow",
            devstack_env=info.env(),
            port=free_port(),
            extra_env={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database} if database else None,
        )
        ui.start(timeout=600)
        # the scheduler starts no run of a paused DAG, backfills included; the local settings turn catch-up off,
        # so unpausing adds at most one scheduled run (for the latest interval, not one of the backfilled days)
        ui.api("PATCH", f"/api/v2/dags/{DAG_ID}", token=ui.token(), body={"is_paused": False})
        base = yesterday - dt.timedelta(days=2 * args.intervals + 5)
        warm = backfill(ui, base, 1, 1, timeout=900)
        sequential = backfill(ui, base + dt.timedelta(days=2), args.intervals, 1, timeout=3600)
        parallel = backfill(ui, base + dt.timedelta(days=2 + args.intervals), args.intervals, args.parallel, 3600)
        jobs = transform_jobs(info)
        days = [base + dt.timedelta(days=i) for i in range(2, 2 + 2 * args.intervals)]
        per_day = {day.isoformat(): len(jobs.get(_key(day), [])) for day in days}
        result |= {
            "model_package_arn": package,
            "warm_up": warm,
            "sequential": sequential,
            "parallel": parallel,
            "ratio": round(parallel["wall_s"] / sequential["wall_s"], 3),
            "transform_jobs_per_backfilled_day": per_day,
            "transform_jobs_total": sum(len(v) for v in jobs.values()),
            "duplicate_intervals": {k: v for k, v in jobs.items() if len(v) > 1},
        }
        result["no_duplicates"] = not result["duplicate_intervals"] and set(per_day.values()) == {1}
        result["met_target"] = result["ratio"] < TARGET_RATIO and result["no_duplicates"]
        result["reproduce"] = "make bench-backfill  (or .venv/bin/python benchmarks/backfill.py)"
    finally:
        if ui is not None:
            ui.stop()
        stack.down()
        shutil.rmtree(work, ignore_errors=True)
    write(result)
    print(json.dumps({k: result.get(k) for k in ("sequential", "parallel", "ratio", "no_duplicates")}, indent=2))
    ok = all(r["states"] == {"success": r["runs"]} for r in (result["sequential"], result["parallel"]))
    return 0 if ok and result["no_duplicates"] else 1


def write(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "backfill.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    seq, par = result["sequential"], result["parallel"]
    lines = [
        f"# Backfill of {result['intervals']} intervals of {result['dag']}: parallel vs sequential",
        "",
        f"Machine: {result['machine']['summary']} (commit {result['machine']['git_commit']}); load average at "
        f"start: {', '.join(f'{x:.1f}' for x in result['load_average_at_start'])}.",
        "",
        "Airflow 3.3.1 (LocalExecutor, parallelism 8) on the devstack; backfills created through the REST API",
        "(what `airflow backfill create` does), on different days so nothing is re-attached; one warm-up run",
        "first. Reproduce: `make bench-backfill`.",
        "",
        "| backfill | max_active_runs | wall (s) | runs | states | most runs seen running at once |",
        "|---|---|---|---|---|---|",
        *(
            f"| {name} | {r['max_active_runs']} | {r['wall_s']} | {r['runs']} | {r['states']} | "
            f"{r['peak_running_runs_seen']} |"
            for name, r in (("sequential", seq), ("parallel", par))
        ),
        "",
        f"Parallel / sequential: **{result['ratio']}** (target < {result['target_ratio']}): "
        f"{'met' if result['ratio'] < result['target_ratio'] else 'missed'}.",
        f"ListTransformJobs on the devstack: {result['transform_jobs_total']} jobs; one per backfilled day: "
        f"{set(result['transform_jobs_per_backfilled_day'].values()) == {1}}; intervals with more than one job: "
        f"{result['duplicate_intervals'] or 'none'}.",
        "",
    ]
    (RESULTS / "backfill.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
