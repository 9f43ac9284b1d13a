"""Endpoint configs, endpoints and InvokeEndpoint on the devstack: real predictions, routing, errors."""

from __future__ import annotations

import collections
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.devstack.hosting_support import (
    create_model,
    model_tarball,
    put_scale_model,
    variant,
    wait_endpoint,
)
from tests.integration.devstack.sagemaker_support import XGBOOST_IMAGE

pytestmark = pytest.mark.integration

STATUS_ERRORS = """
class BadRequest(ValueError):
    status_code = 400

def model_fn(model_dir):
    return "model"

def transform_fn(model, data, content_type, accept):
    assert isinstance(data, bytes), "text/plain bodies arrive as bytes"
    data = data.decode()
    if data.strip() == "bad":
        raise BadRequest("row 1 is not a number")
    if data.strip() == "crash":
        raise RuntimeError("the model crashed")
    return data.upper(), "text/plain"
"""


def _endpoint(sm: Any, s3: Any, bucket: str, unique_name: Any, *, scale: float = 2.0, **config: Any) -> str:
    model = unique_name("model")
    create_model(sm, model, put_scale_model(s3, bucket, f"{model}/model.tar.gz", scale))
    cfg = unique_name("cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[variant("AllTraffic", model)], **config)
    name = unique_name("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    return name


def test_endpoint_serves_predictions_through_inference_contract(
    sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any
) -> None:
    name = _endpoint(sm, s3, bucket, unique_name, scale=3.0)
    creating = sm.describe_endpoint(EndpointName=name)
    assert creating["EndpointStatus"] in ("Creating", "InService")

    desc = wait_endpoint(sm, name)

    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    [summary] = desc["ProductionVariants"]
    assert summary["VariantName"] == "AllTraffic"
    assert summary["CurrentWeight"] == 1.0
    assert summary["CurrentInstanceCount"] == 1
    assert "PendingDeploymentSummary" not in desc
    response = runtime.invoke_endpoint(EndpointName=name, Body=b"1,2,3\n4,5,6", ContentType="text/csv")
    assert response["Body"].read().decode().splitlines() == ["18.0", "45.0"]
    assert response["ContentType"] == "text/csv"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    listed = sm.list_endpoints(NameContains=name)["Endpoints"]
    assert [e["EndpointName"] for e in listed] == [name]


def test_weights_route_traffic_and_target_variant_overrides(
    sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any
) -> None:
    small, large = unique_name("small"), unique_name("large")
    create_model(sm, small, put_scale_model(s3, bucket, "small/model.tar.gz", 1.0))
    create_model(sm, large, put_scale_model(s3, bucket, "large/model.tar.gz", 100.0))
    cfg = unique_name("cfg")
    sm.create_endpoint_config(
        EndpointConfigName=cfg,
        ProductionVariants=[variant("Small", small, weight=3.0), variant("Large", large, weight=1.0)],
    )
    name = unique_name("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    assert wait_endpoint(sm, name)["EndpointStatus"] == "InService"

    served = collections.Counter(
        runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="text/csv")["InvokedProductionVariant"]
        for _ in range(80)
    )
    targeted = runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="text/csv", TargetVariant="Large")

    assert set(served) == {"Small", "Large"}
    assert served["Small"] > served["Large"]
    assert targeted["InvokedProductionVariant"] == "Large"
    assert targeted["Body"].read() == b"100.0"

    sm.update_endpoint_weights_and_capacities(
        EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "Small", "DesiredWeight": 0.0}]
    )
    updating = sm.describe_endpoint(EndpointName=name)
    assert updating["EndpointStatus"] == "Updating"
    small_summary = next(v for v in updating["ProductionVariants"] if v["VariantName"] == "Small")
    assert (small_summary["CurrentWeight"], small_summary["DesiredWeight"]) == (3.0, 0.0)
    desc = wait_endpoint(sm, name, until=("InService",))
    assert next(v for v in desc["ProductionVariants"] if v["VariantName"] == "Small")["CurrentWeight"] == 0.0
    after = {
        runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="text/csv")["InvokedProductionVariant"]
        for _ in range(20)
    }
    assert after == {"Large"}


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        pytest.param(b"bad", 400, "client", id="handler-error-with-status"),
        pytest.param(b"crash", 500, "server", id="unhandled-exception"),
    ],
)
def test_model_errors_become_model_error(
    sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any, body: bytes, status: int, kind: str
) -> None:
    model = unique_name("errors")
    s3.put_object(Bucket=bucket, Key="errors/model.tar.gz", Body=model_tarball({"code/inference.py": STATUS_ERRORS}))
    create_model(sm, model, f"s3://{bucket}/errors/model.tar.gz")
    cfg = unique_name("cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[variant("AllTraffic", model)])
    name = unique_name("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    assert wait_endpoint(sm, name)["EndpointStatus"] == "InService"
    assert runtime.invoke_endpoint(EndpointName=name, Body=b"ok", ContentType="text/plain")["Body"].read() == b"OK"

    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType="text/plain")

    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == status
    assert error["Error"]["Message"].startswith(f"Received {kind} error ({status}) from primary with message")
    assert f"/aws/sagemaker/Endpoints/{name}" in error["LogStreamArn"]
    if status == 400:
        assert error["OriginalMessage"] == "row 1 is not a number"
    else:
        assert "the model crashed" in error["OriginalMessage"]


def test_unknown_endpoint_is_validation_error(runtime: Any) -> None:
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"1", ContentType="text/csv")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert caught.value.response["Error"]["Message"] == "Endpoint no-such-endpoint of account 123456789012 not found."


def test_api_errors_use_sagemaker_texts(sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    name = _endpoint(sm, s3, bucket, unique_name)
    cfg = sm.describe_endpoint(EndpointName=name)["EndpointConfigName"]
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}"

    with pytest.raises(ClientError) as duplicate:
        sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    with pytest.raises(ClientError) as missing_config:
        sm.create_endpoint(EndpointName=unique_name("other"), EndpointConfigName="no-such-config")
    with pytest.raises(ClientError) as missing_model:
        sm.create_endpoint_config(
            EndpointConfigName=unique_name("cfg"), ProductionVariants=[variant("AllTraffic", "no-such-model")]
        )
    with pytest.raises(ClientError) as missing_endpoint:
        sm.describe_endpoint(EndpointName="no-such-endpoint")
    wait_endpoint(sm, name)

    assert duplicate.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": f'Cannot create already existing endpoint "{arn}".',
    }
    assert "Could not find endpoint configuration" in missing_config.value.response["Error"]["Message"]
    assert missing_model.value.response["Error"]["Message"] == (
        'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/no-such-model".'
    )
    assert missing_endpoint.value.response["Error"]["Code"] == "ValidationException"


def test_endpoint_with_broken_model_fails_with_reason(sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    model = unique_name("broken")
    s3.put_object(
        Bucket=bucket,
        Key="broken/model.tar.gz",
        Body=model_tarball({"code/inference.py": "def model_fn(model_dir):\n    raise OSError('weights missing')\n"}),
    )
    create_model(sm, model, f"s3://{bucket}/broken/model.tar.gz")
    cfg = unique_name("cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[variant("AllTraffic", model)])
    name = unique_name("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)

    desc = wait_endpoint(sm, name)

    assert desc["EndpointStatus"] == "Failed"
    assert "weights missing" in desc["FailureReason"]
    assert "AllTraffic" in desc["FailureReason"]
    sm.delete_endpoint(EndpointName=name)
    sm.delete_endpoint_config(EndpointConfigName=cfg)


def test_builtin_xgboost_algorithm_serves_csv(
    sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any, tmp_path: Any
) -> None:
    import numpy as np
    import xgboost as xgb

    features = np.array([[0.0], [1.0], [2.0], [3.0]] * 10)
    labels = np.array([0, 0, 1, 1] * 10)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(features, label=labels), 20)
    booster.save_model(str(tmp_path / "xgboost-model"))
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "xgboost-model", arcname="xgboost-model")
    s3.put_object(Bucket=bucket, Key="xgb/model.tar.gz", Body=buffer.getvalue())
    model = unique_name("xgb")
    sm.create_model(
        ModelName=model,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{bucket}/xgb/model.tar.gz"},
    )
    cfg = unique_name("cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[variant("AllTraffic", model)])
    name = unique_name("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    assert wait_endpoint(sm, name)["EndpointStatus"] == "InService"

    scores = runtime.invoke_endpoint(EndpointName=name, Body=b"0\n3", ContentType="text/csv")["Body"].read()

    low, high = (float(s) for s in scores.decode().split())
    assert low < 0.5 < high
