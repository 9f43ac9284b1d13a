"""Synthetic inputs of the monitoring job: a baseline dataset, data capture and ground truth, as files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.unit.include.conftest import CODE, make_features

SCHEMA = json.loads((CODE / "common" / "features_schema.json").read_text())
FEATURES: list[str] = SCHEMA["features"]
CATEGORICAL = [c["name"] for c in SCHEMA["columns"] if c["kind"] == "categorical"]
SEGMENTS = ["retail", "small_business", "premium"]
INTERVAL_START = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
INTERVAL_END = INTERVAL_START + dt.timedelta(hours=1)
LOOKBACK_START = INTERVAL_START - dt.timedelta(hours=24)


def monitor_config(**overrides: Any) -> dict[str, Any]:
    """A MONITOR_CONFIG document for the synthetic endpoint."""
    config = {
        "endpoint": "fraud-endpoint",
        "interval_start": INTERVAL_START.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "interval_end": INTERVAL_END.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lookback_start": LOOKBACK_START.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "features": FEATURES,
        "categorical_features": CATEGORICAL,
        "ignore_features": [],
        "label": "is_fraud",
        "probability_threshold": 0.5,
        "facet": "customer_segment",
        "facet_values_or_threshold": None,
        "thresholds": {
            "drift": {"share": 0.5},
            "model_quality": {"recall_min": 0.5, "precision_min": 0.3, "f1_min": 0.4, "auc_min": 0.7},
            "bias": {"DPPL_abs_max": 0.5, "DI_min": 0.2, "DI_max": 5.0, "RD_abs_max": 0.5},
            "min_labelled_rows": 50,
        },
    }
    config.update(overrides)
    return config


def _cell(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    return str(value)


def scores_for(frame: pd.DataFrame, *, recall_collapsed: bool, seed: int) -> np.ndarray:
    """A model's scores: frauds high and genuine low; with ``recall_collapsed`` every fraud scores low."""
    rng = np.random.default_rng(seed)
    fraud = frame["is_fraud"].to_numpy() == 1
    high = rng.uniform(0.6, 0.95, len(frame))
    low = rng.uniform(0.01, 0.3, len(frame))
    scores = np.where(fraud & ~recall_collapsed, high, low)
    # a few false alarms among the genuine, so precision is defined either way
    alarms = (~fraud) & (rng.random(len(frame)) < 0.03)
    return np.round(np.where(alarms, high, scores), 6)


def write_baseline(folder: Path, rows: int = 800, seed: int = 1) -> pd.DataFrame:
    """``baseline.csv``: the model's output columns, then its input columns, with a header."""
    frame = make_features(rows=rows, days=10, seed=seed, fraud_boost=2.0)
    scores = scores_for(frame, recall_collapsed=False, seed=seed)
    out = pd.DataFrame({"fraud_probability": scores, "is_fraud": (scores >= 0.5).astype(int)})
    for feature in FEATURES:
        out[feature] = frame[feature].map(_cell)
    folder.mkdir(parents=True, exist_ok=True)
    out.to_csv(folder / "baseline.csv", index=False)
    return out


def traffic(rows: int = 300, seed: int = 2, drifted: bool = False) -> pd.DataFrame:
    """Transactions of the interval, with a customer segment; ``drifted`` shifts amounts and channels."""
    frame = make_features(rows=rows, days=1, seed=seed, fraud_boost=2.0)
    if drifted:
        rng = np.random.default_rng(seed)
        frame["amount"] = np.round(frame["amount"] * 8 + 500, 2)
        frame["log_amount"] = np.log1p(frame["amount"])
        frame["amount_to_card_avg_ratio"] = frame["amount"] / frame["card_avg_amount_7d"]
        frame["channel"] = rng.choice(["ECOM", "ATM"], size=rows)
        frame["card_txn_count_24h"] = frame["card_txn_count_24h"] + 12
        frame["card_avg_amount_7d"] = frame["card_avg_amount_7d"] * 6
        frame["hour_of_day"] = 3
        frame["is_foreign"] = True
    frame["customer_segment"] = np.array(SEGMENTS)[np.arange(rows) % len(SEGMENTS)]
    return frame


def write_capture(
    folder: Path, frame: pd.DataFrame, scores: np.ndarray, start: dt.datetime, *, with_ids: bool = True
) -> None:
    """One capture record per transaction (CSV in, ``score,label`` out), spread over an hour from ``start``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (row, score) in enumerate(zip(frame.itertuples(index=False), scores, strict=True)):
        when = start + dt.timedelta(seconds=int(3599 * i / max(len(frame), 1)))
        metadata = {"eventId": f"evt-{row.transaction_id}", "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if with_ids:
            metadata["inferenceId"] = row.transaction_id
        record = {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": ",".join(_cell(getattr(row, f)) for f in FEATURES),
                    "encoding": "CSV",
                },
                "endpointOutput": {
                    "observedContentType": "text/csv; charset=utf-8",
                    "mode": "OUTPUT",
                    "data": f"{score:.6f},{int(score >= 0.5)}",
                    "encoding": "CSV",
                },
            },
            "eventMetadata": metadata,
            "eventVersion": "0",
        }
        lines.append(json.dumps(record))
    hour = start.strftime("%Y/%m/%d/%H")
    (folder / hour).mkdir(parents=True, exist_ok=True)
    (folder / hour / f"{start:%M-%S}-000-capture.jsonl").write_text("\n".join(lines) + "\n")


def write_labels(folder: Path, frame: pd.DataFrame, arrived: dt.datetime) -> None:
    """Ground truth for every transaction of ``frame``, with the segment in ``attributes``."""
    lines = [
        json.dumps(
            {
                "groundTruthData": {"data": str(int(row.is_fraud)), "encoding": "CSV"},
                "eventMetadata": {"eventId": row.transaction_id},
                "eventVersion": "0",
                "attributes": {"customer_segment": row.customer_segment},
            }
        )
        for row in frame.itertuples(index=False)
    ]
    target = folder / arrived.strftime("%Y/%m/%d/%H")
    target.mkdir(parents=True, exist_ok=True)
    (target / "labels.jsonl").write_text("\n".join(lines) + "\n")


def write_inputs(
    root: Path,
    *,
    drifted: bool = False,
    recall_collapsed: bool = False,
    labels: bool = True,
    rows: int = 300,
    flagged_segment: str | None = None,
) -> Path:
    """The job's input folders under ``root`` (``capture``, ``baseline``, optionally ``labels``).

    :param flagged_segment: the model flags every transaction of this customer segment as fraud (a bias)
    """
    write_baseline(root / "baseline")
    frame = traffic(rows=rows, drifted=drifted)
    scores = scores_for(frame, recall_collapsed=recall_collapsed, seed=3)
    if flagged_segment is not None:
        scores = np.where(frame["customer_segment"].to_numpy() == flagged_segment, 0.97, scores)
    write_capture(root / "capture", frame, scores, INTERVAL_START)
    if labels:
        write_labels(root / "labels", frame, INTERVAL_END + dt.timedelta(days=2))
    return root
