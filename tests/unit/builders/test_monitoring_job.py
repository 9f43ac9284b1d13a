"""The evidently monitoring job's request, manifest, names, alarms and metric data; its config."""

from __future__ import annotations

import datetime as dt

import botocore.session
import pytest
from botocore.validate import ParamValidator

from ml_lifecycle.builders.common import BuilderError
from ml_lifecycle.builders.monitoring_job import (
    alarm_requests,
    capture_hour,
    capture_manifest,
    inputs_digest,
    job_name,
    metric_data,
    monitor_config,
    monitoring_request,
    report_uri,
    window_objects,
)
from ml_lifecycle.config import MONITORING_ENDPOINT_MAX, Config, ConfigError, include_dir, load_config

SERVICES = botocore.session.get_session()
START = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
END = START + dt.timedelta(hours=1)
FEATURES = ["amount", "channel", "is_foreign", "hour_of_day", "day_of_week", "is_weekend"]
CONFIG_DIR = include_dir() / "config"
ENVS = [pytest.param(p.stem, id=p.stem) for p in sorted(CONFIG_DIR.glob("*.yaml"))]


def valid(service: str, operation: str, request: dict) -> None:
    shape = SERVICES.get_service_model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def _request(cfg: Config, **overrides) -> dict:
    kwargs = {
        "name": job_name("fraud", START, "0123abcd"),
        "endpoint": "fraud",
        "code_uri": "s3://b/code/monitoring/abc/src/",
        "manifest_uri": "s3://b/monitoring/fraud/202603011000/inputs/x/capture.manifest",
        "config_uri": "s3://b/monitoring/fraud/202603011000/inputs/x/config/",
        "baseline_uri": "s3://b/jobs/evaluate/baseline/",
        "output_uri": report_uri(cfg, "fraud", START),
        **overrides,
    }
    return monitoring_request(cfg, **kwargs)


@pytest.mark.parametrize("env", ENVS)
def test_request_matches_the_sagemaker_api(env):
    cfg = load_config(env)
    request = _request(cfg, labels_uri="s3://b/monitoring/fraud/labels/", history_uri="s3://b/h/")
    valid("sagemaker", "CreateProcessingJob", request)
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert list(inputs) == ["code", "config", "capture", "baseline", "labels", "history"]
    assert inputs["config"]["LocalPath"] == "/opt/ml/processing/input/config"
    assert "Environment" not in request, "SageMaker limits an environment value to 256 characters"
    assert inputs["capture"]["S3DataType"] == "ManifestFile"
    assert inputs["capture"]["LocalPath"] == "/opt/ml/processing/input/capture"
    assert request["AppSpecification"] == {
        "ImageUri": cfg.sagemaker.images.monitoring,
        "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/monitor.py"],
    }
    assert request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"] == "/opt/ml/processing/output"
    for alarm in alarm_requests(cfg, "fraud"):
        valid("cloudwatch", "PutMetricAlarm", alarm)


def test_optional_inputs_are_left_out_when_absent():
    request = _request(load_config("local"))
    assert [i["InputName"] for i in request["ProcessingInputs"]] == ["code", "config", "capture", "baseline"]


def test_monitor_config_carries_the_interval_lookback_and_thresholds():
    cfg = load_config("local")
    config = monitor_config(
        cfg, endpoint="fraud", interval_start=START, interval_end=END, features=FEATURES, categorical=["channel", "x"]
    )
    assert config["interval_start"] == "2026-03-01T10:00:00+00:00"
    assert config["interval_end"] == "2026-03-01T11:00:00+00:00"
    assert config["lookback_start"] == (END - dt.timedelta(hours=168)).isoformat()
    assert config["categorical_features"] == ["channel"]
    assert config["label"] == "is_fraud" and config["facet"] == "customer_segment"
    assert config["thresholds"]["drift"] == {"share": cfg.monitoring.drift.share}, "Evidently's test per feature"
    assert config["thresholds"]["model_quality"]["recall_min"] == cfg.monitoring.model_quality.recall_min
    assert config["thresholds"]["bias"] == {"DPPL_abs_max": 0.1, "DI_min": 0.8, "DI_max": 1.25, "RD_abs_max": 0.2}
    assert config["thresholds"]["min_labelled_rows"] == 50
    with pytest.raises(BuilderError, match="ignore_features names hour_of_day, day_of_week, is_weekend"):
        monitor_config(cfg, endpoint="e", interval_start=START, interval_end=END, features=["amount"], categorical=[])
    with pytest.raises(BuilderError, match="not after its start"):
        monitor_config(cfg, endpoint="e", interval_start=END, interval_end=START, features=FEATURES, categorical=[])
    with pytest.raises(BuilderError, match="no time zone"):
        monitor_config(
            cfg, endpoint="e", interval_start=START.replace(tzinfo=None), interval_end=END, features=FEATURES,
            categorical=[],
        )  # fmt: skip


def test_job_name_is_per_interval_and_inputs_and_fits_63_characters():
    assert job_name("fraud", START, "0123abcd") == "fraud-mon-202603011000-0123abcd"
    assert job_name("fraud", START, "0123abcd", try_number=2) == "fraud-mon-202603011000-0123abcd-r2"
    longest = job_name("e" * MONITORING_ENDPOINT_MAX, START, "0123abcd", try_number=999)
    assert len(longest) == 63 and longest.startswith("e" * MONITORING_ENDPOINT_MAX + "-mon-")
    with pytest.raises(BuilderError, match="longer than SageMaker's 63"):
        job_name("e" * 40, START, "0123abcd")
    assert inputs_digest(a=1, b="x") == inputs_digest(b="x", a=1) != inputs_digest(a=2, b="x")
    with pytest.raises(BuilderError, match="8 hex"):
        job_name("fraud", START, "xyz")


def test_capture_window_and_manifest():
    prefix = "s3://b/data-capture/fraud/"
    keys = [
        "data-capture/fraud/AllTraffic/2026/03/01/09/59-00-000-a.jsonl",
        "data-capture/fraud/AllTraffic/2026/03/01/10/00-01-000-b.jsonl",
        "data-capture/fraud/AllTraffic/2026/03/01/10/30-01-000-c.jsonl",
        "data-capture/fraud/AllTraffic/2026/03/01/11/00-00-000-d.jsonl",
        "data-capture/fraud/AllTraffic/notes.txt",
    ]
    assert capture_hour(keys[0]) == dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
    assert capture_hour(keys[-1]) is None
    chosen = window_objects(keys, START, END)
    assert chosen == keys[1:3]
    # an interval starting mid-hour keeps that hour's objects (the job filters records by inferenceTime)
    assert window_objects(keys, START + dt.timedelta(minutes=30), END) == keys[1:3]
    assert capture_manifest(prefix, chosen) == [
        {"prefix": prefix},
        "AllTraffic/2026/03/01/10/00-01-000-b.jsonl",
        "AllTraffic/2026/03/01/10/30-01-000-c.jsonl",
    ]
    with pytest.raises(BuilderError, match="not under the manifest prefix"):
        capture_manifest(prefix, ["other/key.jsonl"])
    with pytest.raises(BuilderError, match="ending in '/'"):
        capture_manifest("s3://b/data-capture/fraud", chosen)


def test_alarms_come_from_config():
    cfg = load_config("local")
    alarms = alarm_requests(cfg, "fraud")
    assert [a["AlarmName"] for a in alarms] == ["fraud-monitoring-drift-share", "fraud-monitoring-recall"]
    recall = alarms[1]
    assert recall["Namespace"] == "MlLifecycle/Monitoring" and recall["MetricName"] == "ModelQuality"
    assert recall["Dimensions"] == [{"Name": "Endpoint", "Value": "fraud"}, {"Name": "Metric", "Value": "recall"}]
    assert recall["ComparisonOperator"] == "LessThanThreshold" and recall["Threshold"] == 0.5
    assert {t["Key"] for t in recall["Tags"]} >= {"owner", "cost-centre", "project", "environment"}


def test_metric_data_from_the_jobs_metrics():
    datums = [
        {"name": "DriftShare", "dimensions": {}, "value": 0.6},
        {"name": "FeatureDriftScore", "dimensions": {"Feature": "amount"}, "value": 0.01},
        {"name": "ModelQuality", "dimensions": {"Metric": "auc"}, "value": float("nan")},
        {"name": "ModelQuality", "dimensions": {"Metric": "recall"}, "value": None},
    ]
    data = metric_data(datums, "fraud", END)
    valid("cloudwatch", "PutMetricData", {"Namespace": "MlLifecycle/Monitoring", "MetricData": data})
    assert [(d["MetricName"], d["Dimensions"]) for d in data] == [
        ("DriftShare", [{"Name": "Endpoint", "Value": "fraud"}]),
        ("FeatureDriftScore", [{"Name": "Endpoint", "Value": "fraud"}, {"Name": "Feature", "Value": "amount"}]),
    ]
    job_form = [
        {
            "MetricName": "ModelQuality",
            "Dimensions": [{"Name": "Endpoint", "Value": "fraud"}, {"Name": "Metric", "Value": "recall"}],
            "Value": 0.8,
            "Unit": "None",
            "Timestamp": "2026-03-01T11:00:00Z",
        }
    ]
    [datum] = metric_data(job_form, "fraud", END)
    assert datum["Dimensions"] == [{"Name": "Endpoint", "Value": "fraud"}, {"Name": "Metric", "Value": "recall"}]
    assert datum["Value"] == 0.8 and datum["Timestamp"] == END
    with pytest.raises(BuilderError, match=r"entry \[0\] needs 'MetricName'"):
        metric_data([{"value": 1}], "fraud", END)


# ------------------------------------------------------------------------------------------------ config


ALARM = {"name": "a", "metric": "DriftShare", "comparison": "GreaterThanThreshold", "threshold": 1}


def _with_monitoring(endpoint: str | None = None, **monitoring) -> dict:
    raw = load_config("local").model_dump(by_alias=True, exclude={"source_file"})
    if endpoint:
        raw["deployment"]["endpoint_name"] = endpoint
    raw["monitoring"] = {**raw["monitoring"], **monitoring}
    return raw


def test_engine_defaults_to_evidently_and_local_names_its_engine():
    raw = _with_monitoring()
    del raw["monitoring"]["engine"]
    assert Config.model_validate(raw).monitoring.engine == "evidently"
    assert load_config("dev").monitoring.engine == "evidently"
    assert load_config("prod").monitoring.engine == "evidently"


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ({"engine": "clarify"}, "evidently"),
        ({"drift": {"share": 1.5}}, "less than or equal to 1"),
        ({"engine": "evidently", "endpoint": "e" * 33}, "at most 32 characters under monitoring.engine evidently"),
        ({"bias": {"di_min": 1.3, "di_max": 1.25}}, "di_min must be below di_max"),
        ({"model_quality": {"lookback_hours": 0}}, "greater than or equal to 1"),
        (
            {"alarms": [ALARM, ALARM]},
            "alarm names must be unique: a",
        ),
        (
            {"alarms": [{"name": "a", "metric": "Latency", "comparison": "GreaterThanThreshold", "threshold": 1}]},
            "FeatureDriftScore",
        ),
        (
            {
                "alarms": [
                    {
                        "name": "a",
                        "metric": "DriftShare",
                        "comparison": "GreaterThanThreshold",
                        "threshold": 1,
                        "period_seconds": 90,
                    }
                ]
            },
            "multiple of 60",
        ),
    ],
)
def test_bad_monitoring_config_names_the_field(monitoring, message):
    from pydantic import ValidationError

    with pytest.raises((ValidationError, ConfigError), match=message):
        Config.model_validate(_with_monitoring(**monitoring))
    if "endpoint" in monitoring:  # the same name is fine under model_monitor
        Config.model_validate(_with_monitoring(**{**monitoring, "engine": "model_monitor"}))


def test_the_monitoring_job_reads_the_config_it_is_given():
    """The job's own parser (include/code/monitoring/checks.py) accepts what the builder writes."""
    import importlib.util
    import json
    import sys

    path = include_dir() / "code" / "monitoring" / "checks.py"
    spec = importlib.util.spec_from_file_location("monitoring_checks_under_test", path)
    checks = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = checks  # its dataclasses look their module up
    try:
        spec.loader.exec_module(checks)
    finally:
        sys.modules.pop(spec.name, None)
    cfg = load_config("local")
    config = monitor_config(
        cfg, endpoint="fraud", interval_start=START, interval_end=END, features=FEATURES, categorical=["channel"]
    )
    parsed = checks.parse_config(json.dumps(config))
    assert parsed.endpoint == "fraud" and parsed.facet == "customer_segment"
