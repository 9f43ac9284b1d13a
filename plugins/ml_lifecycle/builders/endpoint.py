"""Requests for real-time hosting: model, endpoint config, deployment guardrails, alarms and auto-scaling.

Names are content-addressed: the model name derives from the model package version and its container, the
endpoint config name from the model package version and a digest of the request, so re-running a
deployment of the same model with the same settings finds the resources the first run created (and the
endpoint already serving them) instead of creating duplicates.

All functions are pure (no I/O); each returns the exact request dict of the AWS API it is named after.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from ml_lifecycle.builders.common import BuilderError, config_tag_map, config_tags, output_kms_key, vpc_config
from ml_lifecycle.naming import sagemaker_name
from ml_lifecycle.strategies import GUARDRAIL_TYPES

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

DEFAULT_VARIANT = "AllTraffic"
METRIC_NAMESPACE = "AWS/SageMaker"
#: CloudWatch alarm names are at most 255 characters; ours stay far below.
ALARM_5XX_SUFFIX = "5xx-rate"
ALARM_LATENCY_SUFFIX = "p99-latency"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"
CAPTURE_CSV_TYPES = ["text/csv"]
CAPTURE_JSON_TYPES = ["application/json"]


def digest(value: Any, length: int = 8) -> str:
    """A short stable hex digest of a JSON-serialisable value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# ------------------------------------------------------------------------------------------- model package


def package_container(package: dict[str, Any]) -> dict[str, Any]:
    """The first inference container of a ``DescribeModelPackage`` response.

    :raises BuilderError: the package has no inference container with an image and model artefact
    """
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    if not containers:
        raise BuilderError(f"model package {package.get('ModelPackageArn')} has no InferenceSpecification container")
    container = containers[0]
    if not container.get("Image") or not container.get("ModelDataUrl"):
        raise BuilderError(f"model package {package.get('ModelPackageArn')}: container needs Image and ModelDataUrl")
    return container


def package_version(package: dict[str, Any]) -> int:
    version = package.get("ModelPackageVersion")
    if version is None:
        try:
            version = int(str(package["ModelPackageArn"]).rsplit("/", 1)[-1])
        except (KeyError, ValueError):
            raise BuilderError(f"cannot tell the version of model package {package.get('ModelPackageArn')}") from None
    return int(version)


def model_name(cfg: Config, package: dict[str, Any]) -> str:
    """``<prefix>-v<version>-<digest of package ARN and container>``."""
    container = package_container(package)
    key = {
        "arn": package.get("ModelPackageArn"),
        "image": container["Image"],
        "model": container["ModelDataUrl"],
        "env": container.get("Environment") or {},
    }
    return sagemaker_name(cfg.sagemaker.name_prefix, f"v{package_version(package)}", digest(key))


def model_request(cfg: Config, package: dict[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """``CreateModel`` for an approved model package (image, artefact and environment copied from it)."""
    container = package_container(package)
    primary: dict[str, Any] = {"Image": container["Image"], "ModelDataUrl": container["ModelDataUrl"]}
    if container.get("Environment"):
        primary["Environment"] = dict(container["Environment"])
    security = cfg.sagemaker.security
    request: dict[str, Any] = {
        "ModelName": name or model_name(cfg, package),
        "PrimaryContainer": primary,
        "ExecutionRoleArn": cfg.sagemaker.role_arn,
        "Tags": config_tags(cfg, **{"ml-lifecycle:model-package": package.get("ModelPackageArn", "-")}),
    }
    if vpc := vpc_config(security):
        request["VpcConfig"] = vpc
    if security.enable_network_isolation:
        request["EnableNetworkIsolation"] = True
    return request


# -------------------------------------------------------------------------------------------- endpoint config


def capture_destination(cfg: Config) -> str:
    """Where data capture writes (SageMaker appends ``/<endpoint>/<variant>/yyyy/mm/dd/hh/``)."""
    return cfg.storage.uri("data_capture")


def data_capture_config(cfg: Config) -> dict[str, Any] | None:
    """``DataCaptureConfig`` of the endpoint (input and output, CSV and JSON kept as text), or ``None``."""
    percent = cfg.deployment.data_capture_percent
    if percent <= 0:
        return None
    capture: dict[str, Any] = {
        "EnableCapture": True,
        "InitialSamplingPercentage": round(percent),
        "DestinationS3Uri": capture_destination(cfg),
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": CAPTURE_CSV_TYPES, "JsonContentTypes": CAPTURE_JSON_TYPES},
    }
    if kms := output_kms_key(cfg):
        capture["KmsKeyId"] = kms
    return capture


def production_variant(
    cfg: Config, *, model: str, variant_name: str, weight: float = 1.0, instance_count: int | None = None
) -> dict[str, Any]:
    """One ``ProductionVariant`` on the configured instance type."""
    return {
        "VariantName": variant_name,
        "ModelName": model,
        "InstanceType": cfg.deployment.instance_type,
        "InitialInstanceCount": instance_count or cfg.deployment.initial_instance_count,
        "InitialVariantWeight": float(weight),
    }


def endpoint_config_request(
    cfg: Config, *, variants: list[dict[str, Any]], version: int | str, name: str | None = None
) -> dict[str, Any]:
    """``CreateEndpointConfig`` for ``variants`` with the configured data capture and KMS key.

    The name (unless given) is ``<prefix>-ec-v<version>-<digest of the request>``: the same variants and
    settings always give the same name.
    """
    if not variants:
        raise BuilderError("an endpoint config needs at least one production variant")
    names = [v["VariantName"] for v in variants]
    if len(set(names)) != len(names):
        raise BuilderError(f"production variant names must be unique, got {names}")
    request: dict[str, Any] = {"ProductionVariants": [dict(v) for v in variants]}
    if capture := data_capture_config(cfg):
        request["DataCaptureConfig"] = capture
    if kms := cfg.sagemaker.security.volume_kms_key_id:
        request["KmsKeyId"] = kms
    request["EndpointConfigName"] = name or sagemaker_name(
        cfg.sagemaker.name_prefix, "ec", f"v{version}", digest(request)
    )
    request["Tags"] = config_tags(cfg)
    return request


# ------------------------------------------------------------------------------------------------ guardrails


def alarm_names(endpoint: str, variant: str) -> list[str]:
    """The auto-rollback alarms of one variant: 5XX error rate and p99 model latency."""
    return [f"{endpoint}-{variant}-{ALARM_5XX_SUFFIX}", f"{endpoint}-{variant}-{ALARM_LATENCY_SUFFIX}"]


def alarm_requests(
    cfg: Config, *, endpoint: str, variant: str, period_seconds: int = 60, evaluation_periods: int = 1
) -> list[dict[str, Any]]:
    """``PutMetricAlarm`` requests guarding one variant.

    - 5XX rate: ``Invocation5XXErrors`` is 1 for a failed invocation and 0 otherwise, so its ``Average``
      is the error rate; alarm above ``deployment.max_5xx_rate``.
    - latency: ``ModelLatency`` (microseconds) ``p99`` above ``deployment.max_latency_p99_ms``.

    Missing data (no traffic) is not breaching.
    """
    if period_seconds not in (10, 30) and period_seconds % 60:
        raise BuilderError(f"alarm period must be 10, 30 or a multiple of 60 seconds, got {period_seconds}")
    dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    rate_name, latency_name = alarm_names(endpoint, variant)
    common = {
        "Namespace": METRIC_NAMESPACE,
        "Dimensions": dimensions,
        "Period": period_seconds,
        "EvaluationPeriods": evaluation_periods,
        "DatapointsToAlarm": evaluation_periods,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        "ActionsEnabled": False,
        # PutMetricAlarm takes tags when it creates the alarm and ignores them when it updates one
        "Tags": config_tags(cfg),
    }
    return [
        {
            "AlarmName": rate_name,
            "AlarmDescription": (
                f"5XX error rate of {endpoint}/{variant} above {cfg.deployment.max_5xx_rate:.4g}; "
                "triggers deployment auto-rollback"
            ),
            "MetricName": "Invocation5XXErrors",
            "Statistic": "Average",
            "Threshold": float(cfg.deployment.max_5xx_rate),
            **common,
        },
        {
            "AlarmName": latency_name,
            "AlarmDescription": (
                f"p99 model latency of {endpoint}/{variant} above {cfg.deployment.max_latency_p99_ms:g} ms; "
                "triggers deployment auto-rollback"
            ),
            "MetricName": "ModelLatency",
            "ExtendedStatistic": "p99",
            "Unit": "Microseconds",
            "Threshold": float(cfg.deployment.max_latency_p99_ms) * 1000.0,
            **common,
        },
    ]


def deployment_config(cfg: Config, *, strategy: str, alarms: list[str]) -> dict[str, Any]:
    """``DeploymentConfig`` for a blue/green update with the configured traffic routing and alarms.

    :param strategy: ``canary``, ``linear`` or ``all_at_once``
    :param alarms: CloudWatch alarm names whose ALARM state rolls the update back (1-10)
    """
    if strategy not in GUARDRAIL_TYPES:
        known = ", ".join(GUARDRAIL_TYPES)
        raise BuilderError(f"deployment strategy {strategy!r} is not a guardrail strategy ({known})")
    if not 1 <= len(alarms) <= 10:
        raise BuilderError(f"auto-rollback needs 1 to 10 alarms, got {len(alarms)}")
    dep = cfg.deployment
    routing: dict[str, Any] = {"Type": GUARDRAIL_TYPES[strategy], "WaitIntervalInSeconds": dep.wait_interval_seconds}
    if strategy == "canary":
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": max(1, round(dep.canary_percent))}
        steps = 2
    elif strategy == "linear":
        step = max(1, round(dep.linear_step_percent))
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": step}
        steps = -(-100 // step)
    else:
        steps = 1
    waits = steps * dep.wait_interval_seconds + dep.termination_wait_seconds
    if dep.max_execution_timeout_seconds <= waits:
        raise BuilderError(
            f"deployment.max_execution_timeout_seconds ({dep.max_execution_timeout_seconds}) must exceed the "
            f"total bake time of the {strategy} update ({waits} s)"
        )
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": dep.termination_wait_seconds,
            "MaximumExecutionTimeoutInSeconds": dep.max_execution_timeout_seconds,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarms]},
    }


# ---------------------------------------------------------------------------------------------- auto-scaling


def scalable_resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def scaling_requests(cfg: Config, *, endpoint: str, variant: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``RegisterScalableTarget`` and target-tracking ``PutScalingPolicy`` on invocations per instance."""
    scaling = cfg.deployment.autoscaling
    resource = scalable_resource_id(endpoint, variant)
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource,
        "ScalableDimension": SCALABLE_DIMENSION,
        "MinCapacity": scaling.min_capacity,
        "MaxCapacity": scaling.max_capacity,
        # taken when the target is registered; an existing target is tagged with TagResource
        "Tags": config_tag_map(cfg),
    }
    policy = {
        "PolicyName": f"{endpoint}-{variant}-invocations-per-instance"[:256],
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource,
        "ScalableDimension": SCALABLE_DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": float(scaling.target_invocations_per_instance),
            "PredefinedMetricSpecification": {"PredefinedMetricType": SCALING_METRIC},
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 300,
        },
    }
    return target, policy
