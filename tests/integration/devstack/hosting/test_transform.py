"""Batch transform on the devstack: splitting, batching, assembly, joins, failures, stop, provider operator."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.devstack.hosting_support import control, model_tarball
from tests.integration.devstack.sagemaker_support import ROLE, SKLEARN_IMAGE, wait_for

pytestmark = pytest.mark.integration

#: CSV rows -> one "sum" line per row; JSON lines -> {"sum": ...} per line; "boom" in a row -> 500;
#: every request also records how many rows it carried (to observe batching).
BATCH_MODEL = """
import json, os

def model_fn(model_dir):
    return None

def transform_fn(model, data, content_type, accept):
    if isinstance(data, bytes):
        data = data.decode()
    lines = [l for l in data.splitlines() if l.strip()]
    if any("boom" in l for l in lines):
        raise RuntimeError("cannot score boom")
    assert os.environ["SAGEMAKER_BATCH"] == "true"
    if content_type == "application/jsonlines":
        out = [json.dumps({"sum": sum(json.loads(l)["x"])}) for l in lines]
        return "\\n".join(out), "application/jsonlines"
    out = [str(sum(float(v) for v in l.split(","))) + "|" + str(len(lines)) for l in lines]
    return "\\n".join(out), "text/csv"
"""


@pytest.fixture
def batch_model(sm: Any, s3: Any, bucket: str, unique_name: Any) -> str:
    s3.put_object(Bucket=bucket, Key="batch/model.tar.gz", Body=model_tarball({"code/inference.py": BATCH_MODEL}))
    name = unique_name("batch")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": f"s3://{bucket}/batch/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    )
    return name


def _job(
    sm: Any, name: str, model: str, source: str, output: str, content_type: str = "text/csv", **extra: Any
) -> dict[str, Any]:
    transform_input = {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
        "ContentType": content_type,
        "SplitType": extra.pop("SplitType", "Line"),
    }
    if "CompressionType" in extra:
        transform_input["CompressionType"] = extra.pop("CompressionType")
    sm.create_transform_job(
        TransformJobName=name,
        ModelName=model,
        TransformInput=transform_input,
        TransformOutput={"S3OutputPath": output, "AssembleWith": extra.pop("AssembleWith", "Line")},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        **extra,
    )
    return wait_for(lambda: sm.describe_transform_job(TransformJobName=name), "TransformJobStatus", 90)


def _get(s3: Any, bucket: str, key: str) -> str:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


@pytest.mark.parametrize(
    ("strategy", "expected_batch"),
    [pytest.param("MultiRecord", "3", id="multi-record"), pytest.param("SingleRecord", "1", id="single-record")],
)
def test_csv_lines_one_out_file_per_object(
    sm: Any, s3: Any, bucket: str, unique_name: Any, batch_model: str, strategy: str, expected_batch: str
) -> None:
    s3.put_object(Bucket=bucket, Key="in/a.csv", Body=b"1,2\n3,4\n5,6\n")
    s3.put_object(Bucket=bucket, Key="in/nested/b.csv", Body=b"10,10\n")

    desc = _job(sm, unique_name("tj"), batch_model, f"s3://{bucket}/in/", f"s3://{bucket}/out", BatchStrategy=strategy)

    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert "TransformStartTime" in desc and "TransformEndTime" in desc
    assert _get(s3, bucket, "out/a.csv.out") == "".join(f"{v}|{expected_batch}\n" for v in ("3.0", "7.0", "11.0"))
    assert _get(s3, bucket, "out/nested/b.csv.out") == "20.0|1\n"
    listed = sm.list_transform_jobs(NameContains=desc["TransformJobName"])["TransformJobSummaries"]
    assert [j["TransformJobStatus"] for j in listed] == ["Completed"]


def test_json_lines_gzip_and_join_with_input(sm: Any, s3: Any, bucket: str, unique_name: Any, batch_model: str) -> None:
    s3.put_object(
        Bucket=bucket, Key="json/in.jsonl", Body=gzip.compress(b'{"id": 1, "x": [1, 2]}\n{"id": 2, "x": [5]}\n')
    )

    desc = _job(
        sm,
        unique_name("tj"),
        batch_model,
        f"s3://{bucket}/json/",
        f"s3://{bucket}/json-out/",
        content_type="application/jsonlines",
        CompressionType="Gzip",
        DataProcessing={"JoinSource": "Input"},
    )

    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    lines = [json.loads(line) for line in _get(s3, bucket, "json-out/in.jsonl.out").splitlines()]
    assert lines == [
        {"id": 1, "x": [1, 2], "SageMakerOutput": {"sum": 3}},
        {"id": 2, "x": [5], "SageMakerOutput": {"sum": 5}},
    ]


def test_split_none_sends_whole_object_and_assemble_none_concatenates(
    sm: Any, s3: Any, bucket: str, unique_name: Any, batch_model: str
) -> None:
    s3.put_object(Bucket=bucket, Key="whole/x.csv", Body=b"1,1\n2,2")

    desc = _job(
        sm,
        unique_name("tj"),
        batch_model,
        f"s3://{bucket}/whole/x.csv",
        f"s3://{bucket}/whole-out",
        SplitType="None",
        AssembleWith="None",
    )

    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert _get(s3, bucket, "whole-out/x.csv.out") == "2.0|2\n4.0|2"


def test_failed_object_gets_no_out_and_fails_the_job(
    sm: Any, s3: Any, bucket: str, unique_name: Any, batch_model: str
) -> None:
    s3.put_object(Bucket=bucket, Key="mixed/good.csv", Body=b"1,1\n")
    s3.put_object(Bucket=bucket, Key="mixed/bad.csv", Body=b"boom\n")

    desc = _job(
        sm,
        unique_name("tj"),
        batch_model,
        f"s3://{bucket}/mixed/",
        f"s3://{bucket}/mixed-out",
        ModelClientConfig={"InvocationsMaxRetries": 0},
    )

    assert desc["TransformJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: See job logs for more information. 1 input object(s) failed")
    assert "bad.csv" in desc["FailureReason"] and "cannot score boom" in desc["FailureReason"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="mixed-out/").get("Contents", [])]
    assert keys == ["mixed-out/good.csv.out"]


def test_injected_fault_fails_job_and_unknown_job_is_validation_error(
    sagemaker_service: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, batch_model: str
) -> None:
    s3.put_object(Bucket=bucket, Key="f/a.csv", Body=b"1,1\n")
    name = unique_name("faulty")
    control(
        sagemaker_service,
        "POST",
        "/_devstack/faults",
        {"fail_jobs": [{"name_prefix": name, "reason": "ClientError: injected"}]},
    )

    desc = _job(sm, name, batch_model, f"s3://{bucket}/f/", f"s3://{bucket}/f-out")

    assert (desc["TransformJobStatus"], desc["FailureReason"]) == ("Failed", "ClientError: injected")
    with pytest.raises(ClientError) as missing:
        sm.describe_transform_job(TransformJobName="no-such-transform")
    assert missing.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as duplicate:
        _job(sm, name, batch_model, f"s3://{bucket}/f/", f"s3://{bucket}/f-out")
    assert duplicate.value.response["Error"]["Code"] == "ResourceInUse"


def test_stop_transform_job(
    sagemaker_service: Any, sm: Any, s3: Any, bucket: str, unique_name: Any, batch_model: str
) -> None:
    s3.put_object(Bucket=bucket, Key="s/a.csv", Body=b"1,1\n")
    name = unique_name("slow")
    control(sagemaker_service, "POST", "/_devstack/faults", {"delay_jobs": [{"name_prefix": name, "seconds": 30}]})
    sm.create_transform_job(
        TransformJobName=name,
        ModelName=batch_model,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/s/"}}},
        TransformOutput={"S3OutputPath": f"s3://{bucket}/s-out"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )

    sm.stop_transform_job(TransformJobName=name)
    desc = wait_for(lambda: sm.describe_transform_job(TransformJobName=name), "TransformJobStatus", 30)

    assert desc["TransformJobStatus"] == "Stopped"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="s-out/")


def test_transform_operator(
    monkeypatch: pytest.MonkeyPatch, sagemaker_service: Any, moto_endpoint: str, s3: Any, bucket: str, unique_name: Any
) -> None:
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator

    # a session's devstack fixture may have pointed every service (S3, Logs, ...) elsewhere: this test's
    # servers only
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_")]:
        monkeypatch.delenv(key)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_service.url,
        "AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws", "extra": {"region_name": "us-east-1"}}',
    }.items():
        monkeypatch.setenv(key, value)
    s3.put_object(Bucket=bucket, Key="batch/model.tar.gz", Body=model_tarball({"code/inference.py": BATCH_MODEL}))
    s3.put_object(Bucket=bucket, Key="op-in/rows.csv", Body=b"2,3\n")
    model, job = unique_name("opmodel"), unique_name("opjob")
    config = {
        "Model": {
            "ModelName": model,
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {
                "Image": SKLEARN_IMAGE,
                "ModelDataUrl": f"s3://{bucket}/batch/model.tar.gz",
                "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
            },
        },
        "Transform": {
            "TransformJobName": job,
            "ModelName": model,
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/op-in/"}},
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": f"s3://{bucket}/op-out", "AssembleWith": "Line"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        },
    }

    result = SageMakerTransformOperator(
        task_id="transform", config=config, check_interval=1, max_ingestion_time=120, do_xcom_push=False
    ).execute({})

    assert result["Transform"]["TransformJobStatus"] == "Completed"
    assert _get(s3, bucket, "op-out/rows.csv.out") == "5.0|1\n"
