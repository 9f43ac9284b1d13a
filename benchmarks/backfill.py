"""Backfill of 10 intervals of ``batch_score``: parallel runs against one run at a time.

Each half runs on a fresh world of its own: a devstack seeded with 120 days of transactions (300 a day by
default, see below) and one Approved model package (a small rule model speaking the fraud model's CSV contract,
so the data path is real without a training run first), and a real Airflow (``tools.ui.AirflowUI``: api-server,
scheduler with the LocalExecutor, dag-processor, triggerer) on a fresh PostgreSQL database. After one warm-up
run (a day outside the measured ones) and once no run is active, a backfill of the same 10 daily intervals is
created through the REST API, as ``airflow backfill create`` does:

- sequential: ``max_active_runs=1``;
- parallel: ``max_active_runs=10``.

Same days, same data, empty SageMaker and Airflow state in both halves: neither half re-attaches to the other's
jobs or finds its runs already done, and the second half does not inherit a longer job list or run table.

Wall time is from the backfill's creation to the last run's end. The CPU time used meanwhile by the
benchmark's own process tree (Airflow's components and task processes, the devstack and the jobs it runs) and
by PostgreSQL is recorded, with the load average, so a missed target can be told apart from a busy machine.
Afterwards each half's devstack must list (``ListTransformJobs``) exactly one transform job per interval, and
the predictions table must hold each day's transactions once: parallel runs must not duplicate work.

PostgreSQL: Airflow refuses to create a backfill on SQLite while the scheduler writes ("not supported on
SQLite under concurrent access"). The benchmark starts a throwaway cluster with ``tools.metadb`` (the
metadata database of the local MWAA runtime: ``initdb`` into a temporary directory, the server on a free port
of 127.0.0.1, password authentication; stopped and deleted at the end) from the server binaries on ``PATH`` or
under ``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package; ``make setup`` installs it when
running as root). Run as root, the cluster runs as the ``postgres`` user, as the server requires.
``BENCH_SQL_ALCHEMY_CONN=postgresql+psycopg2://...`` uses an existing empty database instead (it is reset
before each half).

Rows per day: 300 (``--rows-per-day``). The ``load`` task writes a day's predictions as one Parquet file, ``PUT``
to a temporary stage and ``COPY INTO`` the table (a few statements per day, whatever the row count). It used to
send one multi-row ``INSERT``, which the devstack's Snowflake stand-in ran one row at a time (about 12 CPU s for
300 rows); with ten runs loading at once the answers took longer than the connector's 60 s socket timeout, the
connector re-sent the statements and the benchmark had to seed 30 rows a day. Each half now records how many
statements a client re-sent to the stand-in (``resent_statements``, from its health answer); it must be 0.

Reproduce: ``make bench-backfill`` (or ``.venv/bin/python benchmarks/backfill.py``).
Target: parallel wall time < 0.5 x sequential, no duplicate jobs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from statistics import mean
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from tools.metadb import MetaDBError, PostgresServer, server_programs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DAG_ID = "batch_score"
INTERVALS = 10
TARGET_RATIO = 0.5
TASKS = ("resolve", "extract", "prepare", "transform", "load")
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


class BenchError(RuntimeError):
    """The benchmark could not run; the message says what was missing or failed."""


class BackfillIncompleteError(BenchError):
    """A timed backfill did not finish in time.

    :param message: what was still running.
    :param partial: what was seen at the deadline (run states, per-task times).
    """

    def __init__(self, message: str, partial: dict[str, Any]) -> None:
        super().__init__(message)
        self.partial = partial


# ------------------------------------------------------------------------------------------- PostgreSQL


def reset_database(url: str, env: dict[str, str]) -> None:
    """Empty an existing Airflow database (``airflow db reset``) so a half starts from no state.

    :param url: SQLAlchemy URL.
    :param env: Airflow environment of the half.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "reset", "--yes", "--skip-init"],
        env=env | {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"`airflow db reset` on BENCH_SQL_ALCHEMY_CONN failed: {proc.stderr.strip()[-2000:]}")


# ------------------------------------------------------------------------------------------ measurement


def cpu_seconds(roots: list[int]) -> float:
    """CPU seconds (user + system) of the processes under ``roots``, including reaped descendants.

    Summed over the live processes of each tree: their own time plus that of the children they have reaped.
    The difference of two readings is the CPU the trees used in between (a process reaped by one outside the
    trees is missed).

    :param roots: pids of the tree roots.
    """
    import psutil

    seen: set[int] = set()
    total = 0.0
    for root in roots:
        try:
            top = psutil.Process(root)
            procs = [top, *top.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def uptime() -> str:
    """The ``uptime`` line (load averages), or ``os.getloadavg`` when the command is missing."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------------------------------------ world


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


def _all_runs(ui: Any, token: str) -> list[dict[str, Any]]:
    return ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100", token=token)["dag_runs"]


def _runs(ui: Any, token: str, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """Runs of batch_score whose logical date is in [start, end] (inclusive)."""
    out = []
    for run in _all_runs(ui, token):
        logical = run.get("logical_date")
        if logical and start <= dt.datetime.fromisoformat(logical).date() <= end:
            out.append(run)
    return out


def wait_idle(ui: Any, timeout: float) -> None:
    """Wait until no run of batch_score is queued or running (the scheduled run unpausing created)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = _all_runs(ui, ui.token())
        active = [r["dag_run_id"] for r in runs if r["state"] in ("queued", "running")]
        if not active:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"runs still active after {timeout:.0f}s: {active}")
        time.sleep(2)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def task_breakdown(ui: Any, token: str, runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per task: mean seconds queued (waiting for an executor slot) and running, and how many runs retried it."""
    queued: dict[str, list[float]] = {t: [] for t in TASKS}
    running: dict[str, list[float]] = {t: [] for t in TASKS}
    retried: dict[str, int] = dict.fromkeys(TASKS, 0)
    for run in runs:
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances?limit=100"
        for ti in ui.api("GET", path, token=token)["task_instances"]:
            if ti["task_id"] not in queued:
                continue
            retried[ti["task_id"]] += int((ti.get("try_number") or 1) > 1)
            q = _seconds(ti.get("queued_when"), ti.get("start_date"))
            r = _seconds(ti.get("start_date"), ti.get("end_date"))
            # a deferred task's queued_when is that of its resumption, after its first start: not a slot wait
            if q is not None and q >= 0:
                queued[ti["task_id"]].append(q)
            if r is not None:
                running[ti["task_id"]].append(r)
    return {
        t: {
            "mean_queued_s": round(mean(queued[t]), 1) if queued[t] else None,
            "mean_running_s": round(mean(running[t]), 1) if running[t] else None,
            "runs_retried": retried[t],
        }
        for t in TASKS
    }


def backfill(
    ui: Any,
    start: dt.date,
    days: int,
    max_active_runs: int,
    timeout: float,
    cpu_roots: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    """Create a backfill of ``days`` daily intervals from ``start``; wait for every run; time it.

    :param cpu_roots: process trees whose CPU time to record over the backfill, by name.
    """
    from tools.ui import UIError

    cpu_roots = cpu_roots or {}
    token = ui.token()
    end = start + dt.timedelta(days=days - 1)
    request = {
        "dag_id": DAG_ID,
        "from_date": dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC).isoformat(),
        "to_date": dt.datetime.combine(end, dt.time.min, tzinfo=dt.UTC).isoformat(),
        "max_active_runs": max_active_runs,
        "reprocess_behavior": "none",
        "run_backwards": False,
        "dag_run_conf": {},
    }
    cpu_before = {name: cpu_seconds(pids) for name, pids in cpu_roots.items()}
    load_start = uptime()
    created = time.monotonic()
    for attempt in range(30):
        try:
            created_backfill = ui.api("POST", "/api/v2/backfills", token=token, body=request)
            break
        except UIError as exc:
            # SQLite: the API refuses (503) while the scheduler holds the write lock; try again shortly
            if "HTTP 503" not in str(exc) or attempt == 29:
                raise
            time.sleep(2)
    deadline = created + timeout
    peak = 0
    loads: list[float] = []
    token_at = time.monotonic()
    while True:
        if time.monotonic() - token_at > 600:
            token, token_at = ui.token(), time.monotonic()
        runs = _runs(ui, token, start, end)
        peak = max(peak, sum(1 for r in runs if r["state"] == "running"))
        loads.append(os.getloadavg()[0])
        if len(runs) == days and all(r["state"] in ("success", "failed") for r in runs):
            break
        if time.monotonic() > deadline:
            states = dict(Counter(r["state"] for r in runs))
            partial: dict[str, Any] = {
                "max_active_runs": max_active_runs,
                "waited_s": round(timeout),
                "states": states,
                "peak_running_runs_seen": peak,
            }
            if cpu_roots:
                partial |= {
                    "cpu_s": {n: round(cpu_seconds(p) - cpu_before[n], 1) for n, p in cpu_roots.items()},
                    "uptime_at_start": load_start,
                    "uptime_at_end": uptime(),
                    "tasks": task_breakdown(ui, token, runs),
                }
            raise BackfillIncompleteError(
                f"backfill {created_backfill['id']} not done after {timeout:.0f}s: {states}", partial
            )
        time.sleep(1)
    wall = time.monotonic() - created
    cpu = {name: round(cpu_seconds(pids) - cpu_before[name], 1) for name, pids in cpu_roots.items()}
    load_end = uptime()
    # the scheduler marks the backfill complete a moment later; a DAG takes one running backfill at a time
    while not ui.api("GET", f"/api/v2/backfills/{created_backfill['id']}", token=token).get("completed_at"):
        if time.monotonic() > deadline:
            raise BenchError(f"backfill {created_backfill['id']}: runs done but not marked complete")
        time.sleep(1)
    durations = [d for d in (_seconds(r.get("start_date"), r.get("end_date")) for r in runs) if d is not None]
    result: dict[str, Any] = {
        "backfill_id": created_backfill["id"],
        "from": start.isoformat(),
        "to": end.isoformat(),
        "max_active_runs": max_active_runs,
        "wall_s": round(wall, 1),
        "runs": len(runs),
        "states": dict(Counter(r["state"] for r in runs)),
        "peak_running_runs_seen": peak,
        "mean_run_s": round(mean(durations), 1) if durations else None,
        "max_run_s": round(max(durations), 1) if durations else None,
    }
    if cpu_roots:
        result |= {
            "cpu_s": cpu,
            "cpu_s_total": round(sum(cpu.values()), 1),
            "cpu_s_per_run": round(sum(cpu.values()) / days, 1),
            "cpu_utilisation_cores": round(sum(cpu.values()) / wall, 2),
            "uptime_at_start": load_start,
            "uptime_at_end": load_end,
            "load1_during": {"min": min(loads), "mean": round(mean(loads), 2), "max": max(loads)},
            "tasks": task_breakdown(ui, token, runs),
        }
    return result


def transform_jobs(info: Any) -> dict[str, list[dict[str, Any]]]:
    """{interval key of the job's output path: [{name, seconds from creation to end}]} from ListTransformJobs."""
    sm = info.client("sagemaker")
    names, token = [], None
    while True:
        page = sm.list_transform_jobs(MaxResults=100, **({"NextToken": token} if token else {}))
        names += [j["TransformJobName"] for j in page["TransformJobSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    by_interval: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        job = sm.describe_transform_job(TransformJobName=name)
        output = job["TransformOutput"]["S3OutputPath"]
        interval = next((part for part in output.split("/") if "T0000-" in part), output)
        started, ended = job.get("CreationTime"), job.get("TransformEndTime")
        seconds = round((ended - started).total_seconds(), 1) if started and ended else None
        by_interval.setdefault(interval, []).append({"name": name, "seconds": seconds})
    return by_interval


def _key(day: dt.date) -> str:
    end = day + dt.timedelta(days=1)
    return f"{day:%Y%m%d}T0000-{end:%Y%m%d}T0000"


def predictions_per_day(info: Any, cfg: Any, days: list[dt.date]) -> dict[str, dict[str, int]]:
    """Rows and distinct transactions in the predictions table per backfilled day (equal: nothing written twice)."""
    conn = info.snowflake_connect()
    try:
        cursor = conn.cursor()
        cursor.execute(
            f"SELECT CAST(INTERVAL_START AS DATE), COUNT(*), COUNT(DISTINCT TRANSACTION_ID) "
            f"FROM {cfg.snowflake.predictions_fqn} GROUP BY 1"
        )
        found = {str(day): (rows, distinct) for day, rows, distinct in cursor.fetchall()}
    finally:
        conn.close()
    return {
        day.isoformat(): {
            "rows": found.get(day.isoformat(), (0, 0))[0],
            "distinct": found.get(day.isoformat(), (0, 0))[1],
        }
        for day in days
    }


def run_half(
    name: str,
    max_active_runs: int,
    days: list[dt.date],
    warm_day: dt.date,
    database: str,
    reset: bool,
    postgres_pid: int | None,
    rows_per_day: int,
    timeout: float,
) -> dict[str, Any]:
    """One half on a fresh devstack and a fresh Airflow database: warm-up run, then the timed backfill.

    :param name: ``sequential`` or ``parallel``.
    :param max_active_runs: the backfill's ``max_active_runs``.
    :param days: the intervals to backfill (consecutive days).
    :param warm_day: the warm-up run's day (not in ``days``).
    :param database: SQLAlchemy URL of an empty database for Airflow.
    :param reset: run ``airflow db reset`` on it first (a database not created for this half).
    :param postgres_pid: the PostgreSQL server's pid, to record its CPU time.
    :param rows_per_day: transactions seeded per day.
    :param timeout: seconds the timed backfill may take.
    :return: the half's figures; ``completed`` is false when the backfill did not finish in ``timeout``.
    """
    from devstack.snowflake.seed import SeedParams
    from devstack.stack import Stack, free_port
    from ml_lifecycle.config import load_config
    from tools.ui import AirflowUI, ensure_environment

    cfg = load_config("local")
    work = Path(tempfile.mkdtemp(prefix=f"bench-backfill-{name}-"))
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    seed = SeedParams(days=120, rows_per_day=rows_per_day, start=yesterday - dt.timedelta(days=119))
    stack = Stack(work / "devstack", seed=seed, startup_timeout=300, stop_with_parent=os.getpid())
    ui = None
    try:
        print(f"[{name}] starting a devstack and Airflow", flush=True)
        info = stack.up()
        ensure_environment(info, "local")
        package = register_rule_model(info, cfg)
        ui = AirflowUI(
            work / "airflow",
            devstack_env=info.env(),
            port=free_port(),
            extra_env={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database},
        )
        if reset:
            reset_database(database, ui.environment(0))
        ui.start(timeout=600)
        ui.wait_parsed(ui.token(), timeout=300)
        # the scheduler starts no run of a paused DAG, backfills included; the local settings turn catch-up off,
        # so unpausing adds at most one scheduled run (for the latest interval, not one of the backfilled days)
        ui.api("PATCH", f"/api/v2/dags/{DAG_ID}", token=ui.token(), body={"is_paused": False})
        print(f"[{name}] warm-up run ({warm_day})", flush=True)
        warm = backfill(ui, warm_day, 1, 1, timeout=900)
        wait_idle(ui, timeout=900)
        roots = {"airflow_and_devstack": [os.getpid()]}
        if postgres_pid:
            roots["postgresql"] = [postgres_pid]
        print(f"[{name}] backfill of {len(days)} days, max_active_runs={max_active_runs}", flush=True)
        try:
            timed = backfill(ui, days[0], len(days), max_active_runs, timeout=timeout, cpu_roots=roots)
            timed["completed"] = True
        except BackfillIncompleteError as exc:
            print(f"[{name}] {exc}", flush=True)
            timed = exc.partial | {"completed": False, "error": str(exc)}
        jobs = transform_jobs(info)
        per_day = {day.isoformat(): len(jobs.get(_key(day), [])) for day in days}
        job_seconds = [j["seconds"] for day in days for j in jobs.get(_key(day), []) if j["seconds"] is not None]
        duplicates = {k: [j["name"] for j in v] for k, v in jobs.items() if len(v) > 1}
        predictions = predictions_per_day(info, cfg, days) if timed["completed"] else {}
        timed |= {
            "rows_per_day": rows_per_day,
            "resent_statements": resent_statements(info),
            "model_package_arn": package,
            "warm_up": warm,
            "transform_jobs_total": sum(len(v) for v in jobs.values()),
            "transform_jobs_per_backfilled_day": per_day,
            "transform_job_mean_s": round(mean(job_seconds), 1) if job_seconds else None,
            "duplicate_intervals": duplicates,
            "no_duplicates": not duplicates and set(per_day.values()) == {1},
            "predictions_per_day": predictions,
            "predictions_written_once": bool(predictions)
            and all(p["rows"] == p["distinct"] > 0 for p in predictions.values()),
        }
        print(
            f"[{name}] wall {timed.get('wall_s')} s, states {timed['states']}, "
            f"statements re-sent to Snowflake {timed['resent_statements']}",
            flush=True,
        )
        return timed
    finally:
        if ui is not None:
            ui.stop()
        stack.down()
        shutil.rmtree(work, ignore_errors=True)


def resent_statements(info: Any) -> int | None:
    """Statements a client re-sent to the devstack's Snowflake stand-in (its health answer counts them)."""
    import urllib.request

    url = info.services["snowflake"].url.rstrip("/") + "/_devstack/health"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.loads(answer.read()).get("resent_statements")
    except OSError as exc:
        print(f"could not read {url}: {exc}", flush=True)
        return None


def _interrupt(signum: int, _frame: Any) -> None:
    # SIGTERM (and SIGINT, which a background shell ignores) end the run through the cleanup of every ``finally``
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=int, default=INTERVALS)
    parser.add_argument("--parallel", type=int, default=10, help="max_active_runs of the parallel backfill")
    parser.add_argument("--rows-per-day", type=int, default=300, help="transactions seeded per day (at least 20)")
    parser.add_argument("--timeout", type=float, default=2400, help="seconds each timed backfill may take")
    parser.add_argument(
        "--order",
        choices=("sequential-first", "parallel-first"),
        default="sequential-first",
        help="which half runs first",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)

    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    warm_day = yesterday - dt.timedelta(days=args.intervals + 5)
    days = [warm_day + dt.timedelta(days=2 + i) for i in range(args.intervals)]
    external = os.environ.get("BENCH_SQL_ALCHEMY_CONN")
    cluster = None
    result: dict[str, Any] = {
        "benchmark": "backfill",
        "dag": DAG_ID,
        "intervals": args.intervals,
        "rows_per_day": args.rows_per_day,
        "days": [days[0].isoformat(), days[-1].isoformat()],
        "target_ratio": TARGET_RATIO,
        "machine": describe_machine(),
        "uptime_at_start": uptime(),
        "load_average_at_start": os.getloadavg(),
        "order": args.order,
    }
    halves = [("sequential", 1), ("parallel", args.parallel)]
    if args.order == "parallel-first":
        halves.reverse()
    try:
        if external:
            if not external.startswith("postgresql"):
                raise BenchError("BENCH_SQL_ALCHEMY_CONN must be a PostgreSQL URL (postgresql+psycopg2://...)")
            result["database"] = "PostgreSQL (BENCH_SQL_ALCHEMY_CONN, reset before each half)"
        else:
            cluster = PostgresServer(
                Path(tempfile.mkdtemp(prefix="bench-pg-")) / "pg",
                log_file=Path(tempfile.gettempdir()) / "bench-pg-server.log",
                secrets_file=Path(tempfile.mkdtemp(prefix="bench-pg-secret-")) / "password.json",
            )
            try:
                cluster.start()
                programs = server_programs()
            except MetaDBError as exc:
                raise BenchError(
                    f"{exc}; or set BENCH_SQL_ALCHEMY_CONN to an empty PostgreSQL database (Airflow refuses "
                    "concurrent backfills on SQLite)"
                ) from None
            version = subprocess.run(
                [str(programs / "postgres"), "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
            result["database"] = f"{version}, throwaway cluster on 127.0.0.1, a database per half (tools/metadb.py)"
        for name, max_active in halves:
            if cluster is not None:
                running = cluster.running()
                url, reset, pg_pid = cluster.create_database(f"airflow_{name}"), False, running and running[0]
            else:
                url, reset, pg_pid = external, True, None
            result[name] = run_half(
                name, max_active, days, warm_day, url, reset, pg_pid, args.rows_per_day, args.timeout
            )
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(cluster.root.parent, ignore_errors=True)
            shutil.rmtree(cluster.secrets_file.parent, ignore_errors=True)
    seq, par = result["sequential"], result["parallel"]
    result["uptime_at_end"] = uptime()
    completed = seq["completed"] and par["completed"]
    result["ratio"] = round(par["wall_s"] / seq["wall_s"], 3) if completed else None
    result["no_duplicates"] = seq["no_duplicates"] and par["no_duplicates"]
    result["predictions_written_once"] = seq["predictions_written_once"] and par["predictions_written_once"]
    result["all_succeeded"] = completed and all(r["states"] == {"success": r["runs"]} for r in (seq, par))
    result["met_target"] = bool(result["all_succeeded"] and result["ratio"] < TARGET_RATIO and result["no_duplicates"])
    cores = result["machine"]["cores"] or 1
    if seq["completed"]:
        # if the parallel half could use every core for the sequential half's CPU work and nothing else
        result["cpu_bound_floor_ratio"] = round(seq["cpu_s_total"] / cores / seq["wall_s"], 3)
    result["reproduce"] = "make bench-backfill  (or .venv/bin/python benchmarks/backfill.py)"
    result["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write(result)
    keys = ("ratio", "no_duplicates", "predictions_written_once", "all_succeeded", "met_target")
    print(json.dumps({k: result.get(k) for k in keys}, indent=2))
    return 0 if result["all_succeeded"] and result["no_duplicates"] and result["predictions_written_once"] else 1


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """One line of the run history: when, where, what was measured."""
    seq, par = result["sequential"], result["parallel"]
    return {
        "when": result.get("finished_at", "-"),
        "commit": result["machine"]["git_commit"],
        "rows_per_day": result["rows_per_day"],
        "order": result["order"],
        "sequential_wall_s": seq.get("wall_s"),
        "parallel_wall_s": par.get("wall_s"),
        "ratio": result["ratio"],
        "load1_mean_sequential": seq.get("load1_during", {}).get("mean"),
        "load1_mean_parallel": par.get("load1_during", {}).get("mean"),
        "no_duplicates": result["no_duplicates"],
    }


def write(result: dict[str, Any]) -> None:
    """``results/backfill.json`` and ``.md``; earlier runs of the same benchmark are kept as ``history``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "backfill.json"
    history: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        previous = json.loads(path.read_text(encoding="utf-8"))
        history = list(previous.get("history", []))
        if previous.get("sequential", {}).get("completed") is not None:
            history.append(summary(previous))
    result["history"] = history
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    seq, par = result["sequential"], result["parallel"]
    halves = (("sequential", seq), ("parallel", par))

    def row(name: str, r: dict[str, Any]) -> str:
        load = r.get("load1_during")
        wall = _cell(r.get("wall_s")) if r["completed"] else f"not done after {r['waited_s']}"
        return (
            f"| {name} | {r['max_active_runs']} | {wall} | "
            f"{_cell(r.get('runs'))} | {r['states']} | {r['peak_running_runs_seen']} | {_cell(r.get('mean_run_s'))} | "
            f"{r['cpu_s'].get('airflow_and_devstack')} / {r['cpu_s'].get('postgresql', '-')} | "
            f"{_cell(r.get('cpu_utilisation_cores'))} | "
            + (f"{load['min']:.1f}-{load['max']:.1f} (mean {load['mean']:.1f}) |" if load else "- |")
        )

    def task_cell(r: dict[str, Any], task: str, key: str) -> str:
        return _cell(r.get("tasks", {}).get(task, {}).get(key))

    def task_queued(r: dict[str, Any], task: str) -> str:
        value = r.get("tasks", {}).get(task, {}).get("mean_queued_s")
        return "-" if value is None or value < 0 else str(value)

    ratio = result["ratio"]
    runs = [*result["history"], summary(result)]
    lines = [
        f"# Backfill of {result['intervals']} intervals of {result['dag']}: parallel vs sequential",
        "",
        f"Machine: {result['machine']['summary']} (commit {result['machine']['git_commit']}), shared with other",
        f"work. `uptime` at start: `{result['uptime_at_start']}`; at end: `{result['uptime_at_end']}`.",
        "",
        f"Airflow 3.3.1 (LocalExecutor, parallelism 8) on {result['database']}. Each half on a fresh",
        f"devstack ({result['rows_per_day']} transactions a day) and a fresh Airflow database, one warm-up run first",
        f"(another day), then a backfill of the same days ({result['days'][0]} to {result['days'][1]}) created through",
        f"the REST API (what `airflow backfill create` does); {result['order'].replace('-', ' ')}.",
        "Reproduce: `make bench-backfill`.",
        "",
        "| backfill | max_active_runs | wall (s) | runs | states | most running at once | mean run (s) "
        "| CPU (s): Airflow + devstack / PostgreSQL | cores busy | load (1 min) during |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(row(name, r) for name, r in halves),
        "",
        f"Parallel / sequential: **{_cell(ratio)}** (target < {result['target_ratio']}): "
        f"{'met' if result['met_target'] else 'missed' if ratio is not None else 'not measured'}.",
        "",
        "Mean seconds per task (queued = waiting for an executor slot; running = first start to end, for the",
        "deferrable `transform` including its wait in the triggerer):",
        "",
        "| task | sequential queued | sequential running | parallel queued | parallel running "
        "| runs that retried it, seq / par |",
        "|---|---|---|---|---|---|",
        *(
            f"| {t} | {task_queued(seq, t)} | {task_cell(seq, t, 'mean_running_s')} | "
            f"{task_queued(par, t)} | {task_cell(par, t, 'mean_running_s')} | "
            f"{task_cell(seq, t, 'runs_retried')} / {task_cell(par, t, 'runs_retried')} |"
            for t in TASKS
        ),
        "",
        "Mean transform job, creation to end on the devstack (the devstack runs it as a local process): "
        f"{_cell(seq['transform_job_mean_s'])} s sequential, {_cell(par['transform_job_mean_s'])} s parallel.",
        "",
        "No duplicate SageMaker work: "
        + "; ".join(
            f"{name}: `ListTransformJobs` lists {r['transform_jobs_total']} jobs, one per backfilled day: "
            f"{set(r['transform_jobs_per_backfilled_day'].values()) == {1}}, intervals with more than one job: "
            f"{r['duplicate_intervals'] or 'none'}"
            for name, r in halves
        )
        + ".",
        "Predictions written once per transaction (rows = distinct transaction ids, every day present): "
        + "; ".join(f"{name}: {r['predictions_written_once']}" for name, r in halves)
        + ".",
        "Statements the Snowflake connector re-sent to the stand-in (an answer slower than its 60 s socket "
        "timeout; counted by the stand-in): "
        + "; ".join(f"{name}: {r.get('resent_statements', 'not recorded')}" for name, r in halves)
        + ".",
        "",
    ]
    if "cpu_bound_floor_ratio" in result:
        lines += [
            f"CPU-bound floor: the sequential half used {seq['cpu_s_total']} CPU seconds ({seq['cpu_s_per_run']} per "
            f"run); spread over all {result['machine']['cores']} cores with nothing else running, that alone takes "
            f"{result['cpu_bound_floor_ratio']} x the sequential wall time.",
            "",
        ]
    lines += [
        "Every run of this benchmark so far (newest last; the figures above are the last):",
        "",
        "| when (UTC) | commit | rows/day | order | sequential (s) | parallel (s) | ratio | load 1 min, seq / par "
        "| no duplicate jobs |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {h['when']} | {h['commit']} | {h['rows_per_day']} | {h['order']} | {_cell(h['sequential_wall_s'])} | "
            f"{_cell(h['parallel_wall_s'])} | {_cell(h['ratio'])} | {_cell(h['load1_mean_sequential'])} / "
            f"{_cell(h['load1_mean_parallel'])} | {h['no_duplicates']} |"
            for h in runs
        ),
        "",
    ]
    (RESULTS / "backfill.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"backfill benchmark: {exc}", file=sys.stderr)
        sys.exit(2)
