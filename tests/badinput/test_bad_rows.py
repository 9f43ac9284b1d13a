"""Bad rows: data that breaks the dataset contract stops the run at ``validate``, naming the expectation.

Good rows shaped by ``include/code/common/features_schema.json`` are mixed with a few rows broken in one of the
ways the contract forbids (nulls, negative amounts, unknown categories, duplicate ids, values of the wrong
type, hours or weekdays out of range, labels other than 0/1). The dataset is written to (in-process) S3
in the extraction's layout and validated by ``DataValidationOperator`` in worker mode with the project's
own suite (``include/gx/card_transactions_features.json``): the task must fail with
``AirflowFailException`` (no retry) naming the expectation and the column, after keeping the report.
``train_model`` must gate every SageMaker task on ``validate``, so such data never reaches training.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from ml_lifecycle.data.manifest import build_manifest, write_manifest
from ml_lifecycle.data.parquet import PartWriter, schema_fields
from ml_lifecycle.operators.validation import DataValidationOperator

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = json.loads((ROOT / "include" / "code" / "common" / "features_schema.json").read_text(encoding="utf-8"))
SUITE = "gx/card_transactions_features.json"
BUCKET = "badinput-datasets"
DATASET = f"s3://{BUCKET}/datasets/train_model/20260101-20260301/"
REPORT = DATASET + "validation/"
COLUMNS = [c["name"] for c in CONTRACT["columns"]]
CATEGORIES = {c["name"]: c["categories"] for c in CONTRACT["columns"] if c.get("categories")}
KINDS = {c["name"]: c["kind"] for c in CONTRACT["columns"]}
TEXT_KINDS = frozenset({"string", "categorical"})
# pandas 3 reads text as its ``str`` dtype, which no name in expect_column_values_to_be_in_type_list matches
TYPE_EXPECTATIONS = {
    kind: "expect_column_values_to_be_of_type" if kind in TEXT_KINDS else "expect_column_values_to_be_in_type_list"
    for kind in KINDS.values()
}
# No shrinking: each example validates a dataset (about a second); a failure is reported as generated.
EXAMPLES = settings(
    max_examples=20,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
GOOD_ROWS = 300


def good_rows(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` rows that meet the contract (about 5 % fraud), in the contract's column order."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01")
    event_ts = start + pd.to_timedelta(np.sort(rng.integers(0, 59 * 86400, size=rows)), unit="s")
    amount = np.round(rng.lognormal(3.5, 1.0, size=rows), 2) + 0.01
    average = np.round(amount * rng.uniform(0.5, 1.5, size=rows), 2) + 0.01
    day_of_week = event_ts.dayofweek.to_numpy().astype("int64")
    fraud = np.zeros(rows, dtype="int64")
    fraud[rng.choice(rows, size=max(1, rows // 20), replace=False)] = 1
    frame = pd.DataFrame(
        {
            "transaction_id": [f"tx-{seed:04d}-{i:06d}" for i in range(rows)],
            "event_ts": event_ts,
            "amount": amount,
            "log_amount": np.log1p(amount),
            "hour_of_day": event_ts.hour.to_numpy().astype("int64"),
            "day_of_week": day_of_week,
            "is_weekend": day_of_week >= 5,
            "card_present": rng.random(rows) > 0.3,
            "is_foreign": rng.random(rows) < 0.08,
            "channel": rng.choice(CATEGORIES["channel"], size=rows),
            "merchant_category": rng.choice(CATEGORIES["merchant_category"], size=rows),
            "card_txn_count_24h": rng.poisson(2, size=rows).astype("int64"),
            "card_avg_amount_7d": average,
            "amount_to_card_avg_ratio": amount / average,
            "is_fraud": fraud,
        }
    )
    frame.insert(2, "customer_segment", rng.choice(CATEGORIES["customer_segment"], size=rows))
    assert list(frame.columns) == COLUMNS, "the generator must follow features_schema.json"
    return frame


# ------------------------------------------------------------------------------------------------- defects


@dataclass(frozen=True)
class Defect:
    """One way to break the contract, and the expectation that must name it.

    :param kind: short name (the test id).
    :param expectation: GX expectation type that must fail.
    :param column: the column it must name.
    :param apply: ``(frame, rows, draw) -> frame`` breaking ``rows`` of the frame.
    """

    kind: str
    expectation: str
    column: str
    apply: Callable[[pd.DataFrame, list[int], st.DataObject], pd.DataFrame]

    def __str__(self) -> str:
        return f"{self.kind}({self.column})"


def _set(frame: pd.DataFrame, column: str, rows: list[int], values: list[Any]) -> pd.DataFrame:
    series = frame[column].astype(object)
    for row, value in zip(rows, values, strict=True):
        series.iat[row] = value
    frame[column] = series
    return frame


def _null(column: str) -> Defect:
    return Defect(
        "null",
        "expect_column_values_to_not_be_null",
        column,
        lambda f, rows, draw: _set(f, column, rows, [None] * len(rows)),
    )


def _below(column: str, strict: bool) -> Defect:
    def apply(frame: pd.DataFrame, rows: list[int], draw: st.DataObject) -> pd.DataFrame:
        top = 0.0 if strict else -1e-3
        if pd.api.types.is_integer_dtype(frame[column]):
            values = [draw.draw(st.integers(-(10**6), 0 if strict else -1)) for _ in rows]
            frame[column] = frame[column].astype("int64")
            frame.loc[rows, column] = values
            return frame
        values = [draw.draw(st.floats(-1e6, top, allow_nan=False)) for _ in rows]
        frame.loc[rows, column] = values
        return frame

    return Defect("negative", "expect_column_values_to_be_between", column, apply)


def _out_of_range(column: str, low: int, high: int) -> Defect:
    def apply(frame: pd.DataFrame, rows: list[int], draw: st.DataObject) -> pd.DataFrame:
        values = [draw.draw(st.one_of(st.integers(-1000, low - 1), st.integers(high + 1, 10_000))) for _ in rows]
        frame.loc[rows, column] = values
        return frame

    return Defect("out-of-range", "expect_column_values_to_be_between", column, apply)


def _unknown_category(column: str, allowed: list[Any]) -> Defect:
    def apply(frame: pd.DataFrame, rows: list[int], draw: st.DataObject) -> pd.DataFrame:
        if column == "is_fraud":
            values = [draw.draw(st.integers(2, 9) | st.integers(-9, -1)) for _ in rows]
            frame.loc[rows, column] = values
            return frame
        word = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_ ", min_size=1, max_size=12)
        values = [draw.draw(word.filter(lambda w: w not in allowed)) for _ in rows]
        return _set(frame, column, rows, values)

    return Defect("unknown-category", "expect_column_values_to_be_in_set", column, apply)


def _duplicate_id() -> Defect:
    def apply(frame: pd.DataFrame, rows: list[int], draw: st.DataObject) -> pd.DataFrame:
        # copy from rows that keep their own id, so two broken rows cannot merely swap ids
        sources = st.integers(0, len(frame) - 1).filter(lambda r: r not in rows)
        for row in rows:
            frame.iat[row, 0] = frame.iat[draw.draw(sources), 0]
        return frame

    return Defect("duplicate", "expect_column_values_to_be_unique", "transaction_id", apply)


def _wrong_type(column: str) -> Defect:
    """Values of the wrong type: a few rows of text in a non-text column (the column arrives as text), or a
    text column that arrives as numbers (Parquet holds one type per column, so the whole column changes)."""
    kind = KINDS[column]

    def apply(frame: pd.DataFrame, rows: list[int], draw: st.DataObject) -> pd.DataFrame:
        if kind in TEXT_KINDS:
            frame[column] = draw.draw(st.integers(0, 10**6)) + np.arange(len(frame), dtype="int64")
            return frame
        word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8)
        text = frame[column].astype(str).astype(object)
        for row in rows:
            text.iat[row] = draw.draw(word)
        frame[column] = text
        return frame

    return Defect("wrong-type", TYPE_EXPECTATIONS[kind], column, apply)


DEFECTS = [
    *(_null(c) for c in COLUMNS),
    _below("amount", strict=True),
    _below("card_avg_amount_7d", strict=True),
    _below("amount_to_card_avg_ratio", strict=True),
    _below("card_txn_count_24h", strict=False),
    _out_of_range("hour_of_day", 0, 23),
    _out_of_range("day_of_week", 0, 6),
    _unknown_category("channel", CATEGORIES["channel"]),
    _unknown_category("merchant_category", CATEGORIES["merchant_category"]),
    _unknown_category("customer_segment", CATEGORIES["customer_segment"]),
    _unknown_category("is_fraud", [0, 1]),
    _duplicate_id(),
]
# one column of each kind, plus the numeric columns a type slip is likeliest in; every column's type
# expectation is checked against the contract by test_the_suite_checks_every_column_type
WRONG_TYPES = [
    _wrong_type(c)
    for c in (
        "transaction_id",
        "event_ts",
        "amount",
        "hour_of_day",
        "is_weekend",
        "channel",
        "card_txn_count_24h",
        "is_fraud",
    )
]


# ------------------------------------------------------------------------------------------------- harness


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "badinput",
            "AWS_SECRET_ACCESS_KEY": "badinput",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            patch.setenv(key, value)
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket=BUCKET)
            yield client


class FakeTI:
    """What the operator uses of the task instance: ``try_number`` and ``xcom_push``."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}
        self.try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def write_dataset(client: Any, frame: pd.DataFrame, part_rows: int = 150) -> None:
    """``frame`` as the extraction writes it: Parquet parts of ``part_rows`` rows, then the manifest."""
    prefix = DATASET.split(f"{BUCKET}/", 1)[1]
    for old in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=old["Key"])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with PartWriter(client=client, prefix=DATASET, schema=table.schema, row_groups_per_part=1) as writer:
        for offset in range(0, len(frame), part_rows):
            writer.write(table.slice(offset, part_rows))
    manifest = build_manifest(
        dataset_uri=DATASET,
        schema=schema_fields(table.schema),
        parts=[p.as_dict() for p in writer.parts],
        sql_path="sql/features.sql",
        query_sha256="0" * 64,
        interval_start=dt.datetime(2026, 1, 1),
        interval_end=dt.datetime(2026, 3, 1),
        snowflake_query_id=None,
        mode="stream",
        started_at="2026-03-01T00:00:00+00:00",
        finished_at="2026-03-01T00:01:00+00:00",
    )
    write_manifest(client, manifest)


def validate(client: Any, frame: pd.DataFrame) -> tuple[dict[str, Any], FakeTI]:
    write_dataset(client, frame)
    operator = DataValidationOperator(
        task_id="validate",
        aws_conn_id=None,
        dataset_uri=DATASET,
        suite_path=SUITE,
        report_uri=REPORT,
        mode="worker",
        batch_rows=1000,
    )
    ti = FakeTI()
    return operator.execute({"ti": ti}), ti


def stored_report(client: Any) -> dict[str, Any]:
    key = REPORT.split(f"{BUCKET}/", 1)[1] + "validation_result.json"
    return json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


# ------------------------------------------------------------------------------------------------- tests


@settings(EXAMPLES, max_examples=4)
@given(seed=st.integers(0, 9999), rows=st.integers(150, GOOD_ROWS))
def test_good_rows_pass(s3: Any, seed: int, rows: int):
    result, ti = validate(s3, good_rows(rows, seed))
    assert result["success"] is True
    assert result["row_count"] == rows
    assert ti.xcom["validation_summary"]["failed"] == []


def _assert_stopped(client: Any, frame: pd.DataFrame, defect: Defect) -> None:
    with pytest.raises(AirflowFailException) as caught:
        validate(client, frame)

    message = str(caught.value)
    assert f"{defect.expectation}({defect.column})" in message, f"{defect} not named in:\n{message}"
    assert "Report: s3://" in message
    report = stored_report(client)
    assert report["success"] is False, "the report is kept and says why"
    failed = {
        (r["expectation_config"]["type"], r["expectation_config"]["kwargs"].get("column"))
        for r in report["results"]
        if not r["success"]
    }
    assert (defect.expectation, defect.column) in failed


def _broken(data: st.DataObject, defect: Defect) -> pd.DataFrame:
    frame = good_rows(GOOD_ROWS, data.draw(st.integers(0, 9999), label="seed"))
    rows = data.draw(st.lists(st.integers(0, GOOD_ROWS - 1), min_size=1, max_size=5, unique=True), label="rows")
    return defect.apply(frame, sorted(rows), data)


@EXAMPLES
@given(data=st.data())
def test_bad_rows_fail_naming_the_expectation(s3: Any, data: st.DataObject):
    defect = data.draw(st.sampled_from(DEFECTS), label="defect")
    _assert_stopped(s3, _broken(data, defect), defect)


@pytest.mark.parametrize("defect", [pytest.param(d, id=str(d)) for d in WRONG_TYPES])
def test_wrong_types_are_caught(s3: Any, defect: Defect):
    @settings(EXAMPLES, max_examples=1)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        _assert_stopped(s3, _broken(data, defect), defect)

    check()
    # the message says what type arrived: numbers in a text column, text anywhere else
    observed = "int64" if KINDS[defect.column] in TEXT_KINDS else "str"
    failed = {
        item["column"]: item for item in stored_report(s3)["summary"]["failed"] if item["type"] == defect.expectation
    }
    assert failed[defect.column]["observed"] == observed


def test_the_suite_checks_every_column_type():
    """Each contract column has the type expectation of its kind, with a type list that names real dtypes."""
    suite = json.loads((ROOT / "include" / SUITE).read_text(encoding="utf-8"))
    typed = {
        e["kwargs"]["column"]: e
        for e in suite["expectations"]
        if e["type"] in {"expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list"}
    }
    assert sorted(typed) == sorted(COLUMNS), "every column needs exactly one type expectation"
    for column, expectation in typed.items():
        kind = KINDS[column]
        assert expectation["type"] == TYPE_EXPECTATIONS[kind], column
        if kind in TEXT_KINDS:
            assert expectation["kwargs"]["type_"] == "str", column
            continue
        names = set(expectation["kwargs"]["type_list"])
        must = {"numeric": {"int64", "float64"}, "label": {"int64", "float64"}, "boolean": {"bool"}}.get(
            kind, {"datetime64[us]", "datetime64[ns]"}
        )
        assert must <= names, f"{column} ({kind}) must accept {sorted(must - names)}"
        assert "object" not in names and "str" not in names, f"{column} ({kind}) would accept text"


def test_a_missing_column_fails_the_schema_expectation(s3: Any):
    frame = good_rows(GOOD_ROWS, 1).drop(columns=["channel"])
    with pytest.raises(AirflowFailException) as caught:
        validate(s3, frame)
    assert "expect_table_columns_to_match_ordered_list" in str(caught.value)


# ------------------------------------------------------------------------------------------------- the gate


@pytest.fixture(scope="module")
def train_model() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "train_model.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["train_model"]


def test_every_task_that_trains_waits_for_validate(train_model: Any):
    validate_task = train_model.get_task("validate")
    assert isinstance(validate_task, DataValidationOperator)
    downstream = {t.task_id for t in validate_task.get_flat_relatives(upstream=False)}
    sagemaker_tasks = {"preprocess", "train", "tune", "evaluate", "register", "publish_approval"}
    assert sagemaker_tasks <= downstream, f"not gated by validate: {sagemaker_tasks - downstream}"
    # validate, and the tasks before it whose outputs preprocess reads (XComArgs draw those edges too)
    assert train_model.get_task("preprocess").upstream_task_ids == {"validate", "extract", "plan"}
    assert train_model.get_task("preprocess").trigger_rule == "all_success"
    upstream_of_validate = {t.task_id for t in validate_task.get_flat_relatives(upstream=True)}
    assert upstream_of_validate == {"plan", "extract"}
