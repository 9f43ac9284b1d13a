"""The Airflow assets that connect the DAGs.

- **approved model** (``s3://<bucket>/<models>/<group>/approved.json``): updated by ``train_model`` when a
  model version is approved; the deployment DAG is scheduled on it.
- **drift** (``s3://<bucket>/<monitoring>/<endpoint>/drift.json``): updated by the monitoring DAG when the
  endpoint's data drifts; ``train_model`` is scheduled on it (besides its weekly cron).

Both are derived from the environment config, so every DAG that imports them agrees on the URI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Asset

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

APPROVED_POINTER = "approved.json"
DRIFT_REPORT = "drift.json"


def approved_model_uri(cfg: Config) -> str:
    """``s3://<bucket>/<models prefix>/<model package group>/approved.json``."""
    return cfg.storage.uri("models", cfg.sagemaker.model_package_group, APPROVED_POINTER)


def drift_uri(cfg: Config) -> str:
    """``s3://<bucket>/<monitoring prefix>/<endpoint>/drift.json``."""
    return cfg.storage.uri("monitoring", cfg.deployment.endpoint_name, DRIFT_REPORT)


def approved_model_asset(cfg: Config) -> Asset:
    """The asset updated when a model version of the group is approved."""
    return Asset(name=f"approved_model__{cfg.sagemaker.model_package_group}", uri=approved_model_uri(cfg))


def drift_asset(cfg: Config) -> Asset:
    """The asset updated when the monitored endpoint's data drifts."""
    return Asset(name=f"model_drift__{cfg.deployment.endpoint_name}", uri=drift_uri(cfg))
