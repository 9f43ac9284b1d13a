"""Deterministic synthetic history for ``FRAUD_DB.RAW.CARD_TRANSACTIONS``.

The generator draws every day from its own random stream, seeded with ``(seed, day)``: the same
parameters give byte-identical rows, and a day's rows do not depend on the window they were generated in
(seeding 1 Jan - 31 Jan and then 1 Feb - 28 Feb gives the same table as seeding 1 Jan - 28 Feb once).

The label carries a learnable signal: fraud is more likely for e-commerce, card-not-present, foreign
merchants, high amounts and night hours, and most fraud arrives as bursts of several transactions on one
card within minutes (there are legitimate bursts too, so a burst alone is not a perfect tell).

``drift_from`` shifts the distribution from that day on (higher amounts, more e-commerce, more foreign
merchants). ``corrupt_on`` plants bad rows on that day (negative and zero amounts, NULL ``CARD_ID``,
unknown category and channel, duplicate transaction ids) for data validation to catch.

Every card belongs to a customer segment (``CUSTOMER_SEGMENT``, fixed per card and seed), the facet that bias
is measured on. Two options change who is fraud from a day on, for monitoring to notice (the features of the
rows stay as they were, so a model trained before that day misses the new fraud):

- ``biased_segment`` + ``biased_from``: in that segment, a share of ordinary-looking transactions (card present,
  domestic, daytime, at a point of sale) are fraud, so the model's recall drops in that segment only;
- ``fraud_shift_from``: in every segment, most of the usual fraud pattern stops and ordinary-looking fraud takes
  its place, so the model's recall collapses.

Ground truth arrives late, as it does for a card issuer: ``FRAUD_DB.RAW.FRAUD_LABELS`` holds one row per
transaction with its outcome and ``LABELED_AT``, when the outcome became known. Fraud is known when the
cardholder's chargeback comes in (1 day plus a log-normal delay, median about 4 days, at most 45 days);
a genuine transaction is confirmed when the issuer's review closes without a dispute (2 to 5 days). The seed
loads every label at once, including those whose ``LABELED_AT`` is still in the future: a label counts as
arrived only once ``LABELED_AT`` is at or before the reader's "now", and every reader filters on it
(``include/sql/labels_export.sql``), which is what a table filled as labels arrive would show at that time.
The labels come from their own random stream per (seed, day), so the transactions are the same rows with or
without them.

Loading goes through the Snowflake connector with ``PUT`` to an internal stage and ``COPY INTO`` from
Parquet, which takes well under a second for the default history on the devstack's fakesnow server (a
multi-row ``INSERT`` of 5,000 rows takes about 30 s there).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import tempfile
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

log = logging.getLogger(__name__)

DATABASE = "FRAUD_DB"
SCHEMA = "RAW"
TABLE = "CARD_TRANSACTIONS"
FQ_TABLE = f"{DATABASE}.{SCHEMA}.{TABLE}"
STAGE = f"{DATABASE}.{SCHEMA}.DEVSTACK_SEED_STAGE"
LABELS_TABLE = "FRAUD_LABELS"
FQ_LABELS_TABLE = f"{DATABASE}.{SCHEMA}.{LABELS_TABLE}"
#: the seeded tables' layout (their columns, and which tables there are); raised whenever it changes, so a state
#: directory seeded with an older layout is seeded again from scratch (2: CUSTOMER_SEGMENT and FRAUD_LABELS)
LAYOUT = 2

CATEGORIES = (
    "grocery",
    "restaurant",
    "fuel",
    "travel",
    "electronics",
    "online_retail",
    "entertainment",
    "health",
)
CHANNELS = ("POS", "ECOM", "ATM")
COLUMNS = (
    "TRANSACTION_ID",
    "EVENT_TS",
    "CARD_ID",
    "MERCHANT_ID",
    "MERCHANT_CATEGORY",
    "AMOUNT",
    "CURRENCY",
    "CHANNEL",
    "CARD_PRESENT",
    "MERCHANT_COUNTRY",
    "CARD_COUNTRY",
    "CUSTOMER_SEGMENT",
    "IS_FRAUD",
)
LABEL_COLUMNS = ("TRANSACTION_ID", "IS_FRAUD", "LABELED_AT")

CREATE_TABLE_SQL = f"""CREATE TABLE IF NOT EXISTS {FQ_TABLE} (
    TRANSACTION_ID VARCHAR NOT NULL,
    EVENT_TS TIMESTAMP_NTZ,
    CARD_ID VARCHAR,
    MERCHANT_ID VARCHAR,
    MERCHANT_CATEGORY VARCHAR,
    AMOUNT NUMBER(12,2),
    CURRENCY VARCHAR(3),
    CHANNEL VARCHAR,
    CARD_PRESENT BOOLEAN,
    MERCHANT_COUNTRY VARCHAR(2),
    CARD_COUNTRY VARCHAR(2),
    CUSTOMER_SEGMENT VARCHAR,
    IS_FRAUD BOOLEAN
)"""

CREATE_LABELS_TABLE_SQL = f"""CREATE TABLE IF NOT EXISTS {FQ_LABELS_TABLE} (
    TRANSACTION_ID VARCHAR NOT NULL,
    IS_FRAUD BOOLEAN NOT NULL,
    LABELED_AT TIMESTAMP_NTZ NOT NULL
)"""

# Catalogue of cards and merchants (fixed per seed, independent of the day).
N_CARDS = 3000
N_MERCHANTS = 600
CARD_COUNTRIES = ("US", "CA", "GB", "MX")
CARD_COUNTRY_WEIGHTS = (0.92, 0.03, 0.03, 0.02)
MERCHANT_COUNTRIES = ("US", "CA", "GB", "MX", "FR", "DE", "BR", "NG", "IN", "CN")
MERCHANT_COUNTRY_WEIGHTS = (0.70, 0.05, 0.05, 0.04, 0.04, 0.04, 0.02, 0.02, 0.02, 0.02)
CURRENCY_BY_COUNTRY = {
    "US": "USD",
    "CA": "CAD",
    "GB": "GBP",
    "MX": "MXN",
    "FR": "EUR",
    "DE": "EUR",
    "BR": "BRL",
    "NG": "NGN",
    "IN": "INR",
    "CN": "CNY",
}
CATEGORY_WEIGHTS = (0.24, 0.18, 0.12, 0.05, 0.06, 0.17, 0.10, 0.08)
# median amount (USD) per category, used as the centre of a log-normal
CATEGORY_MEDIAN_AMOUNT = (45.0, 32.0, 48.0, 310.0, 240.0, 65.0, 38.0, 75.0)
FRAUD_CATEGORY_WEIGHTS = (0.04, 0.03, 0.03, 0.20, 0.30, 0.32, 0.05, 0.03)
SEGMENTS = ("consumer", "premium", "small_business", "student")
SEGMENT_WEIGHTS = (0.55, 0.20, 0.15, 0.10)

# Label arrival: fraud with the chargeback, genuine when the review closes without a dispute.
CHARGEBACK_MIN_DAYS = 1.0
CHARGEBACK_MEDIAN_EXTRA_DAYS = 3.0
CHARGEBACK_MAX_DAYS = 45.0
GENUINE_REVIEW_DAYS = (2.0, 5.0)
# Share of ordinary-looking transactions that are fraud in the biased segment / after the fraud shift, and
# the share of the usual fraud pattern that is still fraud after the shift.
BIASED_SEGMENT_FRAUD_SHARE = 0.08
SHIFTED_FRAUD_SHARE = 0.03
SHIFTED_OLD_FRAUD_KEPT = 0.15

# Corruptions planted on the corrupt day, each on this share of the day's rows (at least one row).
CORRUPTION_SHARE = 0.01
CORRUPTION_KINDS = (
    "negative_amount",
    "zero_amount",
    "null_card_id",
    "unknown_category",
    "unknown_channel",
    "duplicate_transaction_id",
)
UNKNOWN_CATEGORY = "unknown_category"
UNKNOWN_CHANNEL = "TELEX"


@dataclasses.dataclass(frozen=True)
class SeedParams:
    """What to generate.

    :param days: number of days of history.
    :param rows_per_day: transactions per day.
    :param seed: random seed; the same parameters always give the same rows.
    :param start: first day (UTC). ``None`` means the history ends yesterday (UTC).
    :param drift_from: first day of the shifted distribution, or ``None`` for no drift.
    :param corrupt_on: day that gets bad rows planted, or ``None``.
    :param biased_segment: a segment (one of :data:`SEGMENTS`) where ordinary-looking fraud appears from
        ``biased_from`` on, or ``None``.
    :param biased_from: first day of the biased segment's new fraud (required with ``biased_segment``).
    :param fraud_shift_from: first day on which fraud changes its pattern in every segment, or ``None``.
    """

    days: int = 120
    rows_per_day: int = 300
    seed: int = 42
    start: dt.date | None = None
    drift_from: dt.date | None = None
    corrupt_on: dt.date | None = None
    biased_segment: str | None = None
    biased_from: dt.date | None = None
    fraud_shift_from: dt.date | None = None

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if self.rows_per_day < 20:
            raise ValueError(f"rows_per_day must be at least 20, got {self.rows_per_day}")
        if self.biased_segment is not None and self.biased_segment not in SEGMENTS:
            raise ValueError(f"biased_segment must be one of {', '.join(SEGMENTS)}, got {self.biased_segment!r}")
        if (self.biased_segment is None) != (self.biased_from is None):
            raise ValueError("biased_segment and biased_from go together: give both or neither")

    def first_day(self, today: dt.date | None = None) -> dt.date:
        """Return the first day of the history.

        :param today: the current UTC date (defaults to now); the default history ends the day before.
        """
        if self.start is not None:
            return self.start
        today = today or dt.datetime.now(dt.UTC).date()
        return today - dt.timedelta(days=self.days)

    def resolved(self, today: dt.date | None = None) -> SeedParams:
        """Return a copy with ``start`` fixed, so it can be recorded and replayed.

        :param today: the current UTC date (defaults to now).
        """
        return dataclasses.replace(self, start=self.first_day(today))

    def to_json(self) -> dict[str, Any]:
        """Return the parameters as a JSON-safe dict (dates as ISO strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, dt.date) else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SeedParams:
        """Build parameters from :meth:`to_json` output.

        :param data: the dict to read.
        """
        kwargs = dict(data)
        for name in ("start", "drift_from", "corrupt_on", "biased_from", "fraud_shift_from"):
            if kwargs.get(name):
                kwargs[name] = dt.date.fromisoformat(kwargs[name])
        return cls(**kwargs)


@dataclasses.dataclass(frozen=True)
class SeedResult:
    """What a seeding run wrote.

    :param params: the resolved parameters.
    :param rows: rows loaded.
    :param fraud_rows: rows labelled fraud.
    :param first_day: first day seeded.
    :param last_day: last day seeded.
    :param corrupted: planted bad rows by kind (empty without ``corrupt_on``).
    :param seconds: wall time of generation plus load.
    :param label_rows: rows loaded into ``FRAUD_LABELS`` (arrived or not yet).
    """

    params: SeedParams
    rows: int
    fraud_rows: int
    first_day: dt.date
    last_day: dt.date
    corrupted: dict[str, int]
    seconds: float
    label_rows: int = 0


@dataclasses.dataclass(frozen=True)
class _Catalogue:
    card_ids: np.ndarray
    card_country: np.ndarray
    merchant_ids: np.ndarray
    merchant_country: np.ndarray
    merchant_category: np.ndarray
    card_segment: np.ndarray
    # merchant indices per (category, is_domestic_for_country)
    by_category_country: dict[tuple[int, str, bool], np.ndarray]


def _catalogue(seed: int) -> _Catalogue:
    import numpy as np

    rng = np.random.default_rng([seed, 7_001])
    card_ids = np.array([f"card-{i:05d}" for i in range(N_CARDS)], dtype=object)
    card_country = rng.choice(np.array(CARD_COUNTRIES, dtype=object), size=N_CARDS, p=CARD_COUNTRY_WEIGHTS)
    merchant_ids = np.array([f"merch-{i:05d}" for i in range(N_MERCHANTS)], dtype=object)
    merchant_country = rng.choice(
        np.array(MERCHANT_COUNTRIES, dtype=object), size=N_MERCHANTS, p=MERCHANT_COUNTRY_WEIGHTS
    )
    merchant_category = rng.choice(len(CATEGORIES), size=N_MERCHANTS, p=CATEGORY_WEIGHTS)
    # every category needs a merchant in each card country and at least one abroad
    for cat in range(len(CATEGORIES)):
        for country in CARD_COUNTRIES:
            if not np.any((merchant_category == cat) & (merchant_country == country)):
                idx = int(rng.integers(N_MERCHANTS))
                merchant_category[idx], merchant_country[idx] = cat, country
    by: dict[tuple[int, str, bool], np.ndarray] = {}
    for cat in range(len(CATEGORIES)):
        for country in CARD_COUNTRIES:
            in_cat = merchant_category == cat
            by[(cat, country, True)] = np.flatnonzero(in_cat & (merchant_country == country))
            by[(cat, country, False)] = np.flatnonzero(in_cat & (merchant_country != country))
    # its own stream, so the draws above are the same as before segments existed
    segment_rng = np.random.default_rng([seed, 7_002])
    card_segment = segment_rng.choice(np.array(SEGMENTS, dtype=object), size=N_CARDS, p=SEGMENT_WEIGHTS)
    return _Catalogue(card_ids, card_country, merchant_ids, merchant_country, merchant_category, card_segment, by)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-x))


def _generate_day(day: dt.date, params: SeedParams, cat: _Catalogue) -> tuple[dict[str, Any], dict[str, int]]:
    """Generate one day's rows as column arrays plus the planted corruptions."""
    import numpy as np

    rng = np.random.default_rng([params.seed, day.toordinal()])
    n = params.rows_per_day
    drift = params.drift_from is not None and day >= params.drift_from
    p_ecom, p_atm = (0.45, 0.05) if drift else (0.28, 0.05)
    p_foreign = 0.16 if drift else 0.06
    amount_scale = 1.45 if drift else 1.0

    # --- burst structure: fraud bursts, legitimate bursts, single transactions
    sizes: list[tuple[int, bool]] = []  # (size, is_fraud_burst)
    budget = n
    for _ in range(int(rng.poisson(n * 0.0055))):
        size = int(rng.integers(2, 6))
        if size <= budget:
            sizes.append((size, True))
            budget -= size
    for _ in range(int(rng.poisson(n * 0.006))):
        size = int(rng.integers(2, 5))
        if size <= budget:
            sizes.append((size, False))
            budget -= size
    sizes.extend([(1, False)] * budget)
    group_fraud = np.array([f for _, f in sizes], dtype=bool)
    group_size = np.array([s for s, _ in sizes], dtype=np.int64)
    groups = len(sizes)
    group_burst = group_size > 1

    # group-level draws
    g_card = rng.integers(N_CARDS, size=groups)
    night_p = np.where(group_fraud, 0.5, 0.06)
    g_night = rng.random(groups) < night_p
    day_seconds = rng.normal(14.5 * 3600, 3.6 * 3600, size=groups).clip(6 * 3600, 23.99 * 3600)
    night_seconds = rng.uniform(0, 6 * 3600, size=groups)
    g_start = np.where(g_night, night_seconds, day_seconds)

    # expand to rows
    row_group = np.repeat(np.arange(groups), group_size)
    offsets = np.zeros(n)
    gaps = rng.exponential(110.0, size=n)  # seconds between transactions inside a burst
    pos_in_group = np.arange(n) - np.repeat(np.cumsum(group_size) - group_size, group_size)
    burst_rows = pos_in_group > 0
    offsets[burst_rows] = gaps[burst_rows]
    # cumulative offset inside each group
    cum = np.cumsum(offsets)
    group_base = np.repeat(cum[np.cumsum(group_size) - group_size], group_size)
    seconds = (np.repeat(g_start, group_size) + (cum - group_base)).clip(0, 86_399).astype(np.int64)

    r_fraud_burst = group_fraud[row_group]
    r_legit_burst = group_burst[row_group] & ~r_fraud_burst
    card = g_card[row_group]
    card_country = cat.card_country[card]

    # channel, card-present, foreign
    u = rng.random(n)
    p_ecom_row = np.where(r_fraud_burst, 0.70, np.where(r_legit_burst, 0.10, p_ecom))
    p_atm_row = np.where(r_fraud_burst, 0.10, p_atm)
    channel_idx = np.where(u < p_ecom_row, 1, np.where(u < p_ecom_row + p_atm_row, 2, 0))
    present_draw = rng.random(n)
    card_present = np.where(
        channel_idx == 1, present_draw < 0.01, np.where(channel_idx == 2, True, present_draw < 0.97)
    )
    p_foreign_row = np.where(r_fraud_burst, 0.55, np.where(r_legit_burst, 0.02, p_foreign))
    foreign = rng.random(n) < p_foreign_row

    # category and merchant
    category = np.where(
        r_fraud_burst,
        rng.choice(len(CATEGORIES), size=n, p=FRAUD_CATEGORY_WEIGHTS),
        rng.choice(len(CATEGORIES), size=n, p=CATEGORY_WEIGHTS),
    )
    merchant_pick = rng.random(n)
    merchant = np.empty(n, dtype=np.int64)
    for i in range(n):
        pool = cat.by_category_country[(int(category[i]), str(card_country[i]), not bool(foreign[i]))]
        merchant[i] = pool[int(merchant_pick[i] * len(pool))]
    merchant_country = cat.merchant_country[merchant]
    foreign = merchant_country != card_country

    # amount
    median = np.array(CATEGORY_MEDIAN_AMOUNT)[category] * amount_scale
    amount = median * np.exp(rng.normal(0.0, 0.65, size=n))
    amount = np.where(r_fraud_burst, amount * rng.uniform(1.6, 3.5, size=n), amount)
    atm_amount = 20.0 * rng.integers(1, 21, size=n) * amount_scale
    amount = np.where(channel_idx == 2, np.round(atm_amount / 20.0) * 20.0, amount)
    cents = np.maximum(np.round(amount * 100.0), 100).astype(np.int64)

    # label
    hour = seconds // 3600
    night = hour < 6
    rel_amount = np.log(cents / 100.0 / median).clip(-2, 3)
    logit = (
        -7.0
        + 1.3 * (channel_idx == 1)
        + 0.9 * ~card_present
        + 1.5 * foreign
        + 0.9 * rel_amount
        + 1.2 * night
        + 0.6 * (category == CATEGORIES.index("electronics"))
    )
    is_fraud = rng.random(n) < _sigmoid(logit)
    is_fraud = np.where(r_fraud_burst, rng.random(n) < 0.9, is_fraud)
    segment = cat.card_segment[card]
    is_fraud = _planted_fraud(day, params, is_fraud, segment, channel_idx, card_present, foreign, night)

    # order by time, then number the day's transactions
    order = np.lexsort((np.arange(n), seconds))
    day_tag = day.strftime("%Y%m%d")
    base = dt.datetime(day.year, day.month, day.day)
    cols: dict[str, Any] = {
        "TRANSACTION_ID": np.array([f"tx-{day_tag}-{i + 1:06d}" for i in range(n)], dtype=object),
        "EVENT_TS": np.array([base + dt.timedelta(seconds=int(s)) for s in seconds[order]], dtype=object),
        "CARD_ID": cat.card_ids[card][order],
        "MERCHANT_ID": cat.merchant_ids[merchant][order],
        "MERCHANT_CATEGORY": np.array(CATEGORIES, dtype=object)[category][order],
        "AMOUNT": cents[order],
        "CURRENCY": np.array(
            [
                "USD" if mc == "US" or (cc == "US" and rng_c < 0.7) else CURRENCY_BY_COUNTRY[mc]
                for mc, cc, rng_c in zip(merchant_country, card_country, rng.random(n), strict=True)
            ],
            dtype=object,
        )[order],
        "CHANNEL": np.array(CHANNELS, dtype=object)[channel_idx][order],
        "CARD_PRESENT": card_present[order],
        "MERCHANT_COUNTRY": merchant_country[order],
        "CARD_COUNTRY": card_country[order],
        "CUSTOMER_SEGMENT": segment[order],
        "IS_FRAUD": is_fraud[order],
    }
    corrupted: dict[str, int] = {}
    if params.corrupt_on is not None and day == params.corrupt_on:
        corrupted = _corrupt(cols, rng)
    return cols, corrupted


def _planted_fraud(
    day: dt.date,
    params: SeedParams,
    is_fraud: np.ndarray,
    segment: np.ndarray,
    channel_idx: np.ndarray,
    card_present: np.ndarray,
    foreign: np.ndarray,
    night: np.ndarray,
) -> np.ndarray:
    """The day's fraud flags after the biased-segment and fraud-shift options (unchanged when both are off).

    Draws come from the day's own stream for these options, so the rest of the day is the same rows.
    """
    import numpy as np

    biased = params.biased_from is not None and day >= params.biased_from
    shifted = params.fraud_shift_from is not None and day >= params.fraud_shift_from
    if not (biased or shifted):
        return is_fraud
    rng = np.random.default_rng([params.seed, day.toordinal(), 9_002])
    n = len(is_fraud)
    ordinary = (channel_idx == 0) & card_present & ~foreign & ~night
    u_new, u_old = rng.random(n), rng.random(n)
    out = is_fraud.copy()
    if shifted:
        out = (out & (u_old < SHIFTED_OLD_FRAUD_KEPT)) | (ordinary & (u_new < SHIFTED_FRAUD_SHARE))
    if biased:
        out = out | (ordinary & (segment == params.biased_segment) & (u_new < BIASED_SEGMENT_FRAUD_SHARE))
    return out


def label_arrivals(day: dt.date, params: SeedParams, event_ts: np.ndarray, is_fraud: np.ndarray) -> np.ndarray:
    """When each of the day's outcomes becomes known (``LABELED_AT``, naive UTC datetimes).

    Its own random stream per (seed, day): the labels never change the transactions.

    :param day: the day of the transactions.
    :param params: the seed parameters (only ``seed`` is read).
    :param event_ts: the transactions' times.
    :param is_fraud: their outcomes.
    """
    import numpy as np

    rng = np.random.default_rng([params.seed, day.toordinal(), 9_001])
    n = len(is_fraud)
    chargeback = CHARGEBACK_MIN_DAYS + rng.lognormal(np.log(CHARGEBACK_MEDIAN_EXTRA_DAYS), 0.8, size=n)
    review = rng.uniform(*GENUINE_REVIEW_DAYS, size=n)
    delay_days = np.where(is_fraud, np.minimum(chargeback, CHARGEBACK_MAX_DAYS), review)
    return np.array(
        [ts + dt.timedelta(seconds=int(d * 86_400)) for ts, d in zip(event_ts, delay_days, strict=True)],
        dtype=object,
    )


def _corrupt(cols: dict[str, Any], rng: np.random.Generator) -> dict[str, int]:
    """Plant bad rows in place; each kind on its own rows. Return how many rows of each kind."""
    n = len(cols["TRANSACTION_ID"])
    per_kind = max(1, round(n * CORRUPTION_SHARE))
    picks = rng.choice(n, size=per_kind * len(CORRUPTION_KINDS) + per_kind, replace=False)
    chunks = {kind: picks[i * per_kind : (i + 1) * per_kind] for i, kind in enumerate(CORRUPTION_KINDS)}
    # duplicate ids copy the id of other (distinct) rows
    dup_sources = picks[len(CORRUPTION_KINDS) * per_kind :]
    cols["CARD_ID"] = cols["CARD_ID"].copy()
    cols["MERCHANT_CATEGORY"] = cols["MERCHANT_CATEGORY"].copy()
    cols["CHANNEL"] = cols["CHANNEL"].copy()
    cols["TRANSACTION_ID"] = cols["TRANSACTION_ID"].copy()
    cols["AMOUNT"] = cols["AMOUNT"].copy()
    cols["AMOUNT"][chunks["negative_amount"]] = -cols["AMOUNT"][chunks["negative_amount"]]
    cols["AMOUNT"][chunks["zero_amount"]] = 0
    cols["CARD_ID"][chunks["null_card_id"]] = None
    cols["MERCHANT_CATEGORY"][chunks["unknown_category"]] = UNKNOWN_CATEGORY
    cols["CHANNEL"][chunks["unknown_channel"]] = UNKNOWN_CHANNEL
    cols["TRANSACTION_ID"][chunks["duplicate_transaction_id"]] = cols["TRANSACTION_ID"][dup_sources]
    return {kind: len(idx) for kind, idx in chunks.items()}


def _arrow_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("TRANSACTION_ID", pa.string(), nullable=False),
            pa.field("EVENT_TS", pa.timestamp("us")),
            pa.field("CARD_ID", pa.string()),
            pa.field("MERCHANT_ID", pa.string()),
            pa.field("MERCHANT_CATEGORY", pa.string()),
            pa.field("AMOUNT", pa.decimal128(12, 2)),
            pa.field("CURRENCY", pa.string()),
            pa.field("CHANNEL", pa.string()),
            pa.field("CARD_PRESENT", pa.bool_()),
            pa.field("MERCHANT_COUNTRY", pa.string()),
            pa.field("CARD_COUNTRY", pa.string()),
            pa.field("CUSTOMER_SEGMENT", pa.string()),
            pa.field("IS_FRAUD", pa.bool_()),
        ]
    )


def _labels_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("TRANSACTION_ID", pa.string(), nullable=False),
            pa.field("IS_FRAUD", pa.bool_(), nullable=False),
            pa.field("LABELED_AT", pa.timestamp("us"), nullable=False),
        ]
    )


def generate(params: SeedParams, today: dt.date | None = None) -> tuple[pa.Table, dict[str, int]]:
    """Generate the history as an Arrow table, without touching any database.

    :param params: what to generate.
    :param today: the current UTC date, used only when ``params.start`` is ``None``.
    :return: the rows and the planted corruptions by kind.
    """
    import numpy as np
    import pyarrow as pa

    first = params.first_day(today)
    cat = _catalogue(params.seed)
    parts: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    corrupted: dict[str, int] = {}
    for offset in range(params.days):
        cols, bad = _generate_day(first + dt.timedelta(days=offset), params, cat)
        for c in COLUMNS:
            parts[c].append(cols[c])
        for kind, count in bad.items():
            corrupted[kind] = corrupted.get(kind, 0) + count
    merged = {c: np.concatenate(parts[c]) for c in COLUMNS}
    scale = Decimal("0.01")
    merged["AMOUNT"] = [Decimal(int(c)) * scale for c in merged["AMOUNT"]]
    schema = _arrow_schema()
    table = pa.table({c: pa.array(list(merged[c]), type=schema.field(c).type) for c in COLUMNS}, schema=schema)
    return table, corrupted


def generate_labels(params: SeedParams, transactions: pa.Table, today: dt.date | None = None) -> pa.Table:
    """The late labels of :func:`generate`'s transactions: one row per transaction, arrived or not yet.

    :param params: the parameters ``transactions`` was generated with.
    :param transactions: the table :func:`generate` returned for them.
    :param today: the current UTC date, used only when ``params.start`` is ``None``.
    """
    import numpy as np
    import pyarrow as pa

    first = params.first_day(today)
    n = params.rows_per_day
    ids, fraud, arrived = [], [], []
    for offset in range(params.days):
        day_rows = transactions.slice(offset * n, n)
        event_ts = np.array(day_rows.column("EVENT_TS").to_pylist(), dtype=object)
        is_fraud = np.array(day_rows.column("IS_FRAUD").to_pylist(), dtype=bool)
        ids.extend(day_rows.column("TRANSACTION_ID").to_pylist())
        fraud.extend(is_fraud.tolist())
        arrived.extend(label_arrivals(first + dt.timedelta(days=offset), params, event_ts, is_fraud).tolist())
    schema = _labels_schema()
    return pa.table(
        {
            "TRANSACTION_ID": pa.array(ids, type=pa.string()),
            "IS_FRAUD": pa.array(fraud, type=pa.bool_()),
            "LABELED_AT": pa.array(arrived, type=pa.timestamp("us")),
        },
        schema=schema,
    )


def _create_stage(cur: Any) -> None:
    from snowflake.connector.errors import ProgrammingError

    try:
        cur.execute(f"CREATE STAGE IF NOT EXISTS {STAGE}")
    except ProgrammingError as exc:
        # fakesnow ignores IF NOT EXISTS for stages and reports "already exists" (002002) instead
        if exc.errno != 2002:
            raise


def _load(cur: Any, table: pa.Table, fq_table: str, file_name: str) -> int:
    """``PUT`` one Parquet file to the stage and ``COPY INTO`` the table; return the rows loaded."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="devstack-seed-") as tmp:
        path = Path(tmp) / file_name
        pq.write_table(table, path)
        _create_stage(cur)
        cur.execute(f"PUT 'file://{path.as_posix()}' @{STAGE} OVERWRITE = TRUE")
        cur.execute(
            f"COPY INTO {fq_table} FROM @{STAGE} "
            "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE FORCE = TRUE"
        )
        # one row per file: file, status, rows_parsed, rows_loaded, ...
        loaded = sum(int(row[3]) for row in cur.fetchall() if len(row) > 3)
    if loaded != table.num_rows:
        raise RuntimeError(f"COPY INTO {fq_table} loaded {loaded} rows, expected {table.num_rows}")
    return loaded


def seed(conn: Any, params: SeedParams, today: dt.date | None = None, *, replace: bool = False) -> SeedResult:
    """Create ``FRAUD_DB.RAW.CARD_TRANSACTIONS`` and ``FRAUD_LABELS`` if needed and (re)load the history.

    Rows already in the seeded date range are deleted first (labels: those of the range's transactions),
    so seeding the same range again replaces it instead of adding duplicates; rows outside the range are kept.
    With ``replace`` both tables are dropped first (they were seeded with an older :data:`LAYOUT`).

    :param conn: an open ``snowflake.connector`` connection (the devstack's or a real account's).
    :param params: what to generate.
    :param today: the current UTC date, used only when ``params.start`` is ``None``.
    :return: what was written.
    """
    started = time.perf_counter()
    params = params.resolved(today)
    table, corrupted = generate(params)
    labels = generate_labels(params, table)
    first = params.first_day()
    end = first + dt.timedelta(days=params.days)
    bounds = {"start": f"{first.isoformat()} 00:00:00", "end": f"{end.isoformat()} 00:00:00"}
    cur = conn.cursor()
    try:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA}")
        cur.execute(f"USE SCHEMA {DATABASE}.{SCHEMA}")
        if replace:
            cur.execute(f"DROP TABLE IF EXISTS {FQ_LABELS_TABLE}")
            cur.execute(f"DROP TABLE IF EXISTS {FQ_TABLE}")
        cur.execute(CREATE_TABLE_SQL)
        cur.execute(CREATE_LABELS_TABLE_SQL)
        cur.execute(
            f"DELETE FROM {FQ_LABELS_TABLE} WHERE TRANSACTION_ID IN (SELECT TRANSACTION_ID FROM {FQ_TABLE} "  # noqa: S608 - constant tables
            "WHERE EVENT_TS >= %(start)s AND EVENT_TS < %(end)s)",
            bounds,
        )
        cur.execute(
            f"DELETE FROM {FQ_TABLE} WHERE EVENT_TS >= %(start)s AND EVENT_TS < %(end)s",  # noqa: S608 - constant table
            bounds,
        )
        loaded = _load(cur, table, FQ_TABLE, f"card_transactions_{first:%Y%m%d}_{params.days}d.parquet")
        label_rows = _load(cur, labels, FQ_LABELS_TABLE, f"fraud_labels_{first:%Y%m%d}_{params.days}d.parquet")
    finally:
        cur.close()
    fraud = int(sum(table.column("IS_FRAUD").to_pylist()))
    result = SeedResult(
        params=params,
        rows=loaded,
        fraud_rows=fraud,
        first_day=first,
        last_day=end - dt.timedelta(days=1),
        corrupted=corrupted,
        seconds=round(time.perf_counter() - started, 3),
        label_rows=label_rows,
    )
    log.info(
        "Seeded %s: %d rows (%d fraud) for %s..%s and %d labels in %s in %.2fs",
        FQ_TABLE,
        result.rows,
        result.fraud_rows,
        result.first_day,
        result.last_day,
        result.label_rows,
        FQ_LABELS_TABLE,
        result.seconds,
    )
    return result


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the seeding options to a command-line parser.

    :param parser: the parser to extend.
    """
    defaults = SeedParams()
    parser.add_argument("--days", type=int, default=defaults.days, help="days of history (default: %(default)s)")
    parser.add_argument(
        "--rows-per-day", type=int, default=defaults.rows_per_day, help="transactions per day (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default: %(default)s)")
    parser.add_argument("--start", type=_date, help="first day, YYYY-MM-DD (default: history ends yesterday, UTC)")
    parser.add_argument("--drift-from", type=_date, help="first day of the shifted distribution, YYYY-MM-DD")
    parser.add_argument("--corrupt-on", type=_date, help="day to plant bad rows on, YYYY-MM-DD")
    parser.add_argument(
        "--biased-segment",
        choices=SEGMENTS,
        help="customer segment in which ordinary-looking fraud appears from --biased-from on",
    )
    parser.add_argument("--biased-from", type=_date, help="first day of the biased segment's fraud, YYYY-MM-DD")
    parser.add_argument(
        "--fraud-shift-from", type=_date, help="first day on which fraud changes its pattern (recall collapses)"
    )


def params_from_args(args: argparse.Namespace) -> SeedParams:
    """Build :class:`SeedParams` from options added by :func:`add_arguments`.

    :param args: parsed arguments.
    """
    return SeedParams(
        days=args.days,
        rows_per_day=args.rows_per_day,
        seed=args.seed,
        start=args.start,
        drift_from=args.drift_from,
        corrupt_on=args.corrupt_on,
        biased_segment=args.biased_segment,
        biased_from=args.biased_from,
        fraud_shift_from=args.fraud_shift_from,
    )
