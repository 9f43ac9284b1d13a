"""The monitoring job: one interval of an endpoint's captured traffic against the served model's baseline.

Runs as a SageMaker Processing job in the project's monitoring image (include/images/ml-lifecycle-monitoring:
the scikit-learn image plus Evidently and matplotlib), configured by a JSON document (endpoint, interval and
lookback bounds, features, label, facet, thresholds): the file ``config/monitor_config.json`` of the inputs,
else the environment variable ``MONITOR_CONFIG`` (SageMaker limits an environment value to 256 characters,
too few for a feature list, so jobs pass the file).

Inputs under ``--input-dir`` (default ``/opt/ml/processing/input``):

- ``config/``   ``monitor_config.json``;
- ``capture/``  data-capture JSON Lines of the lookback window (drift and data quality use the interval only);
- ``baseline/`` the baseline dataset (CSV, header; the model's output columns, then its input columns);
- ``labels/``   optional ground truth (SageMaker's ground-truth JSON Lines, the facet in ``attributes``);
- ``history/``  optional ``summary.json`` files of earlier intervals.

Outputs under ``--output-dir`` (default ``/opt/ml/processing/output``): ``report.html`` (Evidently: data
drift and data summary), ``model_quality.html`` (Evidently's classification report, when enough labels
arrived), ``summary.json``, ``analysis.json`` (post-training bias, Clarify's shape), ``metrics.json``
(CloudWatch datums), ``drift.png`` and ``model_quality.png``.

Exit 0 when the job ran, whatever it found; 1 when it could not run (the reason, naming the input, goes
to stderr and ``/opt/ml/output/message``, which SageMaker shows as the job's failure reason).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any


def _load(name: str, *candidates: Path) -> ModuleType:
    for path in candidates:
        if path.is_file():
            spec = importlib.util.spec_from_file_location(f"monitoring_{name}", path)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
                return module
    raise ImportError(f"{name} is missing (looked in {', '.join(map(str, candidates))})")


HERE = Path(__file__).resolve().parent
CONFIG_FILE = "monitor_config.json"
checks = _load("checks", HERE / "checks.py")
bias = _load("bias", HERE / "common" / "bias.py", HERE.parent / "common" / "bias.py")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-dir", type=Path, default=Path("/opt/ml/processing/input"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    parser.add_argument("--exit-message-file", type=Path, default=Path("/opt/ml/output/message"))
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------------------ Evidently


def _evidently_frames(interval, baseline, config) -> tuple[Any, Any, Any, list[str], list[str]]:
    categorical = [f for f in config.drift_features if f in config.categorical_features]
    flags = checks.binary_features(baseline, config)
    numerical = [f for f in config.drift_features if f not in categorical and f not in flags]
    columns = config.drift_features
    current, reference = interval[columns].copy(), baseline[columns].copy()
    for flag in flags:  # 0/1 flags compared as categories, as text so both frames agree
        current[flag] = current[flag].map(lambda v: None if v != v else str(int(v)))
        reference[flag] = reference[flag].map(lambda v: None if v != v else str(int(v)))
    return current, reference, categorical + flags, numerical, flags


def drift_report(interval, baseline, config, output: Path) -> dict[str, Any]:
    """Evidently's data-drift and data-summary report (``report.html``) and the drift section."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    current, reference, categorical, numerical, _ = _evidently_frames(interval, baseline, config)
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    options = {"drift_share": config.drift["share"]}
    if config.drift.get("method"):
        options["method"] = config.drift["method"]
    if config.drift.get("threshold") is not None:
        options["threshold"] = config.drift["threshold"]
    report = Report([DataDriftPreset(**options), DataSummaryPreset()], include_tests=True)
    with warnings.catch_warnings():
        # the data summary divides by zero for a constant column and warns; the report shows it as it is
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    snapshot.save_html(str(output / "report.html"))
    return drift_section(snapshot.dict(), config)


def drift_section(document: dict[str, Any], config) -> dict[str, Any]:
    """The summary's drift section from an Evidently snapshot's ``dict()``: per feature the test, its score,
    threshold and verdict (the ValueDrift test's status), and the share of drifted features."""
    columns: dict[str, dict[str, Any]] = {}
    by_id: dict[str, str] = {}
    share = None
    for metric in document.get("metrics", []):
        cfg = metric.get("config", {})
        kind = cfg.get("type", "")
        if kind.endswith(":ValueDrift"):
            column = cfg["column"]
            by_id[metric["id"]] = column
            columns[column] = {
                "drifted": False,
                "test": cfg.get("method"),
                "score": float(metric["value"]),
                "threshold": cfg.get("threshold"),
            }
        elif kind.endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    for test in document.get("tests", []):
        column = by_id.get(test.get("metric_config", {}).get("metric_id"))
        if column is not None and test.get("id") == "drift":
            columns[column]["drifted"] = test.get("status") == "FAIL"
    if share is None:
        share = sum(c["drifted"] for c in columns.values()) / len(columns) if columns else 0.0
    threshold = config.drift["share"]
    return {
        "drifted": bool(columns) and share >= threshold,
        "share": share,
        "share_threshold": threshold,
        "features": {f: columns[f] for f in config.drift_features if f in columns},
    }


def classification_report(joined, config, output: Path) -> bool:
    """Evidently's classification report of the labelled rows (``model_quality.html``); False when the
    labelled rows hold one class only (the report needs both)."""
    if joined["label"].nunique() < 2:
        return False
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    frame = joined[[checks.SCORE, "label"]].rename(columns={checks.SCORE: "score", "label": "target"})
    frame["score"] = frame["score"].astype(float)
    frame["target"] = frame["target"].astype(int)
    definition = DataDefinition(
        classification=[BinaryClassification(target="target", prediction_probas="score", pos_label=1)],
        numerical_columns=["score"],
    )
    snapshot = Report([ClassificationPreset()]).run(Dataset.from_pandas(frame, data_definition=definition), None)
    snapshot.save_html(str(output / "model_quality.html"))
    return True


# ------------------------------------------------------------------------------------------------ pictures


def drift_strength(score: float, threshold: float | None, test: str | None) -> float:
    """A feature's drift on one scale whatever its test: 1 at the threshold, above 1 drifted.

    p-value tests: ``log(p) / log(threshold)`` (smaller p-values are more drift); distances and the other
    scores: ``score / threshold``.
    """
    if not threshold:
        return math.nan
    if "p_value" in str(test):
        if score <= 0:
            return math.inf
        return math.log(score) / math.log(threshold) if 0 < threshold < 1 else math.nan
    return score / threshold


STRENGTH_CAP = 5.0


def drift_png(drift: dict[str, Any], path: Path, title: str) -> None:
    """Per-feature drift against each test's threshold (bars on one scale, the threshold at 1; drifted in
    red), labelled with the test and its raw score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    features = list(drift["features"])
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(len(features), 3) + 1.5))
    if not features:
        ax.text(0.5, 0.5, "no drift computed (no captured rows in the interval)", ha="center", va="center")
        ax.set_axis_off()
    else:
        results = [drift["features"][f] for f in features]
        strengths = [drift_strength(r["score"], r["threshold"], r["test"]) for r in results]
        shown = [min(v, STRENGTH_CAP) if not math.isnan(v) else 0.0 for v in strengths]
        colours = ["#c0392b" if r["drifted"] else "#2e86c1" for r in results]
        ax.barh(features, shown, color=colours)
        ax.axvline(1.0, color="black", linewidth=1.5, linestyle="--")
        for y, result in enumerate(results):
            ax.text(shown[y], y, f"  {result['test']} = {result['score']:.3g}", va="center", fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, STRENGTH_CAP * 1.45)
        ax.set_xlabel(
            f"drift relative to the test's threshold (dashed line; drifted beyond it; shown up to {STRENGTH_CAP:g})"
        )
    share = "n/a" if drift["share"] is None else f"{drift['share']:.2f}"
    ax.set_title(f"{title}: drifted share {share} (threshold {drift['share_threshold']:.2f})")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def model_quality_png(points: list[dict[str, Any]], path: Path, title: str) -> None:
    """Model-quality metrics per interval (earlier summaries and this one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    with_values = [p for p in points if any(p[m] is not None for m in checks.MODEL_QUALITY_METRICS)]
    if not with_values:
        ax.text(0.5, 0.5, "no labelled intervals yet", ha="center", va="center")
        ax.set_axis_off()
    else:
        x = list(range(len(points)))
        for metric in ("recall", "precision", "f1", "auc"):
            ys = [p[metric] if p[metric] is not None else math.nan for p in points]
            ax.plot(x, ys, marker="o", label=metric)
        ax.set_xticks(x, [p["start"][:16].replace("T", " ") for p in points], rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.legend(loc="lower left")
        ax.set_ylabel("value on labelled traffic")
    ax.set_title(f"{title}: model quality per interval")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def _empty_report(path: Path, config, detail: str) -> None:
    path.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Monitoring report</title></head><body>"
        f"<h1>{config.endpoint}</h1><p>{checks.iso(config.interval_start)} to {checks.iso(config.interval_end)}: "
        f"{detail}</p></body></html>\n",
        encoding="utf-8",
    )


# ------------------------------------------------------------------------------------------------ the job


def run(input_dir: Path, output_dir: Path, config) -> dict[str, Any]:
    """Run every check and write the outputs; the summary."""
    output_dir.mkdir(parents=True, exist_ok=True)
    baseline_raw = checks.read_baseline(input_dir / "baseline", config)
    baseline = checks.typed(baseline_raw, config)
    capture = checks.read_capture(input_dir / "capture", config)
    labels, bad_labels = checks.read_labels(input_dir / "labels", config.facet)
    for line in bad_labels[:5]:
        print(f"skipped an unreadable label: {line}", file=sys.stderr)
    interval_raw = checks.interval_rows(capture.rows, config)
    interval = checks.typed(interval_raw, config)
    print(
        f"{config.endpoint}: {len(capture.rows)} captured row(s) in the lookback window, {len(interval)} in the "
        f"interval {checks.iso(config.interval_start)} - {checks.iso(config.interval_end)}; {len(labels)} label(s)"
    )

    if interval.empty:
        drift = {"drifted": False, "share": None, "share_threshold": config.drift["share"], "features": {}}
        _empty_report(output_dir / "report.html", config, "no captured rows in this interval, nothing to compare")
    else:
        drift = drift_report(interval, baseline, config, output_dir)
    quality_checks = checks.data_quality(capture, interval, baseline, config)

    joined = checks.join_labels(capture.rows, labels)
    quality = checks.model_quality(joined, config)
    if quality["status"] in ("ok", "breach"):
        quality["report"] = "model_quality.html" if classification_report(joined, config, output_dir) else None
    bias_summary, post_training = checks.bias_section(joined, config, bias)
    analysis = bias.analysis(post_training=post_training)

    summary = {
        "version": 1,
        "endpoint": config.endpoint,
        # the registry version whose baseline this interval was compared with (its reports are linked from it)
        "model_package_arn": config.raw.get("model_package_arn"),
        "interval": {"start": checks.iso(config.interval_start), "end": checks.iso(config.interval_end)},
        "lookback_start": checks.iso(config.lookback_start),
        "rows": {"interval": len(interval), "labelled": len(joined), "lookback": len(capture.rows)},
        "drift": drift,
        "data_quality": {"checks": quality_checks},
        "model_quality": quality,
        "bias": bias_summary,
        "decision": checks.decision(drift, quality, bias_summary),
    }
    summary = checks.json_safe(summary)
    history = checks.read_history(input_dir / "history", config.endpoint)
    drift_png(drift, output_dir / "drift.png", config.endpoint)
    model_quality_png(checks.history_points(history, summary), output_dir / "model_quality.png", config.endpoint)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False), encoding="utf-8")
    (output_dir / "analysis.json").write_text(json.dumps(analysis, indent=2, allow_nan=False), encoding="utf-8")
    metrics = checks.metric_datums(summary)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False), encoding="utf-8")
    return summary


def read_config_text(input_dir: Path) -> str | None:
    """The job's configuration: ``config/monitor_config.json`` of the inputs, else ``$MONITOR_CONFIG``."""
    path = input_dir / "config" / CONFIG_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if (input_dir / "config").is_dir():
        raise checks.MonitorInputError(f"the config input holds no {CONFIG_FILE}")
    return os.environ.get("MONITOR_CONFIG")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = checks.parse_config(read_config_text(args.input_dir))
        summary = run(args.input_dir, args.output_dir, config)
    except (checks.MonitorInputError, bias.BiasError) as exc:
        message = f"monitoring could not run: {exc}"
        print(message, file=sys.stderr)
        if args.exit_message_file.parent.is_dir():
            args.exit_message_file.write_text(message[:1024], encoding="utf-8")
        return 1
    decision = summary["decision"]
    print(
        f"drift: {summary['drift']['drifted']} (share {summary['drift']['share']}); model quality: "
        f"{summary['model_quality']['status']} ({summary['model_quality']['labelled']} labelled); bias: "
        f"{summary['bias']['status']}; retrain: {decision['retrain']}; bias hold: {decision['bias_hold']}"
    )
    for reason in decision["reasons"]:
        print(f"reason: {reason['check']} {reason['metric']} = {reason['value']} (threshold {reason['threshold']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
