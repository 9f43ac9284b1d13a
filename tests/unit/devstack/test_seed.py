"""The synthetic card-transaction history: deterministic, learnable, drifting and corruptible on demand."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv
import pytest

from devstack.snowflake.seed import (
    CATEGORIES,
    CHANNELS,
    COLUMNS,
    CORRUPTION_KINDS,
    LABEL_COLUMNS,
    SEGMENTS,
    SeedParams,
    generate,
    generate_labels,
)

START = dt.date(2026, 1, 1)


def _digest(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    pyarrow.csv.write_csv(table, sink)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _frame(params: SeedParams) -> pd.DataFrame:
    table, _ = generate(params)
    df = table.to_pandas()
    df["AMOUNT"] = df["AMOUNT"].astype(float)
    return df


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return _frame(SeedParams(days=90, rows_per_day=300, start=START))


def test_same_params_give_byte_identical_rows() -> None:
    params = SeedParams(days=5, rows_per_day=200, seed=7, start=START, corrupt_on=START)
    assert _digest(generate(params)[0]) == _digest(generate(params)[0])


def test_other_seed_gives_other_rows() -> None:
    a = generate(SeedParams(days=3, rows_per_day=100, seed=1, start=START))[0]
    b = generate(SeedParams(days=3, rows_per_day=100, seed=2, start=START))[0]
    assert _digest(a) != _digest(b)


def test_a_day_does_not_depend_on_the_window() -> None:
    whole = generate(SeedParams(days=10, rows_per_day=100, start=START))[0]
    tail = generate(SeedParams(days=4, rows_per_day=100, start=START + dt.timedelta(days=6)))[0]
    assert _digest(whole.slice(600)) == _digest(tail)


def test_default_history_ends_yesterday() -> None:
    params = SeedParams(days=30)
    table, _ = generate(params, today=dt.date(2026, 3, 15))
    ts = table.column("EVENT_TS").to_pandas()
    assert ts.min().date() == dt.date(2026, 2, 13)
    assert ts.max().date() == dt.date(2026, 3, 14)


def test_rows_follow_the_raw_table_contract(history: pd.DataFrame) -> None:
    assert tuple(history.columns) == COLUMNS
    assert len(history) == 90 * 300
    assert history["TRANSACTION_ID"].is_unique
    assert history["TRANSACTION_ID"].str.fullmatch(r"tx-\d{8}-\d{6}").all()
    assert history["CARD_ID"].str.fullmatch(r"card-\d{5}").all()
    assert history["CARD_ID"].nunique() > 2000
    assert set(history["MERCHANT_CATEGORY"]) == set(CATEGORIES)
    assert set(history["CHANNEL"]) == set(CHANNELS)
    assert (history["AMOUNT"] > 0).all()
    assert history["CURRENCY"].str.len().eq(3).all()
    assert (history["CURRENCY"] == "USD").mean() > 0.8
    assert history[["MERCHANT_COUNTRY", "CARD_COUNTRY"]].apply(lambda s: s.str.len().eq(2).all()).all()
    assert not history.isna().any().any()
    assert not history.loc[history["CHANNEL"] == "ECOM", "CARD_PRESENT"].mean() > 0.05
    assert 0.01 <= history["IS_FRAUD"].mean() <= 0.03


def _features(df: pd.DataFrame) -> pd.DataFrame:
    df = df.sort_values(["EVENT_TS", "TRANSACTION_ID"]).reset_index(drop=True)
    burst = (
        df.set_index("EVENT_TS").groupby("CARD_ID")["AMOUNT"].rolling("10min").count().rename("N_10MIN").reset_index()
    )
    burst = burst.drop_duplicates(["CARD_ID", "EVENT_TS"], keep="last")
    df = df.merge(burst, on=["CARD_ID", "EVENT_TS"], how="left")
    return pd.DataFrame(
        {
            "amount": df["AMOUNT"],
            "ecom": df["CHANNEL"] == "ECOM",
            "atm": df["CHANNEL"] == "ATM",
            "card_present": df["CARD_PRESENT"],
            "foreign": df["MERCHANT_COUNTRY"] != df["CARD_COUNTRY"],
            "hour": df["EVENT_TS"].dt.hour,
            "n_10min": df["N_10MIN"],
            "category": df["MERCHANT_CATEGORY"].astype("category").cat.codes,
            "label": df["IS_FRAUD"],
            "ts": df["EVENT_TS"],
        }
    )


def test_fraud_is_learnable_by_a_boosted_model(history: pd.DataFrame) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    feats = _features(history)
    train = feats["ts"] < pd.Timestamp(START + dt.timedelta(days=60))
    x = feats.drop(columns=["label", "ts"]).astype(float)
    y = feats["label"].astype(int)
    model = HistGradientBoostingClassifier(max_iter=60, learning_rate=0.1, random_state=0)
    model.fit(x[train], y[train])
    auc = roc_auc_score(y[~train], model.predict_proba(x[~train])[:, 1])
    assert auc > 0.85


def test_fraud_concentrates_where_the_signal_says(history: pd.DataFrame) -> None:
    feats = _features(history)
    rate = feats.groupby("ecom")["label"].mean()
    assert rate[True] > 2 * rate[False]
    rate = feats.groupby(feats["n_10min"] >= 2)["label"].mean()
    assert rate[True] > 5 * rate[False]
    rate = feats.groupby("foreign")["label"].mean()
    assert rate[True] > 3 * rate[False]


def test_drift_shifts_amount_channel_and_foreign_share() -> None:
    drift_from = START + dt.timedelta(days=20)
    df = _frame(SeedParams(days=40, rows_per_day=300, start=START, drift_from=drift_from))
    after = df["EVENT_TS"] >= pd.Timestamp(drift_from)
    foreign = df["MERCHANT_COUNTRY"] != df["CARD_COUNTRY"]
    assert df.loc[after, "AMOUNT"].median() > 1.25 * df.loc[~after, "AMOUNT"].median()
    assert (df.loc[after, "CHANNEL"] == "ECOM").mean() > (df.loc[~after, "CHANNEL"] == "ECOM").mean() + 0.1
    assert foreign[after].mean() > 2 * foreign[~after].mean()
    # the days before the drift are the undrifted history
    plain = _frame(SeedParams(days=20, rows_per_day=300, start=START))
    pd.testing.assert_frame_equal(df[~after].reset_index(drop=True), plain)


def test_corrupt_day_plants_every_kind_of_bad_row_on_that_day_only() -> None:
    bad_day = START + dt.timedelta(days=2)
    table, report = generate(SeedParams(days=4, rows_per_day=300, start=START, corrupt_on=bad_day))
    df = table.to_pandas()
    df["AMOUNT"] = df["AMOUNT"].astype(float)
    assert set(report) == set(CORRUPTION_KINDS)
    assert all(count >= 1 for count in report.values())
    on_day = df["EVENT_TS"].dt.date == bad_day
    clean, dirty = df[~on_day], df[on_day]
    assert (clean["AMOUNT"] > 0).all() and clean["CARD_ID"].notna().all()
    assert (dirty["AMOUNT"] < 0).sum() == report["negative_amount"]
    assert (dirty["AMOUNT"] == 0).sum() == report["zero_amount"]
    assert dirty["CARD_ID"].isna().sum() == report["null_card_id"]
    assert (~dirty["MERCHANT_CATEGORY"].isin(CATEGORIES)).sum() == report["unknown_category"]
    assert (~dirty["CHANNEL"].isin(CHANNELS)).sum() == report["unknown_channel"]
    assert dirty["TRANSACTION_ID"].duplicated().sum() == report["duplicate_transaction_id"]
    assert df["TRANSACTION_ID"].notna().all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"days": 0}, "days", id="no-days"),
        pytest.param({"rows_per_day": 5}, "rows_per_day", id="too-few-rows"),
        pytest.param({"biased_segment": "vip", "biased_from": START}, "biased_segment must be one of", id="segment"),
        pytest.param({"biased_segment": "student"}, "give both or neither", id="segment-without-day"),
        pytest.param({"biased_from": START}, "give both or neither", id="day-without-segment"),
    ],
)
def test_rejects_bad_params(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SeedParams(**kwargs)


def test_params_round_trip_through_json() -> None:
    params = SeedParams(
        days=3,
        start=START,
        drift_from=START,
        corrupt_on=None,
        biased_segment="student",
        biased_from=START,
        fraud_shift_from=START,
    )
    assert SeedParams.from_json(params.to_json()) == params
    assert np.isscalar(params.to_json()["days"])


def test_every_card_keeps_one_segment(history: pd.DataFrame) -> None:
    assert set(history["CUSTOMER_SEGMENT"]) == set(SEGMENTS)
    assert (history.groupby("CARD_ID")["CUSTOMER_SEGMENT"].nunique() == 1).all()


def test_labels_arrive_days_after_the_transaction() -> None:
    params = SeedParams(days=20, rows_per_day=300, start=START)
    table, _ = generate(params)
    labels = generate_labels(params, table)
    assert tuple(labels.column_names) == LABEL_COLUMNS
    joined = table.to_pandas().merge(labels.to_pandas(), on="TRANSACTION_ID", suffixes=("", "_label"))
    assert len(joined) == table.num_rows
    assert (joined["IS_FRAUD"] == joined["IS_FRAUD_label"]).all()
    delay_days = (joined["LABELED_AT"] - joined["EVENT_TS"]).dt.total_seconds() / 86_400
    fraud = joined["IS_FRAUD"]
    # chargebacks: at least a day, a long tail; genuine outcomes: the review closes within 2-5 days
    assert delay_days[fraud].min() >= 1 and delay_days[fraud].max() > 8 and 2.5 < delay_days[fraud].median() < 7
    assert delay_days[~fraud].between(2, 5).all()
    # deterministic per (seed, day), like the transactions
    again = generate_labels(params, table)
    assert _digest(labels) == _digest(again)
    tail_params = SeedParams(days=5, rows_per_day=300, start=START + dt.timedelta(days=15))
    tail = generate_labels(tail_params, generate(tail_params)[0])
    assert _digest(labels.slice(15 * 300)) == _digest(tail)


def test_biased_segment_gets_ordinary_looking_fraud_from_its_day_on() -> None:
    biased_from = START + dt.timedelta(days=20)
    plain = _frame(SeedParams(days=40, rows_per_day=300, start=START))
    df = _frame(SeedParams(days=40, rows_per_day=300, start=START, biased_segment="student", biased_from=biased_from))
    # only the outcome changes, and only in the segment, from the day on
    pd.testing.assert_frame_equal(df.drop(columns="IS_FRAUD"), plain.drop(columns="IS_FRAUD"))
    changed = df["IS_FRAUD"] != plain["IS_FRAUD"]
    assert changed.sum() > 20
    assert (df.loc[changed, "CUSTOMER_SEGMENT"] == "student").all()
    assert (df.loc[changed, "EVENT_TS"] >= pd.Timestamp(biased_from)).all()
    assert df.loc[changed, "IS_FRAUD"].all()
    new = df[changed]
    assert (new["CHANNEL"] == "POS").all() and new["CARD_PRESENT"].all()
    assert (new["MERCHANT_COUNTRY"] == new["CARD_COUNTRY"]).all()


def test_fraud_shift_replaces_the_usual_pattern() -> None:
    shift_from = START + dt.timedelta(days=20)
    plain = _frame(SeedParams(days=40, rows_per_day=300, start=START))
    df = _frame(SeedParams(days=40, rows_per_day=300, start=START, fraud_shift_from=shift_from))
    after = df["EVENT_TS"] >= pd.Timestamp(shift_from)
    pd.testing.assert_frame_equal(df[~after], plain[~after])
    old_fraud = plain["IS_FRAUD"] & after
    # most of the fraud a model learnt before the shift is gone, and new fraud took its place
    assert df.loc[old_fraud, "IS_FRAUD"].mean() < 0.3
    new = df["IS_FRAUD"] & ~plain["IS_FRAUD"]
    assert new.sum() > 0.5 * old_fraud.sum()
    assert (new[~after] == False).all()  # noqa: E712
