"""The Amazon provider's SageMakerEndpointOperator and Application Auto Scaling against the devstack."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tests.integration.devstack.hosting_support import client, put_scale_model, variant
from tests.integration.devstack.sagemaker_support import ROLE, SKLEARN_IMAGE

pytestmark = pytest.mark.integration


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, sagemaker_service: Any, moto_endpoint: str) -> None:
    """Point boto3 (and so the provider's hooks) at this module's servers.

    Per-service endpoints a session's ``devstack`` fixture exported (S3, Logs, ...) are dropped first, so
    every client reaches this module's moto and SageMaker service.
    """
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", sagemaker_service.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", sagemaker_service.url)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws", "extra": {"region_name": "us-east-1"}}')


def _model(name: str, data: str) -> dict[str, Any]:
    return {
        "ModelName": name,
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": data,
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    }


def test_endpoint_operator_creates_then_updates(
    aws_env: None, fast: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any
) -> None:
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerEndpointOperator

    endpoint = unique_name("ep")
    first, second = unique_name("model"), unique_name("model")
    cfg1, cfg2 = unique_name("cfg"), unique_name("cfg")

    def config(model: str, cfg: str, scale: float) -> dict[str, Any]:
        return {
            "Model": _model(model, put_scale_model(s3, bucket, f"{model}/model.tar.gz", scale)),
            "EndpointConfig": {"EndpointConfigName": cfg, "ProductionVariants": [variant("AllTraffic", model)]},
            "Endpoint": {"EndpointName": endpoint, "EndpointConfigName": cfg},
        }

    created = SageMakerEndpointOperator(
        task_id="deploy", config=config(first, cfg1, 2.0), operation="create", check_interval=1, max_ingestion_time=120
    ).execute({})
    assert created["Endpoint"]["EndpointStatus"] == "InService"
    assert runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1", ContentType="text/csv")["Body"].read() == b"2.0"

    update = config(second, cfg2, 7.0)
    update["Endpoint"]["DeploymentConfig"] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                "WaitIntervalInSeconds": 1,
            },
            "TerminationWaitInSeconds": 1,
        }
    }
    # operation "create" on an existing endpoint falls back to update, as the provider documents
    updated = SageMakerEndpointOperator(
        task_id="redeploy", config=update, operation="create", check_interval=1, max_ingestion_time=120
    ).execute({})

    assert updated["Endpoint"]["EndpointConfigName"] == cfg2
    assert updated["EndpointConfig"]["EndpointConfigName"] == cfg2
    assert runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1", ContentType="text/csv")["Body"].read() == b"7.0"


def test_application_autoscaling_accepts_variant_targets(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, moto_endpoint: str
) -> None:
    from tests.integration.devstack.hosting_support import create_model, wait_endpoint

    model = unique_name("model")
    create_model(sm, model, put_scale_model(s3, bucket, f"{model}/model.tar.gz", 1.0))
    cfg = unique_name("cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[variant("AllTraffic", model)])
    name = unique_name("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    assert wait_endpoint(sm, name)["EndpointStatus"] == "InService"
    autoscaling = client("application-autoscaling", moto_endpoint)
    resource = f"endpoint/{name}/variant/AllTraffic"

    autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        MinCapacity=1,
        MaxCapacity=4,
    )
    autoscaling.put_scaling_policy(
        PolicyName="invocations",
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 70.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 300,
        },
    )

    targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])
    policies = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets["ScalableTargets"]] == [(1, 4)]
    assert [p["PolicyName"] for p in policies["ScalingPolicies"]] == ["invocations"]


def test_update_endpoint_is_refused_while_a_variant_it_removes_is_registered_for_auto_scaling(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, moto_endpoint: str
) -> None:
    """SageMaker's rule ("Update endpoints that use auto scaling"): deregister a variant before an update that
    removes it or changes its instance type; a new model on it is allowed. Deleting the endpoint deregisters it."""
    from botocore.exceptions import ClientError

    from tests.integration.devstack.hosting_support import create_model, wait_endpoint

    old_model, new_model = unique_name("model"), unique_name("model")
    create_model(sm, old_model, put_scale_model(s3, bucket, f"{old_model}/model.tar.gz", 1.0))
    create_model(sm, new_model, put_scale_model(s3, bucket, f"{new_model}/model.tar.gz", 2.0))
    configs = {
        "one": [variant("AllTraffic", old_model)],
        "two": [variant("AllTraffic", old_model), variant("Green", new_model, weight=0.0)],
        "green-only": [variant("Green", new_model)],
        "new-model": [variant("AllTraffic", new_model)],
        "new-type": [variant("AllTraffic", old_model) | {"InstanceType": "ml.c5.xlarge"}],
    }
    names = {key: unique_name("cfg") for key in configs}
    for key, variants in configs.items():
        sm.create_endpoint_config(EndpointConfigName=names[key], ProductionVariants=variants)
    endpoint = unique_name("ep")
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=names["one"])
    assert wait_endpoint(sm, endpoint)["EndpointStatus"] == "InService"
    autoscaling = client("application-autoscaling", moto_endpoint)
    dimension = "sagemaker:variant:DesiredInstanceCount"
    target = {"ServiceNamespace": "sagemaker", "ScalableDimension": dimension}

    def register(variant_name: str) -> str:
        resource = f"endpoint/{endpoint}/variant/{variant_name}"
        autoscaling.register_scalable_target(ResourceId=resource, MinCapacity=1, MaxCapacity=2, **target)
        autoscaling.put_scaling_policy(
            PolicyName="invocations",
            ResourceId=resource,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 70.0,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            },
            **target,
        )
        return resource

    def scaled() -> dict[str, int]:
        resources = [t["ResourceId"] for t in autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")[
            "ScalableTargets"
        ] if t["ResourceId"].startswith(f"endpoint/{endpoint}/")]  # fmt: skip
        return {
            r.rsplit("/", 1)[-1]: len(
                autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=r)["ScalingPolicies"]
            )
            for r in resources
        }

    old = register("AllTraffic")
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=names["new-model"])  # a new model: allowed
    assert wait_endpoint(sm, endpoint, until=("InService",))["EndpointConfigName"] == names["new-model"]
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=names["two"])  # adds a variant: allowed
    assert wait_endpoint(sm, endpoint, until=("InService",))["EndpointConfigName"] == names["two"]
    for refused, what in (("green-only", "removes the variant(s) AllTraffic"), ("new-type", "instance type")):
        with pytest.raises(ClientError) as error:
            sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=names[refused])
        assert error.value.response["Error"]["Code"] == "ValidationException"
        assert what in error.value.response["Error"]["Message"] and "Application Auto Scaling" in str(error.value)
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService", "nothing started"

    autoscaling.deregister_scalable_target(ResourceId=old, **target)
    assert scaled() == {}, "deregistering deletes the target's scaling policies too"
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=names["green-only"])
    description = wait_endpoint(sm, endpoint, until=("InService",))
    assert [v["VariantName"] for v in description["ProductionVariants"]] == ["Green"]

    register("Green")
    assert scaled() == {"Green": 1}
    sm.delete_endpoint(EndpointName=endpoint)
    wait_gone = time.monotonic() + 60
    while any(e["EndpointName"] == endpoint for e in sm.list_endpoints(NameContains=endpoint)["Endpoints"]):
        assert time.monotonic() < wait_gone, f"{endpoint} was not deleted"
        time.sleep(0.2)
    assert scaled() == {}, "deleting the endpoint deregistered its variants"
