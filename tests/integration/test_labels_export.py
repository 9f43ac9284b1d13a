"""Labels export against the devstack: the seeded late labels in the Snowflake stand-in -> ground truth in its S3.

Goes through the real Airflow connections the devstack exports (``snowflake_default`` through the project's
Snowflake hook, ``aws_default`` through the provider's S3 hook); nothing is patched.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from ml_lifecycle.operators.labels import LabelsToS3Operator

pytestmark = pytest.mark.integration

BUCKET = "ml-lifecycle-it-labels"
PREFIX = f"s3://{BUCKET}/monitoring/fraud-detector/labels/"
# a week of arrivals inside the seeded history (2026-01-01 .. 2026-03-01), long in the past
ARRIVED_FROM = dt.datetime(2026, 2, 1)
ARRIVED_UNTIL = dt.datetime(2026, 2, 8)


def export() -> dict[str, Any]:
    return LabelsToS3Operator(
        task_id="export_labels",
        snowflake_conn_id="snowflake_default",
        aws_conn_id="aws_default",
        arrived_from=ARRIVED_FROM.isoformat() + "+00:00",
        arrived_until=ARRIVED_UNTIL.isoformat() + "+00:00",
        labels_uri=PREFIX,
        source_name="FRAUD_DB.RAW.FRAUD_LABELS",
    ).execute({})


def expected_labels(devstack: Any) -> dict[str, tuple[str, str, dt.datetime]]:
    """transaction id -> (label, segment, arrival) of the labels that arrived in the window, read with SQL."""
    conn = devstack.snowflake_connect()
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT l.TRANSACTION_ID, l.IS_FRAUD, t.CUSTOMER_SEGMENT, l.LABELED_AT FROM FRAUD_LABELS l "
            "JOIN CARD_TRANSACTIONS t ON t.TRANSACTION_ID = l.TRANSACTION_ID "
            "WHERE l.LABELED_AT >= %(s)s AND l.LABELED_AT < %(e)s",
            {"s": ARRIVED_FROM, "e": ARRIVED_UNTIL},
        )
        return {tx: ("1" if fraud else "0", segment, at) for tx, fraud, segment, at in cur.fetchall()}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def s3(devstack: Any) -> Any:
    client = devstack.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def read_all(s3: Any) -> dict[str, bytes]:
    key = PREFIX.split(BUCKET + "/", 1)[1]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])
    return {o["Key"][len(key) :]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def test_exports_the_labels_that_arrived_by_arrival_hour_and_again_the_same(devstack: Any, s3: Any) -> None:
    expected = expected_labels(devstack)
    assert len(expected) > 500, "a week of the test seed should see well over 500 labels arrive"

    result = export()

    assert result["labels"] == len(expected)
    assert result["fraud"] == sum(label == "1" for label, _, _ in expected.values())
    assert result["hours"] == 7 * 24
    found = read_all(s3)
    assert len(found) == result["objects"]
    seen = {}
    for name, body in found.items():
        for line in body.decode().splitlines():
            record = json.loads(line)
            tx = record["eventMetadata"]["eventId"]
            seen[tx] = (record["groundTruthData"]["data"], record["attributes"]["customer_segment"])
            arrived = expected[tx][2]
            # filed under the hour the label arrived
            assert name == f"{arrived:%Y/%m/%d/%H}/labels-{arrived:%Y%m%d%H}.jsonl"
            assert record["groundTruthData"]["encoding"] == "CSV" and record["eventVersion"] == "0"
    assert seen == {tx: (label, segment) for tx, (label, segment, _) in expected.items()}

    again = export()

    assert again == result
    assert read_all(s3) == found
