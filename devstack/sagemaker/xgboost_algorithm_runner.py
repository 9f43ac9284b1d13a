"""Built-in XGBoost algorithm mode, run inside the XGBoost image's environment.

    python xgboost_algorithm_runner.py --opt-ml /opt/ml

Reads ``input/config/hyperparameters.json`` and ``inputdataconfig.json``, validates them as the SageMaker
XGBoost container does, trains on the ``train`` channel (evaluating on ``train`` and, when given,
``validation``, one log line per round: ``[i]<TAB>train-<m>:<v><TAB>validation-<m>:<v>``) and writes
``model/xgboost-model`` with ``Booster.save_model``. A bad request writes the reason to
``output/failure`` (``framework error:`` then the error, as the container's trainer does) and exits 1.

This file does not import the devstack: it runs as a plain script with the image's libraries only.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

REQUIRED = {"num_round"}
#: Hyperparameters the container declares (aliases included); anything else is extraneous.
DECLARED = {
    "num_round",
    "objective",
    "eval_metric",
    "booster",
    "verbosity",
    "nthread",
    "eta",
    "learning_rate",
    "gamma",
    "min_split_loss",
    "max_depth",
    "min_child_weight",
    "max_delta_step",
    "subsample",
    "sampling_method",
    "colsample_bytree",
    "colsample_bylevel",
    "colsample_bynode",
    "lambda",
    "reg_lambda",
    "alpha",
    "reg_alpha",
    "tree_method",
    "sketch_eps",
    "scale_pos_weight",
    "updater",
    "dsplit",
    "refresh_leaf",
    "process_type",
    "grow_policy",
    "max_leaves",
    "max_bin",
    "num_parallel_tree",
    "predictor",
    "sample_type",
    "normalize_type",
    "rate_drop",
    "one_drop",
    "skip_drop",
    "lambda_bias",
    "tweedie_variance_power",
    "base_score",
    "seed",
    "num_class",
    "csv_weights",
    "early_stopping_rounds",
    "monotone_constraints",
    "interaction_constraints",
    "max_cat_to_onehot",
    "multi_strategy",
    "huber_slope",
    "aft_loss_distribution",
    "aft_loss_distribution_scale",
    "deterministic_histogram",
    "single_precision_histogram",
    "_kfold",
    "_num_cv_round",
    "_tuning_objective_metric",
    "save_model_on_termination",
    "use_dask_gpu_training",
}
#: Container-level settings that are not XGBoost parameters.
NOT_PASSED = {
    "num_round",
    "csv_weights",
    "early_stopping_rounds",
    "_kfold",
    "_num_cv_round",
    "_tuning_objective_metric",
    "save_model_on_termination",
    "use_dask_gpu_training",
}
OBJECTIVES = {
    "aft_loss_distribution",
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "count:poisson",
    "multi:softmax",
    "multi:softprob",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
    "reg:linear",
    "reg:squarederror",
    "reg:logistic",
    "reg:gamma",
    "reg:pseudohubererror",
    "reg:squaredlogerror",
    "reg:absoluteerror",
    "reg:tweedie",
    "survival:aft",
    "survival:cox",
}
CHANNELS = {"train", "validation", "code"}
CSV_TYPES = {"text/csv", "csv"}
LIBSVM_TYPES = {"text/libsvm", "text/x-libsvm", "libsvm"}
PARQUET_TYPES = {"application/x-parquet", "parquet"}
RECORDIO_TYPES = {"application/x-recordio-protobuf", "recordio-protobuf"}


class UserError(Exception):
    """A problem with the job's request or data (the container's ``UserError``)."""


def _value(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            continue
    return raw


def validate_hyperparameters(raw: dict[str, str]) -> tuple[dict[str, Any], int, int | None]:
    """Return (XGBoost params, num_round, early_stopping_rounds), or raise :class:`UserError`."""
    for name in raw:
        if name not in DECLARED:
            raise UserError(f"Extraneous hyperparameter found: {name}")
    for name in sorted(REQUIRED):
        if name not in raw:
            raise UserError(f"Missing required hyperparameter: {name}")
    try:
        num_round = int(raw["num_round"])
    except ValueError as exc:
        raise UserError(f"Hyperparameter num_round: {raw['num_round']!r} is not an integer") from exc
    if num_round < 1:
        raise UserError("Hyperparameter num_round: value must be at least 1")
    objective = raw.get("objective", "reg:squarederror")
    if objective not in OBJECTIVES:
        raise UserError(f"Hyperparameter objective: value {objective!r} not in {sorted(OBJECTIVES)}")
    if objective.startswith("multi:") and "num_class" not in raw:
        raise UserError("Require input for parameter num_class for multi-classification")
    params: dict[str, Any] = {k: _value(v) for k, v in raw.items() if k not in NOT_PASSED}
    params["objective"] = objective
    if "eval_metric" in raw:
        metrics = [m.strip() for m in raw["eval_metric"].split(",") if m.strip()]
        if "auc" in metrics and not objective.startswith(("binary:", "rank:")):
            raise UserError("Metric 'auc' can only be applied for classification and ranking problems.")
        params["eval_metric"] = metrics
    stopping = raw.get("early_stopping_rounds")
    return params, num_round, int(stopping) if stopping else None


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )


def _read_csv(files: list[Path], weights: bool) -> Any:
    import numpy as np
    import xgboost as xgb

    rows: list[list[float]] = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            continue
        first = text.splitlines()[0]
        try:
            delimiter = csv.Sniffer().sniff(first, delimiters=",;\t| ").delimiter
        except csv.Error:
            delimiter = ","
        for number, row in enumerate(csv.reader(text.splitlines(), delimiter=delimiter), start=1):
            if not row:
                continue
            try:
                rows.append([float(x) if x.strip() else float("nan") for x in row])
            except ValueError as exc:
                raise UserError(
                    f"Loading csv data failed with Exception, please ensure data is in csv format: {path.name} "
                    f"line {number}: {exc} (the built-in algorithm takes no header row; the label is column 1)"
                ) from exc
    if not rows:
        raise UserError("No data in the channel's files")
    data = np.asarray(rows, dtype=float)
    if weights:
        return xgb.DMatrix(data[:, 2:], label=data[:, 0], weight=data[:, 1])
    return xgb.DMatrix(data[:, 1:], label=data[:, 0])


def _read_libsvm(files: list[Path]) -> Any:
    import numpy as np
    import xgboost as xgb

    labels: list[float] = []
    entries: list[dict[int, float]] = []
    width = 0
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            try:
                labels.append(float(parts[0].split(":")[0]))
                row = {}
                for item in parts[1:]:
                    index, value = item.split(":", 1)
                    row[int(index)] = float(value)
                    width = max(width, int(index) + 1)
            except ValueError as exc:
                raise UserError(
                    f"Loading libsvm data failed with Exception, please ensure data is in libsvm format: "
                    f"{path.name} line {number}: {line[:80]!r} (a channel without ContentType is read as libsvm)"
                ) from exc
            entries.append(row)
    if not labels:
        raise UserError("No data in the channel's files")
    data = np.full((len(labels), width), np.nan)
    for i, row in enumerate(entries):
        for j, value in row.items():
            data[i, j] = value
    return xgb.DMatrix(data, label=np.asarray(labels))


def _read_parquet(files: list[Path]) -> Any:
    import numpy as np
    import pyarrow.parquet as pq
    import xgboost as xgb

    frames = [pq.read_table(p).to_pandas() for p in files]
    if not frames:
        raise UserError("No data in the channel's files")
    data = np.vstack([f.to_numpy(dtype=float) for f in frames])
    return xgb.DMatrix(data[:, 1:], label=data[:, 0])


def load_channel(folder: Path, content_type: str | None, weights: bool) -> Any:
    """Read one channel as a DMatrix by its content type (libsvm when none is given)."""
    media = (content_type or "libsvm").split(";")[0].strip().lower()
    options = dict(p.strip().split("=", 1) for p in (content_type or "").split(";")[1:] if "=" in p)
    if options.get("label_size", "1") != "1":
        raise UserError(f"label_size in content type {content_type} must be 1")
    files = _files(folder)
    if not files:
        raise UserError(f"No files in channel folder {folder.name}")
    if media in CSV_TYPES:
        return _read_csv(files, weights)
    if media in LIBSVM_TYPES:
        return _read_libsvm(files)
    if media in PARQUET_TYPES:
        return _read_parquet(files)
    if media in RECORDIO_TYPES:
        raise UserError(f"Content type {content_type} is not supported by the devstack's XGBoost algorithm")
    raise UserError(
        f"Content-type {content_type} is not supported. Use one of text/csv, text/libsvm, application/x-parquet"
    )


def train(opt_ml: Path) -> None:
    """Validate, train and save the model."""
    import xgboost as xgb

    config = opt_ml / "input" / "config"
    raw = json.loads((config / "hyperparameters.json").read_text(encoding="utf-8"))
    channels = json.loads((config / "inputdataconfig.json").read_text(encoding="utf-8"))
    for name in channels:
        if name not in CHANNELS:
            raise UserError(f"Extraneous channel found: {name}")
    if "train" not in channels:
        raise UserError("Missing required channel: train")
    params, num_round, stopping = validate_hyperparameters(raw)
    weights = str(raw.get("csv_weights", "0")) == "1"
    data = opt_ml / "input" / "data"
    dtrain = load_channel(data / "train", channels["train"].get("ContentType"), weights)
    evals = [(dtrain, "train")]
    if "validation" in channels:
        evals.append(
            (load_channel(data / "validation", channels["validation"].get("ContentType"), weights), "validation")
        )
    if stopping and len(evals) < 2:
        raise UserError("early_stopping_rounds needs a validation channel")
    print(f"Train matrix has {dtrain.num_row()} rows and {dtrain.num_col()} columns", flush=True)
    booster = xgb.train(
        params, dtrain, num_boost_round=num_round, evals=evals, early_stopping_rounds=stopping, verbose_eval=True
    )
    model_dir = opt_ml / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / "xgboost-model"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SageMaker XGBoost algorithm mode (devstack).")
    parser.add_argument("--opt-ml", default="/opt/ml", type=Path)
    args = parser.parse_args(argv)
    try:
        train(args.opt_ml)
    except UserError as exc:
        message = f"framework error: \nUserError: {exc}"
    except Exception as exc:  # the container reports any other failure as an AlgorithmError
        message = f"framework error: \nAlgorithmError: {type(exc).__name__}: {exc}"
    else:
        return 0
    print(message, file=sys.stderr, flush=True)
    failure = args.opt_ml / "output" / "failure"
    failure.parent.mkdir(parents=True, exist_ok=True)
    failure.write_text(message[:1024], encoding="utf-8")
    return 1


if __name__ == "__main__":
    sys.exit(main())
