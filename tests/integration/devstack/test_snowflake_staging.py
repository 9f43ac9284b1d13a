"""The stand-in's Snowflake staging on S3, through the real connector: integrations, stages, unload, LIST, load.

Each failure must come back at once as the connector's ``ProgrammingError`` with Snowflake's error code: an
HTTP 500 would make the connector retry for minutes (the connections here time out after 60 s, so a retried
request fails the test instead of hanging it).
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snowflake.connector.errors import ProgrammingError

from tests.integration.devstack.snowflake_support import ROLE, StandIn, create_stage, free_port

pytestmark = pytest.mark.integration

BUCKET = "staging-test"
ROWS = 1000


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3(s3_endpoint: str) -> Any:
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, s3: Any) -> Iterator[StandIn]:
    server = StandIn(tmp_path_factory.mktemp("snowflake"), s3_endpoint)
    server.start()
    with server.connect() as conn:
        conn.cursor().execute("CREATE DATABASE IF NOT EXISTS STAGING_DB")
        conn.cursor().execute("CREATE SCHEMA IF NOT EXISTS STAGING_DB.RAW")
    with server.connect(database="STAGING_DB", schema="RAW") as conn:
        cur = conn.cursor()
        cur.execute(
            "CREATE TABLE SRC (AMOUNT NUMBER(12,2), QTY INT, EVENT_TS TIMESTAMP_NTZ, NAME VARCHAR, FLAG BOOLEAN, "
            "RATIO FLOAT)"
        )
        cur.execute(
            "INSERT INTO SRC SELECT (i * 1.25)::NUMBER(12,2), i, '2026-01-01'::TIMESTAMP_NTZ + to_seconds(i), "
            f"'n' || i, i % 2 = 0, i / 4 FROM range(0, {ROWS}) r(i)"
        )
        cur.execute("INSERT INTO SRC VALUES (NULL, NULL, NULL, NULL, NULL, NULL)")
        create_stage(cur, BUCKET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cur(stand_in: StandIn) -> Iterator[Any]:
    with stand_in.connect(database="STAGING_DB", schema="RAW") as conn:
        yield conn.cursor()


def keys(s3: Any, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def read(s3: Any, key: str) -> pq.ParquetFile:
    return pq.ParquetFile(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))


UNLOAD = (
    'COPY INTO @ML_STAGE/{path} FROM (SELECT AMOUNT AS "amount", QTY, EVENT_TS, NAME, FLAG, RATIO FROM SRC) '
    "FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY) OVERWRITE = TRUE SINGLE = FALSE MAX_FILE_SIZE = {size} "
    "HEADER = TRUE"
)


def test_unload_writes_snowflake_named_parts_with_snowflake_types_and_reports_rows(cur: Any, s3: Any) -> None:
    cur.execute(UNLOAD.format(path="unload/", size=16 * 1024 * 1024))
    assert [d.name for d in cur.description] == ["rows_unloaded", "input_bytes", "output_bytes"]
    [(rows_unloaded, input_bytes, output_bytes)] = cur.fetchall()
    assert rows_unloaded == ROWS + 1
    assert keys(s3, "unload/") == ["unload/data_0_0_0.snappy.parquet"]
    part = read(s3, "unload/data_0_0_0.snappy.parquet")
    assert output_bytes == s3.head_object(Bucket=BUCKET, Key="unload/data_0_0_0.snappy.parquet")["ContentLength"]
    assert input_bytes > 0
    assert part.schema_arrow == pa.schema(
        [
            ("amount", pa.decimal128(12, 2)),
            ("QTY", pa.decimal128(38, 0)),
            ("EVENT_TS", pa.timestamp("us")),
            ("NAME", pa.string()),
            ("FLAG", pa.bool_()),
            ("RATIO", pa.float64()),
        ]
    )
    ts = part.schema.column(2).logical_type
    assert ts.type == "TIMESTAMP" and '"isAdjustedToUTC": false' in ts.to_json()
    assert part.schema.column(0).physical_type == "INT64", "NUMBER(12,2) is stored as an integer decimal"
    assert part.metadata.row_group(0).column(0).compression == "SNAPPY"
    table = part.read()
    first = table.slice(1, 1).to_pylist()[0]
    assert first == {
        "amount": decimal.Decimal("1.25"),
        "QTY": decimal.Decimal(1),
        "EVENT_TS": dt.datetime(2026, 1, 1, 0, 0, 1),
        "NAME": "n1",
        "FLAG": False,
        "RATIO": 0.25,
    }
    assert table.filter(pa.compute.is_null(table["NAME"])).num_rows == 1


def test_unload_splits_at_max_file_size_and_list_shows_the_parts(cur: Any, s3: Any) -> None:
    cur.execute(UNLOAD.format(path="split/part", size=8000))
    [(rows_unloaded, _, output_bytes)] = cur.fetchall()
    names = keys(s3, "split/")
    assert len(names) > 2
    assert names == [f"split/part_0_0_{i}.snappy.parquet" for i in range(len(names))]
    assert sum(read(s3, k).metadata.num_rows for k in names) == rows_unloaded == ROWS + 1

    cur.execute("LIST @ML_STAGE/split/")
    listed = cur.fetchall()
    assert [d.name for d in cur.description] == ["name", "size", "md5", "last_modified"]
    assert [row[0] for row in listed] == [f"s3://{BUCKET}/{k}" for k in names]
    assert sum(row[1] for row in listed) == output_bytes
    assert all(row[3].endswith(" GMT") for row in listed)


def test_unload_without_header_names_columns_by_position_and_refuses_to_overwrite_by_default(cur: Any, s3: Any) -> None:
    cur.execute("COPY INTO @ML_STAGE/noheader/ FROM (SELECT QTY, NAME FROM SRC) FILE_FORMAT = (TYPE = PARQUET)")
    assert read(s3, "noheader/data_0_0_0.snappy.parquet").schema_arrow.names == ["_COL_0", "_COL_1"]
    with pytest.raises(ProgrammingError, match="Files already existing at the unload destination"):
        cur.execute("COPY INTO @ML_STAGE/noheader/ FROM (SELECT QTY FROM SRC) FILE_FORMAT = (TYPE = PARQUET)")


def test_unload_to_an_s3_url_through_the_integration_and_an_empty_result(cur: Any, s3: Any) -> None:
    cur.execute(
        f"COPY INTO 's3://{BUCKET}/direct/' STORAGE_INTEGRATION = ML_S3 FROM (SELECT NAME FROM SRC WHERE QTY < 10) "
        "FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE"
    )
    assert cur.fetchall()[0][0] == 10
    assert keys(s3, "direct/") == ["direct/data_0_0_0.snappy.parquet"]
    cur.execute(
        f"COPY INTO 's3://{BUCKET}/empty/' STORAGE_INTEGRATION = ML_S3 FROM (SELECT NAME FROM SRC WHERE QTY < 0) "
        "FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE"
    )
    assert cur.fetchall()[0][0] == 0
    assert keys(s3, "empty/") == []


def test_load_from_the_external_stage_matches_columns_by_name(cur: Any) -> None:
    cur.execute(UNLOAD.format(path="reload/", size=16 * 1024 * 1024))
    cur.execute(
        'CREATE TABLE RELOADED ("amount" NUMBER(12,2), QTY INT, EVENT_TS TIMESTAMP_NTZ, NAME VARCHAR, '
        "FLAG BOOLEAN, RATIO FLOAT)"
    )
    cur.execute(
        "COPY INTO RELOADED FROM @ML_STAGE/reload/ FILE_FORMAT = (TYPE = PARQUET USE_LOGICAL_TYPE = TRUE) "
        "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE"
    )
    loaded = cur.fetchall()
    assert [(row[0], row[1], row[3]) for row in loaded] == [
        (f"s3://{BUCKET}/reload/data_0_0_0.snappy.parquet", "LOADED", ROWS + 1)
    ]
    cur.execute('SELECT COUNT(*), SUM("amount"), MAX(EVENT_TS) FROM RELOADED')
    assert cur.fetchall() == [(ROWS + 1, decimal.Decimal("624375.00"), dt.datetime(2026, 1, 1, 0, 16, 39))]


def test_stages_and_integrations_follow_snowflakes_ddl(cur: Any) -> None:
    cur.execute("DESC STAGE ML_STAGE")
    properties = {(row[0], row[1]): row[3] for row in cur.fetchall()}
    assert properties[("STAGE_LOCATION", "URL")] == f'["s3://{BUCKET}/"]'
    assert properties[("STAGE_INTEGRATION", "STORAGE_INTEGRATION")] == "ML_S3"

    with pytest.raises(ProgrammingError) as exists:
        cur.execute(f"CREATE STAGE ML_STAGE URL = 's3://{BUCKET}/' STORAGE_INTEGRATION = ML_S3")
    assert exists.value.errno == 2002
    cur.execute(f"CREATE STAGE IF NOT EXISTS ML_STAGE URL = 's3://{BUCKET}/' STORAGE_INTEGRATION = ML_S3")
    # internal stages too: fakesnow alone fails these when the stage exists
    for _ in range(2):
        cur.execute("CREATE OR REPLACE STAGE LOCAL_STAGE")
        cur.execute("CREATE STAGE IF NOT EXISTS LOCAL_STAGE")
    cur.execute("DROP STAGE LOCAL_STAGE")
    cur.execute("DROP STAGE IF EXISTS LOCAL_STAGE")

    with pytest.raises(ProgrammingError, match="not allowed by integration ML_S3") as refused:
        cur.execute("CREATE STAGE ELSEWHERE URL = 's3://other-bucket/' STORAGE_INTEGRATION = ML_S3")
    assert refused.value.errno == 3001
    with pytest.raises(ProgrammingError, match="Integration 'NOPE' does not exist"):
        cur.execute(
            f"COPY INTO 's3://{BUCKET}/x/' STORAGE_INTEGRATION = NOPE FROM (SELECT 1) FILE_FORMAT = (TYPE = PARQUET)"
        )
    with pytest.raises(ProgrammingError, match=r"Stage 'STAGING_DB\.RAW\.MISSING' does not exist"):
        cur.execute("LIST @MISSING")


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("COPY INTO @ML_STAGE/x/ FROM (SELECT 1) FILE_FORMAT = (TYPE = CSV)", "unloading FILE_FORMAT TYPE = CSV"),
        ("COPY INTO @ML_STAGE/x/ FROM (SELECT 1) FILE_FORMAT = (TYPE = PARQUET) PARTITION_BY = 'a'", "PARTITION_BY"),
        ("COPY INTO @ML_STAGE/x/ FROM (SELECT 1) FILE_FORMAT = (TYPE = PARQUET COMPRESSION = LZO)", "LZO"),
        ("COPY INTO SRC FROM @ML_STAGE/reload/ FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE", "option HEADER"),
        ("COPY INTO SRC FROM @ML_STAGE/reload/ FILE_FORMAT = (TYPE = PARQUET) ON_ERROR = CONTINUE", "CONTINUE"),
        ("CREATE STAGE S2 URL = 's3://b/' CREDENTIALS = (AWS_KEY_ID = 'x')", "CREDENTIALS"),
        # fakesnow itself raises AssertionError / a parse error for these; its server would answer HTTP 500
        ("CREATE FILE FORMAT FF TYPE = PARQUET", "FILE FORMAT"),
        ("LIST @LOCAL_ONLY PATTERN = '.*'", "ParseError"),
    ],
)
def test_unsupported_sql_fails_at_once_with_snowflakes_error_shape(cur: Any, statement: str, named: str) -> None:
    if "LOCAL_ONLY" in statement:
        cur.execute("CREATE STAGE IF NOT EXISTS LOCAL_ONLY")
    started = time.monotonic()
    with pytest.raises(ProgrammingError) as failed:
        cur.execute(statement)
    assert time.monotonic() - started < 10, "answered at once, not retried"
    assert failed.value.errno == 2 and failed.value.sqlstate == "0A000"
    assert "Unsupported feature" in failed.value.msg and named in failed.value.msg


def test_staging_objects_survive_a_restart(stand_in: StandIn, s3: Any) -> None:
    stand_in.stop()
    stand_in.start()
    with stand_in.connect(database="STAGING_DB", schema="RAW") as conn:
        cur = conn.cursor()
        cur.execute("COPY INTO @ML_STAGE/after-restart/ FROM (SELECT NAME FROM SRC) FILE_FORMAT = (TYPE = PARQUET)")
        assert cur.fetchall()[0][0] == ROWS + 1
    assert keys(s3, "after-restart/") == ["after-restart/data_0_0_0.snappy.parquet"]


def test_role_arn_is_required(cur: Any) -> None:
    with pytest.raises(ProgrammingError, match="STORAGE_AWS_ROLE_ARN"):
        cur.execute(
            "CREATE STORAGE INTEGRATION BAD TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' ENABLED = TRUE "
            f"STORAGE_ALLOWED_LOCATIONS = ('s3://{BUCKET}/')"
        )
    assert ROLE.startswith("arn:")


def test_no_statement_of_this_module_was_re_sent(stand_in: StandIn) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{stand_in.port}/_devstack/health", timeout=5) as answer:
        assert json.loads(answer.read())["resent_statements"] == 0


def test_re_sent_requests_are_counted() -> None:
    from devstack.snowflake.server import ResentRequests

    counter = ResentRequests(remembered=2)
    for request_id, retry in (("a", None), ("b", None), ("a", None), ("c", "1"), ("d", "0")):
        counter.observe(request_id, retry)
    assert counter.count == 2
    counter.observe("b", None)  # forgotten: only the last two ids are remembered
    assert counter.count == 2
