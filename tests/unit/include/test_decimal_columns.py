"""Every reader of an extracted dataset types Snowflake's unloaded DECIMAL columns as stream mode does.

A Parquet unload (``COPY INTO <location>``) stores ``NUMBER(p, 0)`` columns as ``decimal(p, 0)`` and
``NUMBER(p, s)`` as ``decimal(p, s)``; stream mode writes ``int64`` and ``float64``. The files here are real
Parquet files written by pyarrow with decimal128 columns (with nulls, and one value beyond int64), read by
the validation core, preprocessing and evaluation (all through ``include/code/common/contract.py``) and by
``ml_lifecycle.data.parquet`` (the package's own copy, built on its ``contract_type``): the two copies are
pinned to one behaviour here.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_lifecycle.data.parquet import SchemaError, conform, conform_decimals
from tests.unit.include.conftest import CODE, SCRIPTS, load_script, make_features

INTEGER_COLUMNS = ["hour_of_day", "day_of_week", "card_txn_count_24h", "is_fraud"]  # NUMBER(38,0)
SCALED_COLUMNS = ["amount"]  # as if NUMBER(12,2)


def stream_table() -> pa.Table:
    """Ten feature rows typed as stream mode writes them; two values null."""
    frame = make_features(rows=10, days=1, seed=5)
    frame["amount"] = [float(f"{v:.2f}") for v in frame["amount"]]  # a NUMBER(12,2) value
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(None)
    for name, row in (("card_txn_count_24h", 1), ("amount", 2)):
        index = table.column_names.index(name)
        values = table.column(name).to_pylist()
        values[row] = None
        table = table.set_column(index, table.field(index), pa.array(values, table.field(index).type))
    return table


def unloaded(table: pa.Table) -> pa.Table:
    """``table`` as Snowflake unloads it: NUMBER columns as decimal128."""
    for name in INTEGER_COLUMNS:
        index = table.column_names.index(name)
        table = table.set_column(index, name, table.column(name).cast(pa.decimal128(38, 0)))
    for name in SCALED_COLUMNS:
        index = table.column_names.index(name)
        values = [None if v is None else decimal.Decimal(f"{v:.2f}") for v in table.column(name).to_pylist()]
        table = table.set_column(index, name, pa.array(values, pa.decimal128(12, 2)))
    return table


def with_overflow(table: pa.Table) -> pa.Table:
    """``table`` (unloaded) with one ``card_txn_count_24h`` value one past the int64 maximum."""
    index = table.column_names.index("card_txn_count_24h")
    values = table.column(index).to_pylist()
    values[3] = decimal.Decimal(2**63)
    return table.set_column(index, "card_txn_count_24h", pa.array(values, pa.decimal128(38, 0)))


def _validation_reader(path: Path) -> pd.DataFrame:
    core = load_script(CODE / "validation" / "gx_validation.py", "fraud_gx_validation")
    return pd.concat(list(core.iter_frames([str(path)], batch_rows=4)), ignore_index=True)


def _preprocess_reader(path: Path) -> pd.DataFrame:
    return load_script(SCRIPTS["preprocess"], "fraud_preprocess").read_dataset(path.parent)


def _evaluate_reader(path: Path) -> pd.DataFrame:
    return load_script(SCRIPTS["evaluate"], "fraud_evaluate").read_raw(path)


def _package_reader(path: Path) -> pd.DataFrame:
    return conform_decimals(pq.read_table(path)).to_pandas()


def _errors() -> dict[str, Any]:
    core = load_script(CODE / "validation" / "gx_validation.py", "fraud_gx_validation")
    return {
        "validation": core.DatasetTypeError,
        "preprocessing": load_script(SCRIPTS["preprocess"], "fraud_preprocess").PreprocessError,
        "evaluation": load_script(SCRIPTS["evaluate"], "fraud_evaluate").EvaluationError,
        "ml_lifecycle": SchemaError,
    }


READERS = [
    pytest.param("validation", _validation_reader, id="validation-iter_frames"),
    pytest.param("preprocessing", _preprocess_reader, id="preprocess-read_dataset"),
    pytest.param("evaluation", _evaluate_reader, id="evaluate-read_raw"),
    pytest.param("ml_lifecycle", _package_reader, id="ml_lifecycle-conform_decimals"),
]


def write(table: pa.Table, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data_0_0_0.snappy.parquet"
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(("component", "read"), READERS)
def test_unloaded_decimals_read_exactly_as_the_stream_dataset(
    component: str, read: Callable[[Path], pd.DataFrame], tmp_path: Path
) -> None:
    stream = stream_table()
    unload_file = write(unloaded(stream), tmp_path / "unload")
    assert pq.read_schema(unload_file).field("card_txn_count_24h").type == pa.decimal128(38, 0)
    assert pq.read_schema(unload_file).field("amount").type == pa.decimal128(12, 2)

    frame = read(unload_file)
    # what stream mode writes when the connector hands it these decimals: its own conversion to the contract
    stream_file = write(conform(unloaded(stream), stream.schema), tmp_path / "stream")
    expected = read(stream_file)

    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    original = [float("nan") if v is None else v for v in stream.column("amount").to_pylist()]
    assert frame["amount"].tolist() == pytest.approx(original, rel=1e-15, nan_ok=True)
    assert {c: str(frame[c].dtype) for c in ["hour_of_day", "day_of_week", "is_fraud"]} == dict.fromkeys(
        ["hour_of_day", "day_of_week", "is_fraud"], "int64"
    )
    assert str(frame["amount"].dtype) == "float64" and pd.isna(frame["amount"][2])
    assert str(frame["card_txn_count_24h"].dtype) == "float64" and pd.isna(frame["card_txn_count_24h"][1])
    assert not any(isinstance(v, decimal.Decimal) for c in frame.columns for v in frame[c].tolist())


@pytest.mark.parametrize(("component", "read"), READERS)
def test_an_integer_beyond_int64_is_an_error_naming_the_column(
    component: str, read: Callable[[Path], pd.DataFrame], tmp_path: Path
) -> None:
    path = write(with_overflow(unloaded(stream_table())), tmp_path / "unload")

    with pytest.raises(_errors()[component]) as caught:
        read(path)

    message = str(caught.value)
    assert "column 'card_txn_count_24h'" in message
    assert "to 9223372036854775808 do not fit in int64" in message


def test_a_table_without_decimals_is_returned_unchanged() -> None:
    table = stream_table()
    assert conform_decimals(table) is table
