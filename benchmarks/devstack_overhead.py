"""Per-job overhead of the devstack SageMaker service, for processing and training jobs.

A moto server and the service run in-process on 127.0.0.1. Each job runs a script that only records
``time.time()`` when it starts and when it ends, so every second measured is overhead:

- ``create_to_start``: CreateXJob called -> the script's first line runs (download, sandbox, config files,
  source extraction, interpreter start);
- ``end_to_terminal``: the script's last line -> a Describe poll (every 50 ms) sees the terminal status
  (uploads, tarballs, status write);
- ``create_to_terminal``: the whole round trip.

Jobs run one at a time; the first of each kind is a warm-up and is not counted.

Reproduce: ``.venv/bin/python benchmarks/devstack_overhead.py [--runs 10]``.
Writes ``benchmarks/results/devstack_overhead.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "devstack-bench"

PROCESSING_SCRIPT = """
import time, sys, json, pathlib
start = time.time()
pathlib.Path(sys.argv[1], "times.json").write_text(json.dumps({"start": start, "end": time.time()}))
"""
TRAINING_SCRIPT = """
import time, os, json
start = time.time()
path = os.path.join(os.environ["SM_MODEL_DIR"], "times.json")
open(path, "w").write(json.dumps({"start": start, "end": time.time()}))
"""


def _sourcedir(script: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = script.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _wait(describe: Any, key: str) -> tuple[dict[str, Any], float]:
    while True:
        desc = describe()
        if desc[key] in ("Completed", "Failed", "Stopped"):
            return desc, time.time()
        time.sleep(0.05)


def run_processing(sm: Any, s3: Any, name: str) -> dict[str, float]:
    created = time.time()
    sm.create_processing_job(
        ProcessingJobName=name,
        RoleArn=ROLE,
        AppSpecification={
            "ImageUri": SKLEARN_IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/bench.py"],
            "ContainerArguments": ["/opt/ml/processing/output"],
        },
        ProcessingInputs=[
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": f"s3://{BUCKET}/code/bench.py",
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                },
            },
            {
                "InputName": "data",
                "S3Input": {
                    "S3Uri": f"s3://{BUCKET}/data/",
                    "LocalPath": "/opt/ml/processing/input/data",
                    "S3DataType": "S3Prefix",
                },
            },
        ],
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "out",
                    "S3Output": {
                        "S3Uri": f"s3://{BUCKET}/out/{name}",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
    )
    desc, terminal = _wait(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")
    if desc["ProcessingJobStatus"] != "Completed":
        raise RuntimeError(f"{name}: {desc.get('FailureReason')}")
    times = json.loads(s3.get_object(Bucket=BUCKET, Key=f"out/{name}/times.json")["Body"].read())
    return _sample(created, times, terminal)


def run_training(sm: Any, s3: Any, name: str) -> dict[str, float]:
    created = time.time()
    sm.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File"},
        HyperParameters={
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/code/sourcedir.tar.gz"),
            "epochs": "1",
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/"}},
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/models"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 120},
    )
    desc, terminal = _wait(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    if desc["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"{name}: {desc.get('FailureReason')}")
    body = s3.get_object(Bucket=BUCKET, Key=f"models/{name}/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        handle = tar.extractfile("times.json")
        assert handle is not None
        times = json.loads(handle.read())
    return _sample(created, times, terminal)


def _sample(created: float, times: dict[str, float], terminal: float) -> dict[str, float]:
    return {
        "create_to_start": times["start"] - created,
        "end_to_terminal": terminal - times["end"],
        "create_to_terminal": terminal - created,
    }


def _stats(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key in samples[0]:
        values = sorted(s[key] for s in samples)
        out[key] = {
            "median_s": round(statistics.median(values), 3),
            "p90_s": round(values[min(len(values) - 1, int(0.9 * len(values)))], 3),
            "min_s": round(values[0], 3),
            "max_s": round(values[-1], 3),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="measured jobs per kind (default 10)")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    from devstack.sagemaker.service import SageMakerService

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="devstack-bench-") as state:
        service = SageMakerService(state, endpoint, REGION)
        service.start("127.0.0.1", 0)
        try:
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)
            sm = boto3.client("sagemaker", endpoint_url=service.url, region_name=REGION, **CREDENTIALS)
            s3.create_bucket(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key="data/rows.csv", Body=b"1,2\n" * 1000)
            s3.put_object(Bucket=BUCKET, Key="code/bench.py", Body=PROCESSING_SCRIPT.encode())
            s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=_sourcedir(TRAINING_SCRIPT))
            stamp = int(time.time())
            for kind, runner in (("processing", run_processing), ("training", run_training)):
                runner(sm, s3, f"bench-{kind}-{stamp}-warmup")
                samples = [runner(sm, s3, f"bench-{kind}-{stamp}-{i}") for i in range(args.runs)]
                results[kind] = {"runs": args.runs, **_stats(samples)}
                print(kind, json.dumps(results[kind]))
        finally:
            service.stop()
            moto.stop()

    machine = describe_machine()
    payload = {"benchmark": "devstack_overhead", "machine": machine, "results": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "devstack_overhead.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# devstack SageMaker: per-job overhead",
        "",
        f"Machine: {machine['summary']} (commit {machine['git_commit']}).",
        "",
        "Each job runs a script that only records its start and end time, so every second below is the",
        "service's own overhead: S3 download, sandbox and config files, interpreter start, uploads, status.",
        f"{args.runs} measured jobs per kind, one at a time, after one warm-up job.",
        "Reproduce: `.venv/bin/python benchmarks/devstack_overhead.py`.",
        "",
        "| job | measure | median (s) | p90 (s) | min (s) | max (s) |",
        "|---|---|---|---|---|---|",
    ]
    for kind, stats in results.items():
        for measure in ("create_to_start", "end_to_terminal", "create_to_terminal"):
            s = stats[measure]
            lines.append(f"| {kind} | {measure} | {s['median_s']} | {s['p90_s']} | {s['min_s']} | {s['max_s']} |")
    (RESULTS / "devstack_overhead.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
