"""Train the fraud classifier with XGBoost (SageMaker script mode, XGBoost framework image).

Reads the ``train`` and ``validation`` channels (CSV, label in the first column, no header) written by
the preprocessing job, trains a binary ````binary:logistic`` booster with early stopping on validation
AUC, prints the final metrics as ``<channel>:<metric>=<value>;`` lines (the regexes that parse them are
in ``metric_definitions.json`` beside this file), and fills ``SM_MODEL_DIR`` so that ``model.tar.gz`` is
self-contained:

- ``xgboost-model.json``: the booster, cut at its best iteration;
- ``preprocessor.joblib`` and ``feature_spec.json``: copied from the ``preprocessor`` channel;
- ``code/inference.py``: the serving handlers from the ``inference`` channel (where SageMaker's repacking
  puts them), and ``code/common/``: the dataset contract and shared helpers they load, shipped beside them;
- ``training_metrics.json``: the printed metrics, hyperparameters and best iteration.

Hyperparameters arrive as command-line arguments (``--max_depth 5 --eta 0.2 ...``), paths from the
``SM_*`` variables or arguments. Example outside SageMaker::

    python train.py --train data/train --validation data/validation --preprocessor data/preprocessor \
        --model-dir out/model --num_round 50
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

LOG = logging.getLogger("train")

MODEL_FILE = "xgboost-model.json"
PREPROCESSOR_FILES = ("preprocessor.joblib", "feature_spec.json")
EVAL_METRICS = ["logloss", "aucpr", "auc"]  # the last one drives early stopping
# keys SageMaker may pass that are not ours to interpret (the toolkit normally strips them)
_IGNORED_HP_PREFIXES = ("--sagemaker_", "--_tuning_objective_metric")


class TrainingError(Exception):
    """Training cannot proceed; the message names the input that is wrong."""


def _int_value(text: str) -> int:
    """Integers as SageMaker renders them; ``"100.0"`` from a tuner's continuous range is accepted."""
    value = float(text)
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    kept: list[str] = []
    skip_value = False
    for item in argv:
        if skip_value:
            skip_value = False
            continue
        if item.startswith(_IGNORED_HP_PREFIXES):
            skip_value = "=" not in item
            continue
        kept.append(item)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    paths = parser.add_argument_group("paths (default: the SageMaker environment variable named)")
    paths.add_argument("--train", type=Path, default=_env_path("SM_CHANNEL_TRAIN"), help="SM_CHANNEL_TRAIN")
    paths.add_argument(
        "--validation", type=Path, default=_env_path("SM_CHANNEL_VALIDATION"), help="SM_CHANNEL_VALIDATION"
    )
    paths.add_argument(
        "--preprocessor",
        type=Path,
        default=_env_path("SM_CHANNEL_PREPROCESSOR"),
        help="SM_CHANNEL_PREPROCESSOR: preprocessor.joblib + feature_spec.json to bundle with the model",
    )
    paths.add_argument("--model-dir", type=Path, default=_env_path("SM_MODEL_DIR"), help="SM_MODEL_DIR")
    paths.add_argument(
        "--output-data-dir",
        type=Path,
        default=_env_path("SM_OUTPUT_DATA_DIR"),
        help="SM_OUTPUT_DATA_DIR: training_metrics.json is also written here",
    )
    paths.add_argument(
        "--inference-code",
        type=Path,
        default=None,
        help="inference.py to bundle under code/ (default: SM_CHANNEL_INFERENCE, else ../inference/)",
    )
    hps = parser.add_argument_group("hyperparameters")
    hps.add_argument("--max_depth", type=_int_value, default=5)
    hps.add_argument("--eta", type=float, default=0.2)
    hps.add_argument("--num_round", type=_int_value, default=100)
    hps.add_argument("--subsample", type=float, default=0.9)
    hps.add_argument("--colsample_bytree", type=float, default=0.9)
    hps.add_argument("--min_child_weight", type=float, default=1.0)
    hps.add_argument(
        "--scale_pos_weight",
        default="auto",
        help="weight of the positive class; 'auto' = negatives / positives in the train channel",
    )
    hps.add_argument("--early_stopping_rounds", type=_int_value, default=10, help="0 disables early stopping")
    hps.add_argument("--seed", type=_int_value, default=42)
    hps.add_argument("--threshold", type=float, default=0.5, help="decision threshold for precision, recall, f1")
    args = parser.parse_args(kept)

    required = {
        "train": "SM_CHANNEL_TRAIN",
        "validation": "SM_CHANNEL_VALIDATION",
        "model_dir": "SM_MODEL_DIR",
    }
    for name, env in required.items():
        if getattr(args, name) is None:
            parser.error(f"no {name} path: pass --{name.replace('_', '-')} or set {env}")
    if args.num_round < 1:
        parser.error("--num_round must be at least 1")
    if args.max_depth < 0:
        parser.error("--max_depth must be >= 0")
    if not 0 < args.eta <= 1:
        parser.error("--eta must be in (0, 1]")
    for name in ("subsample", "colsample_bytree"):
        if not 0 < getattr(args, name) <= 1:
            parser.error(f"--{name} must be in (0, 1]")
    if not 0 < args.threshold < 1:
        parser.error("--threshold must be between 0 and 1")
    if str(args.scale_pos_weight).lower() == "auto":
        args.scale_pos_weight = None
    else:
        try:
            args.scale_pos_weight = float(args.scale_pos_weight)
        except ValueError:
            parser.error(f"--scale_pos_weight must be a number or 'auto', got {args.scale_pos_weight!r}")
        if args.scale_pos_weight <= 0:
            parser.error("--scale_pos_weight must be > 0")
    return args


def read_channel(folder: Path, channel: str) -> tuple[np.ndarray, np.ndarray]:
    """Read every CSV file of a channel: label first, features after, no header.

    :param folder: the channel folder.
    :param channel: its name, for error messages.
    """
    if not folder.is_dir():
        raise TrainingError(f"{channel} channel folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise TrainingError(f"{channel} channel {folder} holds no files")
    parts = []
    for path in files:
        try:
            parts.append(pd.read_csv(path, header=None, dtype=np.float64))
        except (ValueError, pd.errors.ParserError) as exc:
            raise TrainingError(f"{channel} file {path.name} is not a numeric headerless CSV: {exc}") from exc
    frame = pd.concat(parts, ignore_index=True)
    if frame.shape[1] < 2:
        raise TrainingError(f"{channel} data needs a label column and at least one feature column")
    labels = frame.iloc[:, 0].to_numpy()
    if not np.isin(labels, (0.0, 1.0)).all():
        raise TrainingError(f"{channel} labels (first column) must be 0 or 1")
    return frame.iloc[:, 1:].to_numpy(), labels


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Rank-based ROC AUC (ties averaged); NaN when only one class is present."""
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def threshold_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = scores >= threshold
    actual = labels == 1
    tp = float(np.sum(predicted & actual))
    fp = float(np.sum(predicted & ~actual))
    fn = float(np.sum(~predicted & actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _parse_eval(text: str) -> dict[str, float]:
    """``[0]\\ttrain-auc:0.9\\tvalidation-auc:0.8`` -> ``{"train:auc": 0.9, ...}``."""
    found = re.findall(r"([A-Za-z0-9_]+)-([A-Za-z0-9_@.]+):([-+0-9.eE]+|nan|inf)", text)
    return {f"{channel}:{metric}": float(value) for channel, metric, value in found}


def find_inference_code(explicit: Path | None) -> Path:
    """The serving handlers to bundle: ``--inference-code``, else the ``inference`` channel (how the
    pipeline ships ``include/code/inference/``), else ``../inference/`` when run from a checkout."""
    if explicit is not None:
        candidates = [explicit]
    else:
        candidates = [Path(__file__).resolve().parent.parent / "inference" / "inference.py"]
        channel = _env_path("SM_CHANNEL_INFERENCE")
        if channel is not None:
            candidates.insert(0, channel / "inference.py")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise TrainingError(
        "inference.py not found (looked at "
        + ", ".join(str(c) for c in candidates)
        + "); add an 'inference' channel holding inference.py or pass --inference-code"
    )


def find_common_code(inference_code: Path) -> Path:
    """The ``common/`` folder that goes with ``inference_code``: beside it (the ``inference`` channel, as
    code_package ships every component), else ``include/code/common/`` when run from a checkout."""
    candidates = [inference_code.parent / "common", inference_code.parent.parent / "common"]
    for candidate in candidates:
        if (candidate / "contract.py").is_file():
            return candidate
    raise TrainingError(
        "common/contract.py not found beside the serving handlers (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); the inference channel must hold the component as code_package ships it"
    )


def train(args: argparse.Namespace) -> dict[str, Any]:
    x_train, y_train = read_channel(args.train, "train")
    x_val, y_val = read_channel(args.validation, "validation")
    if x_train.shape[1] != x_val.shape[1]:
        raise TrainingError(
            f"train has {x_train.shape[1]} feature columns but validation has {x_val.shape[1]}; "
            "both must come from the same preprocessor"
        )
    positives = int(y_train.sum())
    negatives = len(y_train) - positives
    if positives == 0 or negatives == 0:
        raise TrainingError("the train channel holds only one class")
    inference_code = find_inference_code(args.inference_code)
    common_code = find_common_code(inference_code)

    scale_pos_weight = args.scale_pos_weight or negatives / positives
    params = {
        "objective": "binary:logistic",
        "eval_metric": EVAL_METRICS,
        "max_depth": args.max_depth,
        "eta": args.eta,
        "subsample": args.subsample,
        "colsample_bytree": args.colsample_bytree,
        "min_child_weight": args.min_child_weight,
        "scale_pos_weight": scale_pos_weight,
        "seed": args.seed,
        "tree_method": "hist",
    }
    dtrain = xgb.DMatrix(x_train, label=y_train)
    dval = xgb.DMatrix(x_val, label=y_val)
    LOG.info(
        "Training on %d rows (%d positive), validating on %d rows, %d features; params %s",
        len(y_train),
        positives,
        len(y_val),
        x_train.shape[1],
        params,
    )
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=args.num_round,
        evals=[(dtrain, "train"), (dval, "validation")],
        early_stopping_rounds=args.early_stopping_rounds or None,
        verbose_eval=max(1, args.num_round // 10),
    )
    last = booster.num_boosted_rounds() - 1
    best_iteration = booster.best_iteration if args.early_stopping_rounds else last
    best = booster[: best_iteration + 1]

    metrics = _parse_eval(best.eval_set([(dtrain, "train"), (dval, "validation")], iteration=best_iteration))
    val_scores = best.predict(dval)
    metrics["validation:auc"] = roc_auc(y_val, val_scores)  # same value as xgboost's, NaN-safe
    for name, value in threshold_metrics(y_val, val_scores, args.threshold).items():
        metrics[f"validation:{name}"] = value

    model_dir: Path = args.model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    best.save_model(model_dir / MODEL_FILE)
    if args.preprocessor is not None:
        for name in PREPROCESSOR_FILES:
            source = args.preprocessor / name
            if not source.is_file():
                raise TrainingError(f"preprocessor channel {args.preprocessor} has no {name}")
            shutil.copy2(source, model_dir / name)
    else:
        LOG.warning(
            "No preprocessor channel: the model archive will not contain preprocessor.joblib and "
            "cannot serve raw feature requests"
        )
    (model_dir / "code").mkdir(exist_ok=True)
    shutil.copy2(inference_code, model_dir / "code" / "inference.py")
    shutil.copytree(
        common_code, model_dir / "code" / "common", ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
    )

    report = {
        "metrics": metrics,
        "best_iteration": best_iteration,
        "num_features": int(x_train.shape[1]),
        "rows": {"train": len(y_train), "validation": len(y_val)},
        "hyperparameters": {k: v for k, v in params.items() if k != "eval_metric"},
        "threshold": args.threshold,
        "xgboost_version": xgb.__version__,
    }
    (model_dir / "training_metrics.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    if args.output_data_dir is not None:
        args.output_data_dir.mkdir(parents=True, exist_ok=True)
        (args.output_data_dir / "training_metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        report = train(args)
    except TrainingError as exc:
        LOG.error("Training failed: %s", exc)
        failure = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")) / "failure"
        if failure.parent.is_dir():
            failure.write_text(str(exc)[:1024])
        return 1
    # one metric per line, in the form metric_definitions.json parses
    for name, value in sorted(report["metrics"].items()):
        print(f"{name}={value:.6f};", flush=True)
    print(f"best_iteration={report['best_iteration']};", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
