"""The devstack keeps the tags of the AWS resources moto serves as AWS does: Application Auto Scaling's scalable
targets (tagged when registered, not when updated; TagResource, UntagResource, ListTagsForResource) and
CloudWatch alarms (PutMetricAlarm tags an alarm it creates and ignores the tags of an update)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devstack.autoscaling import install as install_autoscaling
from devstack.cloudwatch import install as install_cloudwatch

TARGET = {
    "ServiceNamespace": "sagemaker",
    "ResourceId": "endpoint/e/variant/AllTraffic",
    "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    "MinCapacity": 1,
    "MaxCapacity": 2,
}
ALARM = {
    "AlarmName": "e-AllTraffic-5xx-rate",
    "Namespace": "AWS/SageMaker",
    "MetricName": "Invocation5XXErrors",
    "Statistic": "Average",
    "Period": 60,
    "EvaluationPeriods": 1,
    "Threshold": 0.01,
    "ComparisonOperator": "GreaterThanThreshold",
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING"):
        monkeypatch.delenv(key, raising=False)
    install_autoscaling()
    install_cloudwatch()
    with mock_aws():
        yield boto3


def test_a_scalable_target_keeps_the_tags_it_was_registered_with(aws: Any) -> None:
    client = aws.client("application-autoscaling")
    arn = client.register_scalable_target(**TARGET, Tags={"owner": "ml", "cost-centre": "1"})["ScalableTargetARN"]
    assert client.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"owner": "ml", "cost-centre": "1"}
    # an update (same target) leaves the tags as they were, whatever it says
    assert client.register_scalable_target(**TARGET, Tags={"owner": "other"})["ScalableTargetARN"] == arn
    assert client.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"owner": "ml", "cost-centre": "1"}
    client.tag_resource(ResourceARN=arn, Tags={"owner": "other", "project": "p"})
    client.untag_resource(ResourceARN=arn, TagKeys=["cost-centre"])
    assert client.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"owner": "other", "project": "p"}


def test_a_deregistered_target_has_no_tags_and_an_unknown_arn_is_not_found(aws: Any) -> None:
    client = aws.client("application-autoscaling")
    arn = client.register_scalable_target(**TARGET, Tags={"owner": "ml"})["ScalableTargetARN"]
    client.deregister_scalable_target(**{k: TARGET[k] for k in ("ServiceNamespace", "ResourceId", "ScalableDimension")})
    for call in (
        lambda: client.list_tags_for_resource(ResourceARN=arn),
        lambda: client.tag_resource(ResourceARN=arn, Tags={"a": "b"}),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_reserved_tag_keys_are_refused(aws: Any) -> None:
    client = aws.client("application-autoscaling")
    with pytest.raises(ClientError, match="reserved prefix"):
        client.register_scalable_target(**TARGET, Tags={"aws:owner": "ml"})


def test_put_metric_alarm_tags_a_new_alarm_and_ignores_the_tags_of_an_update(aws: Any) -> None:
    cloudwatch = aws.client("cloudwatch")
    cloudwatch.put_metric_alarm(**ALARM, Tags=[{"Key": "owner", "Value": "ml"}])
    arn = cloudwatch.describe_alarms(AlarmNames=[ALARM["AlarmName"]])["MetricAlarms"][0]["AlarmArn"]
    cloudwatch.put_metric_alarm(**ALARM, Tags=[{"Key": "owner", "Value": "other"}, {"Key": "new", "Value": "x"}])
    assert cloudwatch.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "owner", "Value": "ml"}]
    cloudwatch.tag_resource(ResourceARN=arn, Tags=[{"Key": "owner", "Value": "other"}])
    assert cloudwatch.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "owner", "Value": "other"}]
