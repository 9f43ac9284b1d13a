"""batch_score's load of predictions into Snowflake: seconds and CPU for 100k rows on the devstack's stand-in.

Usage (``make bench-load``)::

    .venv/bin/python benchmarks/load.py                  # 100,000 predictions (the target: <= 10 s)
    .venv/bin/python benchmarks/load.py --rows 300000

Writes ``benchmarks/results/load.json`` and ``load.md``.

Setup: moto (S3, in this process) holds the transform output and key files of one interval, as batch_score's
transform leaves them (four parts); the Snowflake stand-in (``python -m devstack.snowflake.server``) runs in
its own process. ``LoadPredictionsOperator.execute`` runs in this process against both, twice: the first run
creates the table and loads the interval, the second replaces it (delete + load), which is what a re-run
does. Recorded for each run: wall seconds, the CPU seconds of this process (reading S3, joining, writing
Parquet, PUT) and of the stand-in (DELETE, COPY), and the load average. The machine is shared: the CPU
seconds are the figures to compare, the wall time depends on what else runs.

For reference, the former path (one multi-row ``INSERT`` with bound values, ``executemany``) is measured on
300 rows, one day of the backfill benchmark, through the same stand-in.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from benchmarks.machine import describe_machine  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BUCKET = "bench-load"
TABLE = "FRAUD_DB.RAW.FRAUD_PREDICTIONS"
TARGET_SECONDS = 10.0
PARTS = 4
START = dt.datetime(2026, 3, 1)
END = START + dt.timedelta(days=1)


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _write_interval(s3: Any, rows: int) -> list[str]:
    """Key and output CSVs of one interval in PARTS parts, as prepare + transform leave them."""
    names = []
    per_part = -(-rows // PARTS)
    for part in range(PARTS):
        first, last = part * per_part, min(rows, (part + 1) * per_part)
        name = f"part-{part:05d}.csv"
        keys = "".join(
            f"tx-{i:09d},{(START + dt.timedelta(seconds=i * 86_400 // rows)).isoformat()}\n" for i in range(first, last)
        )
        output = "".join(f"{(i % 1000) / 1000:.6f},{int(i % 1000 > 900)}\n" for i in range(first, last))
        s3.put_object(Bucket=BUCKET, Key=f"batch/keys/{name}", Body=keys.encode())
        s3.put_object(Bucket=BUCKET, Key=f"batch/output/{name}.out", Body=output.encode())
        names.append(name)
    return names


def _load(connect: Any, parts: list[str], pid: int) -> dict[str, Any]:
    from ml_lifecycle.operators.batch import LoadPredictionsOperator

    op = LoadPredictionsOperator(
        task_id="load",
        aws_conn_id=None,
        snowflake_conn_id="unused",
        keys_uri=f"s3://{BUCKET}/batch/keys/",
        output_uri=f"s3://{BUCKET}/batch/output/",
        parts=parts,
        interval_start=START.isoformat(),
        interval_end=END.isoformat(),
        model_package_arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/fraud-detector/1",
        model_package_version="1",
        table=TABLE,
    )
    op.get_snowflake_hook = lambda: SimpleNamespace(get_conn=connect)
    load_before = os.getloadavg()[0]
    cpu_self, cpu_server, wall = _self_cpu(), _proc_cpu(pid), time.perf_counter()
    result = op.execute({"run_id": "backfill__2026-03-01T00:00:00+00:00"})
    return {
        "rows_inserted": result["rows_inserted"],
        "rows_deleted": result["rows_deleted"],
        "seconds": round(time.perf_counter() - wall, 2),
        "cpu_seconds_worker": round(_self_cpu() - cpu_self, 2),
        "cpu_seconds_stand_in": round(_proc_cpu(pid) - cpu_server, 2),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _insert_reference(connect: Any, pid: int, rows: int) -> dict[str, Any]:
    """The former load: one executemany INSERT of ``rows`` rows with bound values."""
    conn = connect()
    try:
        cur = conn.cursor()
        cur.execute("CREATE OR REPLACE TABLE FRAUD_DB.RAW.INSERT_REFERENCE (ID VARCHAR, TS TIMESTAMP_NTZ, P FLOAT)")
        values = [(f"tx-{i}", START + dt.timedelta(seconds=i), i / rows) for i in range(rows)]
        cpu_server, wall = _proc_cpu(pid), time.perf_counter()
        cur.executemany("INSERT INTO FRAUD_DB.RAW.INSERT_REFERENCE (ID, TS, P) VALUES (%s, %s, %s)", values)
        return {
            "rows": rows,
            "seconds": round(time.perf_counter() - wall, 2),
            "cpu_seconds_stand_in": round(_proc_cpu(pid) - cpu_server, 2),
        }
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--insert-reference-rows", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.integration.devstack.snowflake_support import StandIn, free_port

    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{moto_port}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    parts = _write_interval(s3, args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        stand_in = StandIn(Path(tmp))
        stand_in.start()
        try:
            assert stand_in.proc is not None
            pid = stand_in.proc.pid
            with stand_in.connect() as conn:
                conn.cursor().execute("CREATE DATABASE IF NOT EXISTS FRAUD_DB")
                conn.cursor().execute("CREATE SCHEMA IF NOT EXISTS FRAUD_DB.RAW")

            def connect() -> Any:
                return stand_in.connect(database="FRAUD_DB", schema="RAW")

            # what a worker has loaded before its task runs: the libraries the load uses, the config
            import pyarrow.compute
            import pyarrow.csv
            import pyarrow.parquet  # noqa: F401

            from ml_lifecycle.config import load_config

            load_config()
            runs = [_load(connect, parts, pid), _load(connect, parts, pid)]
            reference = _insert_reference(connect, pid, args.insert_reference_rows)
        finally:
            stand_in.stop()
            moto.stop()
    worst = max(r["seconds"] for r in runs)
    result = {
        "benchmark": "load",
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "rows": args.rows,
        "parts": PARTS,
        "runs": runs,
        "target_seconds": TARGET_SECONDS,
        "target_met": worst <= TARGET_SECONDS,
        "insert_reference": reference,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "load.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0 if result["target_met"] else 1


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Predictions load benchmark",
        "",
        f"Run {result['run_at']} with `benchmarks/load.py` (`make bench-load`).",
        f"Machine: {result['machine']['summary']}; shared with other work (load average below).",
        "",
        f"`LoadPredictionsOperator` loading {result['rows']:,} predictions of one interval ({result['parts']} parts) "
        "into the devstack's Snowflake stand-in: join of key and output files read from S3, one Parquet file, "
        "`PUT` to a temporary stage, `DELETE` + `COPY INTO` in one transaction.",
        "",
        "| run | rows loaded | rows deleted | s | CPU s (worker) | CPU s (stand-in) | load avg 1m (before/after) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, run in zip(("first load", "re-run (replace)"), result["runs"], strict=True):
        lines.append(
            f"| {name} | {run['rows_inserted']:,} | {run['rows_deleted']:,} | {run['seconds']} | "
            f"{run['cpu_seconds_worker']} | {run['cpu_seconds_stand_in']} | {run['load_average_1m']} |"
        )
    ref = result["insert_reference"]
    verdict = "met" if result["target_met"] else "missed"
    lines += [
        "",
        f"Target: {result['rows']:,} predictions loaded in <= {result['target_seconds']:.0f} s: {verdict}.",
        "",
        f"Reference, the former path: a multi-row `INSERT` (`executemany`, bound values) of {ref['rows']} rows "
        f"took {ref['seconds']} s, {ref['cpu_seconds_stand_in']} CPU s in the stand-in (one statement per row).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
