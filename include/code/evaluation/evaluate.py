"""Evaluate a trained fraud model on the held-out test split (SageMaker Processing job).

Run it with the XGBoost framework image (it loads the booster). Inputs:

- ``--model-dir`` (``/opt/ml/processing/model``): the training job's ``model.tar.gz`` (or its extracted
  content);
- ``--test-dir`` (``/opt/ml/processing/test``): the preprocessing job's test output. When it holds
  ``test_raw.parquet`` the rows go through the model's own ``code/inference.py`` exactly as an endpoint
  request would; otherwise ``test.csv`` (label first, no header, already preprocessed) is scored by the
  booster directly.

Output (``--output-dir``, ``/opt/ml/processing/evaluation``):

- ``evaluation.json``: ``binary_classification_metrics`` in the layout of SageMaker's model-quality
  statistics (each metric ``{"value": v, "standard_deviation": "NaN"}``, confusion matrix keyed
  actual -> predicted, ROC and PR curves), and a flat ``summary`` block (auc, pr_auc, precision, recall,
  f1, accuracy, threshold, counts) that the quality gate reads. It is valid as a model package's
  ``ModelMetrics.ModelQuality.Statistics`` document (content type ``application/json``).
- ``roc_curve.png``, ``pr_curve.png``, ``confusion_matrix.png`` (counts at the decision threshold).
- with ``--bias-facet``: ``analysis.json``, SageMaker Clarify's pre-training bias metrics (CI, DPL, KL, JS, LP,
  TVD, KS; ``common/bias.py``) of the training split (``train_attributes.parquet`` of the test input) by that
  attribute, the model package's ``ModelMetrics.Bias.PreTrainingReport``.

With ``--baseline-dir`` it also writes ``baseline.csv`` there: the SageMaker Model Monitor baseline dataset.
Model Monitor flattens each captured endpoint record into one row, **the endpoint's output columns first,
then its input columns**, so the baseline has that layout too. The test rows go through the model's own
handlers exactly as a monitored request does (a ``text/csv`` body without header -> ``input_fn`` ->
``predict_fn`` -> ``output_fn`` with ``Accept: text/csv``), and each baseline row is the response's CSV
values followed by the request's CSV values. The header names the output columns after the keys of the
model's JSON response (``fraud_probability``, ``is_fraud``) and the input columns after the model's
features (contract order). Baseline it with ``{"csv": {"header": true, "output_columns_position": "START"}}``.

Example::

    python evaluate.py --model-dir out/model --test-dir data/test --output-dir out/evaluation --threshold 0.5 \
        --baseline-dir out/baseline
"""

from __future__ import annotations

import argparse
import csv
import decimal
import importlib.util
import io
import json
import logging
import math
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

LOG = logging.getLogger("evaluate")

LABEL = "is_fraud"
MODEL_FILE = "xgboost-model.json"
MAX_CURVE_POINTS = 201
BASELINE_FILE = "baseline.csv"
#: the training split's attributes and label, written by the preprocessing job beside test_raw.parquet
TRAIN_ATTRIBUTES_FILE = "train_attributes.parquet"
BIAS_FILE = "analysis.json"
CSV_TYPE = "text/csv"
JSON_TYPE = "application/json"


def _load_common(name: str = "contract") -> ModuleType:
    """``common/<name>.py``: beside this file in a shipped archive, ``include/code/common/`` in a checkout."""
    here = Path(__file__).resolve().parent
    for path in (here / "common" / f"{name}.py", here.parent / "common" / f"{name}.py"):
        if path.is_file():
            spec = importlib.util.spec_from_file_location(f"{__name__}_common_{name}", path)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    raise ImportError(f"common/{name}.py is missing beside {here}; code_package ships it in every component")


common = _load_common()


class EvaluationError(Exception):
    """The model or the test data cannot be evaluated; the message names what is wrong."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/processing/model"))
    parser.add_argument("--test-dir", type=Path, default=Path("/opt/ml/processing/test"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/evaluation"))
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold, default 0.5")
    parser.add_argument(
        "--baseline-dir",
        type=Path,
        default=None,
        help="write the Model Monitor baseline dataset (baseline.csv: output columns, then input columns) here",
    )
    parser.add_argument(
        "--bias-facet",
        default=None,
        help="measure pre-training bias on this attribute of the training split (analysis.json in --output-dir)",
    )
    parser.add_argument(
        "--bias-facet-values",
        nargs="+",
        default=None,
        help="the sensitive group of --bias-facet (default: each value against the rest)",
    )
    parser.add_argument(
        "--exit-message-file",
        type=Path,
        default=Path("/opt/ml/output/message"),
        help="where a failure reason is written for the job's ExitMessage (only if its folder exists)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.threshold < 1:
        parser.error(f"--threshold must be between 0 and 1, got {args.threshold}")
    return args


def _safe_extract(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            resolved = (target / member.name).resolve()
            if not resolved.is_relative_to(target.resolve()) or member.issym() or member.islnk():
                raise EvaluationError(f"{archive.name} holds an unsafe member {member.name!r}")
        options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(target, **options)  # noqa: S202 - members checked above


def materialise_model(model_dir: Path, scratch: Path) -> Path:
    """The folder holding the model files: ``model_dir`` itself, or ``model.tar.gz`` extracted."""
    if (model_dir / MODEL_FILE).is_file():
        return model_dir
    archives = sorted(model_dir.glob("*.tar.gz")) if model_dir.is_dir() else []
    if not archives:
        raise EvaluationError(f"{model_dir} holds neither {MODEL_FILE} nor a model.tar.gz")
    _safe_extract(archives[0], scratch)
    if not (scratch / MODEL_FILE).is_file():
        raise EvaluationError(f"{archives[0].name} does not contain {MODEL_FILE}")
    return scratch


def load_inference_module(model_root: Path) -> ModuleType:
    path = model_root / "code" / "inference.py"
    if not path.is_file():
        raise EvaluationError(f"the model archive has no code/inference.py at {path}")
    spec = importlib.util.spec_from_file_location("model_inference", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise EvaluationError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def read_raw(path: Path) -> pd.DataFrame:
    """The raw test rows, decimal columns typed as the dataset contract types them, column names lower case."""
    import pyarrow.parquet as pq

    try:
        frame = common.conform_decimals(pq.read_table(path), EvaluationError).to_pandas()
    except EvaluationError as exc:
        raise EvaluationError(f"{path.name}: {exc}") from None
    frame.columns = [str(c).lower() for c in frame.columns]
    return frame


def score_test_set(model_root: Path, test_dir: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Labels, scores and a description of the data that was scored."""
    raw = test_dir / "test_raw.parquet"
    if raw.is_file():
        frame = read_raw(raw)
        if LABEL not in frame.columns:
            raise EvaluationError(f"{raw.name} has no {LABEL} column")
        inference = load_inference_module(model_root)
        model = inference.model_fn(str(model_root))
        features = frame[model.features]
        scores = inference.predict_proba(features, model)
        return frame[LABEL].astype(int).to_numpy(), np.asarray(scores, dtype=float), raw.name
    csv_files = sorted(test_dir.glob("*.csv")) if test_dir.is_dir() else []
    if not csv_files:
        raise EvaluationError(f"{test_dir} holds neither test_raw.parquet nor a test CSV")
    import xgboost as xgb

    table = pd.concat([pd.read_csv(p, header=None, dtype=np.float64) for p in csv_files], ignore_index=True)
    booster = xgb.Booster()
    booster.load_model(model_root / MODEL_FILE)
    scores = booster.predict(xgb.DMatrix(table.iloc[:, 1:].to_numpy()))
    return table.iloc[:, 0].astype(int).to_numpy(), np.asarray(scores, dtype=float), csv_files[0].name


def request_cell(value: Any) -> str:
    """One feature value as a client writes it in a ``text/csv`` request: flags and whole numbers of integer
    columns as integers, other numbers in Python's shortest round-trip form, text as is."""
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, decimal.Decimal):
        return str(int(value)) if value == value.to_integral_value() else repr(float(value))
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def _csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _output_names(json_body: str, width: int) -> list[str]:
    """Names of the response's columns: the keys of the model's JSON prediction records."""
    try:
        payload = json.loads(json_body)
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"the model's JSON response is not JSON: {exc}") from None
    records = payload.get("predictions") if isinstance(payload, dict) else payload
    if isinstance(records, list) and records and isinstance(records[0], dict) and len(records[0]) == width:
        return [str(key) for key in records[0]]
    raise EvaluationError(
        f"cannot name the {width} CSV output column(s): the model's JSON response does not hold records with "
        f"{width} named field(s) (got {json_body[:200]!r})"
    )


def monitor_baseline(model_root: Path, test_dir: Path, threshold: float) -> tuple[list[str], list[list[str]]]:
    """The Model Monitor baseline: header and rows of ``[output columns..., input columns...]``.

    The raw test rows are sent through the model's handlers as one ``text/csv`` request (no header) with
    ``Accept: text/csv``, so the output columns are exactly what the endpoint answers and captures.
    """
    raw = test_dir / "test_raw.parquet"
    if not raw.is_file():
        raise EvaluationError(
            f"the Model Monitor baseline needs the raw test features ({raw.name}), which {test_dir} does not hold"
        )
    frame = read_raw(raw)
    inference = load_inference_module(model_root)
    model = inference.model_fn(str(model_root))
    model.threshold = threshold  # the endpoint's DECISION_THRESHOLD is the same configured value
    features = list(model.features)
    absent = [f for f in features if f not in frame.columns]
    if absent:
        raise EvaluationError(f"{raw.name} lacks the model's input column(s) {', '.join(absent)}")
    requests = [[request_cell(value) for value in row] for row in frame[features].itertuples(index=False)]
    if not requests:
        raise EvaluationError(f"{raw.name} holds no row to baseline")
    data = inference.input_fn(_csv_text(requests), CSV_TYPE)
    prediction = inference.predict_fn(data, model)
    csv_body, _ = inference.output_fn(prediction, CSV_TYPE)
    json_body, _ = inference.output_fn(prediction, JSON_TYPE)
    responses = [row for row in csv.reader(io.StringIO(csv_body)) if row]
    if len(responses) != len(requests):
        raise EvaluationError(f"the model answered {len(responses)} CSV line(s) for {len(requests)} request row(s)")
    names = _output_names(json_body, len(responses[0]))
    return [*names, *features], [[*answer, *request] for answer, request in zip(responses, requests, strict=True)]


def write_monitor_baseline(model_root: Path, test_dir: Path, baseline_dir: Path, threshold: float) -> dict[str, Any]:
    """Write ``baseline.csv`` (header, output columns first) and describe it."""
    header, rows = monitor_baseline(model_root, test_dir, threshold)
    baseline_dir.mkdir(parents=True, exist_ok=True)
    (baseline_dir / BASELINE_FILE).write_text(_csv_text([header, *rows]), encoding="utf-8")
    return {"file": BASELINE_FILE, "rows": len(rows), "columns": header, "output_columns_position": "START"}


def _thin(values: np.ndarray, others: np.ndarray) -> tuple[list[float], list[float]]:
    """At most MAX_CURVE_POINTS evenly spaced points of a curve, keeping both ends."""
    if len(values) > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(values) - 1, MAX_CURVE_POINTS).round().astype(int))
        values, others = values[keep], others[keep]
    return [float(v) for v in values], [float(v) for v in others]


def _f_beta(precision: float, recall: float, beta: float) -> float:
    denominator = beta * beta * precision + recall
    return (1 + beta * beta) * precision * recall / denominator if denominator else 0.0


def _entry(value: float | None) -> dict[str, Any]:
    finite = value is not None and math.isfinite(value)
    return {"value": float(value) if finite else None, "standard_deviation": "NaN"}


def compute_report(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """The evaluation.json document for binary labels and fraud probabilities.

    :param labels: 0/1 ground truth.
    :param scores: predicted fraud probabilities.
    :param threshold: probability at or above which a transaction is called fraud.
    """
    if len(labels) == 0:
        raise EvaluationError("the test set is empty")
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel())
    n = len(labels)
    positives = tp + fn
    both_classes = 0 < positives < n
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    accuracy = (tp + tn) / n
    auc = float(skm.roc_auc_score(labels, scores)) if both_classes else None
    pr_auc = float(skm.average_precision_score(labels, scores)) if both_classes else None
    prevalence = positives / n
    # the best constant classifier for the positive class calls every transaction fraud
    constant = {"precision": prevalence, "recall": 1.0 if positives else 0.0, "accuracy": prevalence}

    bcm: dict[str, Any] = {
        "confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}},
        "recall": _entry(recall),
        "precision": _entry(precision),
        "accuracy": _entry(accuracy),
        "recall_best_constant_classifier": _entry(constant["recall"]),
        "precision_best_constant_classifier": _entry(constant["precision"]),
        "accuracy_best_constant_classifier": _entry(constant["accuracy"]),
        "true_positive_rate": _entry(recall),
        "true_negative_rate": _entry(tn / (tn + fp) if tn + fp else 0.0),
        "false_positive_rate": _entry(fp / (tn + fp) if tn + fp else 0.0),
        "false_negative_rate": _entry(fn / positives if positives else 0.0),
    }
    if both_classes:
        fpr, tpr, _ = skm.roc_curve(labels, scores)
        fpr_list, tpr_list = _thin(fpr, tpr)
        bcm["receiver_operating_characteristic_curve"] = {
            "false_positive_rates": fpr_list,
            "true_positive_rates": tpr_list,
        }
        curve_precision, curve_recall, _ = skm.precision_recall_curve(labels, scores)
        order = np.argsort(curve_recall, kind="mergesort")
        recalls, precisions = _thin(curve_recall[order], curve_precision[order])
        bcm["precision_recall_curve"] = {"precisions": precisions, "recalls": recalls}
    bcm["auc"] = _entry(auc)
    bcm["au_prc"] = _entry(pr_auc)
    for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")):
        bcm[name] = _entry(_f_beta(precision, recall, beta))
        bcm[f"{name}_best_constant_classifier"] = _entry(_f_beta(constant["precision"], constant["recall"], beta))

    summary = {
        "auc": auc,
        "pr_auc": pr_auc,
        "precision": precision,
        "recall": recall,
        "f1": _f_beta(precision, recall, 1.0),
        "accuracy": accuracy,
        "threshold": threshold,
        "rows": n,
        "positives": positives,
        "positive_rate": prevalence,
        "predicted_positives": tp + fp,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }
    return {"binary_classification_metrics": bcm, "summary": summary}


def write_plots(report: dict[str, Any], output_dir: Path) -> list[str]:
    """The confusion-matrix image, and ROC and PR curve images unless the test set lacks one of the classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bcm = report["binary_classification_metrics"]
    written = [write_confusion_matrix(report["summary"], output_dir, plt)]
    if "receiver_operating_characteristic_curve" not in bcm:
        return written
    roc = bcm["receiver_operating_characteristic_curve"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(roc["false_positive_rates"], roc["true_positive_rates"], label=f"AUC {bcm['auc']['value']:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    fig.savefig(output_dir / "roc_curve.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    written.append("roc_curve.png")

    pr = bcm["precision_recall_curve"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(pr["recalls"], pr["precisions"], label=f"PR-AUC {bcm['au_prc']['value']:.3f}")
    ax.axhline(report["summary"]["positive_rate"], linestyle="--", color="grey")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right")
    fig.savefig(output_dir / "pr_curve.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    written.append("pr_curve.png")
    return written


def write_confusion_matrix(summary: dict[str, Any], output_dir: Path, plt: Any) -> str:
    """``confusion_matrix.png``: the four counts at the decision threshold, actual class by predicted class."""
    cm = summary["confusion_matrix"]
    cells = [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(cells, cmap="Blues")
    peak = max(max(row) for row in cells) or 1
    for actual in (0, 1):
        for predicted in (0, 1):
            count = cells[actual][predicted]
            colour = "white" if count > peak / 2 else "black"
            ax.text(predicted, actual, str(count), ha="center", va="center", color=colour, fontsize=14)
    ax.set_xticks([0, 1], labels=["legitimate", "fraud"])
    ax.set_yticks([0, 1], labels=["legitimate", "fraud"])
    ax.set(xlabel="Predicted", ylabel="Actual", title=f"Confusion matrix at threshold {summary['threshold']:g}")
    fig.savefig(output_dir / "confusion_matrix.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "confusion_matrix.png"


def write_pre_training_bias(
    test_dir: Path, output_dir: Path, facet: str, facet_values: list[str] | None
) -> dict[str, Any]:
    """``analysis.json``: Clarify's pre-training bias metrics of the training split for ``facet``; its summary.

    :raises EvaluationError: the training split's attributes are missing or lack the facet or the label
    """
    path = test_dir / TRAIN_ATTRIBUTES_FILE
    if not path.is_file():
        raise EvaluationError(
            f"--bias-facet {facet}: {path} is missing (the preprocessing job writes it when the dataset contract "
            "has attributes)"
        )
    frame = pd.read_parquet(path)
    frame.columns = [str(c).lower() for c in frame.columns]
    bias = _load_common("bias")
    try:
        section = bias.pre_training_report(frame, label=LABEL, facet=facet, facet_values_or_threshold=facet_values)
    except bias.BiasError as exc:
        raise EvaluationError(f"pre-training bias on {TRAIN_ATTRIBUTES_FILE} by {facet!r}: {exc}") from None
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / BIAS_FILE).write_text(json.dumps(bias.analysis(pre_training=section), indent=2) + "\n")
    groups = [entry["value_or_threshold"] for entry in section["facets"][facet]]
    return {"file": BIAS_FILE, "facet": facet, "groups": groups, "rows": len(frame)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        model_root = materialise_model(args.model_dir, Path(scratch))
        labels, scores, source = score_test_set(model_root, args.test_dir)
        training = model_root / "training_metrics.json"
        training_report = json.loads(training.read_text()) if training.is_file() else {}
        baseline = (
            write_monitor_baseline(model_root, args.test_dir, args.baseline_dir, args.threshold)
            if args.baseline_dir is not None
            else None
        )
    report = compute_report(labels, scores, args.threshold)
    report["data"] = {"source": source, "rows": len(labels)}
    report["model"] = {
        key: training_report[key]
        for key in ("best_iteration", "hyperparameters", "xgboost_version")
        if key in training_report
    }
    if baseline is not None:
        report["monitoring_baseline"] = baseline
    if args.bias_facet:
        report["bias"] = write_pre_training_bias(
            args.test_dir, args.output_dir, args.bias_facet, args.bias_facet_values
        )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    report["plots"] = write_plots(report, args.output_dir)
    (args.output_dir / "evaluation.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        report = run(args)
    except EvaluationError as exc:
        LOG.error("Evaluation failed: %s", exc)
        if args.exit_message_file.parent.is_dir():
            args.exit_message_file.write_text(str(exc)[:1024])
        return 1
    summary = report["summary"]
    if summary["auc"] is None:
        LOG.warning("The test set holds a single class: AUC and PR-AUC are undefined (null in the report)")
    for name in ("auc", "pr_auc", "precision", "recall", "f1", "accuracy"):
        value = summary[name]
        print(f"test:{name}={'nan' if value is None else f'{value:.6f}'};")
    cm = summary["confusion_matrix"]
    print(f"confusion_matrix tn={cm['tn']} fp={cm['fp']} fn={cm['fn']} tp={cm['tp']}")
    print(f"wrote {args.output_dir / 'evaluation.json'}")
    if "monitoring_baseline" in report:
        baseline = report["monitoring_baseline"]
        print(f"wrote {args.baseline_dir / BASELINE_FILE}: {baseline['rows']} rows, columns {baseline['columns']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
