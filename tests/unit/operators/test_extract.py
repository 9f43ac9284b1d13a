"""SnowflakeToS3ParquetOperator, stream mode: the Snowflake emulator -> Parquet parts + manifest in S3 (moto)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import fakesnow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import snowflake.connector
from airflow.providers.common.compat.sdk import AirflowSkipException
from moto import mock_aws

from ml_lifecycle.cache import dataset_digest
from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator
from tests import fakesnow_server

BUCKET = "datasets-test"
PREFIX = f"s3://{BUCKET}/datasets/train_model/20260101-20260103/"
SOURCE = "FRAUD_DB.RAW.CARD_TRANSACTIONS"
N_ROWS = 2880  # one transaction a minute for two days

DDL = """
CREATE OR REPLACE TABLE CARD_TRANSACTIONS (
    TRANSACTION_ID VARCHAR NOT NULL, EVENT_TS TIMESTAMP_NTZ, CARD_ID VARCHAR, MERCHANT_ID VARCHAR,
    MERCHANT_CATEGORY VARCHAR, AMOUNT NUMBER(12,2), CURRENCY VARCHAR(3), CHANNEL VARCHAR,
    CARD_PRESENT BOOLEAN, MERCHANT_COUNTRY VARCHAR(2), CARD_COUNTRY VARCHAR(2), CUSTOMER_SEGMENT VARCHAR,
    IS_FRAUD BOOLEAN
)
"""
SEED = f"""
INSERT INTO CARD_TRANSACTIONS
SELECT 'tx-' || LPAD(i::VARCHAR, 6, '0'), TIMESTAMP '2026-01-01 00:00:00' + to_minutes(i), 'card-' || (i % 40),
       'm-' || (i % 7), CASE WHEN i % 2 = 0 THEN 'grocery' ELSE 'travel' END, 5 + (i % 300) * 1.25, 'USD',
       CASE WHEN i % 3 = 0 THEN 'ECOM' ELSE 'POS' END, i % 3 <> 0, 'US',
       CASE WHEN i % 11 = 0 THEN 'FR' ELSE 'US' END, CASE WHEN i % 4 = 0 THEN 'student' ELSE 'consumer' END,
       i % 50 = 0
FROM range(0, {N_ROWS}) t(i)
"""


class _ConnectHook:
    """Stands in for the Snowflake hook: ``get_conn()`` opens a connector connection with fixed kwargs."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def get_conn(self) -> Any:
        return snowflake.connector.connect(**self.kwargs)


def _seed(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS FRAUD_DB")
    cur.execute("CREATE SCHEMA IF NOT EXISTS FRAUD_DB.RAW")
    cur.execute("USE SCHEMA FRAUD_DB.RAW")
    cur.execute(DDL)
    cur.execute(SEED)
    cur.close()


@pytest.fixture(scope="module")
def snowflake_server() -> Iterator[dict[str, Any]]:
    """The fakesnow server on a free loopback port, seeded; yields connector kwargs (Arrow result path)."""
    with fakesnow_server.start() as kwargs:
        kwargs = {**kwargs, "database": "FRAUD_DB", "schema": "RAW"}
        conn = snowflake.connector.connect(**kwargs)
        _seed(conn)
        conn.close()
        yield kwargs


@pytest.fixture
def snowflake_in_process() -> Iterator[dict[str, Any]]:
    """fakesnow patched in-process (its cursor has no Arrow batches: exercises the fetchmany path)."""
    with fakesnow.patch():
        conn = snowflake.connector.connect(database="FRAUD_DB", schema="RAW")
        _seed(conn)
        yield {"database": "FRAUD_DB", "schema": "RAW"}


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def make_operator(conn_kwargs: dict[str, Any], **overrides: Any) -> SnowflakeToS3ParquetOperator:
    args: dict[str, Any] = {
        "task_id": "extract",
        "snowflake_conn_id": "snowflake_default",
        "aws_conn_id": None,
        "sql_path": "sql/features.sql",
        "interval_start": "2026-01-01T00:00:00+00:00",
        "interval_end": "2026-01-03T00:00:00+00:00",
        "s3_uri": PREFIX,
        "batch_rows": 500,
        "row_groups_per_part": 2,
        "mode": "stream",
        "source_name": SOURCE,
        **overrides,
    }
    op = SnowflakeToS3ParquetOperator(**args)
    op.get_snowflake_hook = lambda: _ConnectHook(**conn_kwargs)  # type: ignore[method-assign]
    return op


def keys_under(client: Any, prefix: str = PREFIX) -> list[str]:
    key = prefix.split(BUCKET + "/", 1)[1]
    return sorted(o["Key"][len(key) :] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", []))


def read_object(client: Any, name: str) -> bytes:
    key = PREFIX.split(BUCKET + "/", 1)[1] + name
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def read_dataset(client: Any) -> tuple[dict[str, Any], list[pa.Table]]:
    manifest = json.loads(read_object(client, "_manifest.json"))
    tables = [pq.read_table(io.BytesIO(read_object(client, p["name"]))) for p in manifest["parts"]]
    return manifest, tables


EXPECTED_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("event_ts", pa.timestamp("us")),
        ("customer_segment", pa.string()),
        ("amount", pa.float64()),
        ("log_amount", pa.float64()),
        ("hour_of_day", pa.int64()),
        ("day_of_week", pa.int64()),
        ("is_weekend", pa.bool_()),
        ("card_present", pa.bool_()),
        ("is_foreign", pa.bool_()),
        ("channel", pa.string()),
        ("merchant_category", pa.string()),
        ("card_txn_count_24h", pa.int64()),
        ("card_avg_amount_7d", pa.float64()),
        ("amount_to_card_avg_ratio", pa.float64()),
        ("is_fraud", pa.int64()),
    ]
)


def test_streams_the_interval_into_bounded_parts_with_a_manifest(s3: Any, snowflake_server: dict) -> None:
    result = make_operator(snowflake_server).execute({})

    manifest, tables = read_dataset(s3)
    assert result == {
        "dataset_uri": PREFIX,
        "manifest_uri": PREFIX + "_manifest.json",
        "row_count": N_ROWS,
        "columns": EXPECTED_SCHEMA.names,
        "query_hash": manifest["query"]["sha256"],
        "dataset_digest": dataset_digest(manifest),
    }
    assert result["dataset_digest"]
    # 2880 rows in row groups of 500 (6 groups), two groups per part -> 3 parts
    assert [p["name"] for p in manifest["parts"]] == [f"part-0000{i}.parquet" for i in range(3)]
    assert [p["rows"] for p in manifest["parts"]] == [1000, 1000, 880]
    assert keys_under(s3) == ["_manifest.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    for part, table in zip(manifest["parts"], tables, strict=True):
        assert table.schema.remove_metadata() == EXPECTED_SCHEMA
        assert part["bytes"] == len(read_object(s3, part["name"]))
        assert part["sha256"] == hashlib.sha256(read_object(s3, part["name"])).hexdigest()
        metadata = pq.ParquetFile(io.BytesIO(read_object(s3, part["name"]))).metadata
        assert max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)) <= 500
    assert manifest["row_count"] == sum(t.num_rows for t in tables) == N_ROWS
    assert manifest["schema"][:2] == [
        {"name": "transaction_id", "type": "string"},
        {"name": "event_ts", "type": "timestamp[us]"},
    ]
    assert manifest["query"]["interval_start"] == "2026-01-01T00:00:00"
    assert manifest["query"]["interval_end"] == "2026-01-03T00:00:00"
    assert manifest["query"]["snowflake_query_id"]
    assert manifest["started_at"] <= manifest["finished_at"]
    ids = pa.concat_tables(tables).column("transaction_id").to_pylist()
    assert ids == sorted(ids) and len(set(ids)) == N_ROWS


def test_fetchmany_path_writes_the_same_dataset_as_arrow_batches(
    s3: Any, snowflake_server: dict, snowflake_in_process: dict
) -> None:
    make_operator(snowflake_server).execute({})
    _, arrow_tables = read_dataset(s3)
    make_operator(snowflake_in_process).execute({})
    manifest, row_tables = read_dataset(s3)

    assert manifest["row_count"] == N_ROWS
    assert pa.concat_tables(row_tables).equals(pa.concat_tables(arrow_tables))


def test_extracting_the_same_data_again_gives_the_same_digest(s3: Any, snowflake_server: dict) -> None:
    """The step cache keys on the digest: identical data extracted twice must not look different."""
    first = make_operator(snowflake_server).execute({})
    again = make_operator(snowflake_server).execute({})
    assert first["dataset_digest"] == again["dataset_digest"]
    regrouped = make_operator(snowflake_server, row_groups_per_part=1).execute({})
    assert regrouped["dataset_digest"] != first["dataset_digest"], "other files, other digest"


def test_rerun_replaces_the_dataset_without_stale_parts(s3: Any, snowflake_server: dict) -> None:
    make_operator(snowflake_server, batch_rows=100, row_groups_per_part=1).execute({})
    assert len(keys_under(s3)) == 30  # 29 parts + manifest
    s3.put_object(Bucket=BUCKET, Key=PREFIX.split(BUCKET + "/")[1] + "validation/report.json", Body=b"{}")

    make_operator(snowflake_server, batch_rows=2000, row_groups_per_part=1).execute({})

    assert keys_under(s3) == ["_manifest.json", "part-00000.parquet", "part-00001.parquet", "validation/report.json"]
    manifest, tables = read_dataset(s3)
    assert manifest["row_count"] == sum(t.num_rows for t in tables) == N_ROWS


def test_empty_interval_skips_with_the_reason_and_still_writes_the_manifest(s3: Any, snowflake_server: dict) -> None:
    op = make_operator(
        snowflake_server, interval_start="2025-06-01T00:00:00+00:00", interval_end="2025-06-08T00:00:00+00:00"
    )
    with pytest.raises(AirflowSkipException) as caught:
        op.execute({})

    assert str(caught.value).startswith(
        "no rows in FRAUD_DB.RAW.CARD_TRANSACTIONS for [2025-06-01T00:00:00, 2025-06-08T00:00:00)"
    )
    manifest = json.loads(read_object(s3, "_manifest.json"))
    assert manifest["row_count"] == 0
    assert manifest["parts"] == []
    assert manifest["columns"] == EXPECTED_SCHEMA.names
    assert keys_under(s3) == ["_manifest.json"]


def test_interval_below_min_rows_skips_naming_the_count(s3: Any, snowflake_server: dict) -> None:
    op = make_operator(
        snowflake_server,
        interval_start=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        interval_end=dt.datetime(2026, 1, 1, 1, tzinfo=dt.UTC),
        min_rows=1000,
    )
    with pytest.raises(AirflowSkipException, match=r"only 60 rows in FRAUD_DB\.RAW\.CARD_TRANSACTIONS .*min_rows=1000"):
        op.execute({})
    assert json.loads(read_object(s3, "_manifest.json"))["row_count"] == 60


def test_aware_interval_bounds_are_converted_to_utc(s3: Any, snowflake_server: dict) -> None:
    # 01:00+01:00 is 00:00 UTC: the first hour of data, 60 rows
    result = make_operator(
        snowflake_server,
        interval_start="2026-01-01T01:00:00+01:00",
        interval_end="2026-01-01T02:00:00+01:00",
    ).execute({})
    assert result["row_count"] == 60
    assert json.loads(read_object(s3, "_manifest.json"))["query"]["interval_start"] == "2026-01-01T00:00:00"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"interval_end": "2026-01-01T00:00:00"}, "interval_start must be before", id="empty-window"),
        pytest.param({"interval_start": "last tuesday"}, "not an ISO 8601", id="unparseable-start"),
        pytest.param({"sql_path": "../secrets.sql"}, "relative path under include/", id="path-escape"),
        pytest.param({"sql_path": "sql/missing.sql"}, "file not found", id="missing-sql"),
    ],
)
def test_bad_inputs_fail_before_touching_s3(s3: Any, overrides: dict, message: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=PREFIX.split(BUCKET + "/")[1] + "_manifest.json", Body=b"{}")
    op = make_operator({}, **overrides)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        op.execute({})
    assert keys_under(s3) == ["_manifest.json"]  # the previous dataset is untouched


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"mode": "copy"}, "mode must be one of", id="unknown-mode"),
        pytest.param({"mode": "unload"}, "needs a stage or a storage_integration", id="unload-without-stage"),
        pytest.param({"batch_rows": 0}, "batch_rows must be at least 1", id="zero-batch"),
    ],
)
def test_bad_arguments_fail_at_parse_time(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_operator({}, **overrides)


def test_templated_fields_are_the_interval_and_destination() -> None:
    assert {"interval_start", "interval_end", "s3_uri", "sql_path"} <= set(SnowflakeToS3ParquetOperator.template_fields)


def test_a_failing_query_leaves_the_previous_dataset_in_place(
    s3: Any, snowflake_in_process: dict, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_operator(snowflake_in_process).execute({})
    before = keys_under(s3)
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "broken.sql").write_text(
        "SELECT * FROM NO_SUCH_TABLE WHERE ts >= %(interval_start)s AND ts < %(interval_end)s"
    )
    monkeypatch.setenv("ML_LIFECYCLE_INCLUDE_DIR", str(tmp_path))

    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="NO_SUCH_TABLE"):
        make_operator(snowflake_in_process, sql_path="sql/broken.sql").execute({})

    assert keys_under(s3) == before
    assert json.loads(read_object(s3, "_manifest.json"))["row_count"] == N_ROWS


def test_a_query_whose_columns_differ_from_the_contract_fails_before_it_runs(
    s3: Any, snowflake_in_process: dict, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    contract = "code/common/features_schema.json"
    make_operator(snowflake_in_process, contract_path=contract).execute({})  # the project's query agrees
    before = keys_under(s3)
    repo_include = Path(__file__).resolve().parents[3] / "include"
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "features.sql").write_text(
        (repo_include / "sql" / "features.sql").read_text().replace('AS "channel",', 'AS "sales_channel",')
    )
    (tmp_path / "code" / "common").mkdir(parents=True)
    (tmp_path / contract).write_bytes((repo_include / contract).read_bytes())
    monkeypatch.setenv("ML_LIFECYCLE_INCLUDE_DIR", str(tmp_path))

    with pytest.raises(AirflowFailException, match=r"^sql/features\.sql: output columns .* missing \['channel'\]"):
        make_operator(snowflake_in_process, contract_path=contract).execute({})

    assert keys_under(s3) == before
