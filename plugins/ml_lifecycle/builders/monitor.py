"""Requests for SageMaker Model Monitor (data quality): baselining job, job definition, schedules.

Follows the prebuilt analyzer's container contract (``docs``: ``/work/shared/contracts/model-monitor.md``):
the baselining job is a processing job on the model-monitor image with ``dataset_format``,
``dataset_source``, ``output_path`` and ``publish_cloudwatch_metrics=Disabled`` in its environment, reading
the training baseline CSV and writing ``statistics.json`` + ``constraints.json``. The data-quality job
definition points the analyzer at the endpoint's captured traffic and at those two files.

Names are content-addressed (model package version + digest of the inputs), so a re-run reuses what the
previous run created. All functions are pure.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ml_lifecycle.builders.common import BuilderError, config_tags, output_kms_key, vpc_config
from ml_lifecycle.builders.endpoint import digest
from ml_lifecycle.naming import sagemaker_name

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

BASELINE_INPUT = "baseline_dataset_input"
BASELINE_LOCAL = f"/opt/ml/processing/input/{BASELINE_INPUT}"
OUTPUT_NAME = "monitoring_output"
OUTPUT_LOCAL = "/opt/ml/processing/output"
ENDPOINT_LOCAL = "/opt/ml/processing/input/endpoint"
STATISTICS = "statistics.json"
CONSTRAINTS = "constraints.json"
VIOLATIONS = "constraint_violations.json"
#: the baseline CSV (written by the evaluation job) has a header and the layout of a flattened capture
#: record: the endpoint's output columns first (``START``), then its input columns
DEFAULT_DATASET_FORMAT: dict[str, Any] = {"csv": {"header": True, "output_columns_position": "START"}}
HOURLY = "cron(0 * ? * * *)"


def _network(cfg: Config) -> dict[str, Any] | None:
    security = cfg.sagemaker.security
    network: dict[str, Any] = {}
    if security.enable_inter_container_traffic_encryption:
        network["EnableInterContainerTrafficEncryption"] = True
    if security.enable_network_isolation:
        network["EnableNetworkIsolation"] = True
    if vpc := vpc_config(security):
        network["VpcConfig"] = vpc
    return network or None


def _tags(cfg: Config) -> list[dict[str, str]]:
    return config_tags(cfg)


def baseline_job_name(cfg: Config, *, version: int, dataset_uri: str, try_number: int = 1) -> str:
    """``<prefix>-baseline-v<version>-<digest of the dataset>[-r<try>]``."""
    suffix = [f"r{try_number}"] if try_number > 1 else []
    return sagemaker_name(cfg.sagemaker.name_prefix, "baseline", f"v{version}", digest(dataset_uri), *suffix)


def baseline_output_uri(cfg: Config, *, endpoint: str, version: int, dataset_uri: str) -> str:
    """``s3://<bucket>/<monitoring>/<endpoint>/baselines/v<version>-<digest>/`` (statistics + constraints)."""
    return cfg.storage.uri("monitoring", endpoint, "baselines", f"v{version}-{digest(dataset_uri)}") + "/"


def monitoring_cluster(cfg: Config) -> dict[str, Any]:
    """The ``ClusterConfig`` of the monitoring jobs (baselining and scheduled analysis): one instance."""
    cluster: dict[str, Any] = {
        "InstanceCount": 1,
        "InstanceType": cfg.monitoring.instance_type,
        "VolumeSizeInGB": cfg.sagemaker.processing.volume_size_gb,
    }
    if kms := cfg.sagemaker.security.volume_kms_key_id:
        cluster["VolumeKmsKeyId"] = kms
    return cluster


def baseline_request(
    cfg: Config,
    *,
    job_name: str,
    dataset_uri: str,
    output_uri: str,
    dataset_format: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``CreateProcessingJob`` that suggests a data-quality baseline from ``dataset_uri``."""
    if not dataset_uri.startswith("s3://"):
        raise BuilderError(f"baseline dataset {dataset_uri!r} is not an s3:// URI")
    mon = cfg.monitoring
    cluster = monitoring_cluster(cfg)
    outputs: dict[str, Any] = {
        "Outputs": [
            {
                "OutputName": OUTPUT_NAME,
                "S3Output": {"S3Uri": output_uri.rstrip("/"), "LocalPath": OUTPUT_LOCAL, "S3UploadMode": "EndOfJob"},
            }
        ]
    }
    if kms := output_kms_key(cfg):
        outputs["KmsKeyId"] = kms
    request: dict[str, Any] = {
        "ProcessingJobName": job_name,
        "RoleArn": cfg.sagemaker.role_arn,
        "AppSpecification": {"ImageUri": cfg.sagemaker.images.model_monitor},
        "ProcessingResources": {"ClusterConfig": cluster},
        "ProcessingInputs": [
            {
                "InputName": BASELINE_INPUT,
                "S3Input": {
                    "S3Uri": dataset_uri,
                    "LocalPath": BASELINE_LOCAL,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                    "S3CompressionType": "None",
                },
            }
        ],
        "ProcessingOutputConfig": outputs,
        "Environment": {
            "dataset_format": json.dumps(dataset_format or DEFAULT_DATASET_FORMAT),
            "dataset_source": BASELINE_LOCAL,
            "output_path": OUTPUT_LOCAL,
            "publish_cloudwatch_metrics": "Disabled",
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": mon.max_runtime_seconds},
        "Tags": _tags(cfg),
    }
    if network := _network(cfg):
        request["NetworkConfig"] = network
    return request


def ignore_features(constraints: dict[str, Any], names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """``constraints.json`` with the constraints of ``names`` switched off; also the names it lacks.

    Each named feature gets ``monitoringConfigOverrides.evaluate_constraints: Disabled`` (the constraints
    schema's per-feature override) and, for string features, the same under
    ``string_constraints.monitoring_config_overrides`` (where the SDK's ``Constraints.set_monitoring`` writes
    it). Model Monitor then runs no check and computes no drift for them. Editing the suggested constraints
    this way is how Model Monitor is tuned.
    """
    document = json.loads(json.dumps(constraints))
    wanted = set(names)
    found: set[str] = set()
    for feature in document.get("features", []):
        if feature.get("name") not in wanted:
            continue
        found.add(feature["name"])
        feature.setdefault("monitoringConfigOverrides", {})["evaluate_constraints"] = "Disabled"
        if "string_constraints" in feature:
            overrides = feature["string_constraints"].setdefault("monitoring_config_overrides", {})
            overrides["evaluate_constraints"] = "Disabled"
    return document, [n for n in names if n not in found]


def schedule_name(endpoint: str) -> str:
    """The endpoint's data-quality monitoring schedule: ``<endpoint>-data-quality``."""
    return sagemaker_name(endpoint, "data-quality")


def one_off_schedule_name(endpoint: str, *, run_id: str | None, definition_name: str) -> str:
    """A run's one-off (``NOW``) monitoring schedule: ``<endpoint>-dq-now-<digest of run and definition>``.

    The whole endpoint name leads (the IAM policy grants ``monitoring-schedule/${EndpointName}-*``); the
    config keeps endpoint names short enough for that (``deployment.endpoint_name``).
    """
    return sagemaker_name(endpoint, "dq-now", digest([run_id, definition_name]))


def reports_uri(cfg: Config) -> str:
    """Where executions write (the service appends ``/<endpoint>/<schedule>/yyyy/mm/dd/hh``)."""
    return cfg.storage.uri("monitoring", "reports")


def job_definition_request(
    cfg: Config, *, endpoint: str, version: int, statistics_uri: str, constraints_uri: str
) -> dict[str, Any]:
    """``CreateDataQualityJobDefinition`` analysing ``endpoint``'s captured traffic against the baseline.

    Named ``<prefix>-dq-v<version>-<digest of the definition>``: a changed baseline, image or resource
    setting gives a new name, which is how the schedule update pattern (new definition -> point the
    schedule at it -> delete the old) knows there is something to update.
    """
    mon = cfg.monitoring
    cluster = monitoring_cluster(cfg)
    output: dict[str, Any] = {
        "MonitoringOutputs": [
            {"S3Output": {"S3Uri": reports_uri(cfg), "LocalPath": OUTPUT_LOCAL, "S3UploadMode": "EndOfJob"}}
        ]
    }
    if kms := output_kms_key(cfg):
        output["KmsKeyId"] = kms
    request: dict[str, Any] = {
        "DataQualityBaselineConfig": {
            "ConstraintsResource": {"S3Uri": constraints_uri},
            "StatisticsResource": {"S3Uri": statistics_uri},
        },
        "DataQualityAppSpecification": {
            "ImageUri": cfg.sagemaker.images.model_monitor,
            "Environment": {"publish_cloudwatch_metrics": "Enabled"},
        },
        "DataQualityJobInput": {
            "EndpointInput": {
                "EndpointName": endpoint,
                "LocalPath": ENDPOINT_LOCAL,
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "DataQualityJobOutputConfig": output,
        "JobResources": {"ClusterConfig": cluster},
        "RoleArn": cfg.sagemaker.role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": min(mon.max_runtime_seconds, 3600)},
    }
    if network := _network(cfg):
        request["NetworkConfig"] = network
    request["JobDefinitionName"] = sagemaker_name(cfg.sagemaker.name_prefix, "dq", f"v{version}", digest(request))
    request["Tags"] = _tags(cfg)
    return request


def schedule_config(definition_name: str, expression: str = HOURLY) -> dict[str, Any]:
    """``MonitoringScheduleConfig`` referencing a data-quality job definition."""
    return {
        "ScheduleConfig": {"ScheduleExpression": expression},
        "MonitoringJobDefinitionName": definition_name,
        "MonitoringType": "DataQuality",
    }


def one_off_config(definition_name: str, window_hours: int) -> dict[str, Any]:
    """A ``NOW`` schedule that analyses the last ``window_hours`` hours once (1-24)."""
    if not 1 <= window_hours <= 24:
        raise BuilderError(f"a one-off monitoring window must be 1-24 hours, got {window_hours}")
    return {
        "ScheduleConfig": {
            "ScheduleExpression": "NOW",
            "DataAnalysisStartTime": f"-PT{window_hours}H",
            "DataAnalysisEndTime": "-PT0H",
        },
        "MonitoringJobDefinitionName": definition_name,
        "MonitoringType": "DataQuality",
    }
