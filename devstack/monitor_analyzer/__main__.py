"""The analyzer's entry point, following the Model Monitor container contract.

Configuration comes from the environment (the processing job's ``Environment``), falling back to
``<opt-ml>/config/processingjobconfig.json``:

- ``dataset_format`` (JSON: ``csv``, ``json``, ``parquet`` or ``sagemakerCaptureJson``), ``dataset_source``,
  ``output_path``;
- ``baseline_constraints`` / ``baseline_statistics``: file paths; with neither, the job is a baselining job
  and writes ``statistics.json`` and ``constraints.json``;
- otherwise a monitoring job: ``statistics.json``, ``constraint_violations.json`` and a copy of the
  baseline ``constraints.json``;
- ``start_time`` / ``end_time`` (``YYYY-MM-DDTHH:MM:SSZ``) filter captured records;
- ``publish_cloudwatch_metrics`` (``Enabled``) sends ``feature_data_*``, ``feature_non_null_*`` and
  ``feature_baseline_drift_*`` to namespace ``aws/sagemaker/Endpoints/data-metrics`` (batch:
  ``aws/sagemaker/ModelMonitoring/data-metrics``) with dimensions ``Endpoint`` and ``MonitoringSchedule``, at
  ``metric_time``; the records are also written under ``CLOUDWATCH_METRICS_DIRECTORY``.

It writes a one-line summary to ``<opt-ml>/output/message`` (``Completed: ...`` or
``CompletedWithViolations: ...``) and exits 0; on error it writes the error there and exits 255.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from devstack.monitor_analyzer import datasets
from devstack.monitor_analyzer.stats import check, statistics, suggest_constraints

log = logging.getLogger("analyzer")

ENDPOINT_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
BATCH_NAMESPACE = "aws/sagemaker/ModelMonitoring/data-metrics"


class AnalyzerError(Exception):
    """A configuration or input error; its text becomes the job's ExitMessage."""


def _config(opt_ml: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    config_file = opt_ml / "config" / "processingjobconfig.json"
    if config_file.is_file():
        with contextlib.suppress(OSError, ValueError):
            env.update(json.loads(config_file.read_text()).get("Environment") or {})
    for key in (
        "dataset_format",
        "dataset_source",
        "output_path",
        "baseline_constraints",
        "baseline_statistics",
        "publish_cloudwatch_metrics",
        "sagemaker_endpoint_name",
        "sagemaker_monitoring_schedule_name",
        "start_time",
        "end_time",
        "metric_time",
        "categorical_drift_method",
        "exclude_features_attribute",
        "CLOUDWATCH_METRICS_DIRECTORY",
    ):
        if os.environ.get(key) is not None:
            env[key] = os.environ[key]
    return env


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise AnalyzerError(f"Cannot parse time {value!r}: expected YYYY-MM-DDTHH:MM:SSZ") from exc


def _load_json(path: str | None, what: str) -> dict[str, Any] | None:
    if not path:
        return None
    file = Path(path)
    if file.is_dir():
        candidates = sorted(file.glob("*.json"))
        if not candidates:
            raise AnalyzerError(f"The {what} directory {path} holds no JSON file")
        file = candidates[0]
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise AnalyzerError(f"Cannot read the {what} file {path}: {exc}") from exc


def _read(env: dict[str, str], names: list[str] | None) -> datasets.Dataset:
    try:
        fmt = json.loads(env["dataset_format"])
    except KeyError:
        raise AnalyzerError("Environment variable dataset_format is required") from None
    except ValueError as exc:
        raise AnalyzerError(f"dataset_format is not JSON: {exc}") from exc
    source = env.get("dataset_source")
    if not source or not Path(source).is_dir():
        raise AnalyzerError(f"dataset_source {source!r} is not a directory")
    root = Path(source)
    if "sagemakerCaptureJson" in fmt:
        indexes = fmt["sagemakerCaptureJson"].get("captureIndexNames") or ["endpointInput", "endpointOutput"]
        return datasets.read_capture(root, indexes, _time(env.get("start_time")), _time(env.get("end_time")), names)
    if "csv" in fmt:
        return datasets.read_csv(root, bool((fmt["csv"] or {}).get("header", False)))
    if "json" in fmt:
        return datasets.read_json_lines(root)
    if "parquet" in fmt:
        return datasets.read_parquet(root)
    raise AnalyzerError(f"Unsupported dataset_format {env['dataset_format']}")


def _exclude(dataset: datasets.Dataset, env: dict[str, str]) -> datasets.Dataset:
    raw = env.get("exclude_features_attribute")
    if not raw:
        return dataset
    excluded = {name.strip() for name in raw.split(",")}
    keep = [i for i, c in enumerate(dataset.columns) if c not in excluded]
    return datasets.Dataset([dataset.columns[i] for i in keep], [[row[i] for i in keep] for row in dataset.rows])


def _publish(
    env: dict[str, str], opt_ml: Path, stats: dict[str, Any], drift: dict[str, float], item_count: int
) -> None:
    endpoint = env.get("sagemaker_endpoint_name")
    schedule = env.get("sagemaker_monitoring_schedule_name", "")
    namespace = ENDPOINT_NAMESPACE if endpoint else BATCH_NAMESPACE
    dims = [{"Name": "Endpoint", "Value": endpoint or ""}, {"Name": "MonitoringSchedule", "Value": schedule}]
    when = _time(env.get("metric_time") or env.get("end_time")) or dt.datetime.now(dt.UTC)
    records: list[dict[str, Any]] = []
    for feature in stats["features"]:
        name = feature["name"]
        block = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
        common = block.get("common", {})
        present = common.get("num_present", 0)
        total = present + common.get("num_missing", 0)
        records.append({"MetricName": f"feature_non_null_{name}", "Value": present / total if total else 0.0})
        if "numerical_statistics" in feature and present:
            num = feature["numerical_statistics"]
            records.append(
                {
                    "MetricName": f"feature_data_{name}",
                    "StatisticValues": {
                        "SampleCount": float(present),
                        "Sum": float(num["sum"]),
                        "Minimum": float(num["min"]),
                        "Maximum": float(num["max"]),
                    },
                }
            )
        if name in drift:
            records.append({"MetricName": f"feature_baseline_drift_{name}", "Value": float(drift[name])})
    for record in records:
        record["Dimensions"] = dims
        record["Timestamp"] = when
    directory = Path(env.get("CLOUDWATCH_METRICS_DIRECTORY") or opt_ml / "output" / "metrics" / "cloudwatch")
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "cloudwatch_metrics.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({**record, "Timestamp": when.isoformat(), "Namespace": namespace}) + "\n")
    import boto3

    cloudwatch = boto3.client("cloudwatch")
    for start in range(0, len(records), 500):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=records[start : start + 500])
    print(f"Published {len(records)} metrics for {item_count} records to {namespace}", flush=True)


def analyze(env: dict[str, str], opt_ml: Path) -> str:
    """Run one analysis; return the exit message."""
    output = env.get("output_path")
    if not output:
        raise AnalyzerError("Environment variable output_path is required")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    constraints = _load_json(env.get("baseline_constraints"), "baseline constraints")
    baseline_stats = _load_json(env.get("baseline_statistics"), "baseline statistics")
    reference = baseline_stats or constraints
    names = [f["name"] for f in reference["features"]] if reference else None
    dataset = _exclude(_read(env, names), env)
    if not dataset.rows:
        raise datasets.NoDataError("Job inputs had no data")
    if constraints is None and baseline_stats is None:
        stats = statistics(dataset)
        (out / "statistics.json").write_text(json.dumps(stats, indent=2))
        (out / "constraints.json").write_text(json.dumps(suggest_constraints(stats), indent=2))
        print(f"Baseline: {len(dataset.rows)} records, {len(dataset.columns)} features", flush=True)
        return "Completed: Job completed successfully with no violations."
    types = {f["name"]: f["inferred_type"] for f in reference["features"] if f.get("inferred_type")}
    stats = statistics(dataset, types)
    if constraints is not None:
        drift_method = env.get("categorical_drift_method")
        if drift_method:
            constraints.setdefault("monitoring_config", {}).setdefault("distribution_constraints", {})[
                "categorical_drift_method"
            ] = drift_method
    violations, drift = check(dataset, stats, constraints, baseline_stats)
    (out / "statistics.json").write_text(json.dumps(stats, indent=2))
    (out / "constraint_violations.json").write_text(json.dumps({"violations": violations}, indent=2))
    if constraints is not None:
        source = env.get("baseline_constraints", "")
        if source and Path(source).is_file():
            shutil.copyfile(source, out / "constraints.json")
        else:
            (out / "constraints.json").write_text(json.dumps(constraints, indent=2))
    emit = str(((constraints or {}).get("monitoring_config") or {}).get("emit_metrics", "Enabled")).lower()
    if env.get("publish_cloudwatch_metrics", "Disabled").lower() == "enabled" and emit == "enabled":
        _publish(env, opt_ml, stats, drift, len(dataset.rows))
    print(f"Analysed {len(dataset.rows)} records: {len(violations)} violation(s)", flush=True)
    if violations:
        return f"CompletedWithViolations: Job completed successfully with {len(violations)} violations."
    return "Completed: Job completed successfully with no violations."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.monitor_analyzer")
    parser.add_argument("--opt-ml", default="/opt/ml", help="the directory that plays /opt/ml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opt_ml = Path(args.opt_ml)
    message_file = opt_ml / "output" / "message"
    message_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        message = analyze(_config(opt_ml), opt_ml)
    except (AnalyzerError, datasets.NoDataError) as exc:
        message_file.write_text(str(exc)[:1024])
        print(f"Analysis failed: {exc}", file=sys.stderr, flush=True)
        return 255
    except Exception as exc:
        message_file.write_text(f"{type(exc).__name__}: {exc}"[:1024])
        log.exception("Analysis failed")
        return 255
    message_file.write_text(message)
    print(message, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
