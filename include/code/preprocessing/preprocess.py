"""Split the feature dataset by time and fit the preprocessing pipeline (SageMaker Processing job).

Runs in the scikit-learn framework image. Reads the Parquet part files of one feature extraction (the
output of ``include/sql/features.sql``) and writes, under the processing root:

- ``train/train.csv``, ``validation/validation.csv``, ``test/test.csv``: label first, no header, the
  preprocessed feature matrix after it (the XGBoost CSV convention);
- ``test/test_raw.parquet``: the test split as it came from the warehouse (keys, attributes, raw features,
  label), for the evaluation job;
- ``test/train_attributes.parquet``: the training split's attributes and label (the data the evaluation job
  measures pre-training bias on; not a model input);
- ``baseline/baseline.csv``: the raw feature columns of the training split with a header and booleans
  as 0/1, in the order the endpoint receives them (a profile of the training inputs; the Model Monitor
  baseline, which also needs the model's output columns, is written by the evaluation job);
- ``preprocessor/preprocessor.joblib`` (a fitted scikit-learn ``ColumnTransformer``) and
  ``preprocessor/feature_spec.json`` (raw input columns, their kinds, categories and output order).

The split is by event time: the oldest rows train, the next validate, the newest test, and no timestamp
is shared between two splits. Example::

    python preprocess.py --input-dir /opt/ml/processing/input/data --output-root /opt/ml/processing \
        --validation-fraction 0.15 --test-fraction 0.15
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder

LOG = logging.getLogger("preprocess")


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
CONTRACT = common.load_contract()
KEY_COLUMNS = list(CONTRACT["keys"])
# in the data (bias facets), never model inputs
ATTRIBUTE_COLUMNS = common.attributes(CONTRACT)
LABEL = CONTRACT["label"]
# the order of the dataset contract (common/features_schema.json) and of inference requests
RAW_FEATURES = list(CONTRACT["features"])
NUMERIC_FEATURES = common.features_of_kind(CONTRACT, "numeric")
BOOLEAN_FEATURES = common.features_of_kind(CONTRACT, "boolean")
CATEGORICAL_FEATURES = common.features_of_kind(CONTRACT, "categorical")
FEATURE_SPEC_VERSION = 1


class PreprocessError(Exception):
    """The input data cannot be split or preprocessed; the message says what is wrong."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--input-dir",
        type=Path,
        default=Path("/opt/ml/processing/input/data"),
        help="folder holding the Parquet part files (searched recursively)",
    )
    parser.add_argument(
        "--output-root",
        type=Path,
        default=Path("/opt/ml/processing"),
        help="folder under which train/, validation/, test/, baseline/ and preprocessor/ are written",
    )
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument(
        "--min-rows-per-split", type=int, default=1, help="fail when any split ends up smaller than this"
    )
    parser.add_argument(
        "--exit-message-file",
        type=Path,
        default=Path("/opt/ml/output/message"),
        help="where a failure reason is written for the job's ExitMessage (only if its folder exists)",
    )
    args = parser.parse_args(argv)
    for name in ("validation_fraction", "test_fraction"):
        value = getattr(args, name)
        if not 0 < value < 1:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1 (exclusive), got {value}")
    if args.validation_fraction + args.test_fraction >= 1:
        parser.error("--validation-fraction + --test-fraction must leave rows for training (sum < 1)")
    return args


def _read_part(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        return common.conform_decimals(pq.read_table(path), PreprocessError).to_pandas()
    except PreprocessError as exc:
        raise PreprocessError(f"{path.name}: {exc}") from None


def read_dataset(input_dir: Path) -> pd.DataFrame:
    """Read every Parquet part under ``input_dir`` into one frame with lowercase column names.

    Decimal columns (an unloaded dataset) are typed as stream mode writes them (``common.conform_decimals``).

    :param input_dir: folder holding ``*.parquet`` files, possibly nested.
    """
    if not input_dir.is_dir():
        raise PreprocessError(f"input folder {input_dir} does not exist")
    parts = sorted(p for p in input_dir.rglob("*.parquet") if p.is_file())
    if not parts:
        raise PreprocessError(f"no *.parquet files under {input_dir}")
    frame = pd.concat([_read_part(p) for p in parts], ignore_index=True)
    frame.columns = [str(c).lower() for c in frame.columns]
    missing = [c for c in [*KEY_COLUMNS, *ATTRIBUTE_COLUMNS, *RAW_FEATURES, LABEL] if c not in frame.columns]
    if missing:
        raise PreprocessError(f"dataset is missing column(s) {', '.join(missing)}; found {list(frame.columns)}")
    LOG.info("Read %d rows from %d Parquet file(s) under %s", len(frame), len(parts), input_dir)
    return frame


def clean_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the frame with the label as int 0/1 and event_ts as datetime; refuse unusable rows."""
    frame = frame.copy()
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], errors="coerce")
    bad_ts = int(frame["event_ts"].isna().sum())
    if bad_ts:
        raise PreprocessError(f"{bad_ts} row(s) have no usable event_ts; the time split needs it on every row")
    label = frame[LABEL]
    if label.isna().any():
        raise PreprocessError(f"{int(label.isna().sum())} row(s) have a null {LABEL} label")
    if label.dtype == object or str(label.dtype) in {"str", "string"}:
        label = label.astype(str).str.strip().str.lower().map({"1": 1, "0": 0, "true": 1, "false": 0})
        if label.isna().any():
            raise PreprocessError(f"{LABEL} must be 0/1 or true/false")
    label = label.astype("int64")
    unexpected = sorted(set(label.unique()) - {0, 1})
    if unexpected:
        raise PreprocessError(f"{LABEL} must be 0 or 1, found {unexpected}")
    frame[LABEL] = label
    return frame


def time_split(frame: pd.DataFrame, validation_fraction: float, test_fraction: float) -> dict[str, pd.DataFrame]:
    """Split by event time so that every training row is strictly older than every validation row,
    and every validation row strictly older than every test row.

    The cut points are the timestamps at the requested row fractions; rows sharing a cut timestamp all
    go to the later split, so the fractions are approximate when timestamps repeat.

    :param frame: the dataset with a datetime ``event_ts`` column.
    :param validation_fraction: share of rows for validation, by time after training.
    :param test_fraction: share of the newest rows for test.
    """
    ordered = frame.sort_values(["event_ts", "transaction_id"], kind="mergesort").reset_index(drop=True)
    n = len(ordered)
    ts = ordered["event_ts"]
    train_end = ts.iloc[min(n - 1, int(np.floor(n * (1 - validation_fraction - test_fraction))))]
    validation_end = ts.iloc[min(n - 1, int(np.floor(n * (1 - test_fraction))))]
    splits = {
        "train": ordered[ts < train_end],
        "validation": ordered[(ts >= train_end) & (ts < validation_end)],
        "test": ordered[ts >= validation_end],
    }
    return {name: part.reset_index(drop=True) for name, part in splits.items()}


def model_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The raw feature columns typed the way the preprocessor expects: floats, 0/1 floats, strings."""
    out = pd.DataFrame(index=frame.index)
    for column in RAW_FEATURES:
        if column in CATEGORICAL_FEATURES:
            out[column] = frame[column].astype(object).where(frame[column].notna(), None)
        elif column in BOOLEAN_FEATURES:
            out[column] = frame[column].astype("float64")
        else:
            out[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
    return out


def build_preprocessor() -> ColumnTransformer:
    """Numerics and 0/1 flags pass through (trees need no scaling); categoricals are one-hot encoded and
    a category never seen in training encodes as all zeros."""
    return ColumnTransformer(
        transformers=[
            ("numeric", "passthrough", NUMERIC_FEATURES),
            ("boolean", "passthrough", BOOLEAN_FEATURES),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64),
                CATEGORICAL_FEATURES,
            ),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def write_xgboost_csv(path: Path, label: pd.Series, matrix: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = np.column_stack([label.to_numpy(dtype=np.float64), matrix])
    np.savetxt(path, table, delimiter=",", fmt="%.10g")


def summarise(name: str, part: pd.DataFrame) -> dict[str, Any]:
    rows = len(part)
    return {
        "rows": rows,
        "fraud_rows": int(part[LABEL].sum()),
        "fraud_rate": float(part[LABEL].mean()) if rows else None,
        "event_ts_min": part["event_ts"].min().isoformat() if rows else None,
        "event_ts_max": part["event_ts"].max().isoformat() if rows else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    frame = clean_labels(read_dataset(args.input_dir))
    splits = time_split(frame, args.validation_fraction, args.test_fraction)
    for name, part in splits.items():
        if len(part) < args.min_rows_per_split:
            raise PreprocessError(
                f"the {name} split has {len(part)} row(s), fewer than --min-rows-per-split "
                f"{args.min_rows_per_split}; widen the data window or change the fractions"
            )
    if splits["train"][LABEL].nunique() < 2:
        raise PreprocessError("the train split holds only one class; a classifier cannot be trained on it")

    preprocessor = build_preprocessor()
    preprocessor.fit(model_frame(splits["train"]))
    output_features = [str(n) for n in preprocessor.get_feature_names_out()]

    root: Path = args.output_root
    for name, part in splits.items():
        matrix = preprocessor.transform(model_frame(part))
        write_xgboost_csv(root / name / f"{name}.csv", part[LABEL], matrix)

    test_raw = splits["test"][[*KEY_COLUMNS, *ATTRIBUTE_COLUMNS, *RAW_FEATURES, LABEL]]
    (root / "test").mkdir(parents=True, exist_ok=True)
    test_raw.to_parquet(root / "test" / "test_raw.parquet", index=False)
    if ATTRIBUTE_COLUMNS:
        splits["train"][[*ATTRIBUTE_COLUMNS, LABEL]].to_parquet(root / "test" / "train_attributes.parquet", index=False)

    baseline = model_frame(splits["train"])
    for column in BOOLEAN_FEATURES:
        baseline[column] = baseline[column].astype("int64")
    (root / "baseline").mkdir(parents=True, exist_ok=True)
    baseline.to_csv(root / "baseline" / "baseline.csv", index=False)

    summary = {name: summarise(name, part) for name, part in splits.items()}
    encoder: OneHotEncoder = preprocessor.named_transformers_["categorical"]
    spec = {
        "format_version": FEATURE_SPEC_VERSION,
        "label": LABEL,
        "keys": KEY_COLUMNS,
        "attributes": ATTRIBUTE_COLUMNS,
        "input_features": RAW_FEATURES,
        "numeric_features": NUMERIC_FEATURES,
        "boolean_features": BOOLEAN_FEATURES,
        "categorical_features": {
            column: [str(v) for v in cats]
            for column, cats in zip(CATEGORICAL_FEATURES, encoder.categories_, strict=True)
        },
        "output_features": output_features,
        "sklearn_version": sklearn.__version__,
        "splits": summary,
    }
    (root / "preprocessor").mkdir(parents=True, exist_ok=True)
    joblib.dump(preprocessor, root / "preprocessor" / "preprocessor.joblib")
    (root / "preprocessor" / "feature_spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        summary = run(args)
    except PreprocessError as exc:
        LOG.error("Preprocessing failed: %s", exc)
        if args.exit_message_file.parent.is_dir():
            args.exit_message_file.write_text(str(exc)[:1024])
        return 1
    for name, stats in summary.items():
        rate = "n/a" if stats["fraud_rate"] is None else f"{stats['fraud_rate']:.4f}"
        print(
            f"split={name} rows={stats['rows']} fraud_rows={stats['fraud_rows']} "
            f"fraud_rate={rate} from={stats['event_ts_min']} to={stats['event_ts_max']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
