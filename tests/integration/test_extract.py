"""Extraction against the devstack: the seeded Snowflake stand-in -> Parquet parts + manifest in its S3.

Goes through the real Airflow connections the devstack exports (``snowflake_default`` through the project's
Snowflake hook, ``aws_default`` through the provider's S3 hook); nothing is patched.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.providers.common.compat.sdk import AirflowSkipException

from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator

pytestmark = pytest.mark.integration

BUCKET = "ml-lifecycle-it-extract"
START = dt.datetime(2026, 1, 15)
END = dt.datetime(2026, 1, 29)
PREFIX = f"s3://{BUCKET}/datasets/train_model/20260115-20260129/"


def extract(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "task_id": "extract",
        "snowflake_conn_id": "snowflake_default",
        "aws_conn_id": "aws_default",
        "sql_path": "sql/features.sql",
        "interval_start": START.isoformat() + "+00:00",
        "interval_end": END.isoformat() + "+00:00",
        "s3_uri": PREFIX,
        "batch_rows": 1000,
        "row_groups_per_part": 1,
        "mode": "stream",
        "source_name": "FRAUD_DB.RAW.CARD_TRANSACTIONS",
        **overrides,
    }
    return SnowflakeToS3ParquetOperator(**args).execute({})


def source_rows(devstack: Any, start: dt.datetime, end: dt.datetime) -> int:
    conn = devstack.snowflake_connect()
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT COUNT(*) FROM CARD_TRANSACTIONS WHERE EVENT_TS >= %(s)s AND EVENT_TS < %(e)s",
            {"s": start, "e": end},
        )
        return int(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def s3(devstack: Any) -> Any:
    client = devstack.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_extracts_the_seeded_interval_from_the_stand_in(devstack: Any, s3: Any) -> None:
    expected = source_rows(devstack, START, END)
    assert expected > 1000, "the devstack seed should hold a few thousand rows in two weeks"

    result = extract()

    key = PREFIX.split(BUCKET + "/", 1)[1]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=key + "_manifest.json")["Body"].read())
    assert result["row_count"] == manifest["row_count"] == expected
    assert result["columns"][:4] == ["transaction_id", "event_ts", "customer_segment", "amount"]
    assert len(manifest["parts"]) == -(-expected // 1000)
    tables = [
        pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key + p["name"])["Body"].read()))
        for p in manifest["parts"]
    ]
    assert {t.schema.remove_metadata() for t in tables} == {tables[0].schema.remove_metadata()}
    data = pa.concat_tables(tables)
    assert data.num_rows == expected
    assert data.column("event_ts").type == pa.timestamp("us")
    stamps = data.column("event_ts").to_pylist()
    assert START <= min(stamps) and max(stamps) < END
    assert data.column("transaction_id").null_count == 0


def test_re_extracting_with_larger_batches_leaves_no_stale_parts(devstack: Any, s3: Any) -> None:
    extract(batch_rows=500)
    result = extract(batch_rows=5000)

    key = PREFIX.split(BUCKET + "/", 1)[1]
    names = sorted(o["Key"][len(key) :] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=key)["Contents"])
    parts = -(-result["row_count"] // 5000)
    assert names == ["_manifest.json", *[f"part-{i:05d}.parquet" for i in range(parts)]]


def test_an_interval_before_the_history_is_skipped(devstack: Any, s3: Any) -> None:
    with pytest.raises(AirflowSkipException, match=r"no rows in FRAUD_DB\.RAW\.CARD_TRANSACTIONS for \[2025-06-01"):
        extract(
            interval_start="2025-06-01T00:00:00+00:00",
            interval_end="2025-06-08T00:00:00+00:00",
            s3_uri=f"s3://{BUCKET}/datasets/train_model/20250601-20250608/",
        )
