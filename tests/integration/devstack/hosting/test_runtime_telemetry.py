"""Per-variant CloudWatch metrics and data capture of InvokeEndpoint on the devstack."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.devstack.hosting_support import (
    control,
    create_model,
    eventually,
    put_scale_model,
    variant,
    wait_endpoint,
)

pytestmark = pytest.mark.integration

KEY = re.compile(r"^capture/(?P<ep>[^/]+)/AllTraffic/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$")


def _endpoint(sm: Any, s3: Any, bucket: str, unique_name: Any, capture: dict[str, Any] | None = None) -> str:
    model = unique_name("model")
    create_model(sm, model, put_scale_model(s3, bucket, f"{model}/model.tar.gz", 2.0))
    cfg = unique_name("cfg")
    extra = {"DataCaptureConfig": capture} if capture else {}
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[variant("AllTraffic", model)], **extra)
    name = unique_name("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    assert wait_endpoint(sm, name)["EndpointStatus"] == "InService"
    return name


def _sum(cloudwatch: Any, endpoint: str, metric: str, stat: str = "Sum") -> float:
    now = dt.datetime.now(dt.UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName=metric,
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}],
        StartTime=now - dt.timedelta(minutes=10),
        EndTime=now + dt.timedelta(minutes=1),
        Period=60,
        Statistics=[stat],
    )["Datapoints"]
    return sum(p[stat] for p in points)


def test_invocations_publish_per_variant_metrics(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any, cloudwatch: Any
) -> None:
    name = _endpoint(sm, s3, bucket, unique_name)
    for _ in range(5):
        runtime.invoke_endpoint(EndpointName=name, Body=b"1,2", ContentType="text/csv")
    control(fast, "POST", "/_devstack/hosting/faults", {"variant_errors": [{"endpoint": name, "count": 2}]})
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            runtime.invoke_endpoint(EndpointName=name, Body=b"1,2", ContentType="text/csv")
        assert caught.value.response["OriginalStatusCode"] == 500

    def sums() -> dict[str, float]:
        return {
            "invocations": _sum(cloudwatch, name, "Invocations"),
            "5xx": _sum(cloudwatch, name, "Invocation5XXErrors"),
            "4xx": _sum(cloudwatch, name, "Invocation4XXErrors"),
            "latency_samples": _sum(cloudwatch, name, "ModelLatency", "SampleCount"),
        }

    # metrics arrive in batches within a flush interval or two
    eventually(lambda: sums() == {"invocations": 7, "5xx": 2, "4xx": 0, "latency_samples": 7}, timeout=30)
    assert _sum(cloudwatch, name, "ModelLatency", "Maximum") > 0
    assert runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="text/csv")["Body"].read() == b"2.0"


def _capture_records(s3: Any, bucket: str, endpoint: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=f"capture/{endpoint}/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
        out.extend((item["Key"], json.loads(line)) for line in body.splitlines())
    return out


def test_data_capture_writes_sagemaker_jsonl(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any
) -> None:
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{bucket}/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
    name = _endpoint(sm, s3, bucket, unique_name, capture)
    assert sm.describe_endpoint(EndpointName=name)["DataCaptureConfig"] == {
        "EnableCapture": True,
        "CaptureStatus": "Started",
        "CurrentSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{bucket}/capture",
        "KmsKeyId": "",
    }
    runtime.invoke_endpoint(
        EndpointName=name, Body=b"1,2", ContentType="text/csv", InferenceId="order-1", CustomAttributes="a=1"
    )
    runtime.invoke_endpoint(EndpointName=name, Body=b"3,4", ContentType="text/csv")

    records = eventually(lambda: len(r := _capture_records(s3, bucket, name)) == 2 and r)

    for key, _ in records:
        assert KEY.match(key), key
    by_input = {r["captureData"]["endpointInput"]["data"]: r for _, r in records}
    first = by_input["1,2"]
    assert first["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": "1,2",
        "encoding": "CSV",
    }
    assert first["captureData"]["endpointOutput"] == {
        "observedContentType": "text/csv",
        "mode": "OUTPUT",
        "data": "6.0",
        "encoding": "CSV",
    }
    assert first["eventVersion"] == "0"
    assert first["eventMetadata"]["inferenceId"] == "order-1"
    assert first["eventMetadata"]["customAttributes"] == ["a=1"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", first["eventMetadata"]["inferenceTime"])
    assert "inferenceId" not in by_input["3,4"]["eventMetadata"]


@pytest.mark.parametrize(
    ("capture_extra", "expect_records", "expect_input_encoding"),
    [
        pytest.param({"InitialSamplingPercentage": 0}, 0, None, id="sampling-zero-captures-nothing"),
        pytest.param({"EnableCapture": False}, 0, None, id="disabled"),
        pytest.param(
            {"CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}},
            3,
            "BASE64",
            id="csv-not-listed-is-base64",
        ),
    ],
)
def test_capture_options(
    fast: Any,
    sm: Any,
    s3: Any,
    bucket: str,
    unique_name: Any,
    runtime: Any,
    capture_extra: dict[str, Any],
    expect_records: int,
    expect_input_encoding: str | None,
) -> None:
    capture = {
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{bucket}/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}],
    }
    capture.update(capture_extra)
    name = _endpoint(sm, s3, bucket, unique_name, capture)
    for _ in range(3):
        runtime.invoke_endpoint(EndpointName=name, Body=b"5,5", ContentType="text/csv")
    fast.telemetry.flush()

    records = [r for _, r in _capture_records(s3, bucket, name)]

    assert len(records) == expect_records
    for record in records:
        assert set(record["captureData"]) == {"endpointInput"}
        assert record["captureData"]["endpointInput"]["encoding"] == expect_input_encoding
        assert base64.b64decode(record["captureData"]["endpointInput"]["data"]) == b"5,5"


def test_latency_fault_slows_a_variant_and_shows_in_model_latency(
    fast: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, runtime: Any, cloudwatch: Any
) -> None:
    name = _endpoint(sm, s3, bucket, unique_name)
    faults = control(
        fast, "POST", "/_devstack/hosting/faults", {"variant_latency": [{"endpoint": name, "seconds": 0.4, "count": 1}]}
    )
    assert faults["variant_latency"] == [{"endpoint": name, "count": 1, "seconds": 0.4}]

    started = time.monotonic()
    slow = runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="text/csv")["Body"].read()
    elapsed = time.monotonic() - started
    fast_answer = runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="text/csv")["Body"].read()

    assert (slow, fast_answer) == (b"2.0", b"2.0")
    assert elapsed >= 0.4
    assert eventually(lambda: _sum(cloudwatch, name, "ModelLatency", "Maximum") >= 400_000)
    assert control(fast, "GET", "/_devstack/hosting/faults") == {"variant_errors": [], "variant_latency": []}
