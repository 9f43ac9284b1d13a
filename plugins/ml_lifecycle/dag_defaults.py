"""What the DAGs of the package share: ``default_args``, the model package param, job settings from config.

Read at DAG parse time: it imports only the Airflow SDK's ``Param``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

#: an Approved model package version's ARN, or ``latest``
MODEL_PACKAGE_PATTERN = r"^(latest|arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[A-Za-z0-9-]+/\d+)$"


def dag_defaults(cfg: Config, *, max_retry_delay: timedelta) -> dict[str, Any]:
    """``default_args`` of every DAG: the owner, two retries with exponential backoff up to
    ``max_retry_delay``, the failure notification and the environment's AWS connection.

    :param cfg: the environment's config
    :param max_retry_delay: the longest wait between two tries of a task of this DAG
    """
    from ml_lifecycle.notifications import on_failure_callback

    return {
        "owner": cfg.owner,
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": max_retry_delay,
        "on_failure_callback": on_failure_callback,
        "aws_conn_id": cfg.aws.conn_id,
    }


def model_package_param(latest: str) -> Param:
    """The ``model_package_arn`` param: an Approved version's ARN, or ``latest``.

    :param latest: what ``latest`` means in this DAG (the end of the description)
    """
    return Param(
        "latest",
        type="string",
        pattern=MODEL_PACKAGE_PATTERN,
        title="Model package",
        description=f"ARN of an Approved model package version, or 'latest' ({latest}).",
    )


def force_param() -> Param:
    """The ``force`` param: ``true`` runs every job step again instead of reusing a completed step's outputs
    (the step cache, :mod:`ml_lifecycle.cache`)."""
    return Param(
        False,
        type="boolean",
        title="Force: run every job again",
        description="true: start every SageMaker job of the run even where a completed job with the same inputs "
        "(interval, dataset, params, code, image) could be reused.",
    )


def validation_job_settings(cfg: Config, *, job_name: str) -> dict[str, Any]:
    """The ``processing_job`` settings of :class:`~ml_lifecycle.operators.validation.DataValidationOperator`
    in ``processing`` mode, from the environment's SageMaker config (image, role, compute, security, tags).

    :param job_name: the run's validation job name (templated in the DAG)
    """
    sm = cfg.sagemaker
    return {
        "job_name": job_name,
        "role_arn": sm.role_arn,
        "image_uri": sm.images.validation,
        "instance_type": sm.processing.instance_type,
        "volume_size_gb": sm.processing.volume_size_gb,
        "max_runtime_seconds": sm.processing.max_runtime_seconds,
        "volume_kms_key_id": sm.security.volume_kms_key_id,
        "output_kms_key_id": sm.security.output_kms_key_id,
        "enable_network_isolation": sm.security.enable_network_isolation,
        "enable_inter_container_traffic_encryption": sm.security.enable_inter_container_traffic_encryption,
        "vpc": None if sm.security.vpc is None else sm.security.vpc.model_dump(),
        "tags": dict(sm.tags),
    }
