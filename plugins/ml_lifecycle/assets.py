"""The Airflow assets that connect the DAGs.

- **approved model** (``s3://<bucket>/<models>/<group>/approved.json``): updated by ``train_model`` when a
  model version is approved; the deployment DAG is scheduled on it.
- **model approvals** (``model_approvals__<group>``): watched by an asset watcher on the environment's
  approval queue (``approval_events.queue_url``), which SageMaker's "Model Package State Change" events of the
  group reach through the stack's EventBridge rule when a version is Approved anywhere (Studio, the AWS CLI,
  another pipeline); each batch of messages is one asset event whose extra holds them. ``deploy_model`` is
  scheduled on the approved model **or** this asset. ``None`` when the environment has no approval queue.
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
#: messages one receive of the approval queue takes (SQS's maximum)
APPROVAL_BATCH = 10


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


def approvals_asset(cfg: Config) -> Asset | None:
    """The asset of the group's approvals made anywhere, watched on the approval queue (``None`` without one).

    The watcher is the common-messaging ``MessageQueueTrigger`` with ``scheme="sqs"`` (the Amazon provider's
    ``SqsSensorTrigger``): long polling, messages deleted once received, one asset event per batch.
    """
    events = cfg.approval_events
    if events is None:
        return None
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.sdk import AssetWatcher

    trigger = MessageQueueTrigger(
        scheme="sqs",
        sqs_queue=events.queue_url,
        aws_conn_id=cfg.aws.conn_id,
        region_name=cfg.aws.region,
        max_messages=APPROVAL_BATCH,
        wait_time_seconds=events.wait_time_seconds,
        waiter_delay=events.poll_interval_seconds,
    )
    group = cfg.sagemaker.model_package_group
    return Asset(
        name=f"model_approvals__{group}",
        watchers=[AssetWatcher(name=f"approval_queue__{events.queue_name}", trigger=trigger)],
    )
