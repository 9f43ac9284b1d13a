"""The feature SQL runs on the Snowflake emulator and computes the window features as specified."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakesnow
import pytest
import snowflake.connector
import sqlglot

INCLUDE = Path(__file__).resolve().parents[3] / "include"
SQL = (INCLUDE / "sql" / "features.sql").read_text()
SCHEMA = json.loads((INCLUDE / "code" / "common" / "features_schema.json").read_text())

DDL = """
CREATE TABLE CARD_TRANSACTIONS (
    TRANSACTION_ID VARCHAR NOT NULL, EVENT_TS TIMESTAMP_NTZ, CARD_ID VARCHAR, MERCHANT_ID VARCHAR,
    MERCHANT_CATEGORY VARCHAR, AMOUNT NUMBER(12,2), CURRENCY VARCHAR(3), CHANNEL VARCHAR,
    CARD_PRESENT BOOLEAN, MERCHANT_COUNTRY VARCHAR(2), CARD_COUNTRY VARCHAR(2), CUSTOMER_SEGMENT VARCHAR,
    IS_FRAUD BOOLEAN
)
"""

# Interval under test: [2026-01-02 00:00, 2026-01-04 00:00). 2026-01-02 is a Friday, 2026-01-03 a Saturday.
START = dt.datetime(2026, 1, 2)
END = dt.datetime(2026, 1, 4)

# (id, ts, card, category, amount, channel, card_present, merchant_country, card_country, is_fraud)
ROWS = [
    ("h-old", "2025-12-25 12:00:00", "c1", "grocery", 1000.00, "POS", True, "US", "US", False),
    ("h-1", "2026-01-01 08:05:00", "c1", "grocery", 100.00, "POS", True, "US", "US", False),
    ("r-start", "2026-01-02 00:00:00", "c4", "fuel", 20.00, "POS", True, "US", "US", False),
    ("r-1", "2026-01-02 08:00:00", "c1", "restaurant", 50.00, "POS", True, "US", "US", False),
    ("r-2", "2026-01-02 08:05:00", "c1", "electronics", 300.00, "ECOM", False, "US", "US", True),
    ("r-other", "2026-01-02 08:06:00", "c4", "travel", 80.00, "POS", True, "FR", "US", False),
    ("r-nocard", "2026-01-02 10:00:00", None, "health", 15.00, "ATM", True, "US", "US", None),
    ("r-negative", "2026-01-02 12:00:00", "c5", "grocery", -30.00, "POS", True, "US", "US", False),
    ("r-weekend", "2026-01-03 23:30:00", "c2", "online_retail", 40.00, "ECOM", False, "DE", "US", True),
    ("after-end", "2026-01-04 00:00:00", "c1", "grocery", 10.00, "POS", True, "US", "US", False),
]


@pytest.fixture(scope="module")
def cursor() -> Iterator[Any]:
    with fakesnow.patch():
        conn = snowflake.connector.connect(database="FRAUD_DB", schema="RAW")
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS FRAUD_DB")
        cur.execute("CREATE SCHEMA IF NOT EXISTS FRAUD_DB.RAW")
        cur.execute("USE SCHEMA FRAUD_DB.RAW")
        cur.execute(DDL)
        cur.executemany(
            "INSERT INTO CARD_TRANSACTIONS (TRANSACTION_ID, EVENT_TS, CARD_ID, MERCHANT_ID,"
            " MERCHANT_CATEGORY, AMOUNT, CURRENCY, CHANNEL, CARD_PRESENT, MERCHANT_COUNTRY, CARD_COUNTRY,"
            " CUSTOMER_SEGMENT, IS_FRAUD) VALUES (%s, %s, %s, 'm-1', %s, %s, 'USD', %s, %s, %s, %s, 'student', %s)",
            ROWS,
        )
        yield cur
        conn.close()


def _run(cursor: Any, start: Any, end: Any) -> dict[str, dict[str, Any]]:
    cursor.execute(SQL, {"interval_start": start, "interval_end": end})
    names = [d.name for d in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(START, END, id="datetime-binds"),
        pytest.param("2026-01-02 00:00:00", "2026-01-04 00:00:00", id="string-binds"),
        pytest.param("2026-01-02 00:00:00.000000", "2026-01-04 00:00:00.000000", id="microsecond-string-binds"),
    ],
)
def test_emits_only_rows_of_the_half_open_interval(cursor: Any, start: Any, end: Any) -> None:
    rows = _run(cursor, start, end)
    assert sorted(rows) == ["r-1", "r-2", "r-negative", "r-nocard", "r-other", "r-start", "r-weekend"]


def test_output_columns_are_the_dataset_contract_in_order(cursor: Any) -> None:
    cursor.execute(SQL, {"interval_start": START, "interval_end": END})
    assert [d.name for d in cursor.description] == [c["name"] for c in SCHEMA["columns"]]
    assert SCHEMA["keys"] + SCHEMA["attributes"] + SCHEMA["features"] + [SCHEMA["label"]] == [
        c["name"] for c in SCHEMA["columns"]
    ]


def test_card_window_features_use_history_before_the_interval(cursor: Any) -> None:
    rows = _run(cursor, START, END)
    # r-1: h-1 is 23h55m earlier (counted); h-old is outside both windows.
    assert rows["r-1"]["card_txn_count_24h"] == 1
    assert rows["r-1"]["card_avg_amount_7d"] == pytest.approx(100.0)
    assert rows["r-1"]["amount_to_card_avg_ratio"] == pytest.approx(0.5)
    # r-2: h-1 exactly 24h earlier (inclusive bound) and r-1; the average is over both.
    assert rows["r-2"]["card_txn_count_24h"] == 2
    assert rows["r-2"]["card_avg_amount_7d"] == pytest.approx(75.0)
    assert rows["r-2"]["amount_to_card_avg_ratio"] == pytest.approx(4.0)


def test_windows_are_per_card_and_exclude_the_transaction_itself(cursor: Any) -> None:
    rows = _run(cursor, START, END)
    # c4 had r-start earlier that day but none of c1's activity leaks in.
    assert rows["r-other"]["card_txn_count_24h"] == 1
    assert rows["r-other"]["card_avg_amount_7d"] == pytest.approx(20.0)
    # a card's first transaction is its own baseline
    assert rows["r-start"]["card_txn_count_24h"] == 0
    assert rows["r-start"]["card_avg_amount_7d"] == pytest.approx(20.0)
    assert rows["r-start"]["amount_to_card_avg_ratio"] == pytest.approx(1.0)


def test_row_level_features(cursor: Any) -> None:
    rows = _run(cursor, START, END)
    weekend = rows["r-weekend"]
    assert weekend["hour_of_day"] == 23
    assert weekend["day_of_week"] == 5  # Saturday, Monday = 0
    assert weekend["is_weekend"] is True
    assert weekend["is_foreign"] is True
    assert weekend["card_present"] is False
    assert weekend["channel"] == "ECOM"
    assert weekend["merchant_category"] == "online_retail"
    assert weekend["is_fraud"] == 1
    assert weekend["log_amount"] == pytest.approx(math.log(41.0))
    friday = rows["r-1"]
    assert (friday["day_of_week"], friday["is_weekend"], friday["hour_of_day"]) == (4, False, 8)
    assert friday["is_foreign"] is False
    assert friday["is_fraud"] == 0
    assert friday["event_ts"] == dt.datetime(2026, 1, 2, 8, 0)


def test_missing_card_or_label_stays_null_for_validation_to_catch(cursor: Any) -> None:
    row = _run(cursor, START, END)["r-nocard"]
    assert row["card_txn_count_24h"] is None
    assert row["card_avg_amount_7d"] is None
    assert row["amount_to_card_avg_ratio"] is None
    assert row["is_fraud"] is None
    assert row["amount"] == pytest.approx(15.0)


def test_broken_amount_reaches_validation_instead_of_failing_the_query(cursor: Any) -> None:
    row = _run(cursor, START, END)["r-negative"]
    assert row["amount"] == pytest.approx(-30.0)
    assert row["log_amount"] is None


def test_is_valid_snowflake_sql() -> None:
    bound = SQL.replace("%(interval_start)s", "'2026-01-02 00:00:00'").replace(
        "%(interval_end)s", "'2026-01-04 00:00:00'"
    )
    assert "%" not in bound, "a bare percent sign breaks pyformat binding"
    statements = sqlglot.parse(bound, read="snowflake", error_level=sqlglot.ErrorLevel.RAISE)
    assert len(statements) == 1
