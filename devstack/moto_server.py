"""moto server for S3, CloudWatch, CloudWatch Logs, SNS, STS, IAM (and more), with state kept on disk.

``python -m devstack.moto_server --port 5000 --state-dir .devstack/aws [--bucket NAME ...]``

moto keeps everything in memory and has no persistence option. This launcher runs moto's own threaded
server and makes its state survive a restart with a snapshot taken through the AWS APIs themselves:

* at start, after the server listens, the snapshot in ``<state-dir>/snapshot/`` (if any) is replayed
  into it (buckets and objects, IAM roles and policies, SNS topics, log groups and their events,
  CloudWatch alarms with their tags, Secrets Manager secrets), then ``<state-dir>/ready.json`` is written;
* on SIGTERM or SIGINT the state is read back through the same APIs and written to a new snapshot,
  which replaces the old one atomically, before the server stops.

A process killed with SIGKILL keeps the previous snapshot. Only the configured region is captured.
CloudWatch metric datapoints, S3 object versions and tags, SNS subscriptions and STS sessions are not
kept (see docs/devstack.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from devstack.processes import server_parser, stop_signalled

log = logging.getLogger("devstack.moto_server")

SNAPSHOT_DIR = "snapshot"
READY_FILE = "ready.json"
MANIFEST = "manifest.json"
SNAPSHOT_FORMAT = 1
SNAPSHOT_SERVICES = ("iam", "s3", "sns", "logs", "cloudwatch", "secretsmanager")
CREDENTIALS = {"aws_access_key_id": "devstack", "aws_secret_access_key": "devstack"}


class Snapshotter:
    """Copies moto's state to and from a directory through the AWS APIs.

    :param endpoint_url: the moto server.
    :param region: the region to capture and restore.
    """

    def __init__(self, endpoint_url: str, region: str) -> None:
        import boto3
        from botocore.config import Config

        self._session = boto3.session.Session(region_name=region, **CREDENTIALS)
        self._config = Config(retries={"max_attempts": 2, "mode": "standard"}, s3={"addressing_style": "path"})
        self._endpoint_url = endpoint_url
        self.region = region
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """Return a boto3 client for ``service`` against the moto server (created once, then reused).

        :param service: boto3 service name.
        """
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(
                    service, endpoint_url=self._endpoint_url, config=self._config
                )
            return self._clients[service]

    def warm_up(self) -> None:
        """Create every client a snapshot needs now, so that saving at stop is quick."""
        for service in SNAPSHOT_SERVICES:
            self.client(service)

    # ------------------------------------------------------------------ save
    def save(self, target: Path) -> dict[str, int]:
        """Write the current state to ``target`` (replaced atomically).

        :param target: snapshot directory.
        :return: counts of what was saved, by kind.
        """
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "s3").mkdir(parents=True)
        manifest: dict[str, Any] = {"format": SNAPSHOT_FORMAT, "region": self.region, "saved_at": time.time()}
        counts: dict[str, int] = {}
        for kind, saver in self._savers():
            try:
                manifest[kind] = saver(tmp)
            except Exception:
                # a service we cannot read must not cost the other services their state
                log.exception("Could not save %s; its previous state is lost", kind)
                manifest[kind] = []
            counts[kind] = len(manifest[kind])
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return counts

    def _savers(self) -> list[tuple[str, Callable[[Path], list[Any]]]]:
        return [
            ("iam_roles", self._save_iam_roles),
            ("s3_buckets", self._save_s3),
            ("sns_topics", self._save_sns),
            ("log_groups", self._save_logs),
            ("cloudwatch_alarms", self._save_alarms),
            ("secrets", self._save_secrets),
        ]

    def _save_iam_roles(self, _root: Path) -> list[dict[str, Any]]:
        iam = self.client("iam")
        roles = []
        for role in _listed(iam, "list_roles", "Roles"):
            name = role["RoleName"]
            inline = {
                pname: iam.get_role_policy(RoleName=name, PolicyName=pname)["PolicyDocument"]
                for pname in _listed(iam, "list_role_policies", "PolicyNames", RoleName=name)
            }
            attached = [
                a["PolicyArn"] for a in _listed(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name)
            ]
            roles.append(
                {
                    "RoleName": name,
                    "Path": role.get("Path", "/"),
                    "AssumeRolePolicyDocument": role.get("AssumeRolePolicyDocument") or {},
                    "Description": role.get("Description", ""),
                    "InlinePolicies": inline,
                    "AttachedPolicyArns": attached,
                }
            )
        return roles

    def _save_s3(self, root: Path) -> list[dict[str, Any]]:
        s3 = self.client("s3")
        buckets = []
        for bucket in s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            objects = []
            for item in _listed(s3, "list_objects_v2", "Contents", Bucket=name):
                key = item["Key"]
                obj = s3.get_object(Bucket=name, Key=key)
                blob = hashlib.sha256(f"{name}/{key}".encode()).hexdigest()
                with (root / "s3" / blob).open("wb") as out:
                    shutil.copyfileobj(obj["Body"], out)
                objects.append(
                    {
                        "Key": key,
                        "Blob": blob,
                        "ContentType": obj.get("ContentType"),
                        "Metadata": obj.get("Metadata", {}),
                    }
                )
            buckets.append({"Name": name, "Objects": objects})
        return buckets

    def _save_sns(self, _root: Path) -> list[dict[str, Any]]:
        sns = self.client("sns")
        topics = []
        for topic in _listed(sns, "list_topics", "Topics"):
            attrs = sns.get_topic_attributes(TopicArn=topic["TopicArn"])["Attributes"]
            keep = {k: v for k, v in attrs.items() if k in ("DisplayName", "FifoTopic", "Policy")}
            topics.append({"Name": topic["TopicArn"].rsplit(":", 1)[-1], "Attributes": keep})
        return topics

    def _save_logs(self, _root: Path) -> list[dict[str, Any]]:
        logs = self.client("logs")
        groups = []
        for group in _listed(logs, "describe_log_groups", "logGroups"):
            gname = group["logGroupName"]
            streams = []
            for stream in _listed(logs, "describe_log_streams", "logStreams", logGroupName=gname):
                sname = stream["logStreamName"]
                events = [
                    {"timestamp": e["timestamp"], "message": e["message"]} for e in _log_events(logs, gname, sname)
                ]
                streams.append({"Name": sname, "Events": events})
            groups.append({"Name": gname, "RetentionInDays": group.get("retentionInDays"), "Streams": streams})
        return groups

    def _save_alarms(self, _root: Path) -> list[dict[str, Any]]:
        cw = self.client("cloudwatch")
        fields = (
            "AlarmName",
            "AlarmDescription",
            "ActionsEnabled",
            "OKActions",
            "AlarmActions",
            "InsufficientDataActions",
            "MetricName",
            "Namespace",
            "Statistic",
            "ExtendedStatistic",
            "Dimensions",
            "Period",
            "Unit",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "EvaluateLowSampleCountPercentile",
            "ThresholdMetricId",
            "Metrics",
        )
        alarms = []
        for alarm in _listed(cw, "describe_alarms", "MetricAlarms", AlarmTypes=["MetricAlarm"]):
            spec = {k: alarm[k] for k in fields if alarm.get(k) not in (None, [], "")}
            if tags := cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags"):
                spec["Tags"] = tags  # restored by the PutMetricAlarm that re-creates the alarm
            alarms.append({"Spec": spec, "StateValue": alarm.get("StateValue")})
        return alarms

    def _save_secrets(self, _root: Path) -> list[dict[str, Any]]:
        sm = self.client("secretsmanager")
        secrets = []
        for secret in _listed(sm, "list_secrets", "SecretList"):
            value = sm.get_secret_value(SecretId=secret["ARN"])
            item: dict[str, Any] = {"Name": secret["Name"], "Description": secret.get("Description", "")}
            if "SecretString" in value:
                item["SecretString"] = value["SecretString"]
            else:
                item["SecretBinary"] = base64.b64encode(value["SecretBinary"]).decode()
            secrets.append(item)
        return secrets

    # --------------------------------------------------------------- restore
    def restore(self, source: Path) -> dict[str, int]:
        """Replay a snapshot written by :meth:`save` into the (empty) server.

        :param source: snapshot directory.
        :return: counts of what was restored, by kind.
        """
        manifest = json.loads((source / MANIFEST).read_text())
        if manifest.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"{source / MANIFEST}: unsupported snapshot format {manifest.get('format')!r}")
        counts: dict[str, int] = {}
        restorers: dict[str, Callable[[Path, list[Any]], None]] = {
            "iam_roles": self._restore_iam_roles,
            "s3_buckets": self._restore_s3,
            "sns_topics": self._restore_sns,
            "log_groups": self._restore_logs,
            "cloudwatch_alarms": self._restore_alarms,
            "secrets": self._restore_secrets,
        }
        for kind, restorer in restorers.items():
            items = manifest.get(kind, [])
            try:
                restorer(source, items)
            except Exception:
                log.exception("Could not restore %s from %s", kind, source)
                raise
            counts[kind] = len(items)
        return counts

    def _restore_iam_roles(self, _root: Path, roles: list[dict[str, Any]]) -> None:
        iam = self.client("iam")
        for role in roles:
            iam.create_role(
                RoleName=role["RoleName"],
                Path=role["Path"],
                AssumeRolePolicyDocument=json.dumps(role["AssumeRolePolicyDocument"]),
                Description=role["Description"],
            )
            for pname, doc in role["InlinePolicies"].items():
                iam.put_role_policy(RoleName=role["RoleName"], PolicyName=pname, PolicyDocument=json.dumps(doc))
            for arn in role["AttachedPolicyArns"]:
                iam.attach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)

    def _restore_s3(self, root: Path, buckets: list[dict[str, Any]]) -> None:
        s3 = self.client("s3")
        for bucket in buckets:
            create: dict[str, Any] = {"Bucket": bucket["Name"]}
            if self.region != "us-east-1":
                create["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            s3.create_bucket(**create)
            for obj in bucket["Objects"]:
                extra: dict[str, Any] = {"Metadata": obj.get("Metadata") or {}}
                if obj.get("ContentType"):
                    extra["ContentType"] = obj["ContentType"]
                with (root / "s3" / obj["Blob"]).open("rb") as body:
                    s3.put_object(Bucket=bucket["Name"], Key=obj["Key"], Body=body, **extra)

    def _restore_sns(self, _root: Path, topics: list[dict[str, Any]]) -> None:
        sns = self.client("sns")
        for topic in topics:
            sns.create_topic(Name=topic["Name"], Attributes=topic["Attributes"])

    def _restore_logs(self, _root: Path, groups: list[dict[str, Any]]) -> None:
        logs = self.client("logs")
        for group in groups:
            logs.create_log_group(logGroupName=group["Name"])
            if group.get("RetentionInDays"):
                logs.put_retention_policy(logGroupName=group["Name"], retentionInDays=group["RetentionInDays"])
            for stream in group["Streams"]:
                logs.create_log_stream(logGroupName=group["Name"], logStreamName=stream["Name"])
                events = sorted(stream["Events"], key=lambda e: e["timestamp"])
                for start in range(0, len(events), 5000):
                    logs.put_log_events(
                        logGroupName=group["Name"],
                        logStreamName=stream["Name"],
                        logEvents=events[start : start + 5000],
                    )

    def _restore_alarms(self, _root: Path, alarms: list[dict[str, Any]]) -> None:
        cw = self.client("cloudwatch")
        for alarm in alarms:
            cw.put_metric_alarm(**alarm["Spec"])
            if alarm.get("StateValue"):
                cw.set_alarm_state(
                    AlarmName=alarm["Spec"]["AlarmName"],
                    StateValue=alarm["StateValue"],
                    StateReason="Restored by the devstack after a restart",
                )

    def _restore_secrets(self, _root: Path, secrets: list[dict[str, Any]]) -> None:
        sm = self.client("secretsmanager")
        for secret in secrets:
            kwargs: dict[str, Any] = {"Name": secret["Name"], "Description": secret["Description"]}
            if "SecretString" in secret:
                kwargs["SecretString"] = secret["SecretString"]
            else:
                kwargs["SecretBinary"] = base64.b64decode(secret["SecretBinary"])
            sm.create_secret(**kwargs)


def _listed(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
    """Every item under ``key`` of every page ``operation`` answers (``kwargs``: its parameters)."""
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def _log_events(logs: Any, group: str, stream: str) -> Iterator[dict[str, Any]]:
    token = None
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        page = logs.get_log_events(**kwargs)
        yield from page["events"]
        if not page["events"] or page.get("nextForwardToken") in (None, token):
            return
        token = page["nextForwardToken"]


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Run moto until SIGTERM or SIGINT, restoring state at start and saving it at stop.

    :param argv: command-line arguments (defaults to ``sys.argv[1:]``).
    :return: the process exit code.
    """
    parser = server_parser("python -m devstack.moto_server", __doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, required=True, help="directory for the snapshot and ready file")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--bucket", action="append", default=[], help="S3 bucket to create at start (repeatable)")
    parser.add_argument("--no-persist", action="store_true", help="neither restore nor save a snapshot")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)

    from moto.server import ThreadedMotoServer

    from devstack.autoscaling import install as install_autoscaling
    from devstack.cloudwatch import install as install_cloudwatch

    # CloudWatch's exact dimension matching, percentiles, metric math and alarm history (devstack/cloudwatch)
    install_cloudwatch()
    # tags on scalable targets; DeregisterScalableTarget deletes the target's scaling policies and scheduled
    # actions (devstack/autoscaling)
    install_autoscaling()
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    ready = state_dir / READY_FILE
    ready.unlink(missing_ok=True)
    snapshot = state_dir / SNAPSHOT_DIR

    stop = stop_signalled()

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    snap = Snapshotter(endpoint, args.region)
    restored: dict[str, int] = {}
    if not args.no_persist and (snapshot / MANIFEST).exists():
        started = time.perf_counter()
        restored = snap.restore(snapshot)
        log.info("Restored %s from %s in %.2fs", restored, snapshot, time.perf_counter() - started)
    s3 = snap.client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in args.bucket:
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
            log.info("Created bucket %s", bucket)
    _write_json_atomic(ready, {"pid": os.getpid(), "url": endpoint, "restored": restored})
    log.info("moto ready on %s", endpoint)
    if not args.no_persist:
        threading.Thread(target=snap.warm_up, name="snapshot-warm-up", daemon=True).start()

    stop.wait()
    ready.unlink(missing_ok=True)
    if not args.no_persist:
        started = time.perf_counter()
        saved = snap.save(snapshot)
        log.info("Saved %s to %s in %.2fs", saved, snapshot, time.perf_counter() - started)
    server.stop()
    log.info("moto stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
