"""Serving handlers for the fraud model (SageMaker inference contract, XGBoost framework image).

SageMaker calls ``model_fn(model_dir)`` once, then per request ``input_fn`` -> ``predict_fn`` ->
``output_fn``. The model directory is the extracted ``model.tar.gz`` written by ``train.py``:
``xgboost-model.json``, ``preprocessor.joblib``, ``feature_spec.json`` and, under ``code/``, this file and
``common/`` (the dataset contract it was trained with).

Requests carry the raw feature columns of the dataset contract (no keys, no label):

- ``text/csv``: one transaction per line, values in contract order (``amount, log_amount, hour_of_day,
  day_of_week, is_weekend, card_present, is_foreign, channel, merchant_category, card_txn_count_24h,
  card_avg_amount_7d, amount_to_card_avg_ratio``). A first line that names the columns is accepted as a
  header and then the columns may come in any order. Booleans as ``1``/``0`` (``true``/``false`` also
  accepted).
- ``application/json``: ``{"instances": [{"amount": 12.5, ...}, ...]}``, a bare list of such records, or
  one record. A record may also be a list of values in contract order. Keys that are not features (for
  example ``transaction_id``) are ignored.

Responses (``Accept``; default ``application/json``):

- ``application/json``: ``{"predictions": [{"fraud_probability": 0.031, "is_fraud": 0}, ...]}``
- ``text/csv``: one line per transaction, ``<fraud_probability>,<is_fraud>``.

``is_fraud`` applies the threshold in the ``DECISION_THRESHOLD`` environment variable (default 0.5).
A malformed request raises ``InvalidInputError`` (a ``ValueError`` with ``status_code`` 400) whose
message names the offending column and row; an unsupported content type raises one with status 415, an
unsupported ``Accept`` one with status 406.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
import xgboost as xgb

LOG = logging.getLogger(__name__)

MODEL_FILE = "xgboost-model.json"
PREPROCESSOR_FILE = "preprocessor.joblib"
SPEC_FILE = "feature_spec.json"
THRESHOLD_VARIABLE = "DECISION_THRESHOLD"
JSON = "application/json"
CSV = "text/csv"
_TRUE = {"1", "true", "t", "yes", "y", "1.0"}
_FALSE = {"0", "false", "f", "no", "n", "0.0"}


def _load_common() -> ModuleType:
    """``common/contract.py``: beside this file in a shipped archive, ``include/code/common/`` in a checkout."""
    here = Path(__file__).resolve().parent
    for path in (here / "common" / "contract.py", here.parent / "common" / "contract.py"):
        if path.is_file():
            spec = importlib.util.spec_from_file_location(f"{__name__}_common", path)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    raise ImportError(f"common/contract.py is missing beside {here}; code_package ships it in every component")


common = _load_common()


class InvalidInputError(ValueError):
    """The request cannot be scored; ``status_code`` is the HTTP status a server should answer."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


class FraudModel:
    """What ``model_fn`` loads: the booster, the fitted preprocessor and the feature spec.

    A plain class rather than a dataclass, so the module also works when a loader imports it from a file
    without registering it in ``sys.modules``.
    """

    def __init__(self, booster: xgb.Booster, preprocessor: Any, spec: dict[str, Any], threshold: float) -> None:
        self.booster = booster
        self.preprocessor = preprocessor
        self.spec = spec
        self.threshold = threshold

    @property
    def features(self) -> list[str]:
        return list(self.spec["input_features"])


def _threshold_from_env() -> float:
    raw = os.environ.get(THRESHOLD_VARIABLE, "0.5")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{THRESHOLD_VARIABLE}={raw!r} is not a number") from None
    if not 0 < value < 1:
        raise ValueError(f"{THRESHOLD_VARIABLE} must be between 0 and 1, got {value}")
    return value


def model_fn(model_dir: str) -> FraudModel:
    """Load the model directory written by the training job.

    :param model_dir: the extracted ``model.tar.gz`` (``/opt/ml/model`` in a container).
    """
    root = Path(model_dir)
    missing = [name for name in (MODEL_FILE, PREPROCESSOR_FILE, SPEC_FILE) if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"model directory {root} lacks {', '.join(missing)}; it must be a model.tar.gz written by "
            "train.py with the preprocessor channel"
        )
    booster = xgb.Booster()
    booster.load_model(root / MODEL_FILE)
    spec = json.loads((root / SPEC_FILE).read_text())
    if spec.get("sklearn_version") and spec["sklearn_version"] != sklearn.__version__:
        LOG.warning(
            "Preprocessor was fitted with scikit-learn %s and is loaded with %s",
            spec["sklearn_version"],
            sklearn.__version__,
        )
    preprocessor = joblib.load(root / PREPROCESSOR_FILE)
    global _loaded_features
    _loaded_features = list(spec["input_features"])
    return FraudModel(booster=booster, preprocessor=preprocessor, spec=spec, threshold=_threshold_from_env())


# ------------------------------------------------------------------------------------------------ parsing


def _media_type(content_type: str | None) -> str:
    return (content_type or JSON).split(";")[0].strip().lower()


def _text(input_data: str | bytes | bytearray) -> str:
    if isinstance(input_data, bytes | bytearray):
        try:
            return bytes(input_data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"request body is not UTF-8 text: {exc}") from None
    return input_data


# the dataset contract's features, used until model_fn loads a model; from then on the model's own
# feature_spec.json decides (the features it was trained on, whatever the contract says later)
DEFAULT_FEATURES = tuple(common.load_contract()["features"])
# the input columns of the model loaded last by model_fn (input_fn does not receive the model)
_loaded_features: list[str] = list(DEFAULT_FEATURES)


def parse_csv(text: str, features: list[str]) -> pd.DataFrame:
    """Rows of raw feature values in contract order; an optional first line naming the columns."""
    rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidInputError("request body holds no CSV rows")
    header = [cell.strip().lower() for cell in rows[0]]
    columns = features
    if set(features) <= set(header):
        columns, rows = header, rows[1:]
        if not rows:
            raise InvalidInputError("CSV request has a header line but no data rows")
    elif any(cell in features for cell in header):
        absent = [f for f in features if f not in header]
        raise InvalidInputError(f"CSV header is missing feature column(s): {', '.join(absent)}")
    for number, row in enumerate(rows, start=1):
        if len(row) != len(columns):
            raise InvalidInputError(
                f"CSV row {number} has {len(row)} values, expected {len(columns)} ({', '.join(columns)})"
            )
    return pd.DataFrame(rows, columns=columns, dtype=object)


def parse_json(text: str, features: list[str]) -> pd.DataFrame:
    """``{"instances": [...]}``, a list of records, or one record; records are dicts or value lists."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"request body is not valid JSON: {exc}") from None
    if isinstance(payload, dict) and "instances" in payload:
        records = payload["instances"]
    elif isinstance(payload, dict):
        records = [payload]
    else:
        records = payload
    if not isinstance(records, list) or not records:
        raise InvalidInputError('JSON request must hold a non-empty list of records ({"instances": [...]})')
    rows: list[dict[str, Any]] = []
    for number, record in enumerate(records, start=1):
        if isinstance(record, dict):
            rows.append({str(k).lower(): v for k, v in record.items()})
        elif isinstance(record, list):
            if len(record) != len(features):
                raise InvalidInputError(
                    f"JSON record {number} has {len(record)} values, expected {len(features)} ({', '.join(features)})"
                )
            rows.append(dict(zip(features, record, strict=True)))
        else:
            kind = type(record).__name__
            raise InvalidInputError(f"JSON record {number} must be an object or a list, got {kind}")
    return pd.DataFrame.from_records(rows)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def coerce_features(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Check and type the raw feature columns: numbers to float, flags to 0/1, categories to text.

    :param frame: one row per transaction; extra columns are dropped.
    :param spec: the ``feature_spec.json`` of the model.
    :raises InvalidInputError: naming the first bad column and row.
    """
    features = list(spec["input_features"])
    absent = [f for f in features if f not in frame.columns]
    if absent:
        raise InvalidInputError(f"missing feature column(s): {', '.join(absent)}")
    booleans = set(spec["boolean_features"])
    categoricals = set(spec["categorical_features"])
    out = pd.DataFrame(index=range(len(frame)))
    for column in features:
        values = frame[column].tolist()
        for row, value in enumerate(values, start=1):
            if _is_missing(value):
                raise InvalidInputError(f"feature '{column}' is empty in row {row}")
        if column in categoricals:
            out[column] = pd.Series([str(v).strip() for v in values], dtype=object)
        elif column in booleans:
            parsed = []
            for row, value in enumerate(values, start=1):
                if isinstance(value, bool | np.bool_):
                    parsed.append(float(value))
                    continue
                token = str(value).strip().lower()
                if token in _TRUE:
                    parsed.append(1.0)
                elif token in _FALSE:
                    parsed.append(0.0)
                else:
                    raise InvalidInputError(
                        f"feature '{column}' must be a boolean (1/0/true/false), got {value!r} in row {row}"
                    )
            out[column] = parsed
        else:
            parsed = []
            for row, value in enumerate(values, start=1):
                not_a_number = f"feature '{column}' must be a number, got {value!r} in row {row}"
                if isinstance(value, bool):
                    raise InvalidInputError(not_a_number)
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise InvalidInputError(not_a_number) from None
                if not math.isfinite(number):
                    raise InvalidInputError(f"feature '{column}' must be finite, got {value!r} in row {row}")
                parsed.append(number)
            out[column] = parsed
    return out


def input_fn(input_data: str | bytes, content_type: str | None) -> pd.DataFrame:
    """Decode a request body into a frame of raw feature values (typed later, in ``predict_fn``).

    :param input_data: the body; ``str`` for exactly ``text/csv`` / ``application/json``, else bytes.
    :param content_type: the request's Content-Type; missing means JSON.
    """
    media = _media_type(content_type)
    is_json = media in {JSON, "application/jsonlines"} or media.endswith("+json")
    if media != CSV and not is_json:
        raise InvalidInputError(
            f"unsupported content type {content_type!r}; send text/csv or application/json", status_code=415
        )
    text = _text(input_data)
    if not text.strip():
        raise InvalidInputError("request body is empty")
    features = list(_loaded_features)
    if media == CSV:
        return parse_csv(text, features)
    if media == "application/jsonlines":
        text = "[" + ",".join(line for line in text.splitlines() if line.strip()) + "]"
    return parse_json(text, features)


# ------------------------------------------------------------------------------------------ predict/output


def predict_proba(frame: pd.DataFrame, model: FraudModel) -> np.ndarray:
    """Fraud probabilities for raw feature rows (validated and typed here)."""
    typed = coerce_features(frame, model.spec)
    matrix = model.preprocessor.transform(typed)
    return model.booster.predict(xgb.DMatrix(np.asarray(matrix, dtype=np.float64)))


def predict_fn(data: pd.DataFrame, model: FraudModel) -> dict[str, Any]:
    """Score the decoded rows.

    :param data: what ``input_fn`` returned.
    :param model: what ``model_fn`` returned.
    """
    probabilities = predict_proba(data, model)
    return {
        "probabilities": probabilities,
        "labels": (probabilities >= model.threshold).astype(int),
        "threshold": model.threshold,
    }


def output_fn(prediction: dict[str, Any], accept: str | None) -> tuple[str, str]:
    """Encode the predictions for the first supported type in ``Accept`` (default JSON).

    :param prediction: what ``predict_fn`` returned.
    :param accept: the request's Accept header, possibly a comma-separated list.
    """
    wanted = [_media_type(part) for part in (accept or JSON).split(",") if part.strip()] or [JSON]
    for media in wanted:
        if media in {"*/*", JSON, "application/*"}:
            records = [
                {"fraud_probability": round(float(p), 6), "is_fraud": int(label)}
                for p, label in zip(prediction["probabilities"], prediction["labels"], strict=True)
            ]
            return json.dumps({"predictions": records}), JSON
        if media in {CSV, "text/*"}:
            lines = [
                f"{float(p):.6f},{int(label)}"
                for p, label in zip(prediction["probabilities"], prediction["labels"], strict=True)
            ]
            return "\n".join(lines) + "\n", CSV
    raise InvalidInputError(f"unsupported Accept {accept!r}; ask for application/json or text/csv", status_code=406)


def main(argv: list[str] | None = None) -> int:
    """Score one request body from a file or stdin against a model directory, as an endpoint would.

    Example: ``python inference.py --model-dir model/ --content-type text/csv < rows.csv``
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="the extracted model.tar.gz")
    parser.add_argument("--content-type", default=CSV, help="text/csv (default) or application/json")
    parser.add_argument("--accept", default=JSON, help="application/json (default) or text/csv")
    parser.add_argument("--input", type=Path, help="request body file (default: stdin)")
    args = parser.parse_args(argv)
    body = args.input.read_bytes() if args.input else sys.stdin.buffer.read()
    model = model_fn(args.model_dir)
    try:
        response, content_type = output_fn(predict_fn(input_fn(body, args.content_type), model), args.accept)
    except InvalidInputError as exc:
        print(f"{exc.status_code}: {exc}", file=sys.stderr)
        return 1
    print(response.rstrip("\n"))
    LOG.debug("Answered with %s", content_type)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
