"""Reading the approvals a deploy_model run was triggered by: SQS messages of SageMaker events, asset events."""

from __future__ import annotations

import datetime as dt
import json
import logging
from types import SimpleNamespace

import pytest

from ml_lifecycle.approval_events import (
    FROM_ASSET,
    FROM_SAGEMAKER,
    approval_from_message,
    triggering_approval,
    triggering_approvals,
)

GROUP = "fraud-detector"


def arn(version: int, group: str = GROUP) -> str:
    return f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/{version}"


def sagemaker_event(version: int, status: str = "Approved", group: str = GROUP, time: str = "2026-03-01T10:00:00Z",
                    **overrides) -> dict:  # fmt: skip
    """A "Model Package State Change" event as EventBridge delivers it to SQS (the message body)."""
    event = {
        "version": "0",
        "id": f"id-{version}-{status}",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": time,
        "region": "us-east-1",
        "resources": [arn(version, group)],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": version,
            "ModelPackageArn": arn(version, group),
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": status,
            "CreationTime": "2026-03-01T09:00:00Z",
            "LastModifiedTime": time,
        },
    }
    event.update(overrides)
    return event


def message(body, message_id: str = "m-1") -> dict:
    return {
        "MessageId": message_id,
        "ReceiptHandle": "rh",
        "MD5OfBody": "x",
        "Body": body if isinstance(body, str) else json.dumps(body),
    }


def queue_event(*messages: dict) -> SimpleNamespace:
    """The asset event the approval queue's watcher makes of one batch (Airflow's ``extra``)."""
    return SimpleNamespace(
        extra={"from_trigger": True, "payload": {"status": "success", "message_batch": list(messages)}},
        timestamp=dt.datetime(2026, 3, 1, 10, 0, 5, tzinfo=dt.UTC),
    )


def asset_event(version: int, at: dt.datetime) -> SimpleNamespace:
    return SimpleNamespace(extra={"model_package_arn": arn(version)}, timestamp=at)


def test_an_approval_event_names_its_package():
    approval = approval_from_message(message(sagemaker_event(4)), GROUP)
    assert approval is not None
    assert (approval.model_package_arn, approval.source, approval.version) == (arn(4), FROM_SAGEMAKER, 4)
    assert approval.at == dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("body", "logged"),
    [
        pytest.param(sagemaker_event(4, group="other-models"), "group other-models, not fraud-detector",
                     id="other-group"),
        pytest.param(sagemaker_event(4, status="Rejected"), "it is Rejected, not Approved", id="rejected"),
        pytest.param(sagemaker_event(4, status="PendingManualApproval"), "not Approved", id="pending"),
        pytest.param(sagemaker_event(4, **{"detail-type": "SageMaker Endpoint Deployment State Change"}),
                     "not a model package state change", id="endpoint-event"),
        pytest.param("not json", "its body is not an event", id="not-json"),
        pytest.param({"Records": []}, "no event detail", id="no-detail"),
        pytest.param(sagemaker_event(4, detail={"ModelApprovalStatus": "Approved"}), "names no ModelPackageArn",
                     id="no-arn"),
    ],
)  # fmt: skip
def test_other_events_are_ignored_with_a_log_line(body, logged, caplog):
    with caplog.at_level(logging.INFO, logger="ml_lifecycle.approval_events"):
        assert approval_from_message(message(body), GROUP) is None
    assert logged in caplog.text


def test_every_message_of_every_event_is_read_and_the_newest_approval_wins(caplog):
    events = {
        "model_approvals__fraud-detector": [
            queue_event(
                message(sagemaker_event(5, time="2026-03-01T10:00:00Z"), "a"),
                message(sagemaker_event(6, status="Rejected", time="2026-03-01T10:01:00Z"), "b"),
            ),
            queue_event(message(sagemaker_event(7, time="2026-03-01T10:02:00Z"), "c")),
        ],
        "approved_model__fraud-detector": [asset_event(3, dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC))],
    }
    with caplog.at_level(logging.INFO, logger="ml_lifecycle.approval_events"):
        approvals = triggering_approvals(events, GROUP)
        chosen = triggering_approval(events, GROUP)
    assert [a.version for a in approvals] == [3, 5, 7]
    assert chosen is not None and (chosen.version, chosen.source) == (7, FROM_SAGEMAKER)
    assert "it is Rejected, not Approved" in caplog.text
    assert "the newest approval is deployed" in caplog.text


def test_a_duplicated_approval_counts_once():
    """SageMaker may deliver an event twice, and an approval in Airflow also arrives as the asset event."""
    twice = sagemaker_event(8)
    events = {
        "approvals": [queue_event(message(twice, "a"), message(twice, "b")), queue_event(message(twice, "c"))],
        "approved": [asset_event(8, dt.datetime(2026, 3, 1, 10, 0, 1, tzinfo=dt.UTC))],
    }
    approvals = triggering_approvals(events, GROUP)
    assert [a.model_package_arn for a in approvals] == [arn(8)]


def test_the_approved_model_asset_event_alone_is_read_as_before():
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    chosen = triggering_approval({"approved": [asset_event(2, at), asset_event(3, at + dt.timedelta(hours=1))]}, GROUP)
    assert chosen is not None and (chosen.version, chosen.source, chosen.at) == (
        3,
        FROM_ASSET,
        at + dt.timedelta(hours=1),
    )


@pytest.mark.parametrize(
    "events",
    [
        pytest.param({}, id="no-events"),
        pytest.param(None, id="none"),
        pytest.param({"approvals": [queue_event(message(sagemaker_event(4, group="other")))]}, id="only-other-groups"),
    ],
)
def test_no_approval_named_is_none(events):
    assert triggering_approval(events, GROUP) is None
