"""SageMaker's EventBridge events on the devstack: the service puts them on moto's EventBridge, a rule routes them
to an SQS queue, as on AWS (registry changes and endpoint deployments; best-effort; duplicates on demand)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.sagemaker.events import (
    ENDPOINT_DEPLOYMENT_STATE_CHANGE,
    MODEL_PACKAGE_STATE_CHANGE,
    EventPublisher,
)
from devstack.sagemaker.service import SageMakerService
from tests.integration.devstack.hosting_support import (
    client,
    control,
    create_model,
    put_scale_model,
    variant,
    wait_endpoint,
)
from tests.integration.devstack.sagemaker_support import SKLEARN_IMAGE

pytestmark = pytest.mark.integration

INFERENCE = {
    "Containers": [{"Image": SKLEARN_IMAGE, "ModelDataUrl": "s3://bkt/models/job/output/model.tar.gz"}],
    "SupportedContentTypes": ["text/csv"],
    "SupportedResponseMIMETypes": ["text/csv"],
}


@pytest.fixture
def routed(moto_endpoint: str, unique_name: Any) -> Iterator[Any]:
    """A queue and a rule sending it every SageMaker event of the test's resources; ``received()`` drains it."""
    sqs, events = client("sqs", moto_endpoint), client("events", moto_endpoint)
    name = unique_name("sm-events")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["aws.sagemaker"]}))
    events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])

    def received() -> list[dict[str, Any]]:
        found = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            found += [json.loads(m["Body"]) for m in batch]
            sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in batch]
            )
        return found

    yield received
    events.remove_targets(Rule=name, Ids=["queue"])
    events.delete_rule(Name=name)
    sqs.delete_queue(QueueUrl=url)


def _flush(service: SageMakerService) -> None:
    assert service.events.flush(10), "events still queued after 10 s"


def test_registry_changes_reach_the_queue_as_model_package_state_changes(
    sm: Any, sagemaker_service: SageMakerService, routed: Any, unique_name: Any
) -> None:
    group = unique_name("approvals")
    sm.create_model_package_group(ModelPackageGroupName=group)
    arn = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=INFERENCE)["ModelPackageArn"]
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="looks good")
    # a metadata-only update is no state change: no event
    sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"note": "x"})
    _flush(sagemaker_service)

    mine = [e for e in routed() if e["resources"] == [arn]]
    assert [e["detail"]["ModelApprovalStatus"] for e in mine] == ["PendingManualApproval", "Approved"]
    approved = mine[1]
    assert approved["source"] == "aws.sagemaker"
    assert approved["detail-type"] == MODEL_PACKAGE_STATE_CHANGE
    # moto's SQS delivery leaves out the envelope's "account" (AWS sends it; nothing here reads it)
    assert approved["region"] == "us-east-1"
    detail = approved["detail"]
    assert detail["ModelPackageArn"] == arn
    assert detail["ModelPackageGroupName"] == group
    assert detail["ModelPackageVersion"] == 1
    assert detail["ModelPackageStatus"] == "Completed"
    assert detail["ApprovalDescription"] == "looks good"
    assert detail["CreationTime"].endswith("Z")
    assert detail["InferenceSpecification"]["Containers"][0]["Image"] == SKLEARN_IMAGE


def test_the_approval_rule_routes_only_its_group_and_status(
    sm: Any, sagemaker_service: SageMakerService, moto_endpoint: str, unique_name: Any
) -> None:
    """The pattern the stack deploys: one group, Approved only."""
    sqs, events = client("sqs", moto_endpoint), client("events", moto_endpoint)
    group, other = unique_name("mine"), unique_name("other")
    url = sqs.create_queue(QueueName=unique_name("approvals"))["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = unique_name("rule")
    pattern = {
        "source": ["aws.sagemaker"],
        "detail-type": [MODEL_PACKAGE_STATE_CHANGE],
        "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved"]},
    }
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue}])
    try:
        arns = {}
        for name in (group, other):
            sm.create_model_package_group(ModelPackageGroupName=name)
            arns[name] = sm.create_model_package(ModelPackageGroupName=name, InferenceSpecification=INFERENCE)[
                "ModelPackageArn"
            ]
            sm.update_model_package(ModelPackageArn=arns[name], ModelApprovalStatus="Approved")
        rejected = sm.create_model_package(
            ModelPackageGroupName=group, InferenceSpecification=INFERENCE, ModelApprovalStatus="Rejected"
        )["ModelPackageArn"]
        _flush(sagemaker_service)
        # SageMaker may deliver an event twice: the devstack sends the last one again on request
        assert control(sagemaker_service, "POST", "/_devstack/events/resend", {"ResourceArn": arns[group]})["flushed"]

        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        bodies = [json.loads(m["Body"]) for m in messages]
        assert [b["detail"]["ModelPackageArn"] for b in bodies] == [arns[group], arns[group]]
        assert bodies[0]["detail"] == bodies[1]["detail"]
        assert rejected not in json.dumps(bodies)
    finally:
        events.remove_targets(Rule=rule, Ids=["queue"])
        events.delete_rule(Name=rule)
        sqs.delete_queue(QueueUrl=url)


def test_an_endpoint_deployment_sends_its_state_changes(
    fast: SageMakerService, sm: Any, s3: Any, bucket: str, routed: Any, unique_name: Any
) -> None:
    model = unique_name("model")
    create_model(sm, model, put_scale_model(s3, bucket, f"{model}/model.tar.gz", 2.0))
    config = unique_name("cfg")
    sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[variant("AllTraffic", model)])
    name = unique_name("ep")
    arn = sm.create_endpoint(EndpointName=name, EndpointConfigName=config)["EndpointArn"]
    assert wait_endpoint(sm, name)["EndpointStatus"] == "InService"
    _flush(fast)

    mine = [e for e in routed() if e["resources"] == [arn]]
    assert {e["detail-type"] for e in mine} == {ENDPOINT_DEPLOYMENT_STATE_CHANGE}
    statuses = [e["detail"]["EndpointStatus"] for e in mine]
    # one event per change of the status or of the pending deployment (its variants' statuses)
    assert [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s] == ["Creating", "InService"]
    assert "PendingDeploymentSummary" not in mine[-1]["detail"]
    serving = mine[-1]["detail"]
    assert (serving["EndpointName"], serving["EndpointConfigName"]) == (name, config)
    assert serving["ProductionVariants"][0]["VariantName"] == "AllTraffic"
    sm.delete_endpoint(EndpointName=name)


def test_a_failure_to_send_never_fails_the_api_call(tmp_path: Any, unique_name: Any) -> None:
    """EventBridge unreachable: the registry answers as before, the event is counted as failed."""
    service = SageMakerService(tmp_path, "http://127.0.0.1:9", "us-east-1", load_extensions=False)
    service.start("127.0.0.1", 0)
    try:
        sm = client("sagemaker", service.url)
        group = unique_name("offline")
        sm.create_model_package_group(ModelPackageGroupName=group)
        arn = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=INFERENCE)["ModelPackageArn"]
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
        assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"
        assert service.events.flush(60)
        assert service.events.counts() == {"sent": 0, "failed": 2, "dropped": 0}
    finally:
        service.stop()


def test_sending_switched_off_drops_the_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVSTACK_SAGEMAKER_EVENTS", "0")
    publisher = EventPublisher(service=None)  # type: ignore[arg-type]
    publisher.emit(MODEL_PACKAGE_STATE_CHANGE, "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1", {})
    assert publisher.counts() == {"sent": 0, "failed": 0, "dropped": 1}
    assert publisher.resend_last("arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1") is False
