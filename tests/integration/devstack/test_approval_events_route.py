"""The approval route the stack deploys, created on the devstack from the template (``tools.approval_events``):
SageMaker's approval of the group reaches the approval queue, and the provider's SQS trigger (the asset watcher's)
reads it at the queue URL of the config."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from tests.integration.devstack.hosting_support import client
from tools.approval_events import ProvisionError, environment_name, provision

pytestmark = pytest.mark.integration


def _event(group: str, version: int, status: str) -> dict[str, Any]:
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/{version}"
    detail = {"ModelPackageGroupName": group, "ModelPackageArn": arn, "ModelApprovalStatus": status}
    return {
        "Source": "aws.sagemaker",
        "DetailType": "SageMaker Model Package State Change",
        "Resources": [arn],
        "Detail": json.dumps(detail),
    }


@pytest.fixture
def cfg(unique_name: Any) -> Any:
    """The local config with a queue and a group of the test's own."""
    from ml_lifecycle.config import ApprovalEventsConfig, load_config

    base = load_config("local")
    queue = f"https://sqs.us-east-1.amazonaws.com/123456789012/{unique_name('env')}-approvals"
    sagemaker = base.sagemaker.model_copy(update={"model_package_group": unique_name("group")})
    return base.model_copy(
        update={"approval_events": ApprovalEventsConfig(queue_url=queue, wait_time_seconds=1), "sagemaker": sagemaker}
    )


def test_the_group_s_approvals_and_nothing_else_reach_the_queue(moto_endpoint: str, cfg: Any, monkeypatch) -> None:
    stack = SimpleNamespace(client=lambda service: client(service, moto_endpoint))
    made = provision(stack, cfg)
    again = provision(stack, cfg)  # idempotent: the devstack provisions at every start
    assert made is not None and again == made
    group = cfg.sagemaker.model_package_group
    assert made.event_pattern == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved"]},
    }
    sqs, events = client("sqs", moto_endpoint), client("events", moto_endpoint)
    attributes = sqs.get_queue_attributes(QueueUrl=made.queue_url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith(
        f"{cfg.approval_events.queue_name}-dlq"
    )
    (statement, _tls) = json.loads(attributes["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": made.rule_arn}}
    (target,) = events.list_targets_by_rule(Rule=made.rule_name)["Targets"]
    assert target["Arn"] == made.queue_arn and "RoleArn" not in target

    events.put_events(
        Entries=[_event(group, 1, "Approved"), _event(group, 2, "Rejected"), _event("another-group", 3, "Approved")]
    )

    # the asset watcher's trigger, given the config's queue URL (AWS's form), as deploy_model's watcher is
    from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger

    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    trigger = SqsSensorTrigger(
        sqs_queue=cfg.approval_events.queue_url, aws_conn_id=None, region_name="us-east-1", wait_time_seconds=1,
        max_messages=10, waiter_delay=1,
    )  # fmt: skip

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    payload = asyncio.run(asyncio.wait_for(first(), 30))
    bodies = [json.loads(m["Body"]) for m in payload["message_batch"]]
    assert [b["detail"]["ModelPackageArn"].rsplit("/", 1)[1] for b in bodies] == ["1"]
    assert sqs.receive_message(QueueUrl=made.queue_url).get("Messages") is None, "the trigger deleted what it read"


@pytest.mark.parametrize(
    ("queue", "words"),
    [
        pytest.param("ml-lifecycle-local-events", "the stack names it <EnvironmentName>-approvals", id="other-name"),
        pytest.param("-approvals", "the stack names it", id="suffix-only"),
    ],
)
def test_a_queue_the_stack_would_not_name_is_refused(cfg: Any, queue: str, words: str) -> None:
    from ml_lifecycle.config import ApprovalEventsConfig

    other = cfg.model_copy(
        update={
            "approval_events": ApprovalEventsConfig(
                queue_url=f"https://sqs.us-east-1.amazonaws.com/123456789012/{queue}"
            )
        }
    )
    with pytest.raises(ProvisionError, match=words):
        environment_name(other)


def test_an_environment_without_an_approval_queue_gets_nothing(cfg: Any) -> None:
    assert provision(SimpleNamespace(client=None), cfg.model_copy(update={"approval_events": None})) is None
