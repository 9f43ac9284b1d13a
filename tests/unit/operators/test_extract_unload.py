"""SnowflakeToS3ParquetOperator, unload mode: the generated COPY INTO, safe literals, and the manifest.

Snowflake's COPY INTO <location> cannot run on the emulator, so a scripted cursor stands in for Snowflake:
it answers DESC STAGE and, on COPY INTO, writes Parquet files to the (moto) S3 prefix as Snowflake would.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.providers.common.compat.sdk import AirflowSkipException
from moto import mock_aws

from ml_lifecycle.data.unload import (
    UnsafeSqlValueError,
    bind_literals,
    copy_into_statement,
    external_location,
    stage_location,
    stage_url_from_describe,
)
from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator

BUCKET = "datasets-test"
PREFIX = f"s3://{BUCKET}/datasets/train_model/20260101-20260301/"
QUERY = (
    'SELECT transaction_id AS "transaction_id"\nFROM CARD_TRANSACTIONS\n'
    "WHERE event_ts >= TO_TIMESTAMP_NTZ(%(interval_start)s)\n  AND event_ts < TO_TIMESTAMP_NTZ(%(interval_end)s)\n"
    "  AND merchant_id NOT LIKE 'x%%'\n"
)


def test_binds_interval_literals_and_unescapes_percent() -> None:
    bound = bind_literals(
        QUERY, {"interval_start": dt.datetime(2026, 1, 1), "interval_end": "2026-03-01T00:00:00+00:00"}
    )
    assert bound == (
        'SELECT transaction_id AS "transaction_id"\nFROM CARD_TRANSACTIONS\n'
        "WHERE event_ts >= TO_TIMESTAMP_NTZ('2026-01-01 00:00:00.000000')\n"
        "  AND event_ts < TO_TIMESTAMP_NTZ('2026-03-01 00:00:00.000000')\n"
        "  AND merchant_id NOT LIKE 'x%'\n"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("2026-01-01'); DROP TABLE CARD_TRANSACTIONS; --", "only ISO dates", id="quote-injection"),
        pytest.param("2026-01-01 00:00:00' OR '1'='1", "only ISO dates", id="tautology"),
        pytest.param(b"2026-01-01", "unsupported type bytes", id="bytes"),
        pytest.param(float("nan"), "has no SQL literal", id="nan"),
        pytest.param(["2026-01-01"], "unsupported type list", id="list"),
    ],
)
def test_rejects_values_without_a_safe_literal(value: Any, message: str) -> None:
    with pytest.raises(UnsafeSqlValueError, match=message):
        bind_literals(QUERY, {"interval_start": value, "interval_end": dt.datetime(2026, 3, 1)})


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        pytest.param("SELECT 1 WHERE a LIKE 'x%'", "bare '%'", id="bare-percent"),
        pytest.param("SELECT %(other)s", "no value was given for 'other'", id="unknown-placeholder"),
    ],
)
def test_rejects_malformed_queries(sql: str, message: str) -> None:
    with pytest.raises(UnsafeSqlValueError, match=message):
        bind_literals(sql, {"interval_start": dt.datetime(2026, 1, 1)})


def test_copy_into_stage_exact_text() -> None:
    statement = copy_into_statement(
        'SELECT 1 AS "one" -- trailing comment\n;\n',
        stage_location("FRAUD_DB.RAW.ML_STAGE", "datasets/train_model/20260101-20260301/"),
        max_file_size=128 * 1024 * 1024,
    )
    assert statement == (
        "COPY INTO @FRAUD_DB.RAW.ML_STAGE/datasets/train_model/20260101-20260301/\n"
        "FROM (\n"
        'SELECT 1 AS "one" -- trailing comment\n'
        ")\n"
        "FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY)\n"
        "OVERWRITE = TRUE\n"
        "SINGLE = FALSE\n"
        "MAX_FILE_SIZE = 134217728\n"
        "HEADER = TRUE"
    )


def test_copy_into_external_location_exact_text() -> None:
    location = external_location("s3://datasets-test/datasets/x/20260101-20260301", "ML_S3_INTEGRATION")
    assert location == "'s3://datasets-test/datasets/x/20260101-20260301/' STORAGE_INTEGRATION = ML_S3_INTEGRATION"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda: stage_location("ML_STAGE; DROP TABLE T", "a"), "not a valid", id="stage-injection"),
        pytest.param(lambda: stage_location("ML_STAGE", "a/../../b"), "'..' segment", id="path-traversal"),
        pytest.param(lambda: stage_location("ML_STAGE", "a' b"), "characters outside", id="path-quote"),
        pytest.param(lambda: external_location("s3://b-ok/p'x/", "INT"), "characters outside", id="url-quote"),
        pytest.param(lambda: external_location("s3://b-ok/p/", "INT X"), "not a valid", id="integration-space"),
        pytest.param(lambda: copy_into_statement("SELECT 1", "@S/", max_file_size=0), "max_file_size", id="size"),
        pytest.param(lambda: copy_into_statement(" ;\n", "@S/"), "query is empty", id="empty-query"),
    ],
)
def test_rejects_unsafe_names(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_stage_url_is_read_from_desc_stage() -> None:
    columns = ["parent_property", "property", "property_type", "property_value", "property_default"]
    rows = [
        ("STAGE_LOCATION", "URL", "String", '["s3://datasets-test/"]', ""),
        ("STAGE_LOCATION", "AWS_ROLE", "String", "", ""),
    ]
    assert stage_url_from_describe(rows, columns, "ML_STAGE") == "s3://datasets-test/"
    with pytest.raises(ValueError, match="internal stage"):
        stage_url_from_describe([("STAGE_LOCATION", "AWS_ROLE", "String", "", "")], columns, "ML_STAGE")


# ------------------------------------------------------------------------------- operator with a fake Snowflake


class _Meta(tuple):
    """A DB-API description entry (name, type_code, display_size, internal_size, precision, scale, null_ok)."""


class FakeSnowflake:
    """Answers DESC STAGE and COPY INTO like Snowflake; COPY writes ``files`` (tables) under the prefix."""

    def __init__(self, s3: Any, files: list[pa.Table], *, report_rows: int | None = None) -> None:
        self.s3 = s3
        self.files = files
        self.report_rows = report_rows
        self.statements: list[str] = []

    # hook + connection + cursor in one
    def get_conn(self) -> FakeSnowflake:
        return self

    def cursor(self) -> FakeSnowflake:
        return self

    def close(self) -> None:
        pass

    sfqid = "01b2c3d4-0000-0001-0000-000100010001"

    def execute(self, statement: str, params: Any = None) -> None:
        assert params is None, "unload statements carry literals, never binds"
        self.statements.append(statement)
        if statement.startswith("DESC STAGE"):
            self.description = [
                (n, 2, None, None, None, None, True)
                for n in ("parent_property", "property", "property_type", "property_value", "property_default")
            ]
            self._rows = [("STAGE_LOCATION", "URL", "String", f'["s3://{BUCKET}/datasets/"]', "")]
            return
        assert statement.startswith("COPY INTO")
        key = PREFIX.split(BUCKET + "/", 1)[1]
        for index, table in enumerate(self.files):
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            self.s3.put_object(Bucket=BUCKET, Key=f"{key}data_0_0_{index}.snappy.parquet", Body=buffer.getvalue())
        rows = sum(t.num_rows for t in self.files) if self.report_rows is None else self.report_rows
        self.description = [(n, 0, None, None, 38, 0, False) for n in ("rows_unloaded", "input_bytes", "output_bytes")]
        self._rows = [(rows, 1000, 900)]

    def fetchall(self) -> list[tuple]:
        return self._rows


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _table(ids: list[str], *, name: str = "transaction_id") -> pa.Table:
    return pa.table({name: ids, "amount": [1.5] * len(ids)})


def _operator(fake: FakeSnowflake, **overrides: Any) -> SnowflakeToS3ParquetOperator:
    args: dict[str, Any] = {"stage": "FRAUD_DB.RAW.ML_STAGE", "s3_uri": PREFIX, **overrides}
    op = SnowflakeToS3ParquetOperator(
        task_id="extract",
        snowflake_conn_id="snowflake_default",
        aws_conn_id=None,
        sql_path="sql/features.sql",
        interval_start="2026-01-01T00:00:00+00:00",
        interval_end="2026-03-01T00:00:00+00:00",
        mode="unload",
        batch_rows=50_000,
        max_file_size=64 * 1024 * 1024,
        source_name="FRAUD_DB.RAW.CARD_TRANSACTIONS",
        **args,
    )
    op.get_snowflake_hook = lambda: fake  # type: ignore[method-assign]
    return op


def test_unload_runs_copy_into_the_stage_path_and_writes_the_manifest(s3: Any) -> None:
    key = PREFIX.split(BUCKET + "/", 1)[1]
    s3.put_object(Bucket=BUCKET, Key=f"{key}data_0_0_7.snappy.parquet", Body=b"stale file of an earlier run")
    fake = FakeSnowflake(s3, [_table(["a", "b", "c"]), _table(["d"])])

    result = _operator(fake).execute({})

    desc, copy = fake.statements
    assert desc == "DESC STAGE FRAUD_DB.RAW.ML_STAGE"
    assert copy.startswith("COPY INTO @FRAUD_DB.RAW.ML_STAGE/train_model/20260101-20260301/\nFROM (\n-- Card")
    assert "TO_TIMESTAMP_NTZ('2026-01-01 00:00:00.000000')" in copy
    assert "TO_TIMESTAMP_NTZ('2026-03-01 00:00:00.000000')" in copy
    assert "%(" not in copy
    assert copy.endswith("MAX_FILE_SIZE = 67108864\nHEADER = TRUE")
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{key}_manifest.json")["Body"].read())
    assert [(p["name"], p["rows"]) for p in manifest["parts"]] == [
        ("data_0_0_0.snappy.parquet", 3),
        ("data_0_0_1.snappy.parquet", 1),
    ]
    assert manifest["schema"] == [{"name": "transaction_id", "type": "string"}, {"name": "amount", "type": "double"}]
    assert manifest["query"]["snowflake_query_id"] == FakeSnowflake.sfqid
    assert manifest["extraction"]["mode"] == "unload"
    assert result["row_count"] == 4
    assert result["columns"] == ["transaction_id", "amount"]


def test_unload_manifest_records_number_columns_in_the_types_readers_see(s3: Any) -> None:
    """Snowflake unloads NUMBER(p,0) as decimal(p,0) and NUMBER(p,s) as decimal(p,s); every reader casts them
    to int64 / float64 (as stream mode writes them), and the manifest says so."""

    def unloaded(ids: list[str]) -> pa.Table:
        return pa.table(
            {
                "transaction_id": ids,
                "card_txn_count_24h": pa.array([3] * (len(ids) - 1) + [None], pa.decimal128(38, 0)),
                "amount": pa.array([None] + [decimal.Decimal("12.50")] * (len(ids) - 1), pa.decimal128(12, 2)),
            }
        )

    key = PREFIX.split(BUCKET + "/", 1)[1]
    fake = FakeSnowflake(s3, [unloaded(["a", "b"]), unloaded(["c", "d"])])

    _operator(fake).execute({})

    stored = pq.read_schema(
        io.BytesIO(s3.get_object(Bucket=BUCKET, Key=f"{key}data_0_0_0.snappy.parquet")["Body"].read())
    )
    assert stored.field("card_txn_count_24h").type == pa.decimal128(38, 0)
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{key}_manifest.json")["Body"].read())
    assert manifest["schema"] == [
        {"name": "transaction_id", "type": "string"},
        {"name": "card_txn_count_24h", "type": "int64"},
        {"name": "amount", "type": "double"},
    ]


def test_unload_with_a_storage_integration_targets_the_url(s3: Any) -> None:
    fake = FakeSnowflake(s3, [_table(["a"])])
    _operator(fake, stage=None, storage_integration="ML_S3_INTEGRATION").execute({})
    (copy,) = fake.statements
    assert copy.startswith(f"COPY INTO '{PREFIX}' STORAGE_INTEGRATION = ML_S3_INTEGRATION\nFROM (\n")


def test_unload_of_an_empty_interval_skips(s3: Any) -> None:
    fake = FakeSnowflake(s3, [])
    with pytest.raises(AirflowSkipException, match=r"no rows in FRAUD_DB\.RAW\.CARD_TRANSACTIONS for \[2026-01-01"):
        _operator(fake).execute({})


@pytest.mark.parametrize(
    ("files", "report_rows", "message"),
    [
        pytest.param([_table(["a"])], 5, "reported 5 rows unloaded", id="row-count-mismatch"),
        pytest.param([_table(["a"], name="TRANSACTION_ID")], None, "not lower case", id="upper-case-column"),
    ],
)
def test_unload_refuses_inconsistent_output(s3: Any, files: list, report_rows: int | None, message: str) -> None:
    with pytest.raises((RuntimeError, ValueError), match=message):
        _operator(FakeSnowflake(s3, files, report_rows=report_rows)).execute({})


def test_unload_refuses_a_destination_outside_the_stage(s3: Any) -> None:
    fake = FakeSnowflake(s3, [])
    with pytest.raises(ValueError, match="is not under stage"):
        _operator(fake, s3_uri="s3://other-bucket/datasets/x/").execute({})
