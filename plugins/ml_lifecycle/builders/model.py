"""``CreateModelPackage`` requests: a model version in the registry with its metrics and lineage.

The request is what ``SageMakerRegisterModelVersionOperator`` sends (its ``extras`` override the defaults it
builds). Lineage goes into ``CustomerMetadataProperties`` (the keys of :data:`LINEAGE_KEYS`), metrics both
there (``metric:<name>``) and as ``ModelMetrics`` pointing at the evaluation report, so the quality gate
of a later run can read the baseline without opening S3.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ml_lifecycle.builders.common import BuilderError, safe_value

if TYPE_CHECKING:
    from ml_lifecycle.config import Config
    from ml_lifecycle.naming import RunPlan

METRIC_KEY_PREFIX = "metric:"
RUN_ID_KEY = "dag_run_id"
LINEAGE_KEYS = (
    "git_commit",
    "git_dirty",
    "dag_id",
    RUN_ID_KEY,
    "window_start",
    "window_end",
    "dataset_uri",
    "manifest_uri",
    "validation_result_uri",
    "evaluation_uri",
    "gate_uri",
    "baseline_uri",
    "training_job",
    "code_digest",
)
APPROVAL_STATUSES = ("Approved", "PendingManualApproval", "Rejected")
INFERENCE_PROGRAM = "inference.py"
#: train.py puts the serving code into model.tar.gz under code/ (where SageMaker's repacking puts it), so the
#: model needs no access to the code bucket and works with network isolation.
INFERENCE_CODE_DIR = "/opt/ml/model/code"
MAX_METADATA = 50


def client_token(plan: RunPlan) -> str:
    """Idempotency token of the run's registration (``[a-zA-Z0-9-]{1,36}``)."""
    return hashlib.sha256(f"register\x00{plan.dag_id}\x00{plan.run_id}".encode()).hexdigest()[:32]


def customer_metadata(lineage: dict[str, Any], metrics: dict[str, float]) -> dict[str, str]:
    """Lineage and metrics as ``CustomerMetadataProperties`` (values made API-safe, at most 256 chars)."""
    props = {key: safe_value(value) for key, value in lineage.items() if value not in (None, "")}
    for name, value in metrics.items():
        props[f"{METRIC_KEY_PREFIX}{name}"] = safe_value(f"{float(value):.6g}")
    if len(props) > MAX_METADATA:
        raise BuilderError(f"{len(props)} customer metadata entries; SageMaker allows at most {MAX_METADATA}")
    return props


def model_package_request(
    cfg: Config,
    plan: RunPlan,
    *,
    model_uri: str,
    evaluation_uri: str,
    approval_status: str,
    lineage: dict[str, Any],
    metrics: dict[str, float],
    description: str | None = None,
    pre_training_bias_uri: str | None = None,
) -> dict[str, Any]:
    """The ``CreateModelPackage`` request for this run's model.

    :param model_uri: ``model.tar.gz`` of the chosen training job
    :param evaluation_uri: the ``evaluation.json`` report (``ModelMetrics.ModelQuality.Statistics``)
    :param approval_status: ``Approved`` or ``PendingManualApproval``
    :param lineage: metadata (see :data:`LINEAGE_KEYS`)
    :param metrics: evaluation metrics (name -> value)
    :param pre_training_bias_uri: the evaluation's ``analysis.json`` (``ModelMetrics.Bias.PreTrainingReport``:
        Clarify's pre-training bias metrics of the training data), if it wrote one
    """
    if approval_status not in APPROVAL_STATUSES:
        raise BuilderError(f"approval status {approval_status!r} is not one of {', '.join(APPROVAL_STATUSES)}")
    uris = [("model_uri", model_uri), ("evaluation_uri", evaluation_uri)]
    if pre_training_bias_uri is not None:
        uris.append(("pre_training_bias_uri", pre_training_bias_uri))
    for name, uri in uris:
        if not uri.startswith("s3://"):
            raise BuilderError(f"{name} {uri!r} is not an s3:// URI")
    container: dict[str, Any] = {
        "Image": cfg.sagemaker.images.inference,
        "ModelDataUrl": model_uri,
        "Environment": {
            "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
            "SAGEMAKER_SUBMIT_DIRECTORY": INFERENCE_CODE_DIR,
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            "SAGEMAKER_REGION": cfg.aws.region,
            "DECISION_THRESHOLD": str(cfg.training.gate.decision_threshold),
        },
    }
    model_metrics: dict[str, Any] = {
        "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}}
    }
    if pre_training_bias_uri is not None:
        model_metrics["Bias"] = {
            "PreTrainingReport": {"ContentType": "application/json", "S3Uri": pre_training_bias_uri}
        }
    return {
        "ModelPackageGroupName": cfg.sagemaker.model_package_group,
        "ModelPackageDescription": (description or f"{plan.dag_id} run {plan.run_id}, window {plan.window.key}")[:1024],
        "InferenceSpecification": {
            "Containers": [container],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json", "text/csv"],
            "SupportedRealtimeInferenceInstanceTypes": [cfg.deployment.instance_type],
            "SupportedTransformInstanceTypes": [cfg.batch_scoring.instance_type],
        },
        "ModelApprovalStatus": approval_status,
        "ModelMetrics": model_metrics,
        "CustomerMetadataProperties": customer_metadata(lineage, metrics),
        "ClientToken": client_token(plan),
    }
