"""Synthetic feature datasets shaped like the output of include/sql/features.sql."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

CHANNELS = ["POS", "ECOM", "ATM"]
CATEGORIES = ["grocery", "restaurant", "fuel", "travel", "electronics", "online_retail", "entertainment", "health"]


def make_features(rows: int = 2000, days: int = 20, seed: int = 7, fraud_boost: float = 0.0) -> pd.DataFrame:
    """A feature frame in contract column order with a learnable fraud signal (about 5 % positives).

    :param rows: number of transactions.
    :param days: they are spread evenly over this many days from 2026-01-01.
    :param seed: random seed; the same seed gives the same frame.
    :param fraud_boost: added to the fraud logit (raise it for a higher fraud rate).
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01")
    offsets = np.sort(rng.uniform(0, days * 86400, size=rows))
    event_ts = start + pd.to_timedelta(offsets.round(), unit="s")
    channel = rng.choice(CHANNELS, size=rows, p=[0.6, 0.3, 0.1])
    category = rng.choice(CATEGORIES, size=rows)
    amount = np.round(rng.lognormal(3.5, 1.0, size=rows), 2) + 0.01
    card_present = (channel != "ECOM") & (rng.random(rows) > 0.05)
    is_foreign = rng.random(rows) < 0.08
    count_24h = rng.poisson(2, size=rows)
    avg_7d = np.round(amount * rng.uniform(0.5, 1.5, size=rows), 2)
    hours = event_ts.hour.to_numpy()
    logit = (
        -4.2
        + fraud_boost
        + 1.2 * (channel == "ECOM")
        + 1.0 * ~card_present
        + 1.3 * is_foreign
        + 0.9 * (amount > 150)
        + 0.8 * ((hours < 5) | (hours >= 23))
        + 0.35 * np.maximum(count_24h - 3, 0)
    )
    is_fraud = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    day_of_week = event_ts.dayofweek.to_numpy()
    return pd.DataFrame(
        {
            "transaction_id": [f"tx-{i:06d}" for i in range(rows)],
            "event_ts": event_ts,
            "amount": amount,
            "log_amount": np.log1p(amount),
            "hour_of_day": hours.astype("int64"),
            "day_of_week": day_of_week.astype("int64"),
            "is_weekend": day_of_week >= 5,
            "card_present": card_present,
            "is_foreign": is_foreign,
            "channel": channel,
            "merchant_category": category,
            "card_txn_count_24h": count_24h.astype("int64"),
            "card_avg_amount_7d": avg_7d,
            "amount_to_card_avg_ratio": amount / avg_7d,
            "is_fraud": is_fraud,
        }
    )


@pytest.fixture
def feature_frame() -> pd.DataFrame:
    return make_features()
