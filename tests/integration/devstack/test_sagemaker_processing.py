"""Processing jobs on the devstack SageMaker service: real scripts, S3 inputs/outputs, failures, stops."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.devstack.sagemaker_support import ROLE, SKLEARN_IMAGE, put_text, wait_for

pytestmark = pytest.mark.integration

PREPROCESS_PY = """
import argparse, json, os, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--input")
parser.add_argument("--output")
args = parser.parse_args()
rows = pathlib.Path(args.input, "raw.csv").read_text().splitlines()
out = pathlib.Path(args.output)
(out / "clean.csv").write_text("\\n".join(r.upper() for r in rows) + "\\n")
(out / "nested").mkdir()
(out / "nested" / "meta.json").write_text(json.dumps({
    "mode": os.environ["MODE"],
    "config": json.load(open("/opt/ml/config/processingjobconfig.json".replace("/opt/ml", os.environ["OPT_ML"])))[
        "ProcessingJobName"],
}))
pathlib.Path(os.environ["OPT_ML"], "output", "message").write_text("preprocessed %d rows" % len(rows))
print("done", len(rows))
"""


def processing_request(name: str, bucket: str, script_key: str, **overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": SKLEARN_IMAGE,
            "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{script_key.rsplit('/', 1)[-1]}"],
            "ContainerArguments": ["--input", "/opt/ml/processing/input/data", "--output=/opt/ml/processing/output"],
        },
        "Environment": {"MODE": "train", "OPT_ML": "/opt/ml"},
        "ProcessingInputs": [
            {
                "InputName": "data",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/raw/",
                    "LocalPath": "/opt/ml/processing/input/data",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/{script_key}",
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "clean",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/processed/{name}",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    request.update(overrides)
    return request


def test_processing_job_reads_input_and_writes_output_to_s3(
    sm: Any, s3: Any, logs: Any, bucket: str, unique_name: Any
) -> None:
    put_text(s3, bucket, "raw/raw.csv", "a,b\nc,d\n")
    put_text(s3, bucket, "code/preprocess.py", PREPROCESS_PY)
    name = unique_name("proc-ok")
    arn = sm.create_processing_job(**processing_request(name, bucket, "code/preprocess.py"))["ProcessingJobArn"]
    assert arn.endswith(f":processing-job/{name}")

    desc = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")

    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["ExitMessage"] == "preprocessed 2 rows"
    assert desc["ProcessingStartTime"] <= desc["ProcessingEndTime"]
    body = s3.get_object(Bucket=bucket, Key=f"processed/{name}/clean.csv")["Body"].read()
    assert body == b"A,B\nC,D\n"
    meta = json.loads(s3.get_object(Bucket=bucket, Key=f"processed/{name}/nested/meta.json")["Body"].read())
    assert meta == {"mode": "train", "config": name}
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamNamePrefix=name + "/")
    stream = streams["logStreams"][0]["logStreamName"]
    assert stream.startswith(f"{name}/algo-1-")
    events = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamName=stream)["events"]
    assert [e["message"] for e in events] == ["done 2"]


def test_failing_processing_script_reports_stderr_and_exit_code(
    sm: Any, s3: Any, bucket: str, unique_name: Any
) -> None:
    put_text(s3, bucket, "raw/raw.csv", "a\n")
    put_text(s3, bucket, "code/broken.py", "import sys\nprint('bad input', file=sys.stderr)\nsys.exit(3)\n")
    name = unique_name("proc-fail")
    sm.create_processing_job(**processing_request(name, bucket, "code/broken.py"))

    desc = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")

    assert desc["ProcessingJobStatus"] == "Failed"
    assert desc["FailureReason"] == "AlgorithmError: bad input, exit code: 3"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=f"processed/{name}/clean.csv")


def test_stop_processing_job(sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    put_text(s3, bucket, "raw/raw.csv", "a\n")
    put_text(s3, bucket, "code/slow.py", "import time\nprint('go', flush=True)\ntime.sleep(60)\n")
    name = unique_name("proc-stop")
    started = time.monotonic()
    sm.create_processing_job(**processing_request(name, bucket, "code/slow.py"))
    while "ProcessingStartTime" not in sm.describe_processing_job(ProcessingJobName=name):
        assert time.monotonic() - started < 20
        time.sleep(0.1)

    sm.stop_processing_job(ProcessingJobName=name)

    desc = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")
    assert desc["ProcessingJobStatus"] == "Stopped"
    assert time.monotonic() - started < 20


def test_processing_errors(sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    put_text(s3, bucket, "raw/raw.csv", "a\n")
    put_text(s3, bucket, "code/ok.py", "print('ok')\n")
    name = unique_name("proc-dup")
    sm.create_processing_job(**processing_request(name, bucket, "code/ok.py"))
    with pytest.raises(ClientError) as duplicate:
        sm.create_processing_job(**processing_request(name, bucket, "code/ok.py"))
    assert duplicate.value.response["Error"]["Code"] == "ResourceInUse"

    with pytest.raises(ClientError) as unknown:
        sm.describe_processing_job(ProcessingJobName="no-such-job")
    assert unknown.value.response["Error"]["Code"] == "ValidationException"

    bad_path = processing_request(unique_name("proc-path"), bucket, "code/ok.py")
    bad_path["ProcessingInputs"][0]["S3Input"]["LocalPath"] = "/tmp/data"
    with pytest.raises(ClientError, match="must start with /opt/ml/processing/"):
        sm.create_processing_job(**bad_path)

    empty_name = unique_name("proc-empty")
    empty = processing_request(empty_name, bucket, "code/ok.py")
    empty["ProcessingInputs"][0]["S3Input"]["S3Uri"] = f"s3://{bucket}/missing/"
    sm.create_processing_job(**empty)
    desc = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=empty_name), "ProcessingJobStatus")
    assert desc["ProcessingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith(f'ClientError: No S3 objects found under S3 URL "s3://{bucket}/missing/"')

    custom_name = unique_name("proc-custom")
    custom = processing_request(custom_name, bucket, "code/ok.py")
    custom["AppSpecification"]["ImageUri"] = "111122223333.dkr.ecr.us-east-1.amazonaws.com/team/processor:2"
    sm.create_processing_job(**custom)
    desc = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=custom_name), "ProcessingJobStatus")
    assert desc["ProcessingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith(
        "ClientError: The devstack cannot run the image 111122223333.dkr.ecr.us-east-1.amazonaws.com/team/processor:2"
    )
    wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")

    listed = sm.list_processing_jobs(NameContains="proc-custom", StatusEquals="Failed")["ProcessingJobSummaries"]
    assert [s["ProcessingJobName"] for s in listed] == [custom_name]


def test_manifest_input_and_continuous_output_survive_a_failure(
    sm: Any, s3: Any, bucket: str, unique_name: Any
) -> None:
    put_text(s3, bucket, "shards/a.csv", "a\n")
    put_text(s3, bucket, "shards/b.csv", "b\n")
    put_text(s3, bucket, "shards/c.csv", "not listed\n")
    manifest = json.dumps([{"prefix": f"s3://{bucket}/shards/"}, "a.csv", "b.csv"])
    put_text(s3, bucket, "manifests/inputs.json", manifest)
    script = (
        "import os, pathlib, sys\n"
        "names = sorted(os.listdir(sys.argv[1]))\n"
        "pathlib.Path(sys.argv[2], 'seen.txt').write_text(','.join(names))\n"
        "pathlib.Path(sys.argv[3], 'final.txt').write_text('never uploaded')\n"
        "sys.exit('stopping after the report')\n"
    )
    put_text(s3, bucket, "code/manifest.py", script)
    name = unique_name("proc-manifest")
    request = processing_request(name, bucket, "code/manifest.py")
    request["AppSpecification"]["ContainerArguments"] = [
        "/opt/ml/processing/input/data",
        "/opt/ml/processing/progress",
        "/opt/ml/processing/output",
    ]
    request["ProcessingInputs"][0]["S3Input"].update(
        {"S3Uri": f"s3://{bucket}/manifests/inputs.json", "S3DataType": "ManifestFile"}
    )
    request["ProcessingOutputConfig"]["Outputs"].append(
        {
            "OutputName": "progress",
            "S3Output": {
                "S3Uri": f"s3://{bucket}/progress/{name}",
                "LocalPath": "/opt/ml/processing/progress",
                "S3UploadMode": "Continuous",
            },
        }
    )
    sm.create_processing_job(**request)

    desc = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")

    assert desc["ProcessingJobStatus"] == "Failed"
    assert desc["FailureReason"] == "AlgorithmError: stopping after the report, exit code: 1"
    seen = s3.get_object(Bucket=bucket, Key=f"progress/{name}/seen.txt")["Body"].read()
    assert seen == b"a.csv,b.csv"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=f"processed/{name}/final.txt")
