"""Pieces every SageMaker request shares: tags, VPC, KMS, stopping conditions, metric definitions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_lifecycle.config import Config, SecurityConfig
    from ml_lifecycle.naming import RunPlan

#: Characters SageMaker accepts in tag values and customer metadata (``[\p{L}\p{Z}\p{N}_.:/=+\-@]``).
_UNSAFE_METADATA = re.compile(r"[^\w\s.:/=+\-@]", re.UNICODE)
TAG_VALUE_MAX = 256
MAX_TAGS = 50


class BuilderError(ValueError):
    """A request cannot be built from the config and params given; the message names the field."""


def safe_value(value: Any, max_len: int = TAG_VALUE_MAX) -> str:
    """``value`` as text SageMaker accepts as a tag value or metadata value (unsafe characters -> ``_``)."""
    text = _UNSAFE_METADATA.sub("_", str(value))
    return text[:max_len] if text else "-"


def config_tags(cfg: Config, **extra: Any) -> list[dict[str, str]]:
    """The configured ``tags`` (owner, cost-centre, project, environment and free-form ones) plus the package's
    own ``extra`` tags, as a ``Tags`` list (``[{"Key", "Value"}]``: SageMaker, CloudWatch, SNS).

    :param extra: the package's own tags (keys ``ml-lifecycle:...``); values are made safe for a tag
    """
    tags = {**{k: str(v) for k, v in extra.items()}, **cfg.tags}
    if len(tags) > MAX_TAGS:
        raise BuilderError(f"tags: {len(tags)} tags with the package's own exceed AWS's {MAX_TAGS}")
    return [{"Key": k, "Value": safe_value(v)} for k, v in tags.items()]


def config_tag_map(cfg: Config) -> dict[str, str]:
    """The configured ``tags`` as a map (Application Auto Scaling's ``Tags``)."""
    return dict(cfg.tags)


def run_tags(cfg: Config, plan: RunPlan) -> list[dict[str, str]]:
    """Configured tags plus the run's identity, as a SageMaker ``Tags`` list (configured keys win)."""
    return config_tags(
        cfg,
        **{
            "ml-lifecycle:dag-id": plan.dag_id,
            "ml-lifecycle:run-id": plan.run_id,
            "ml-lifecycle:window": plan.window.key,
        },
    )


def vpc_config(security: SecurityConfig) -> dict[str, list[str]] | None:
    if security.vpc is None:
        return None
    return {"SecurityGroupIds": list(security.vpc.security_group_ids), "Subnets": list(security.vpc.subnets)}


def processing_cluster_and_network(
    security: SecurityConfig, instance_type: str, instance_count: int, volume_size_gb: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A processing job's ``ClusterConfig`` and ``NetworkConfig``: the volume key, traffic encryption, network
    isolation and VPC of the environment's security settings."""
    cluster: dict[str, Any] = {
        "InstanceCount": instance_count,
        "InstanceType": instance_type,
        "VolumeSizeInGB": volume_size_gb,
    }
    if security.volume_kms_key_id:
        cluster["VolumeKmsKeyId"] = security.volume_kms_key_id
    network: dict[str, Any] = {
        "EnableInterContainerTrafficEncryption": security.enable_inter_container_traffic_encryption,
        "EnableNetworkIsolation": security.enable_network_isolation,
    }
    if vpc := vpc_config(security):
        network["VpcConfig"] = vpc
    return cluster, network


def output_kms_key(cfg: Config) -> str | None:
    """KMS key for job outputs: the SageMaker security setting, else the bucket's key."""
    return cfg.sagemaker.security.output_kms_key_id or cfg.storage.kms_key_id


def load_metric_definitions(path: Path) -> list[dict[str, str]]:
    """Read ``[{"Name": ..., "Regex": ...}, ...]`` (or ``{"MetricDefinitions": [...]}``) from ``path``.

    :raises BuilderError: missing file, bad JSON, or entries without a compilable regex
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuilderError(f"{path}: metric definitions file not found") from None
    except json.JSONDecodeError as exc:
        raise BuilderError(f"{path}: not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("MetricDefinitions", data.get("metric_definitions"))
    if not isinstance(data, list) or not data:
        raise BuilderError(f"{path}: expected a non-empty list of {{'Name', 'Regex'}} objects")
    result = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not {"Name", "Regex"} <= item.keys():
            raise BuilderError(f"{path}: entry [{i}] needs 'Name' and 'Regex'")
        try:
            re.compile(item["Regex"])
        except re.error as exc:
            raise BuilderError(f"{path}: entry [{i}] ({item['Name']}) has an invalid regex: {exc}") from None
        result.append({"Name": str(item["Name"]), "Regex": str(item["Regex"])})
    if len(result) > 40:
        raise BuilderError(f"{path}: {len(result)} metric definitions; SageMaker allows at most 40")
    return result


def encode_hyperparameters(values: dict[str, Any]) -> dict[str, str]:
    """Script-mode encoding: every value JSON-encoded into a string (``5`` -> ``"5"``, ``"a"`` -> ``"\\"a\\""``)."""
    encoded = {}
    for key, value in values.items():
        text = json.dumps(value)
        if len(text) > 2500:
            raise BuilderError(f"hyperparameter {key!r} is longer than SageMaker's 2500 characters")
        encoded[str(key)] = text
    if len(encoded) > 100:
        raise BuilderError(f"{len(encoded)} hyperparameters; SageMaker allows at most 100")
    return encoded


def s3_input(name: str, uri: str, local_path: str, data_type: str = "S3Prefix") -> dict[str, Any]:
    """A ``ProcessingInputs`` entry: the S3 ``uri`` (a prefix, or a ``ManifestFile``) copied to ``local_path``."""
    if not uri.startswith("s3://"):
        raise BuilderError(f"processing input {name!r}: {uri!r} is not an s3:// URI")
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": data_type,
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
            "S3CompressionType": "None",
        },
    }
