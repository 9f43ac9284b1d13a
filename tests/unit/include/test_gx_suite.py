"""The Great Expectations suite for the feature dataset accepts good intervals and names each defect."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

INCLUDE = Path(__file__).resolve().parents[3] / "include"
SUITE_PATH = INCLUDE / "gx" / "card_transactions_features.json"
SCHEMA = json.loads((INCLUDE / "code" / "common" / "features_schema.json").read_text())


@pytest.fixture(scope="module")
def validate() -> Callable[[pd.DataFrame], Any]:
    """Validate a frame against the suite file with GX 1.x core: ephemeral context, pandas datasource."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuite

    context = gx.get_context(mode="ephemeral")
    suite = context.suites.add(ExpectationSuite(**json.loads(SUITE_PATH.read_text())))
    asset = context.data_sources.add_pandas("features").add_dataframe_asset("interval")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")

    def run(frame: pd.DataFrame) -> Any:
        return batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite)

    return run


def _failed(result: Any) -> set[tuple[str, str | None]]:
    return {
        (r.expectation_config.type, r.expectation_config.kwargs.get("column")) for r in result.results if not r.success
    }


@pytest.fixture
def good(make_feature_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_feature_frame(rows=400, days=5, seed=5)


def test_suite_file_is_a_gx_1_suite_following_the_contract() -> None:
    document = json.loads(SUITE_PATH.read_text())
    assert document["name"] == "card_transactions_features"
    ordered = next(e for e in document["expectations"] if e["type"] == "expect_table_columns_to_match_ordered_list")
    assert ordered["kwargs"]["column_list"] == [c["name"] for c in SCHEMA["columns"]]
    categories = {c["name"]: c.get("categories") for c in SCHEMA["columns"]}
    for expectation in document["expectations"]:
        column = expectation["kwargs"].get("column")
        if expectation["type"] == "expect_column_values_to_be_in_set" and categories.get(column):
            assert expectation["kwargs"]["value_set"] == categories[column]


def test_good_interval_passes(validate: Callable[[pd.DataFrame], Any], good: pd.DataFrame) -> None:
    result = validate(good)
    assert result.success, _failed(result)
    assert len(result.results) >= 25


def _negative_amount(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[3, "amount"] = -5.0
    return frame


def _null_card_feature(frame: pd.DataFrame) -> pd.DataFrame:
    frame["card_txn_count_24h"] = frame["card_txn_count_24h"].astype("float64")
    frame.loc[7, "card_txn_count_24h"] = None
    return frame


def _unknown_channel(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[2, "channel"] = "PHONE"
    return frame


def _duplicate_id(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[9, "transaction_id"] = frame.loc[8, "transaction_id"]
    return frame


def _null_label(frame: pd.DataFrame) -> pd.DataFrame:
    frame["is_fraud"] = frame["is_fraud"].astype("float64")
    frame.loc[1, "is_fraud"] = None
    return frame


def _label_out_of_set(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[4, "is_fraud"] = 2
    return frame


def _hour_out_of_range(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[5, "hour_of_day"] = 24
    return frame


def _negative_count(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[6, "card_txn_count_24h"] = -1
    return frame


def _missing_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["is_foreign"])


def _all_fraud(frame: pd.DataFrame) -> pd.DataFrame:
    frame["is_fraud"] = 1
    return frame


def _no_fraud(frame: pd.DataFrame) -> pd.DataFrame:
    frame["is_fraud"] = 0
    return frame


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        pytest.param(_negative_amount, ("expect_column_values_to_be_between", "amount"), id="negative-amount"),
        pytest.param(
            _null_card_feature, ("expect_column_values_to_not_be_null", "card_txn_count_24h"), id="null-card-feature"
        ),
        pytest.param(_unknown_channel, ("expect_column_values_to_be_in_set", "channel"), id="unknown-channel"),
        pytest.param(_duplicate_id, ("expect_column_values_to_be_unique", "transaction_id"), id="duplicate-id"),
        pytest.param(_null_label, ("expect_column_values_to_not_be_null", "is_fraud"), id="null-label"),
        pytest.param(_label_out_of_set, ("expect_column_values_to_be_in_set", "is_fraud"), id="label-not-binary"),
        pytest.param(_hour_out_of_range, ("expect_column_values_to_be_between", "hour_of_day"), id="hour-24"),
        pytest.param(
            _negative_count, ("expect_column_values_to_be_between", "card_txn_count_24h"), id="negative-count"
        ),
        pytest.param(_missing_column, ("expect_table_columns_to_match_ordered_list", None), id="missing-column"),
        pytest.param(_all_fraud, ("expect_column_mean_to_be_between", "is_fraud"), id="fraud-rate-too-high"),
        pytest.param(_no_fraud, ("expect_column_mean_to_be_between", "is_fraud"), id="no-fraud-at-all"),
    ],
)
def test_each_defect_fails_the_expectation_that_names_it(
    validate: Callable[[pd.DataFrame], Any],
    good: pd.DataFrame,
    spoil: Callable[[pd.DataFrame], pd.DataFrame],
    expected: tuple[str, str | None],
) -> None:
    result = validate(spoil(good.copy()))
    assert not result.success
    failed = _failed(result)
    assert expected in failed
    # a missing column also fails its per-column expectations; every other defect fails exactly one
    if expected[0] != "expect_table_columns_to_match_ordered_list":
        assert failed == {expected}


def test_empty_interval_fails_on_row_count(validate: Callable[[pd.DataFrame], Any], good: pd.DataFrame) -> None:
    result = validate(good.iloc[0:0])
    assert ("expect_table_row_count_to_be_between", None) in _failed(result)
