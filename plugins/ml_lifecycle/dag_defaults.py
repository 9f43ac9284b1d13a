"""What the DAGs of the package share: ``default_args``, the params built from config, job settings from config.

Read at DAG parse time: it imports only the Airflow SDK's ``Param`` and the package's rule modules.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param

from ml_lifecycle.hyperparameters import param_schema
from ml_lifecycle.strict_input import model_package_arn_pattern, refuse_unknown_conf_keys, s3_uri_pattern

if TYPE_CHECKING:
    from ml_lifecycle.config import Config


def dag_defaults(cfg: Config, *, max_retry_delay: timedelta) -> dict[str, Any]:
    """``default_args`` of every DAG: the owner, two retries with exponential backoff up to
    ``max_retry_delay``, the failure notification, the environment's AWS connection, and the check that
    fails a task (without retries) when the run's conf has a key that is not a param of the DAG.

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
        "pre_execute": refuse_unknown_conf_keys,
    }


def dag_failure_callback(cfg: Config) -> Any:
    """The DAG-level ``on_failure_callback`` of every DAG: a :class:`~ml_lifecycle.notifications.DagFailureNotifier`
    (the provider's ``SnsNotifier``) that reports a run that exceeded ``dagrun_timeout`` or deadlocked.

    :param cfg: the environment's config (topic, connection, UI address)
    """
    from ml_lifecycle.notifications import DagFailureNotifier

    return DagFailureNotifier(cfg=cfg)


def model_package_param(cfg: Config, latest: str) -> Param:
    """The ``model_package_arn`` param: ``latest``, or the ARN of a version of the environment's model package
    group in its region and account (any other ARN is refused at trigger time).

    :param cfg: the environment's config
    :param latest: what ``latest`` means in this DAG (the end of the description)
    """
    group = cfg.sagemaker.model_package_group
    return Param(
        "latest",
        type="string",
        pattern=model_package_arn_pattern(cfg),
        title="Model package",
        description=f"ARN of an Approved version of {group} (account {cfg.aws.account_id}, {cfg.aws.region}), "
        f"or 'latest' ({latest}).",
    )


def s3_uri_param(cfg: Config, *, title: str, description: str) -> Param:
    """An optional S3 URI param: empty, or a key in one of the environment's buckets (``storage.bucket``,
    ``storage.input_buckets``; any other bucket is refused at trigger time).

    :param cfg: the environment's config
    :param title: the form's label
    :param description: what the URI is for (the allowed buckets are appended)
    """
    buckets = ", ".join([cfg.storage.bucket, *cfg.storage.input_buckets])
    return Param(
        "",
        type="string",
        pattern=s3_uri_pattern(cfg),
        title=title,
        description=f"{description} Buckets allowed: {buckets}.",
    )


def hyperparameters_param(cfg: Config) -> Param:
    """The ``hyperparameters`` param: overrides of ``sagemaker.hyperparameters``, checked at trigger time
    against the schema of ``sagemaker.algorithm`` (names, types and ranges).

    :param cfg: the environment's config
    """
    return Param(
        {},
        **param_schema(cfg.sagemaker.algorithm),
        title="Hyperparameter overrides",
        description='JSON object merged over the configured hyperparameters, e.g. {"num_round": 50}; names, '
        f"types and ranges follow the {cfg.sagemaker.algorithm} schema.",
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
    in ``processing`` mode, from the environment's SageMaker config (image, role, compute, security) and its
    ``tags``.

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
        "tags": dict(cfg.tags),
    }
