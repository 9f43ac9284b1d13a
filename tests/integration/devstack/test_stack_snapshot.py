"""moto state saved at stop (SIGTERM) comes back, in full, when ``devstack.moto_server`` starts again.

moto's backends are global to a process, so each server here is its own ``python -m devstack.moto_server``
process: resetting an in-process server would wipe other tests' state.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.moto_server import Snapshotter
from devstack.stack import free_port

pytestmark = pytest.mark.integration


class _AwsProcess:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Snapshotter:
        (self.state_dir / "ready.json").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack.moto_server",
                "--port",
                str(self.port),
                "--state-dir",
                str(self.state_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not (self.state_dir / "ready.json").exists():
            assert self.proc.poll() is None, self.proc.stderr.read().decode() if self.proc.stderr else ""
            assert time.monotonic() < deadline, "moto did not become ready"
            time.sleep(0.1)
        return Snapshotter(self.url, "us-east-1")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
            assert self.proc.returncode == 0


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[_AwsProcess]:
    proc = _AwsProcess(tmp_path / "aws")
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.proc.kill()
        proc.proc.wait()


def test_state_survives_a_restart(aws: _AwsProcess) -> None:
    snap = aws.start()
    s3, logs, cw, sns, iam, sm = (snap.client(s) for s in ("s3", "logs", "cloudwatch", "sns", "iam", "secretsmanager"))
    s3.create_bucket(Bucket="snap-bucket")
    s3.put_object(Bucket="snap-bucket", Key="dir/a b.json", Body=b'{"a":1}', ContentType="application/json")
    s3.put_object(Bucket="snap-bucket", Key="big.bin", Body=bytes(range(256)) * 4096, Metadata={"k": "v"})
    s3.create_bucket(Bucket="snap-empty")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    logs.put_retention_policy(logGroupName="/aws/sagemaker/TrainingJobs", retentionInDays=7)
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName="job/algo-1")
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName="job/algo-1",
        logEvents=[{"timestamp": now + i, "message": f"line {i}"} for i in range(3)],
    )
    topic = sns.create_topic(Name="ml-alerts")["TopicArn"]
    cw.put_metric_alarm(
        AlarmName="endpoint-5xx",
        MetricName="Invocation5XXErrors",
        Namespace="AWS/SageMaker",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        Dimensions=[{"Name": "EndpointName", "Value": "fraud"}],
        AlarmActions=[topic],
        Tags=[{"Key": "owner", "Value": "ml-platform"}, {"Key": "cost-centre", "Value": "CC-1"}],
    )
    cw.set_alarm_state(AlarmName="endpoint-5xx", StateValue="ALARM", StateReason="test")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "x"}}]}
    iam.create_role(RoleName="sm-exec", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName="sm-exec",
        PolicyName="s3",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    sm.create_secret(Name="snowflake/creds", SecretString='{"user": "u"}')

    aws.stop()
    manifest = json.loads((aws.state_dir / "snapshot" / "manifest.json").read_text())
    assert {kind: len(manifest[kind]) for kind in manifest if isinstance(manifest[kind], list)} == {
        "iam_roles": 1,
        "s3_buckets": 2,
        "sns_topics": 1,
        "log_groups": 1,
        "cloudwatch_alarms": 1,
        "secrets": 1,
    }

    snap = aws.start()
    s3, logs, cw, sns, iam, sm = (snap.client(s) for s in ("s3", "logs", "cloudwatch", "sns", "iam", "secretsmanager"))

    assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == ["snap-bucket", "snap-empty"]
    obj = s3.get_object(Bucket="snap-bucket", Key="dir/a b.json")
    assert (obj["Body"].read(), obj["ContentType"]) == (b'{"a":1}', "application/json")
    big = s3.get_object(Bucket="snap-bucket", Key="big.bin")
    assert big["Body"].read() == bytes(range(256)) * 4096
    assert big["Metadata"] == {"k": "v"}
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName="job/algo-1", startFromHead=True
    )["events"]
    assert [e["message"] for e in events] == ["line 0", "line 1", "line 2"]
    group = logs.describe_log_groups()["logGroups"][0]
    assert group["retentionInDays"] == 7
    alarm = cw.describe_alarms(AlarmNames=["endpoint-5xx"])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM"
    assert alarm["AlarmActions"] == [topic]
    assert cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"] == [
        {"Key": "owner", "Value": "ml-platform"},
        {"Key": "cost-centre", "Value": "CC-1"},
    ]
    assert [t["TopicArn"] for t in sns.list_topics()["Topics"]] == [topic]
    assert (
        iam.get_role_policy(RoleName="sm-exec", PolicyName="s3")["PolicyDocument"]["Statement"][0]["Action"] == "s3:*"
    )
    assert sm.get_secret_value(SecretId="snowflake/creds")["SecretString"] == '{"user": "u"}'


def test_a_second_stop_replaces_the_snapshot(aws: _AwsProcess) -> None:
    s3 = aws.start().client("s3")
    s3.create_bucket(Bucket="first-bucket")
    aws.stop()
    s3 = aws.start().client("s3")
    s3.delete_bucket(Bucket="first-bucket")
    s3.create_bucket(Bucket="second-bucket")
    aws.stop()
    manifest = json.loads((aws.state_dir / "snapshot" / "manifest.json").read_text())
    assert [b["Name"] for b in manifest["s3_buckets"]] == ["second-bucket"]
    assert sorted(p.name for p in aws.state_dir.iterdir()) == ["snapshot"]
