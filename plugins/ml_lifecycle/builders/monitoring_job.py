"""``CreateProcessingJob`` of the evidently monitoring engine: one job per Airflow data interval.

The job (``include/code/monitoring/monitor.py`` in the project's monitoring image) reads:

- ``capture/``: the endpoint's data-capture files of the lookback window, listed in an S3 manifest
  (``S3DataType`` ``ManifestFile``: a JSON list whose first element is ``{"prefix": "s3://..."}`` and whose
  other elements are keys relative to it). Drift and data quality use the interval's records, model quality
  the lookback window's (late labels join inferences of earlier hours);
- ``baseline/``: the served model's baseline dataset (its registry ``baseline_uri``);
- ``labels/`` (optional): ground truth that arrived for the window's inferences;
- ``history/`` (optional): the ``summary.json`` of earlier intervals;

and ``config/monitor_config.json`` (the interval, the features and the thresholds: too long for an environment
value, which SageMaker limits to 256 characters). It writes
``report.html``, ``summary.json``, ``analysis.json``, ``metrics.json`` and PNG charts to the interval's
report prefix. The name is ``<endpoint>-mon-<interval start %Y%m%d%H%M>-<8 hex of the inputs>``, so a
retry of the interval finds its job. All functions are pure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ml_lifecycle.builders.common import (
    BuilderError,
    config_tags,
    output_kms_key,
    processing_cluster_and_network,
    s3_input,
)

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

ROOT = "/opt/ml/processing"
CODE_DIR = f"{ROOT}/input/code"
SCRIPT = "monitor.py"
OUTPUT_NAME = "report"
CONFIG_FILE = "monitor_config.json"
SUMMARY = "summary.json"
METRICS = "metrics.json"
REPORT = "report.html"
QUALITY_REPORT = "model_quality.html"
DRIFT_CHART = "drift.png"
QUALITY_CHART = "model_quality.png"
#: the files a person opens, in the order a reader wants them
REPORT_FILES = (REPORT, SUMMARY, QUALITY_REPORT, DRIFT_CHART, QUALITY_CHART)
MANIFEST = "capture.manifest"
NAME_MAX = 63
#: ``.../<endpoint>/<variant>/yyyy/mm/dd/hh/<file>``: the capture hour of a data-capture object
_CAPTURE_HOUR = re.compile(r"^(?:.*/)?(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")
#: the label and facet of the fraud model (``include/code/common/features_schema.json``)
LABEL = "is_fraud"
FACET = "customer_segment"
PROBABILITY_THRESHOLD = 0.5


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise BuilderError(f"interval bound {value.isoformat()} has no time zone; give UTC times")
    return value.astimezone(dt.UTC)


def interval_key(start: dt.datetime) -> str:
    """The interval's key in names and paths: its start as ``%Y%m%d%H%M`` (UTC)."""
    return _utc(start).strftime("%Y%m%d%H%M")


def inputs_digest(**inputs: Any) -> str:
    """8 hex of the job's inputs (what a second job of the same interval would have to differ in)."""
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def job_name(endpoint: str, start: dt.datetime, digest: str, try_number: int = 1) -> str:
    """``<endpoint>-mon-<%Y%m%d%H%M>-<8 hex>`` (``-r<n>`` for the attempt after a failed one), at most 63
    characters: the whole endpoint name leads (the IAM policy grants ``processing-job/${EndpointName}-mon-*``).
    """
    if not re.fullmatch(r"[0-9a-f]{8}", digest):
        raise BuilderError(f"job name digest must be 8 hex characters, got {digest!r}")
    if not endpoint:
        raise BuilderError("endpoint name is empty")
    name = f"{endpoint}-mon-{interval_key(start)}-{digest}" + (f"-r{try_number}" if try_number > 1 else "")
    if len(name) > NAME_MAX:
        raise BuilderError(f"monitoring job name {name!r} is longer than SageMaker's {NAME_MAX} characters")
    return name


def report_uri(cfg: Config, endpoint: str, start: dt.datetime) -> str:
    """``s3://<bucket>/<monitoring>/<endpoint>/<interval key>/``: the job's outputs for one interval."""
    return cfg.storage.uri("monitoring", endpoint, interval_key(start)) + "/"


def history_uri(cfg: Config, endpoint: str) -> str:
    """``s3://<bucket>/<monitoring>/<endpoint>/history/``: one ``<interval key>.json`` summary per interval."""
    return cfg.storage.uri("monitoring", endpoint, "history") + "/"


def model_reports_uri(cfg: Config, endpoint: str, version: int | str) -> str:
    """``s3://<bucket>/<monitoring>/<endpoint>/models/<version>/``: one ``<interval key>.json`` per interval monitored
    while registry version ``version`` served, naming its reports (linked from the version as
    ``monitoring_reports``)."""
    return cfg.storage.uri("monitoring", endpoint, "models", str(version)) + "/"


def labels_uri(cfg: Config, endpoint: str) -> str:
    """``s3://<bucket>/<monitoring>/<endpoint>/labels/``: ground truth (``yyyy/mm/dd/hh/*.jsonl`` by arrival)."""
    return cfg.storage.uri("monitoring", endpoint, "labels") + "/"


def capture_hour(key: str) -> dt.datetime | None:
    """The hour a data-capture object belongs to (from its ``yyyy/mm/dd/hh/`` path), else ``None``."""
    match = _CAPTURE_HOUR.match(key)
    if not match:
        return None
    year, month, day, hour = (int(g) for g in match.groups())
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)


def window_objects(keys: Iterable[str], start: dt.datetime, end: dt.datetime) -> list[str]:
    """The capture objects of ``[start, end)``: those whose capture hour overlaps it, sorted.

    The hour folder is the coarse filter; the job keeps the records whose ``inferenceTime`` is in the window.
    """
    first = _utc(start).replace(minute=0, second=0, microsecond=0)
    last = _utc(end)
    chosen = []
    for key in keys:
        hour = capture_hour(key)
        if hour is not None and first <= hour < last:
            chosen.append(key)
    return sorted(chosen)


def capture_manifest(prefix_uri: str, keys: Sequence[str]) -> list[Any]:
    """The ``ManifestFile`` document: ``[{"prefix": prefix_uri}, <key relative to it>, ...]``.

    :param prefix_uri: ``s3://bucket/prefix/`` every key starts with
    :param keys: full object keys (without the bucket)
    """
    if not prefix_uri.startswith("s3://") or not prefix_uri.endswith("/"):
        raise BuilderError(f"manifest prefix must be an s3:// URI ending in '/', got {prefix_uri!r}")
    key_prefix = prefix_uri.removeprefix("s3://").partition("/")[2]
    relative = []
    for key in keys:
        if not key.startswith(key_prefix):
            raise BuilderError(f"capture object {key!r} is not under the manifest prefix {prefix_uri}")
        relative.append(key[len(key_prefix) :])
    return [{"prefix": prefix_uri}, *relative]


def monitor_config(
    cfg: Config,
    *,
    endpoint: str,
    interval_start: dt.datetime,
    interval_end: dt.datetime,
    features: Sequence[str],
    categorical: Sequence[str],
) -> dict[str, Any]:
    """The job's ``monitor_config.json``: the interval, the lookback window, the features and the thresholds.

    The operator adds ``model_package_arn``, the registry version whose baseline the interval is compared with; the
    job echoes it in the summary, and the reports are then linked from that version.
    """
    start, end = _utc(interval_start), _utc(interval_end)
    if end <= start:
        raise BuilderError(f"interval end {end.isoformat()} is not after its start {start.isoformat()}")
    if not features:
        raise BuilderError("the model's features are empty (features_schema.json 'features')")
    mon = cfg.monitoring
    if unknown := [f for f in mon.ignore_features if f not in features]:
        raise BuilderError(f"monitoring.ignore_features names {', '.join(unknown)}, not features of the model")
    lookback = end - dt.timedelta(hours=mon.model_quality.lookback_hours)
    quality = mon.model_quality
    bias = mon.bias
    facet = getattr(bias, "facet", None)
    return {
        "endpoint": endpoint,
        "interval_start": start.isoformat(),
        "interval_end": end.isoformat(),
        "lookback_start": min(lookback, start).isoformat(),
        "features": list(features),
        "categorical_features": [f for f in categorical if f in features],
        "ignore_features": list(mon.ignore_features),
        "label": LABEL,
        "probability_threshold": PROBABILITY_THRESHOLD,
        "facet": getattr(facet, "name", None) or FACET,
        "facet_values_or_threshold": getattr(facet, "values_or_threshold", None),
        "thresholds": {
            "drift": {"share": mon.drift.share},  # the test per feature: Evidently's default for its type
            "model_quality": {
                "recall_min": quality.recall_min,
                "precision_min": quality.precision_min,
                "f1_min": quality.f1_min,
                "auc_min": quality.auc_min,
            },
            "bias": {
                "DPPL_abs_max": bias.dppl_abs_max,
                "DI_min": bias.di_min,
                "DI_max": bias.di_max,
                "RD_abs_max": bias.rd_abs_max,
            },
            "min_labelled_rows": quality.min_labelled_rows,
        },
    }


def _input(name: str, uri: str, data_type: str = "S3Prefix") -> dict[str, Any]:
    return s3_input(name, uri, f"{ROOT}/input/{name}", data_type)


def monitoring_request(
    cfg: Config,
    *,
    name: str,
    endpoint: str,
    code_uri: str,
    manifest_uri: str,
    config_uri: str,
    baseline_uri: str,
    output_uri: str,
    labels_uri: str | None = None,
    history_uri: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``CreateProcessingJob`` request of one interval's monitoring job.

    :param name: :func:`job_name`
    :param code_uri: the published ``include/code/monitoring/`` (with ``common/``) prefix
    :param manifest_uri: the capture manifest (:func:`capture_manifest`) in S3
    :param config_uri: the prefix holding ``monitor_config.json`` (:func:`monitor_config`)
    :param baseline_uri: the served model's baseline dataset (prefix or object)
    :param output_uri: :func:`report_uri`
    :param labels_uri: ground truth prefix, only when it holds labels (SageMaker refuses an empty input)
    :param history_uri: earlier summaries' prefix, only when it holds some
    :param extra_tags: the package's own tags (``ml-lifecycle:...``)
    """
    if len(name) > NAME_MAX:
        raise BuilderError(f"processing job name {name!r} is longer than {NAME_MAX} characters")
    if not output_uri.startswith("s3://"):
        raise BuilderError(f"monitoring output {output_uri!r} is not an s3:// URI")
    if not config_uri.endswith("/"):
        raise BuilderError(f"config_uri must be the prefix holding {CONFIG_FILE}, ending in '/', got {config_uri!r}")
    inputs = [
        _input("code", code_uri),
        _input("config", config_uri),
        _input("capture", manifest_uri, "ManifestFile"),
        _input("baseline", baseline_uri),
    ]
    if labels_uri:
        inputs.append(_input("labels", labels_uri))
    if history_uri:
        inputs.append(_input("history", history_uri))
    output: dict[str, Any] = {
        "Outputs": [
            {
                "OutputName": OUTPUT_NAME,
                "AppManaged": False,
                "S3Output": {"S3Uri": output_uri, "LocalPath": f"{ROOT}/output", "S3UploadMode": "EndOfJob"},
            }
        ]
    }
    if kms := output_kms_key(cfg):
        output["KmsKeyId"] = kms
    security = cfg.sagemaker.security
    cluster, network = processing_cluster_and_network(
        security, cfg.monitoring.instance_type, 1, cfg.sagemaker.processing.volume_size_gb
    )
    return {
        "ProcessingJobName": name,
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": output,
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": cfg.monitoring.max_runtime_seconds},
        "AppSpecification": {
            "ImageUri": cfg.sagemaker.images.monitoring,
            "ContainerEntrypoint": ["python3", f"{CODE_DIR}/{SCRIPT}"],
        },
        "NetworkConfig": network,
        "RoleArn": cfg.sagemaker.role_arn,
        "Tags": config_tags(cfg, **{"ml-lifecycle:endpoint": endpoint, **(extra_tags or {})}),
    }


# ------------------------------------------------------------------------------------------- CloudWatch


def alarm_name(endpoint: str, name: str) -> str:
    """``<endpoint>-monitoring-<name>``."""
    return f"{endpoint}-monitoring-{name}"


def alarm_requests(cfg: Config, endpoint: str) -> list[dict[str, Any]]:
    """``PutMetricAlarm`` requests of ``monitoring.alarms`` on ``endpoint`` (namespace ``MlLifecycle/Monitoring``).

    No actions: the alarms show the monitoring metrics' state in CloudWatch; the reactions (retraining,
    bias hold, notification) come from ``monitor_model`` itself.
    """
    from ml_lifecycle.config import MONITORING_NAMESPACE

    requests = []
    for alarm in cfg.monitoring.alarms:
        dimensions = [{"Name": "Endpoint", "Value": endpoint}]
        dimensions += [{"Name": k, "Value": v} for k, v in sorted(alarm.dimensions.items())]
        shown = ", ".join(f"{d['Name']}={d['Value']}" for d in dimensions[1:])
        requests.append(
            {
                "AlarmName": alarm_name(endpoint, alarm.name),
                "AlarmDescription": (
                    f"{alarm.metric}{f' ({shown})' if shown else ''} of {endpoint} {alarm.comparison} "
                    f"{alarm.threshold:g} (monitoring.alarms {alarm.name})"
                ),
                "Namespace": MONITORING_NAMESPACE,
                "MetricName": alarm.metric,
                "Dimensions": dimensions,
                "Statistic": alarm.statistic,
                "Period": alarm.period_seconds,
                "EvaluationPeriods": alarm.evaluation_periods,
                "DatapointsToAlarm": alarm.evaluation_periods,
                "Threshold": float(alarm.threshold),
                "ComparisonOperator": alarm.comparison,
                "TreatMissingData": alarm.treat_missing_data,
                "ActionsEnabled": False,
                "Tags": config_tags(cfg),
            }
        )
    return requests


def metric_data(datums: Sequence[dict[str, Any]], endpoint: str, timestamp: dt.datetime) -> list[dict[str, Any]]:
    """``PutMetricData`` ``MetricData`` from the job's ``metrics.json``.

    An entry is a ``MetricData`` datum (``MetricName``, ``Dimensions`` ``[{"Name", "Value"}]``, ``Value``,
    ``Unit``; the monitoring job writes this) or the short form ``{"name", "dimensions": {name: value},
    "value", "unit"}``. ``Endpoint`` is always this endpoint; the timestamp is the interval's end;
    non-finite values are dropped (CloudWatch refuses them).
    """
    import math

    out = []
    for i, datum in enumerate(datums):
        if not isinstance(datum, dict):
            raise BuilderError(f"metrics.json entry [{i}] is not an object: {datum!r}")
        if "MetricName" in datum:
            name, value, unit = datum["MetricName"], datum.get("Value"), datum.get("Unit")
            raw = datum.get("Dimensions") or []
            if not isinstance(raw, list) or not all(isinstance(d, dict) and {"Name", "Value"} <= d.keys() for d in raw):
                raise BuilderError(f"metrics.json entry [{i}] ({name}): Dimensions must be [{{'Name', 'Value'}}]")
            dims = {str(d["Name"]): d["Value"] for d in raw}
        elif "name" in datum:
            name, value, unit = datum["name"], datum.get("value"), datum.get("unit")
            dims = dict(datum.get("dimensions") or {})
        else:
            raise BuilderError(f"metrics.json entry [{i}] needs 'MetricName' (or 'name') and a value, got {datum!r}")
        if value is None or not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if not math.isfinite(float(value)):
            continue
        dims["Endpoint"] = endpoint
        if len(dims) > 30:
            raise BuilderError(f"metrics.json entry [{i}] ({name}) has more than 30 dimensions")
        out.append(
            {
                "MetricName": str(name),
                "Dimensions": [{"Name": str(k), "Value": str(v)} for k, v in sorted(dims.items())],
                "Timestamp": _utc(timestamp),
                "Value": float(value),
                "Unit": str(unit or "None"),
            }
        )
    return out
