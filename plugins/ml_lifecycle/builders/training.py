"""``CreateTrainingJob`` requests for script-mode training (the framework image runs ``train.py``).

The code reaches the container one of two ways:

- without network isolation, ``sagemaker_submit_directory`` is the S3 URI of the published
  ``sourcedir.tar.gz`` and the training toolkit downloads it;
- with network isolation the container cannot reach S3, so the archive is passed as an extra input channel
  ``code`` and ``sagemaker_submit_directory`` names the local file
  ``/opt/ml/input/data/code/sourcedir.tar.gz`` (the toolkit accepts a local tarball).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml_lifecycle.builders.common import (
    BuilderError,
    encode_hyperparameters,
    output_kms_key,
    run_tags,
    vpc_config,
)
from ml_lifecycle.hyperparameters import HyperparameterError, check_hyperparameters

if TYPE_CHECKING:
    from ml_lifecycle.config import Config
    from ml_lifecycle.naming import RunPlan

ENTRY_POINT = "train.py"
CODE_CHANNEL = "code"
LOCAL_SOURCEDIR = f"/opt/ml/input/data/{CODE_CHANNEL}/sourcedir.tar.gz"
DATA_CHANNELS = ("train", "validation")
#: Extra channels train.py reads: the fitted preprocessor and the inference code, both bundled into
#: model.tar.gz so the model is self-contained.
PREPROCESSOR_CHANNEL = "preprocessor"
INFERENCE_CHANNEL = "inference"


@dataclass(frozen=True)
class TrainingInputs:
    """What a training job and a tuning job are given: the same for both, as a tuning job's
    ``TrainingJobDefinition`` is a training job without its name and tuned hyperparameters.

    :param splits: channel -> S3 prefix: ``train`` and ``validation`` (CSV) from the preprocessing step, plus
        extra channels (``preprocessor``, ``inference``)
    :param sourcedir_uri: the published ``sourcedir.tar.gz`` of ``include/code/training``
    :param metric_definitions: ``[{"Name", "Regex"}]`` applied to the job's log
    :param hyperparameter_overrides: the run's overrides of ``sagemaker.hyperparameters``
    :param instance_type: the run's instance type, else the configured one
    """

    splits: dict[str, str]
    sourcedir_uri: str
    metric_definitions: list[dict[str, str]]
    hyperparameter_overrides: dict[str, Any] | None = None
    instance_type: str | None = None


def _channel(name: str, uri: str, content_type: str | None) -> dict[str, Any]:
    if not uri.startswith("s3://"):
        raise BuilderError(f"training channel {name!r}: {uri!r} is not an s3:// URI")
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "CompressionType": "None",
        "InputMode": "File",
    }
    if content_type:
        channel["ContentType"] = content_type
    return channel


def merged_hyperparameters(cfg: Config, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Config hyperparameters updated with the run's overrides (from the trigger form)."""
    merged: dict[str, Any] = {"threshold": cfg.training.gate.decision_threshold}
    merged.update(cfg.sagemaker.hyperparameters)
    for key, value in (overrides or {}).items():
        if not isinstance(key, str) or not key or key.startswith("sagemaker_"):
            raise BuilderError(f"hyperparameter override {key!r}: names must be non-empty and not sagemaker_*")
        if not isinstance(value, str | int | float | bool):
            raise BuilderError(f"hyperparameter override {key!r}: value must be a string, number or boolean")
        merged[key] = value
    try:
        check_hyperparameters(merged, cfg.sagemaker.algorithm)
    except HyperparameterError as exc:
        raise BuilderError(str(exc)) from None
    return merged


def framework_hyperparameters(cfg: Config, sourcedir_uri: str, job_name: str | None) -> dict[str, Any]:
    isolated = cfg.sagemaker.security.enable_network_isolation
    framework: dict[str, Any] = {
        "sagemaker_program": ENTRY_POINT,
        "sagemaker_submit_directory": LOCAL_SOURCEDIR if isolated else sourcedir_uri,
        "sagemaker_container_log_level": 20,
        "sagemaker_region": cfg.aws.region,
    }
    if job_name:
        framework["sagemaker_job_name"] = job_name
    return framework


def data_channels(cfg: Config, splits: dict[str, str], sourcedir_uri: str) -> list[dict[str, Any]]:
    missing = [c for c in DATA_CHANNELS if c not in splits]
    if missing:
        raise BuilderError(f"training needs the {', '.join(missing)} split(s)")
    if CODE_CHANNEL in splits:
        raise BuilderError(f"training channel name {CODE_CHANNEL!r} is reserved for the code under network isolation")
    channels = [_channel(name, splits[name], "text/csv") for name in DATA_CHANNELS]
    # extra channels (the fitted preprocessor, the inference code train.py bundles into the model)
    channels += [_channel(name, uri, None) for name, uri in sorted(splits.items()) if name not in DATA_CHANNELS]
    if cfg.sagemaker.security.enable_network_isolation:
        channels.append(_channel(CODE_CHANNEL, sourcedir_uri, None))
    return channels


def resource_config(cfg: Config, instance_type: str | None) -> dict[str, Any]:
    compute = cfg.sagemaker.training
    resources: dict[str, Any] = {
        "InstanceType": instance_type or compute.instance_type,
        "InstanceCount": compute.instance_count,
        "VolumeSizeInGB": compute.volume_size_gb,
    }
    if cfg.sagemaker.security.volume_kms_key_id:
        resources["VolumeKmsKeyId"] = cfg.sagemaker.security.volume_kms_key_id
    return resources


def output_config(cfg: Config, output_uri: str) -> dict[str, Any]:
    output: dict[str, Any] = {"S3OutputPath": output_uri, "CompressionType": "GZIP"}
    if kms := output_kms_key(cfg):
        output["KmsKeyId"] = kms
    return output


def security_members(cfg: Config) -> dict[str, Any]:
    security = cfg.sagemaker.security
    members: dict[str, Any] = {
        "EnableNetworkIsolation": security.enable_network_isolation,
        "EnableInterContainerTrafficEncryption": security.enable_inter_container_traffic_encryption,
    }
    if vpc := vpc_config(security):
        members["VpcConfig"] = vpc
    return members


def job_definition(cfg: Config, inputs: TrainingInputs, output_uri: str) -> dict[str, Any]:
    """What a training job and a tuning job's ``TrainingJobDefinition`` share: image, role, channels, output,
    resources, stopping condition and security settings (the hyperparameters and the name are the caller's).

    :param output_uri: the ``S3OutputPath`` (the model goes to ``<output_uri><job>/output/model.tar.gz``)
    """
    return {
        "AlgorithmSpecification": {
            "TrainingImage": cfg.sagemaker.images.training,
            "TrainingInputMode": "File",
            "MetricDefinitions": list(inputs.metric_definitions),
        },
        "RoleArn": cfg.sagemaker.role_arn,
        "InputDataConfig": data_channels(cfg, inputs.splits, inputs.sourcedir_uri),
        "OutputDataConfig": output_config(cfg, output_uri),
        "ResourceConfig": resource_config(cfg, inputs.instance_type),
        "StoppingCondition": {"MaxRuntimeInSeconds": cfg.sagemaker.training.max_runtime_seconds},
        **security_members(cfg),
    }


def training_request(cfg: Config, plan: RunPlan, inputs: TrainingInputs, *, try_number: int = 1) -> dict[str, Any]:
    """The ``CreateTrainingJob`` request (the ``config`` of ``SageMakerTrainingOperator``)."""
    job_name = plan.job_name("train", try_number)
    hyperparameters = {
        **merged_hyperparameters(cfg, inputs.hyperparameter_overrides),
        **framework_hyperparameters(cfg, inputs.sourcedir_uri, job_name),
    }
    request = {
        "TrainingJobName": job_name,
        "HyperParameters": encode_hyperparameters(hyperparameters),
        **job_definition(cfg, inputs, plan.job_uri("train") + "/"),
        "Tags": run_tags(cfg, plan),
    }
    request["AlgorithmSpecification"]["EnableSageMakerMetricsTimeSeries"] = False
    return request


def model_artifact_uri(output_path: str, job_name: str) -> str:
    """Where SageMaker puts a training job's model: ``<S3OutputPath>/<job>/output/model.tar.gz``."""
    return f"{output_path.rstrip('/')}/{job_name}/output/model.tar.gz"
