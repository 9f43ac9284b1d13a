"""The approvals a ``deploy_model`` run was triggered by.

A run is triggered by asset events of two kinds, possibly several at once (Airflow folds the events that
arrived while no run was created into one run):

- an **approved-model** asset event (``train_model`` published an approval): its extra names the package
  (``model_package_arn``);
- a **model approvals** asset event (the approval queue's watcher): its extra is
  ``{"from_trigger": true, "payload": {"status": "success", "message_batch": [<SQS messages>]}}``; each
  message's ``Body`` is a SageMaker EventBridge event whose ``detail`` carries ``ModelPackageArn``,
  ``ModelPackageGroupName`` and ``ModelApprovalStatus``.

Every message of every event is read. Events of another group, in another status, of another kind or that
cannot be read are ignored with a log line (the queue's rule should already let only the group's approvals
through). The same package may be named several times (SageMaker may deliver an event more than once; an
approval in Airflow arrives as both kinds): it counts once. The triggering approval is the newest one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
SAGEMAKER_SOURCE = "aws.sagemaker"
#: ``source`` of an approval read from the approved-model asset / from a SageMaker event
FROM_ASSET = "asset_event"
FROM_SAGEMAKER = "approval_event"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Approval:
    """One approval of a model package a run was triggered by.

    :param model_package_arn: the package
    :param at: when it was approved (the event's time), if known
    :param source: :data:`FROM_ASSET` or :data:`FROM_SAGEMAKER`
    """

    model_package_arn: str
    at: dt.datetime | None
    source: str

    @property
    def version(self) -> int:
        """The package's version (the ARN's last part; 0 when it is not a number)."""
        tail = self.model_package_arn.rsplit("/", 1)[-1]
        return int(tail) if tail.isdigit() else 0


def _time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def approval_from_message(message: Mapping[str, Any], group: str, log: logging.Logger = _log) -> Approval | None:
    """The approval one SQS message carries, or ``None`` (with a log line saying why it is ignored).

    :param message: an SQS message as ``ReceiveMessage`` returns it (``Body`` is the EventBridge event)
    :param group: the environment's model package group
    """
    message_id = message.get("MessageId", "?")
    try:
        event = json.loads(message["Body"])
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("Ignoring message %s of the approval queue: its body is not an event (%s)", message_id, exc)
        return None
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        log.warning("Ignoring message %s of the approval queue: no event detail", message_id)
        return None
    kind = (event.get("source"), event.get("detail-type"))
    if kind != (SAGEMAKER_SOURCE, MODEL_PACKAGE_STATE_CHANGE):
        log.info("Ignoring message %s: a %s event from %s, not a model package state change", message_id, *kind[::-1])
        return None
    detail = event["detail"]
    arn = detail.get("ModelPackageArn")
    if not isinstance(arn, str) or not arn:
        log.warning("Ignoring message %s: its model package event names no ModelPackageArn", message_id)
        return None
    if detail.get("ModelPackageGroupName") != group:
        log.info("Ignoring the event of %s: group %s, not %s", arn, detail.get("ModelPackageGroupName"), group)
        return None
    if detail.get("ModelApprovalStatus") != "Approved":
        log.info("Ignoring the event of %s: it is %s, not Approved", arn, detail.get("ModelApprovalStatus"))
        return None
    return Approval(arn, _time(event.get("time")) or _time(detail.get("LastModifiedTime")), FROM_SAGEMAKER)


def _events(triggering: Any) -> Iterable[Any]:
    """Every asset event of the run (the context's ``triggering_asset_events``: asset -> events)."""
    if not triggering:
        return []
    values = triggering.values() if hasattr(triggering, "values") else []
    return [event for events in values for event in (events or [])]


def triggering_approvals(triggering: Any, group: str, log: logging.Logger = _log) -> list[Approval]:
    """Every approval of ``group`` named by the run's asset events, each package once (its newest mention).

    :param triggering: the context's ``triggering_asset_events``
    :param group: the environment's model package group
    """
    found: dict[str, Approval] = {}
    for event in _events(triggering):
        extra = getattr(event, "extra", None) or {}
        candidates: list[Approval] = []
        if extra.get("from_trigger"):
            batch = (extra.get("payload") or {}).get("message_batch") or []
            if not batch:
                log.warning("Ignoring an asset event of the approval queue without messages: %s", extra.get("payload"))
            for message in batch:
                if approval := approval_from_message(message, group, log):
                    candidates.append(approval)
        elif extra.get("model_package_arn"):
            candidates.append(
                Approval(str(extra["model_package_arn"]), _time(getattr(event, "timestamp", None)), FROM_ASSET)
            )
        for approval in candidates:
            known = found.get(approval.model_package_arn)
            if known is not None:
                log.info(
                    "%s is named more than once (%s, %s): one approval",
                    approval.model_package_arn,
                    known.source,
                    approval.source,
                )
            if known is None or _order(approval) > _order(known):
                found[approval.model_package_arn] = approval
    return sorted(found.values(), key=_order)


def _order(approval: Approval) -> tuple[dt.datetime, int]:
    return approval.at or dt.datetime.min.replace(tzinfo=dt.UTC), approval.version


def triggering_approval(triggering: Any, group: str, log: logging.Logger = _log) -> Approval | None:
    """The approval that triggered the run: the newest one the asset events name (``None`` when none does).

    :param triggering: the context's ``triggering_asset_events``
    :param group: the environment's model package group
    """
    approvals = triggering_approvals(triggering, group, log)
    if not approvals:
        return None
    chosen = approvals[-1]
    for older in approvals[:-1]:
        log.info(
            "%s was approved too, before %s: the newest approval is deployed",
            older.model_package_arn,
            chosen.model_package_arn,
        )
    return chosen
