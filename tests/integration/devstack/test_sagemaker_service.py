"""The service as the stack runs it: CLI, health, restart recovery, fault injection, the provider's log reader."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.sagemaker.service import SageMakerService
from tests.integration.devstack.sagemaker_support import (
    CREDENTIALS,
    REGION,
    ROLE,
    SKLEARN_IMAGE,
    put_sourcedir,
    put_text,
    wait_for,
)

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _start_cli(state_dir: Path, moto_endpoint: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.sagemaker",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--state-dir",
            str(state_dir),
            "--aws-endpoint-url",
            moto_endpoint,
            "--region",
            REGION,
        ],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            status, body = _http("GET", f"http://127.0.0.1:{port}/_devstack/health")
            if status == 200 and body["status"] == "ok":
                return process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the service did not become healthy")
        time.sleep(0.1)


def _training_request(name: str, bucket: str, source: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": json.dumps(source)},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/"}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    }


def _client(url: str) -> Any:
    return boto3.client(
        "sagemaker",
        endpoint_url=url,
        region_name=REGION,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        **CREDENTIALS,
    )


def test_cli_restart_fails_jobs_that_were_running_and_keeps_the_rest(
    tmp_path: Path, moto_endpoint: str, s3: Any, bucket: str, unique_name: Any
) -> None:
    put_text(s3, bucket, "train/data.csv", "1\n")
    slow = put_sourcedir(s3, bucket, "slow/sourcedir.tar.gz", {"train.py": "import time\ntime.sleep(120)\n"})
    fast = put_sourcedir(s3, bucket, "fast/sourcedir.tar.gz", {"train.py": "print('done')\n"})
    state = tmp_path / "state"
    port = _free_port()
    first = _start_cli(state, moto_endpoint, port)
    try:
        sm = _client(f"http://127.0.0.1:{port}")
        done, running = unique_name("done"), unique_name("running")
        sm.create_training_job(**_training_request(done, bucket, fast))
        wait_for(lambda: sm.describe_training_job(TrainingJobName=done), "TrainingJobStatus")
        sm.create_training_job(**_training_request(running, bucket, slow))
        deadline = time.monotonic() + 20
        while sm.describe_training_job(TrainingJobName=running)["SecondaryStatus"] != "Training":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.3)
        job_pid = json.loads((state / "state" / "training-jobs.json").read_text())[running]["pid"]
    finally:
        first.kill()  # a crash: no chance to clean up
        first.wait()
    assert Path(f"/proc/{job_pid}").exists(), "the orphaned job process should outlive the crashed service"

    second = _start_cli(state, moto_endpoint, port)
    try:
        sm = _client(f"http://127.0.0.1:{port}")
        assert sm.describe_training_job(TrainingJobName=done)["TrainingJobStatus"] == "Completed"
        lost = sm.describe_training_job(TrainingJobName=running)
        assert lost["TrainingJobStatus"] == "Failed"
        assert "stopped while this job was running" in lost["FailureReason"]
        deadline = time.monotonic() + 5
        while Path(f"/proc/{job_pid}").exists() and _is_alive(job_pid):
            assert time.monotonic() < deadline, "the orphaned job process was not killed on restart"
            time.sleep(0.1)
    finally:
        second.terminate()
        second.wait(timeout=30)


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_fault_injection(sagemaker_service: SageMakerService, s3: Any, bucket: str, unique_name: Any) -> None:
    url = sagemaker_service.url
    assert url is not None
    sm = _client(url)
    put_text(s3, bucket, "train/data.csv", "1\n")
    source = put_sourcedir(s3, bucket, "ok/sourcedir.tar.gz", {"train.py": "print('ok')\n"})
    prefix = unique_name("flt")
    status, active = _http(
        "POST",
        f"{url}/_devstack/faults",
        {
            "fail_jobs": {"name_prefix": f"{prefix}-fail", "count": 1, "reason": "CapacityError: no capacity"},
            "delay_jobs": {"name_prefix": f"{prefix}-slow", "seconds": 1.5},
            "throttle": {"action": "ListModels", "seconds": 30},
        },
    )
    assert status == 200
    assert active["fail_jobs"] == [
        {"name_prefix": f"{prefix}-fail", "count": 1, "reason": "CapacityError: no capacity"}
    ]
    # the service counts calls since its faults were last cleared: earlier tests' calls are in the counts
    status, before = _http("GET", f"{url}/_devstack/faults")
    try:
        with pytest.raises(ClientError) as throttled:
            sm.list_models()
        assert throttled.value.response["Error"]["Code"] == "ThrottlingException"

        sm.create_training_job(**_training_request(f"{prefix}-fail-1", bucket, source))
        sm.create_training_job(**_training_request(f"{prefix}-fail-2", bucket, source))
        started = time.monotonic()
        sm.create_training_job(**_training_request(f"{prefix}-slow-1", bucket, source))
        failed = wait_for(lambda: sm.describe_training_job(TrainingJobName=f"{prefix}-fail-1"), "TrainingJobStatus")
        assert failed["TrainingJobStatus"] == "Failed"
        assert failed["FailureReason"] == "CapacityError: no capacity"
        second = wait_for(lambda: sm.describe_training_job(TrainingJobName=f"{prefix}-fail-2"), "TrainingJobStatus")
        assert second["TrainingJobStatus"] == "Completed"
        slow = wait_for(lambda: sm.describe_training_job(TrainingJobName=f"{prefix}-slow-1"), "TrainingJobStatus")
        assert slow["TrainingJobStatus"] == "Completed"
        assert time.monotonic() - started >= 1.5
        status, now = _http("GET", f"{url}/_devstack/faults")
        counted = {a: now["calls"].get(a, 0) - before["calls"].get(a, 0) for a in ("CreateTrainingJob", "ListModels")}
        assert counted == {"CreateTrainingJob": 3, "ListModels": 0}, "a throttled call is not counted as handled"
    finally:
        status, cleared = _http("DELETE", f"{url}/_devstack/faults")
    assert status == 200
    assert cleared == {
        "fail_jobs": [], "delay_jobs": [], "throttle": [], "fail_updates": [], "throttled": {}, "calls": {},
        "hold_answers": [],
    }  # fmt: skip
    sm.list_models()
    status, error = _http("POST", f"{url}/_devstack/faults", {"explode": True})
    assert status == 400
    assert "Unknown fault keys" in error["message"]


def test_provider_hook_prints_the_job_log(
    sagemaker_service: SageMakerService,
    moto_endpoint: str,
    s3: Any,
    bucket: str,
    unique_name: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The Amazon provider's SageMakerHook finds the job's log stream and prints its lines."""
    from airflow.providers.amazon.aws.hooks.sagemaker import LogState, SageMakerHook

    connection = {
        "conn_type": "aws",
        "login": CREDENTIALS["aws_access_key_id"],
        "password": CREDENTIALS["aws_secret_access_key"],
        "extra": {
            "region_name": REGION,
            "endpoint_url": moto_endpoint,
            "service_config": {"sagemaker": {"endpoint_url": sagemaker_service.url}},
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_DEVSTACK_AWS", json.dumps(connection))
    put_text(s3, bucket, "train/data.csv", "1\n")
    source = put_sourcedir(s3, bucket, "log/sourcedir.tar.gz", {"train.py": "print('epoch 1\\tloss 0.5')\n"})
    name = unique_name("hooklog")
    hook = SageMakerHook(aws_conn_id="devstack_aws")
    hook.create_training_job(_training_request(name, bucket, source), wait_for_completion=False, print_log=False)
    wait_for(lambda: hook.describe_training_job(name), "TrainingJobStatus")
    time.sleep(1.0)  # the log sink ships every 0.5 s

    with caplog.at_level(logging.INFO):
        state, description, _ = hook.describe_training_job_with_log(
            name, {}, [], 1, LogState.TAILING, {}, time.monotonic() - 60
        )

    assert state == LogState.JOB_COMPLETE
    assert description["TrainingJobStatus"] == "Completed"
    printed = caplog.text + capsys.readouterr().out  # Airflow may log through structlog to stdout
    assert "epoch 1#011loss 0.5" in printed
    assert "Training job completed" in printed
