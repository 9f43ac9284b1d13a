"""LabelsToS3Operator: late labels in the Snowflake emulator -> SageMaker ground-truth jsonl per arrival hour (moto)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import snowflake.connector
from airflow.providers.common.compat.sdk import AirflowFailException
from moto import mock_aws

from ml_lifecycle.operators.labels import LabelsToS3Operator, group_by_hour
from tests import fakesnow_server

BUCKET = "monitoring-test"
PREFIX = f"s3://{BUCKET}/monitoring/fraud-endpoint/labels/"
NOW = dt.datetime(2026, 1, 10, 12, 30)

DDL = (
    """CREATE OR REPLACE TABLE CARD_TRANSACTIONS (
    TRANSACTION_ID VARCHAR NOT NULL, EVENT_TS TIMESTAMP_NTZ, CUSTOMER_SEGMENT VARCHAR, IS_FRAUD BOOLEAN)""",
    """CREATE OR REPLACE TABLE FRAUD_LABELS (
    TRANSACTION_ID VARCHAR NOT NULL, IS_FRAUD BOOLEAN NOT NULL, LABELED_AT TIMESTAMP_NTZ NOT NULL)""",
)
# (transaction id, event time, segment, is fraud, labelled at)
ROWS = [
    ("tx-1", "2026-01-05 10:00:00", "consumer", False, "2026-01-08 09:15:00"),
    ("tx-2", "2026-01-05 11:00:00", "student", True, "2026-01-08 09:59:59"),
    ("tx-3", "2026-01-06 08:00:00", "premium", False, "2026-01-08 10:00:00"),
    ("tx-4", "2026-01-06 09:00:00", "student", True, "2026-01-09 23:10:00"),
    ("tx-early", "2026-01-01 09:00:00", "consumer", False, "2026-01-07 23:59:59"),
    # arrives during the current hour, and in the future: not there yet for a run now
    ("tx-now", "2026-01-08 09:00:00", "consumer", True, "2026-01-10 12:05:00"),
    ("tx-later", "2026-01-09 09:00:00", "consumer", True, "2026-01-14 08:00:00"),
]


class _ConnectHook:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def get_conn(self) -> Any:
        return snowflake.connector.connect(**self.kwargs)


@pytest.fixture(scope="module")
def snowflake_server() -> Iterator[dict[str, Any]]:
    with fakesnow_server.start() as kwargs:
        kwargs = {**kwargs, "database": "FRAUD_DB", "schema": "RAW"}
        conn = snowflake.connector.connect(**kwargs)
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS FRAUD_DB")
        cur.execute("CREATE SCHEMA IF NOT EXISTS FRAUD_DB.RAW")
        cur.execute("USE SCHEMA FRAUD_DB.RAW")
        for statement in DDL:
            cur.execute(statement)
        for tx, ts, segment, fraud, labeled in ROWS:
            cur.execute("INSERT INTO CARD_TRANSACTIONS VALUES (%s, %s, %s, %s)", (tx, ts, segment, fraud))
            cur.execute("INSERT INTO FRAUD_LABELS VALUES (%s, %s, %s)", (tx, fraud, labeled))
        conn.close()
        yield kwargs


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


def make_operator(conn_kwargs: dict[str, Any], now: dt.datetime = NOW, **overrides: Any) -> LabelsToS3Operator:
    args: dict[str, Any] = {
        "task_id": "export_labels",
        "snowflake_conn_id": "snowflake_default",
        "aws_conn_id": None,
        "arrived_from": "2026-01-08T00:00:00+00:00",
        "arrived_until": "2026-01-10T13:00:00+00:00",
        "labels_uri": PREFIX,
        "source_name": "FRAUD_DB.RAW.FRAUD_LABELS",
        **overrides,
    }
    op = LabelsToS3Operator(**args)
    op.get_snowflake_hook = lambda: _ConnectHook(**conn_kwargs)  # type: ignore[method-assign]
    op.now = lambda: now  # type: ignore[method-assign]
    return op


def objects(client: Any) -> dict[str, list[dict[str, Any]]]:
    key = PREFIX.split(BUCKET + "/", 1)[1]
    out = {}
    for obj in client.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", []):
        body = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode()
        out[obj["Key"][len(key) :]] = [json.loads(line) for line in body.splitlines()]
    return out


def test_labels_land_by_arrival_hour_in_sagemakers_ground_truth_layout(s3: Any, snowflake_server: dict) -> None:
    result = make_operator(snowflake_server).execute({})

    assert result == {
        "labels_uri": PREFIX,
        "arrived_from": "2026-01-08T00:00:00Z",
        # capped at the current hour: tx-now (12:05) has arrived but its hour is not complete
        "arrived_until": "2026-01-10T12:00:00Z",
        "labels": 4,
        "fraud": 2,
        "objects": 3,
        "hours": 60,
        "removed": 0,
        "duplicates": 0,
    }
    found = objects(s3)
    assert sorted(found) == [
        "2026/01/08/09/labels-2026010809.jsonl",
        "2026/01/08/10/labels-2026010810.jsonl",
        "2026/01/09/23/labels-2026010923.jsonl",
    ]
    assert found["2026/01/08/09/labels-2026010809.jsonl"] == [
        {
            "groundTruthData": {"data": "0", "encoding": "CSV"},
            "eventMetadata": {"eventId": "tx-1"},
            "eventVersion": "0",
            "attributes": {"customer_segment": "consumer"},
        },
        {
            "groundTruthData": {"data": "1", "encoding": "CSV"},
            "eventMetadata": {"eventId": "tx-2"},
            "eventVersion": "0",
            "attributes": {"customer_segment": "student"},
        },
    ]
    ids = [line["eventMetadata"]["eventId"] for lines in found.values() for line in lines]
    assert "tx-early" not in ids and "tx-now" not in ids and "tx-later" not in ids


def test_the_same_window_writes_the_same_objects_and_removes_stale_ones(s3: Any, snowflake_server: dict) -> None:
    make_operator(snowflake_server).execute({})
    first = objects(s3)
    key = PREFIX.split(BUCKET + "/", 1)[1]
    # a stale hour of the window (e.g. from before a re-seed) and an object outside the window
    s3.put_object(Bucket=BUCKET, Key=key + "2026/01/09/05/labels-2026010905.jsonl", Body=b"{}\n")
    s3.put_object(Bucket=BUCKET, Key=key + "2026/01/11/05/labels-2026011105.jsonl", Body=b"{}\n")

    result = make_operator(snowflake_server).execute({})

    assert result["removed"] == 1
    again = objects(s3)
    outside = again.pop("2026/01/11/05/labels-2026011105.jsonl")
    assert outside == [{}]
    assert again == first


def test_a_later_run_adds_the_labels_that_arrived_since(s3: Any, snowflake_server: dict) -> None:
    make_operator(snowflake_server).execute({})
    later = make_operator(snowflake_server, now=dt.datetime(2026, 1, 15, 0, 0), arrived_until="2026-01-15T00:00:00")

    result = later.execute({})

    assert result["labels"] == 6
    found = objects(s3)
    assert "2026/01/10/12/labels-2026011012.jsonl" in found
    assert found["2026/01/14/08/labels-2026011408.jsonl"][0]["eventMetadata"]["eventId"] == "tx-later"


def test_no_label_in_the_window_writes_nothing_and_is_not_an_error(s3: Any, snowflake_server: dict) -> None:
    result = make_operator(
        snowflake_server, arrived_from="2026-01-02T00:00:00", arrived_until="2026-01-07T00:00:00"
    ).execute({})

    assert result["labels"] == 0 and result["objects"] == 0
    assert objects(s3) == {}


def test_a_window_entirely_in_the_future_exports_nothing(s3: Any, snowflake_server: dict) -> None:
    result = make_operator(
        snowflake_server, arrived_from="2026-01-12T00:00:00", arrived_until="2026-01-14T00:00:00"
    ).execute({})

    assert result["labels"] == 0 and result["hours"] == 0


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        ("2026-01-08T10:00:00", "2026-01-08T10:30:00", "empty or inverted arrival window"),
        ("2026-01-09T00:00:00", "2026-01-08T00:00:00", "empty or inverted arrival window"),
        ("yesterday", "2026-01-08T00:00:00", "arrived_from='yesterday' is not an ISO 8601"),
    ],
)
def test_a_bad_window_is_refused_naming_it(start: str, end: str, words: str) -> None:
    op = make_operator({}, arrived_from=start, arrived_until=end)
    with pytest.raises(ValueError, match=words):
        op.window()


def test_duplicate_transactions_keep_one_label_and_bad_rows_are_named() -> None:
    at = dt.datetime(2026, 1, 8, 9, 30)
    columns = ["transaction_id", "is_fraud", "labeled_at", "customer_segment"]
    by_hour, counts = group_by_hour([("tx-1", 1, at, "student"), ("tx-1", 1, at, "student")], columns)
    assert counts == {"labels": 1, "fraud": 1, "duplicates": 1}
    assert len(by_hour[dt.datetime(2026, 1, 8, 9)]) == 1
    with pytest.raises(ValueError, match="must start with"):
        group_by_hour([], ["id", "label", "at"])
    with pytest.raises(ValueError, match="tx-2: is_fraud must be 0 or 1, got 2"):
        group_by_hour([("tx-2", 2, at, "student")], columns)
    with pytest.raises(ValueError, match="tx-3: labeled_at is None"):
        group_by_hour([("tx-3", 0, None, "student")], columns)


def test_a_query_without_the_label_columns_fails_the_task(s3: Any, snowflake_server: dict, tmp_path: Any) -> None:
    op = make_operator(snowflake_server)
    op.query = lambda start, end: (["id", "label", "at"], [])  # type: ignore[method-assign]
    with pytest.raises(AirflowFailException, match=r"sql/labels_export.sql on FRAUD_DB.RAW.FRAUD_LABELS: .*must start"):
        op.execute({})
