"""The monitoring job's logic without Evidently or matplotlib: reading capture and ground truth, the join,
data-quality checks, model quality, post-training bias, the decision and the CloudWatch datums.

``monitor.py`` (the job's entrypoint) adds what needs the image's libraries: Evidently's drift report and
the pictures. Everything here needs only numpy and pandas, so it is tested in-process.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# the scikit-learn 1.4-2 image runs Python 3.10, which has no datetime.UTC
UTC = dt.timezone.utc  # noqa: UP017
NAMESPACE = "MlLifecycle/Monitoring"
MODEL_QUALITY_METRICS = ("precision", "recall", "f1", "auc", "accuracy")
#: model-quality threshold key -> (metric, comparison that breaks it)
MODEL_QUALITY_THRESHOLDS = {
    "recall_min": ("recall", "LessThanThreshold"),
    "precision_min": ("precision", "LessThanThreshold"),
    "f1_min": ("f1", "LessThanThreshold"),
    "auc_min": ("auc", "LessThanThreshold"),
    "accuracy_min": ("accuracy", "LessThanThreshold"),
}
DATA_QUALITY_DEFAULTS = {
    "missing_share_max_increase": 0.05,
    "unknown_category_share_max": 0.01,
    "out_of_range_share_max": 0.05,
}
SCORE = "__score__"
PREDICTED = "__predicted__"
ROW_ID = "__inference_id__"
TIME = "__inference_time__"


class MonitorInputError(ValueError):
    """The job cannot run on its input; the message names the input and what is wrong."""


# ------------------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class MonitorConfig:
    """``MONITOR_CONFIG``, checked."""

    endpoint: str
    interval_start: dt.datetime
    interval_end: dt.datetime
    lookback_start: dt.datetime
    features: list[str]
    categorical_features: list[str]
    ignore_features: list[str]
    label: str
    probability_threshold: float
    facet: str
    facet_values_or_threshold: Any
    drift: dict[str, Any]
    model_quality: dict[str, float]
    bias: dict[str, float]
    data_quality: dict[str, float]
    min_labelled_rows: int
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def drift_features(self) -> list[str]:
        return [f for f in self.features if f not in self.ignore_features]


def _time(value: Any, what: str) -> dt.datetime:
    """``value`` (ISO 8601) as an aware UTC time; ``what`` names it in the error."""
    if not isinstance(value, str) or not value:
        raise MonitorInputError(f"{what} must be an ISO 8601 UTC time, got {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:  # e.g. fractional seconds of other than 3 or 6 digits, which Python 3.10 does not read
            parsed = pd.Timestamp(value).to_pydatetime()
        except ValueError:
            raise MonitorInputError(f"{what} is not an ISO 8601 time: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _number(section: dict[str, Any], key: str, where: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MonitorInputError(f"MONITOR_CONFIG.{where}.{key} must be a number, got {value!r}")
    return float(value)


def parse_config(text: str | None) -> MonitorConfig:
    """Read ``MONITOR_CONFIG`` (JSON).

    :raises MonitorInputError: it is absent, not JSON, or a field is missing or of the wrong type (named)
    """
    if not text:
        raise MonitorInputError(
            "no configuration: neither the config input's monitor_config.json nor the environment variable "
            "MONITOR_CONFIG is there"
        )
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MonitorInputError(f"MONITOR_CONFIG (monitor_config.json) is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MonitorInputError("MONITOR_CONFIG must be a JSON object")
    missing = [k for k in ("endpoint", "interval_start", "interval_end", "features", "facet") if not raw.get(k)]
    if missing:
        raise MonitorInputError(f"MONITOR_CONFIG lacks {', '.join(missing)}")
    features = raw["features"]
    if not isinstance(features, list) or not all(isinstance(f, str) and f for f in features):
        raise MonitorInputError("MONITOR_CONFIG.features must be a list of column names")
    lists = {}
    for key in ("categorical_features", "ignore_features"):
        value = raw.get(key) or []
        if not isinstance(value, list) or any(v not in features for v in value):
            raise MonitorInputError(f"MONITOR_CONFIG.{key} must be a list of names from features, got {value!r}")
        lists[key] = list(value)
    start, end = (
        _time(raw["interval_start"], "MONITOR_CONFIG.interval_start"),
        _time(raw["interval_end"], "MONITOR_CONFIG.interval_end"),
    )
    if end <= start:
        raise MonitorInputError(f"MONITOR_CONFIG: interval_end {raw['interval_end']} is not after interval_start")
    lookback = _time(raw["lookback_start"], "MONITOR_CONFIG.lookback_start") if raw.get("lookback_start") else start
    if lookback > start:
        raise MonitorInputError("MONITOR_CONFIG: lookback_start is after interval_start")
    thresholds = raw.get("thresholds") or {}
    if not isinstance(thresholds, dict):
        raise MonitorInputError("MONITOR_CONFIG.thresholds must be an object")
    drift = dict(thresholds.get("drift") or {})
    share = _number(drift, "share", "thresholds.drift")
    drift["share"] = 0.5 if share is None else share
    if not 0 < drift["share"] <= 1:
        raise MonitorInputError(f"MONITOR_CONFIG.thresholds.drift.share must be in (0, 1], got {drift['share']}")
    model_quality = {}
    for key in MODEL_QUALITY_THRESHOLDS:
        value = _number(thresholds.get("model_quality") or {}, key, "thresholds.model_quality")
        if value is not None:
            model_quality[key] = value
    bias = {}
    for key in ("DPPL_abs_max", "DI_min", "DI_max", "RD_abs_max"):
        value = _number(thresholds.get("bias") or {}, key, "thresholds.bias")
        if value is not None:
            bias[key] = value
    data_quality = dict(DATA_QUALITY_DEFAULTS)
    for key in DATA_QUALITY_DEFAULTS:
        value = _number(thresholds.get("data_quality") or {}, key, "thresholds.data_quality")
        if value is not None:
            data_quality[key] = value
    min_rows = thresholds.get("min_labelled_rows", raw.get("min_labelled_rows", 50))
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise MonitorInputError(f"MONITOR_CONFIG min_labelled_rows must be a positive integer, got {min_rows!r}")
    probability_threshold = _number(raw, "probability_threshold", "")
    return MonitorConfig(
        endpoint=str(raw["endpoint"]),
        interval_start=start,
        interval_end=end,
        lookback_start=lookback,
        features=list(features),
        categorical_features=lists["categorical_features"],
        ignore_features=lists["ignore_features"],
        label=str(raw.get("label") or "is_fraud"),
        probability_threshold=0.5 if probability_threshold is None else probability_threshold,
        facet=str(raw["facet"]),
        facet_values_or_threshold=raw.get("facet_values_or_threshold"),
        drift=drift,
        model_quality=model_quality,
        bias=bias,
        data_quality=data_quality,
        min_labelled_rows=min_rows,
        raw=raw,
    )


# ------------------------------------------------------------------------------------------------ reading


def _jsonl_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _payload_text(payload: dict[str, Any]) -> str:
    data = payload.get("data", "")
    if str(payload.get("encoding", "")).upper() == "BASE64":
        return base64.b64decode(data).decode("utf-8")
    return data if isinstance(data, str) else json.dumps(data)


def _input_rows(payload: dict[str, Any], features: list[str]) -> list[list[str]]:
    """Feature values of each row of a captured request, in ``features`` order, as text."""
    text = _payload_text(payload)
    content_type = str(payload.get("observedContentType", "text/csv")).lower()
    if "json" in content_type or str(payload.get("encoding", "")).upper() == "JSON":
        body = json.loads(text)
        records = body.get("instances", body) if isinstance(body, dict) else body
        records = records if isinstance(records, list) and records and isinstance(records[0], (dict, list)) else [body]
        rows = []
        for record in records:
            if isinstance(record, dict):
                rows.append(["" if record.get(f) is None else str(record.get(f)) for f in features])
            else:
                rows.append(["" if v is None else str(v) for v in record])
        return rows
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if rows and [c.strip() for c in rows[0]] and {c.strip() for c in rows[0]} == set(features):
        order = [c.strip() for c in rows[0]]
        return [[row[order.index(f)] if len(row) == len(order) else "" for f in features] for row in rows[1:]]
    return rows


def _scores(payload: dict[str, Any]) -> list[float]:
    """The model's score per row of a captured response (CSV: first column; JSON: first field of a record)."""
    text = _payload_text(payload).strip()
    content_type = str(payload.get("observedContentType", "text/csv")).lower()
    if "json" in content_type or str(payload.get("encoding", "")).upper() == "JSON":
        body = json.loads(text)
        records = body.get("predictions", body) if isinstance(body, dict) else body
        records = records if isinstance(records, list) else [records]
        scores = []
        for record in records:
            value = next(iter(record.values())) if isinstance(record, dict) else record
            value = value[0] if isinstance(value, list) else value
            scores.append(float(value))
        return scores
    return [float(row[0]) for row in csv.reader(io.StringIO(text)) if row]


@dataclass
class Capture:
    """The captured rows of the lookback window: features as text, score, inference id and time."""

    rows: pd.DataFrame
    records: int = 0
    bad_records: list[str] = field(default_factory=list)
    bad_rows: int = 0


def read_capture(folder: Path, config: MonitorConfig) -> Capture:
    """Captured rows between ``lookback_start`` and ``interval_end`` (SageMaker's data-capture JSON Lines).

    A record that cannot be read (not JSON, no input, a response with another number of scores than rows)
    is left out and named in ``bad_records``; rows with another number of values than there are features
    are counted in ``bad_rows`` (both are data-quality findings, not failures).
    """
    columns = [*config.features, SCORE, ROW_ID, TIME]
    collected: list[list[Any]] = []
    capture = Capture(rows=pd.DataFrame(columns=columns))
    for path in _jsonl_files(folder):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            capture.records += 1
            where = f"{path.relative_to(folder)}:{number}"
            try:
                record = json.loads(line)
                metadata = record.get("eventMetadata") or {}
                when = _time(metadata.get("inferenceTime"), "eventMetadata.inferenceTime")
                if not config.lookback_start <= when < config.interval_end:
                    continue
                data = record["captureData"]
                rows = _input_rows(data["endpointInput"], config.features)
                scores = _scores(data["endpointOutput"]) if "endpointOutput" in data else [math.nan] * len(rows)
                if len(scores) != len(rows):
                    raise ValueError(f"{len(rows)} input row(s) but {len(scores)} score(s)")
            except (ValueError, KeyError, TypeError, AttributeError, MonitorInputError) as exc:
                capture.bad_records.append(f"{where}: {exc}")
                continue
            # the join key: the caller's InferenceId, else SageMaker's eventId (as Model Monitor merges)
            key = metadata.get("inferenceId") or metadata.get("eventId")
            for row, score in zip(rows, scores, strict=True):
                if len(row) != len(config.features):
                    capture.bad_rows += 1
                    continue
                collected.append([*row, score, key if len(rows) == 1 else None, when])
    if collected:
        capture.rows = pd.DataFrame(collected, columns=columns)
    return capture


def read_labels(folder: Path, facet: str) -> tuple[pd.DataFrame, list[str]]:
    """Ground truth (SageMaker's ground-truth JSON Lines): ``eventId``, ``label`` (0/1) and the facet from
    ``attributes``; a later line for the same eventId replaces an earlier one. Unreadable lines are named."""
    rows: dict[str, tuple[int, Any]] = {}
    bad: list[str] = []
    for path in _jsonl_files(folder):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                event_id = str(record["eventMetadata"]["eventId"])
                data = str(record["groundTruthData"]["data"]).strip()
                if str(record["groundTruthData"].get("encoding", "CSV")).upper() == "JSON":
                    parsed = json.loads(data)
                    data = str(next(iter(parsed.values())) if isinstance(parsed, dict) else parsed)
                value = float(data)
                if value not in (0.0, 1.0):
                    raise ValueError(f"label {data!r} is not 0 or 1")
                attributes = record.get("attributes") or {}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                bad.append(f"{path.relative_to(folder)}:{number}: {exc}")
                continue
            rows[event_id] = (int(value), attributes.get(facet))
    frame = pd.DataFrame([(k, v[0], v[1]) for k, v in rows.items()], columns=["eventId", "label", "facet"]).astype(
        {"label": "int64"}
    )
    return frame, bad


def read_baseline(folder: Path, config: MonitorConfig) -> pd.DataFrame:
    """The baseline dataset (CSV with a header; the model's output columns, then its input columns).

    :raises MonitorInputError: no CSV file, or it lacks one of the features (named)
    """
    files = [p for p in _jsonl_files(folder) if p.suffix.lower() == ".csv"]
    if not files:
        raise MonitorInputError(f"the baseline input {folder} holds no CSV file (the served model's baseline dataset)")
    frame = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in files], ignore_index=True)
    absent = [f for f in config.features if f not in frame.columns]
    if absent:
        raise MonitorInputError(
            f"the baseline dataset {files[0].name} lacks the feature column(s) {', '.join(absent)} "
            f"(it has {', '.join(frame.columns)})"
        )
    if frame.empty:
        raise MonitorInputError(f"the baseline dataset {files[0].name} holds no rows")
    return frame


def read_history(folder: Path, endpoint: str) -> list[dict[str, Any]]:
    """Earlier ``summary.json`` documents of the endpoint, oldest first (unreadable files skipped)."""
    found = {}
    for path in _jsonl_files(folder):
        if path.suffix != ".json":
            continue
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            start = document["interval"]["start"]
        except (ValueError, KeyError, TypeError):
            continue
        if document.get("endpoint") == endpoint:
            found[start] = document
    return [found[k] for k in sorted(found)]


# ------------------------------------------------------------------------------------------------ typing


def numeric(values: pd.Series) -> pd.Series:
    """Text values as numbers: ``true``/``false`` as 1/0, empty and unparseable as NaN."""
    text = values.astype(str).str.strip()
    text = text.replace({"true": "1", "True": "1", "TRUE": "1", "false": "0", "False": "0", "FALSE": "0"})
    return pd.to_numeric(text.where(text != ""), errors="coerce")


def typed(frame: pd.DataFrame, config: MonitorConfig) -> pd.DataFrame:
    """The features of ``frame`` typed: categorical as text (empty = missing), the others as numbers."""
    out = pd.DataFrame(index=frame.index)
    for feature in config.features:
        if feature in config.categorical_features:
            text = frame[feature].astype(str).str.strip()
            out[feature] = text.where(text != "")
        else:
            out[feature] = numeric(frame[feature])
    return out


def binary_features(baseline: pd.DataFrame, config: MonitorConfig) -> list[str]:
    """Non-categorical features whose baseline values are only 0 and 1 (flags): compared as categories."""
    return [
        f
        for f in config.drift_features
        if f not in config.categorical_features and set(baseline[f].dropna().unique()) <= {0.0, 1.0}
    ]


# ------------------------------------------------------------------------------------------------ data quality


def _check(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail}


def data_quality(
    capture: Capture, interval: pd.DataFrame, baseline: pd.DataFrame, config: MonitorConfig
) -> list[dict[str, Any]]:
    """Checks of the interval's captured rows against the baseline dataset (typed frames)."""
    limits = config.data_quality
    checks = [
        _check(
            "records_readable",
            not capture.bad_records and not capture.bad_rows,
            f"{len(capture.bad_records)} unreadable record(s), {capture.bad_rows} row(s) with another number of "
            f"values than the {len(config.features)} features"
            + (f"; first: {capture.bad_records[0]}" if capture.bad_records else ""),
        ),
        _check("rows_in_interval", len(interval) > 0, f"{len(interval)} captured row(s) in the interval"),
    ]
    if interval.empty:
        return checks
    missing, types, unknown, ranges = [], [], [], []
    for feature in config.drift_features:
        share = float(interval[feature].isna().mean())
        allowed = float(baseline[feature].isna().mean()) + limits["missing_share_max_increase"]
        if share > allowed:
            missing.append(f"{feature} {share:.3f} > {allowed:.3f}")
        if feature in config.categorical_features:
            known = set(baseline[feature].dropna())
            present = interval[feature].dropna()
            new = present[~present.isin(known)]
            if len(present) and len(new) / len(present) > limits["unknown_category_share_max"]:
                unknown.append(f"{feature} {len(new) / len(present):.3f} ({', '.join(sorted(set(new))[:5])})")
        else:
            raw = capture.rows.loc[interval.index, feature].astype(str).str.strip()
            not_numbers = int(((raw != "") & interval[feature].isna()).sum())
            if not_numbers:
                types.append(f"{feature} {not_numbers}")
            values = interval[feature].dropna()
            low, high = baseline[feature].min(), baseline[feature].max()
            if len(values) and not (math.isnan(low) or math.isnan(high)):
                outside = float(((values < low) | (values > high)).mean())
                if outside > limits["out_of_range_share_max"]:
                    ranges.append(f"{feature} {outside:.3f} outside [{low:g}, {high:g}]")
    checks += [
        _check(
            "missing_values",
            not missing,
            "; ".join(missing) or "no feature has more empty values than the baseline allows",
        ),
        _check("numeric_values", not types, "; ".join(f"{t} non-numeric value(s)" for t in types) or "all numbers"),
        _check(
            "known_categories",
            not unknown,
            "; ".join(unknown) or "categorical values are those of the baseline",
        ),
        _check(
            "value_ranges",
            not ranges,
            "; ".join(ranges) or "numeric values within the baseline's range",
        ),
    ]
    return checks


# ------------------------------------------------------------------------------------------------ model quality


def join_labels(capture: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Captured rows with a label: ``inferenceId`` (else the capture's ``eventId``) == the label's ``eventId``.

    A row whose id occurs more than once in the capture (a retried request) is kept once, the latest.
    """
    if capture.empty or labels.empty:
        return pd.DataFrame(columns=[*capture.columns, "label", "facet"])
    rows = capture.dropna(subset=[ROW_ID]).sort_values(TIME).drop_duplicates(ROW_ID, keep="last")
    joined = rows.merge(labels, left_on=ROW_ID, right_on="eventId", how="inner").drop(columns=["eventId"])
    return joined.reset_index(drop=True)


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); None with one class."""
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def classification_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision, recall, F1, AUC, accuracy and the confusion matrix (outer key actual, inner predicted).

    A metric whose denominator is 0 (no predicted positive for precision, no actual positive for recall)
    is None.
    """
    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(scores, dtype=float) >= threshold).astype(int)
    tp = int(((labels == 1) & (predicted == 1)).sum())
    fp = int(((labels == 0) & (predicted == 1)).sum())
    tn = int(((labels == 0) & (predicted == 0)).sum())
    fn = int(((labels == 1) & (predicted == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall
        else (0.0 if precision is not None and recall is not None else None)
    )
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": auc(labels, np.asarray(scores, dtype=float)),
        "accuracy": (tp + tn) / len(labels) if len(labels) else None,
        "confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}},
    }


def model_quality(joined: pd.DataFrame, config: MonitorConfig) -> dict[str, Any]:
    """The model-quality section: status, labelled rows, metrics and breaches.

    ``no_labels``: no captured inference of the lookback window has a label yet; ``too_few_labels``: fewer
    than ``min_labelled_rows`` (metrics shown, thresholds not applied). Both are reported, not failures.
    """
    labelled = len(joined)
    section: dict[str, Any] = {"status": "no_labels", "labelled": labelled, "metrics": {}, "breaches": []}
    if labelled == 0:
        return section
    section["metrics"] = classification_metrics(
        joined["label"].to_numpy(), joined[SCORE].astype(float).to_numpy(), config.probability_threshold
    )
    if labelled < config.min_labelled_rows:
        section["status"] = "too_few_labels"
        return section
    for key, threshold in config.model_quality.items():
        metric, comparison = MODEL_QUALITY_THRESHOLDS[key]
        value = section["metrics"][metric]
        if value is not None and value < threshold:
            section["breaches"].append(
                {"metric": metric, "value": value, "threshold": threshold, "comparison": comparison}
            )
    section["status"] = "breach" if section["breaches"] else "ok"
    return section


# ------------------------------------------------------------------------------------------------ bias


def bias_section(joined: pd.DataFrame, config: MonitorConfig, bias_module: Any) -> tuple[dict[str, Any], dict | None]:
    """The bias section and Clarify's ``post_training_bias_metrics`` (None without labelled rows).

    Post-training metrics (``common/bias.py``) on the labelled rows that carry the facet in their label's
    ``attributes``; the predicted label is the score against ``probability_threshold``.
    """
    section: dict[str, Any] = {"status": "no_labels", "facet": config.facet, "metrics": {}, "breaches": []}
    rows = joined.dropna(subset=["facet"]) if not joined.empty else joined
    section["labelled"] = len(rows)
    if rows.empty:
        section["detail"] = f"no labelled row carries the facet {config.facet!r} in its attributes"
        return section, None
    if len(rows) < config.min_labelled_rows:
        section["status"] = "too_few_labels"
        section["detail"] = f"{len(rows)} labelled row(s) with the facet, fewer than {config.min_labelled_rows}"
        return section, None
    frame = pd.DataFrame(
        {
            config.label: rows["label"].astype(int).to_numpy(),
            PREDICTED: (rows[SCORE].astype(float) >= config.probability_threshold).astype(int).to_numpy(),
            config.facet: rows["facet"].astype(str).to_numpy(),
        }
    )
    report = bias_module.post_training_report(
        frame,
        label=config.label,
        predicted_label=PREDICTED,
        facet=config.facet,
        facet_values_or_threshold=config.facet_values_or_threshold,
    )
    for entry in report["facets"][config.facet]:
        value_or_threshold = entry["value_or_threshold"]
        section["metrics"][value_or_threshold] = entry["metrics"]
        for metric in entry["metrics"]:
            section["breaches"] += _bias_breaches(value_or_threshold, metric, config.bias)
    section["status"] = "breach" if section["breaches"] else "ok"
    return section, report


def _bias_breaches(facet_value: str, metric: dict[str, Any], limits: dict[str, float]) -> list[dict[str, Any]]:
    if metric.get("value") is None:
        return []
    value = float(metric["value"])
    name = metric["name"]
    found = []

    def breach(threshold: float, comparison: str) -> None:
        found.append(
            {
                "facet_value": facet_value,
                "metric": name,
                "value": _finite(value),
                "threshold": threshold,
                "comparison": comparison,
            }
        )

    if f"{name}_abs_max" in limits and abs(value) > limits[f"{name}_abs_max"]:
        breach(limits[f"{name}_abs_max"], "AbsGreaterThanThreshold")
    if f"{name}_min" in limits and value < limits[f"{name}_min"]:
        breach(limits[f"{name}_min"], "LessThanThreshold")
    if f"{name}_max" in limits and value > limits[f"{name}_max"]:
        breach(limits[f"{name}_max"], "GreaterThanThreshold")
    return found


def _finite(value: float) -> float | str:
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


# ------------------------------------------------------------------------------------------------ decision


def decision(drift: dict[str, Any], quality: dict[str, Any], bias: dict[str, Any]) -> dict[str, Any]:
    """Retrain on drift or a model-quality breach (with the reasons); hold approvals on a bias breach."""
    reasons = []
    if drift.get("drifted"):
        reasons.append(
            {"check": "drift", "metric": "DriftShare", "value": drift["share"], "threshold": drift["share_threshold"]}
        )
    if quality.get("status") == "breach":
        reasons += [
            {"check": "model_quality", "metric": b["metric"], "value": b["value"], "threshold": b["threshold"]}
            for b in quality["breaches"]
        ]
    return {"retrain": bool(reasons), "reasons": reasons, "bias_hold": bias.get("status") == "breach"}


# ------------------------------------------------------------------------------------------------ metrics


def _datum(name: str, value: float, dimensions: dict[str, str], timestamp: str, unit: str = "None") -> dict:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": str(v)} for k, v in dimensions.items()],
        "Value": float(value),
        "Unit": unit,
        "Timestamp": timestamp,
    }


def metric_datums(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """CloudWatch ``MetricDatum`` objects (PutMetricData's shape) for namespace :data:`NAMESPACE`.

    Non-finite and undefined values are left out (CloudWatch refuses them).
    """
    endpoint, when = summary["endpoint"], summary["interval"]["end"]
    base = {"Endpoint": endpoint}
    out = [
        _datum("IntervalRows", summary["rows"]["interval"], base, when, "Count"),
        _datum("LabelledRows", summary["rows"]["labelled"], base, when, "Count"),
        _datum(
            "DataQualityFailedChecks",
            sum(not c["passed"] for c in summary["data_quality"]["checks"]),
            base,
            when,
            "Count",
        ),
    ]
    drift = summary["drift"]
    if drift.get("share") is not None:
        out.append(_datum("DriftShare", drift["share"], base, when))
    for feature, result in drift.get("features", {}).items():
        if _is_number(result.get("score")):
            out.append(_datum("FeatureDriftScore", result["score"], {**base, "Feature": feature}, when))
    quality = summary["model_quality"]
    if quality["status"] in ("ok", "breach"):
        for metric in MODEL_QUALITY_METRICS:
            value = quality["metrics"].get(metric)
            if _is_number(value):
                out.append(_datum("ModelQuality", value, {**base, "Metric": metric}, when))
    bias = summary["bias"]
    for facet_value, metrics in bias.get("metrics", {}).items():
        for metric in metrics:
            if _is_number(metric.get("value")):
                dims = {**base, "Facet": bias["facet"], "FacetValue": facet_value, "Metric": metric["name"]}
                out.append(_datum("Bias", metric["value"], dims, when))
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def interval_rows(rows: pd.DataFrame, config: MonitorConfig) -> pd.DataFrame:
    """The captured rows of the interval (inference time in ``[interval_start, interval_end)``)."""
    if rows.empty:
        return rows
    times = pd.to_datetime(rows[TIME], utc=True)
    return rows[(times >= config.interval_start) & (times < config.interval_end)]


def iso(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_safe(value: Any) -> Any:
    """Numbers as JSON allows (numpy scalars to Python, non-finite floats to strings)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        number = float(value)
        if math.isnan(number):
            return None
        return _finite(number) if math.isinf(number) else number
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def history_points(history: Iterable[dict[str, Any]], current: dict[str, Any]) -> list[dict[str, Any]]:
    """``{"start", "status", <metric>: value}`` per interval with model-quality metrics, oldest first."""
    points = []
    documents = {d["interval"]["start"]: d for d in history}
    documents[current["interval"]["start"]] = current
    for start in sorted(documents):
        quality = documents[start].get("model_quality") or {}
        point = {"start": start, "status": quality.get("status")}
        for metric in MODEL_QUALITY_METRICS:
            value = (quality.get("metrics") or {}).get(metric)
            point[metric] = value if _is_number(value) else None
        points.append(point)
    return points
