"""Peak memory and rows/s of the extraction modes (stream, unload) against a naive fetchall, as rows grow.

Usage (``make bench-extract`` runs the first two lines, which give the committed results)::

    .venv/bin/python benchmarks/extraction.py                    # 100k and 1M rows, every method
    .venv/bin/python benchmarks/extraction.py --rows 5000000 --methods operator_chunked_source operator_unload --merge
    .venv/bin/python benchmarks/extraction.py --rows 100000 1000000 5000000

Writes ``benchmarks/results/extraction.json`` and ``extraction.md``.

Setup: the devstack's Snowflake stand-in (``python -m devstack.snowflake.server``, fakesnow with S3 staging)
and S3 (``moto_server``) each run in their own process, so their memory is not counted. A table with the 15
feature columns of ``include/sql/features.sql`` and N rows is created, and every method runs the same query
(all rows of one interval) in a fresh Python process that reports its own peak RSS (``ru_maxrss``) and the
RSS it had after its imports:

``operator_stream``
    ``SnowflakeToS3ParquetOperator`` (stream mode) through the real connector: Arrow batches, bounded row
    groups, part files uploaded one at a time, manifest.
``fetchall_pandas``
    the naive extraction: ``cursor.fetchall()``, a pandas DataFrame, one Parquet file, one upload.
``operator_chunked_source``
    the same operator fed by a cursor that yields the result in 20k-row Arrow chunks produced on demand,
    the way the connector consumes a real Snowflake result (it downloads result chunks lazily, a few in
    flight; ``snowflake.connector.result_set.result_set_iterator``). The stand-in cannot do that: it sends
    the whole result inline in one response, so with it the connector itself holds the full result in
    memory before the first batch is handed over. This method isolates what the operator adds.
``operator_unload``
    ``SnowflakeToS3ParquetOperator`` in unload mode (prod's): ``COPY INTO @stage/...`` makes the stand-in
    write the Parquet parts to S3 itself; the worker lists them and reads their footers for the manifest.
    Its seconds include the stand-in's work (query, Parquet, upload to moto); its memory is the worker's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BUCKET = "bench"
METHODS = ("operator_stream", "fetchall_pandas", "operator_chunked_source", "operator_unload")
STAGE = "FRAUD_DB.RAW.BENCH_STAGE"
STAGING_SQL = (
    "CREATE OR REPLACE STORAGE INTEGRATION BENCH_S3 TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' ENABLED = TRUE "
    f"STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/bench' STORAGE_ALLOWED_LOCATIONS = ('s3://{BUCKET}/')",
    f"CREATE OR REPLACE STAGE {STAGE} URL = 's3://{BUCKET}/' STORAGE_INTEGRATION = BENCH_S3",
)
START = dt.datetime(2026, 1, 1)
END = dt.datetime(2027, 1, 1)
SQL = """SELECT * FROM BENCH_FEATURES
WHERE "event_ts" >= TO_TIMESTAMP_NTZ(%(interval_start)s) AND "event_ts" < TO_TIMESTAMP_NTZ(%(interval_end)s)
"""
SEED = """
CREATE OR REPLACE TABLE BENCH_FEATURES AS
SELECT 'tx-' || LPAD(i::VARCHAR, 9, '0') AS "transaction_id",
       TIMESTAMP '2026-01-01 00:00:00' + to_seconds(i * 3) AS "event_ts",
       5 + (i % 997) * 1.25 AS "amount",
       LN(6 + (i % 997) * 1.25) AS "log_amount",
       FLOOR(i / 1200) % 24 AS "hour_of_day",
       FLOOR(i / 28800) % 7 AS "day_of_week",
       FLOOR(i / 28800) % 7 >= 5 AS "is_weekend",
       i % 3 <> 0 AS "card_present",
       i % 11 = 0 AS "is_foreign",
       CASE WHEN i % 3 = 0 THEN 'ECOM' WHEN i % 17 = 0 THEN 'ATM' ELSE 'POS' END AS "channel",
       CASE WHEN i % 2 = 0 THEN 'grocery' ELSE 'travel' END AS "merchant_category",
       i % 7 AS "card_txn_count_24h",
       100.0 + (i % 13) AS "card_avg_amount_7d",
       (5 + (i % 997) * 1.25) / (100.0 + (i % 13)) AS "amount_to_card_avg_ratio",
       CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END AS "is_fraud"
FROM range(0, {rows}) t(i)
"""


def _rss_now_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.closing(socket.socket()) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _snowflake_kwargs(port: int) -> dict[str, Any]:
    return {
        "user": "bench",
        "password": "bench",
        "account": "fakesnow",
        "host": "127.0.0.1",
        "port": port,
        "protocol": "http",
        "database": "FRAUD_DB",
        "schema": "RAW",
        "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        "network_timeout": 900,  # the connector retries a server error until this runs out
    }


# ------------------------------------------------------------------------------------------------ children


class _Hook:
    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def get_conn(self) -> Any:
        return self.factory()


class _ChunkedCursor:
    """Yields the benchmark table's rows as Arrow chunks generated on demand (no full result anywhere)."""

    def __init__(self, rows: int, chunk: int = 20_000) -> None:
        import pyarrow as pa

        self.rows, self.chunk = rows, chunk
        self.sfqid = "bench-chunked"
        names = [
            ("transaction_id", 2, 0),
            ("event_ts", 8, 9),
            ("amount", 1, 0),
            ("log_amount", 1, 0),
            ("hour_of_day", 0, 0),
            ("day_of_week", 0, 0),
            ("is_weekend", 13, 0),
            ("card_present", 13, 0),
            ("is_foreign", 13, 0),
            ("channel", 2, 0),
            ("merchant_category", 2, 0),
            ("card_txn_count_24h", 0, 0),
            ("card_avg_amount_7d", 1, 0),
            ("amount_to_card_avg_ratio", 1, 0),
            ("is_fraud", 0, 0),
        ]
        self.description = [(n, t, None, None, 38, s, True) for n, t, s in names]
        self._pa = pa

    def execute(self, *_: Any) -> None:
        pass

    def fetch_arrow_batches(self) -> Iterator[Any]:
        import numpy as np

        pa = self._pa
        for start in range(0, self.rows, self.chunk):
            i = np.arange(start, min(self.rows, start + self.chunk))
            amount = 5 + (i % 997) * 1.25
            yield pa.table(
                {
                    "transaction_id": pa.array([f"tx-{v:09d}" for v in i]),
                    "event_ts": pa.array(1_767_225_600_000_000_000 + i * 3_000_000_000, pa.timestamp("ns")),
                    "amount": amount,
                    "log_amount": np.log(1 + amount),
                    "hour_of_day": pa.array((i // 1200) % 24, pa.int8()),
                    "day_of_week": pa.array((i // 28800) % 7, pa.int8()),
                    "is_weekend": (i // 28800) % 7 >= 5,
                    "card_present": i % 3 != 0,
                    "is_foreign": i % 11 == 0,
                    "channel": pa.array(np.where(i % 3 == 0, "ECOM", "POS")),
                    "merchant_category": pa.array(np.where(i % 2 == 0, "grocery", "travel")),
                    "card_txn_count_24h": pa.array(i % 7, pa.int16()),
                    "card_avg_amount_7d": 100.0 + (i % 13),
                    "amount_to_card_avg_ratio": amount / (100.0 + (i % 13)),
                    "is_fraud": pa.array((i % 50 == 0).astype("int8")),
                }
            )

    def close(self) -> None:
        pass


class _ChunkedConnection:
    def __init__(self, rows: int) -> None:
        self.rows = rows

    def cursor(self) -> _ChunkedCursor:
        return _ChunkedCursor(self.rows)

    def close(self) -> None:
        pass


def child(method: str, rows: int, snowflake_port: int, batch_rows: int) -> dict[str, Any]:
    """Run one method in this (fresh) process; return its measurements."""
    import boto3
    import pandas as pd
    import pyarrow.parquet  # noqa: F401 - imported by every method, so the import baseline is the same
    import snowflake.connector

    sys.path.insert(0, str(ROOT / "plugins"))
    from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator

    after_imports = _rss_now_mb()
    s3 = boto3.client("s3", region_name="us-east-1")
    prefix = f"s3://{BUCKET}/{method}/{rows}/"
    started = time.perf_counter()
    if method == "fetchall_pandas":
        import io

        conn = snowflake.connector.connect(**_snowflake_kwargs(snowflake_port))
        cursor = conn.cursor()
        cursor.execute(SQL, {"interval_start": START, "interval_end": END})
        data = cursor.fetchall()
        frame = pd.DataFrame(data, columns=[d.name for d in cursor.description])
        del data
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        s3.put_object(Bucket=BUCKET, Key=f"{method}/{rows}/data.parquet", Body=buffer.getvalue())
        written, count = buffer.tell(), len(frame)
        conn.close()
    else:
        op = SnowflakeToS3ParquetOperator(
            task_id="bench",
            snowflake_conn_id="unused",
            aws_conn_id=None,
            sql_path="sql/bench.sql",
            interval_start=START,
            interval_end=END,
            s3_uri=prefix,
            batch_rows=batch_rows,
            mode="unload" if method == "operator_unload" else "stream",
            stage=STAGE if method == "operator_unload" else None,
        )
        if method in ("operator_stream", "operator_unload"):
            hook = _Hook(lambda: snowflake.connector.connect(**_snowflake_kwargs(snowflake_port)))
        else:
            hook = _Hook(lambda: _ChunkedConnection(rows))
        op.get_snowflake_hook = lambda: hook  # type: ignore[method-assign]
        result = op.execute({})
        count = result["row_count"]
        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{method}/{rows}/_manifest.json")["Body"].read())
        written = sum(p["bytes"] for p in manifest["parts"])
    seconds = time.perf_counter() - started
    if count != rows:
        raise RuntimeError(f"{method}: wrote {count} rows, expected {rows}")
    return {
        "method": method,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rss_after_imports_mb": round(after_imports, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_above_imports_mb": round(_peak_rss_mb() - after_imports, 1),
        "parquet_bytes": written,
    }


# ------------------------------------------------------------------------------------------------ driver


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as info:
        mem_kb = int(next(line.split()[1] for line in info if line.startswith("MemTotal")))
    import pyarrow
    import snowflake.connector

    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pyarrow": pyarrow.__version__,
        "snowflake_connector": snowflake.connector.__version__,
    }


PEAK_TARGET_MB = 400


def _markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        "# Extraction memory benchmark",
        "",
        f"Run {report['finished_at']} with `benchmarks/extraction.py` (batch_rows={report['batch_rows']}).",
        f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['memory_gb']} GB RAM, Python "
        f"{machine['python']}, pyarrow {machine['pyarrow']}, snowflake-connector-python "
        f"{machine['snowflake_connector']}.",
        "",
        "Peak RSS of the extracting process; the Snowflake stand-in and S3 run in other processes. "
        '"Above imports" subtracts the RSS the process had after importing its libraries.',
        "",
        "| method | rows | seconds | rows/s | peak RSS (MB) | peak above imports (MB) | Parquet bytes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        rate = round(r["rows"] / r["seconds"]) if r["seconds"] else 0
        lines.append(
            f"| {r['method']} | {r['rows']:,} | {r['seconds']} | {rate:,} | {r['peak_rss_mb']} "
            f"| {r['peak_above_imports_mb']} | {r['parquet_bytes']:,} |"
        )
    lines += ["", _verdict(report["results"]), "", *_modes(report["results"]), "", *report["notes"], ""]
    return "\n".join(lines)


def _modes(results: list[dict[str, Any]]) -> list[str]:
    """Stream against unload per row count: rows/s and the worker's peak RSS."""
    by = {(r["method"], r["rows"]): r for r in results}
    lines = []
    for rows in sorted({r["rows"] for r in results if r["method"] == "operator_unload"}):
        unload = by[("operator_unload", rows)]
        stream = by.get(("operator_stream", rows)) or by.get(("operator_chunked_source", rows))
        if stream is None:
            continue
        lines.append(
            f"Stream vs unload at {rows:,} rows: {stream['method']} {round(rows / stream['seconds']):,} rows/s, "
            f"peak {stream['peak_rss_mb']} MB; operator_unload {round(rows / unload['seconds']):,} rows/s, "
            f"peak {unload['peak_rss_mb']} MB."
        )
    return lines


def _verdict(results: list[dict[str, Any]]) -> str:
    """The target line: the operator's peak RSS at the largest row count, and how flat it stays."""
    ours = [r for r in results if r["method"] == "operator_chunked_source"]
    if not ours:
        return f"Target: peak RSS flat as rows grow, <= {PEAK_TARGET_MB} MB at 5M rows: not measured."
    largest = max(ours, key=lambda r: r["rows"])
    smallest = min(ours, key=lambda r: r["rows"])
    met = largest["rows"] >= 5_000_000 and largest["peak_rss_mb"] <= PEAK_TARGET_MB
    return (
        f"Target: peak RSS flat as rows grow, <= {PEAK_TARGET_MB} MB at 5M rows. operator_chunked_source: "
        f"{smallest['peak_rss_mb']} MB at {smallest['rows']:,} rows, {largest['peak_rss_mb']} MB at "
        f"{largest['rows']:,} rows: {'met' if met else 'NOT met'}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--batch-rows", type=int, default=50_000)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--snowflake-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "extraction")
    parser.add_argument(
        "--merge", action="store_true", help="keep the other (method, rows) results already in --out's JSON"
    )
    args = parser.parse_args()

    # a terminated run still stops its servers (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.child:
        print(json.dumps(child(args.child, args.rows[0], args.snowflake_port, args.batch_rows)))
        return 0

    import boto3
    import snowflake.connector

    venv_bin = Path(sys.executable).parent
    moto_port, snowflake_port = _free_port(), _free_port()
    include = Path(tempfile.mkdtemp(prefix="bench-include-"))
    (include / "sql").mkdir()
    (include / "config").mkdir()
    (include / "sql" / "bench.sql").write_text(SQL)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{moto_port}",
        "ML_LIFECYCLE_INCLUDE_DIR": str(include),
        "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}",
    }
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    servers = [
        subprocess.Popen(
            [str(venv_bin / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
            stdout=open(logs / "moto.log", "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack.snowflake.server",
                "--port",
                str(snowflake_port),
                "--db-path",
                str(logs / "snowflake-db"),
                "--s3-endpoint-url",
                f"http://127.0.0.1:{moto_port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=open(logs / "snowflake.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        ),
    ]
    results = []
    try:
        _wait_port(moto_port)
        _wait_port(snowflake_port)
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        with snowflake.connector.connect(
            **{**_snowflake_kwargs(snowflake_port), "database": None, "schema": None}
        ) as c:
            c.cursor().execute("CREATE DATABASE IF NOT EXISTS FRAUD_DB")
            c.cursor().execute("CREATE SCHEMA IF NOT EXISTS FRAUD_DB.RAW")
        conn = snowflake.connector.connect(**_snowflake_kwargs(snowflake_port))
        for statement in STAGING_SQL:
            conn.cursor().execute(statement)
        for rows in args.rows:
            conn.cursor().execute(SEED.format(rows=rows))
            for method in args.methods:
                print(f"{method} {rows:,} rows ...", file=sys.stderr, flush=True)
                completed = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        method,
                        "--rows",
                        str(rows),
                        "--snowflake-port",
                        str(snowflake_port),
                        "--batch-rows",
                        str(args.batch_rows),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=3600,
                )
                if completed.returncode != 0:
                    raise RuntimeError(f"{method} at {rows} rows failed:\n{completed.stderr[-3000:]}")
                result = json.loads(completed.stdout.strip().splitlines()[-1])
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
        conn.close()
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()

    report = {
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "batch_rows": args.batch_rows,
        "machine": _machine(),
        "sql": SQL,
        "results": results,
        "notes": [
            "operator_stream and fetchall_pandas read from the Snowflake stand-in, which returns a whole result in "
            "one inline response: the connector holds that response before handing over the first batch, so "
            "both grow with the result there. On Snowflake the connector downloads result chunks on demand "
            "(a few in flight), which operator_chunked_source reproduces: its peak stays flat as rows grow.",
            "fetchall_pandas additionally materialises every row as Python objects and the whole DataFrame.",
            "5M rows are measured with operator_chunked_source and operator_unload only: the stand-in itself needs "
            "more than 12 GB to build a 5M-row result as one inline response, which says nothing about the "
            "operator; at 5M rows operator_chunked_source stands for the stream mode.",
            "operator_unload: the worker only lists the parts and reads their footers, so its memory does not grow "
            "with rows; its seconds are the stand-in's COPY INTO (DuckDB runs the query, pyarrow writes "
            "256 MB-capped Parquet parts, each uploaded to moto) plus the footers. On Snowflake the unload runs "
            "on the warehouse in parallel; the stand-in is one process. The first unload of a run (the smallest "
            "row count) also pays the stand-in's one-time imports for staging (boto3, its S3 client).",
        ],
    }
    previous = args.out.with_suffix(".json")
    if args.merge and previous.is_file():
        fresh = {(r["method"], r["rows"]) for r in results}
        kept = [r for r in json.loads(previous.read_text())["results"] if (r["method"], r["rows"]) not in fresh]
        order = {m: i for i, m in enumerate(METHODS)}
        results = sorted(kept + results, key=lambda r: (r["rows"], order[r["method"]]))
        report["results"] = results
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(_markdown(report))
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
