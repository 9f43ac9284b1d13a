"""A small read-only console: HTML pages of the devstack's resources, served under ``/console/``.

When a task's AWS connection points at the devstack, the package's extra links and notification links open
these pages instead of the AWS console. Every page is built from the service's own API answers (the same
``Describe*`` calls a client makes) and from the local AWS endpoint (S3, CloudWatch, CloudWatch Logs); nothing
here changes state.

- ``GET /console/``: an index with the most recent resources;
- ``GET /console/jobs/{training|processing|tuning|transform}/<name>``: status, failure reason, the
  description (every ``s3://`` value a link) and the job's CloudWatch log (a tuning job: its training jobs);
- ``GET /console/model-packages/<group>/<version>``: status, approval, metrics and customer metadata;
- ``GET /console/endpoints/<name>``: status, variants and their weights, monitoring schedules;
- ``GET /console/alarms?prefix=<prefix>``: CloudWatch alarms by name prefix, with state and reason;
- ``GET /console/s3/<bucket>/<key>``: the object with its content type; ``<bucket>/<prefix>/``: its keys.

Text from resources (names, reasons, metadata, log lines) is HTML-escaped. An unknown resource answers 404.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import mimetypes
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from botocore.exceptions import ClientError

from devstack.sagemaker.errors import SageMakerError

if TYPE_CHECKING:
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

PREFIX = "/console"
HTML = "text/html; charset=utf-8"
#: the newest log lines a job page shows
LOG_LINES = 500
#: bytes of an S3 object sent per write
CHUNK = 1024 * 1024
#: what a served S3 object may do: scripts run (HTML reports use them), but in an origin of their own
OBJECT_POLICY = "sandbox allow-scripts"

#: job kind -> (Describe action, name parameter, status key, log group)
JOB_KINDS: dict[str, tuple[str, str, str, str | None]] = {
    "training": ("DescribeTrainingJob", "TrainingJobName", "TrainingJobStatus", "/aws/sagemaker/TrainingJobs"),
    "processing": (
        "DescribeProcessingJob",
        "ProcessingJobName",
        "ProcessingJobStatus",
        "/aws/sagemaker/ProcessingJobs",
    ),
    "tuning": (
        "DescribeHyperParameterTuningJob",
        "HyperParameterTuningJobName",
        "HyperParameterTuningJobStatus",
        None,
    ),
    "transform": ("DescribeTransformJob", "TransformJobName", "TransformJobStatus", "/aws/sagemaker/TransformJobs"),
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#16191f}"
    "table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #d5dbdb;padding:.25em .5em;"
    "vertical-align:top;text-align:left}th{background:#f2f3f3}pre{background:#f8f8f8;padding:.6em;"
    "overflow-x:auto;max-height:40em}.status{font-weight:bold}nav a{margin-right:1em}"
)


class NotFoundError(Exception):
    """The resource a page names does not exist."""


# ------------------------------------------------------------------------------------------------- HTML


def esc(value: Any) -> str:
    """``value`` as escaped HTML text."""
    return html.escape(str(value), quote=True)


def link(href: str, text: Any) -> str:
    """An anchor to ``href`` (already URL-quoted) showing ``text``."""
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def page_url(*parts: str, query: str = "") -> str:
    """The console URL of a page: ``/console/<part>/<part>``, each part URL-quoted (``/`` kept)."""
    path = PREFIX + "".join("/" + quote(part, safe="/") for part in parts)
    return path + (f"?{query}" if query else "")


def s3_page(uri: str) -> str:
    """The console URL of an ``s3://bucket/key`` URI."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    return page_url("s3", bucket, key) if key else page_url("s3", bucket) + "/"


def _time(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC).isoformat(timespec="seconds")
    return str(value)


def render(value: Any, key: str = "") -> str:
    """A JSON value as HTML: objects as tables, lists as lists, ``s3://`` strings as links, times as ISO."""
    if isinstance(value, dict):
        if not value:
            return "<i>none</i>"
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{render(v, str(k))}</td></tr>" for k, v in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, list):
        if not value:
            return "<i>none</i>"
        return "<ol>" + "".join(f"<li>{render(item, key)}</li>" for item in value) + "</ol>"
    if isinstance(value, str) and value.startswith("s3://") and len(value) > len("s3://"):
        return link(s3_page(value), value)
    if key.endswith(("Time", "Timestamp")):
        return esc(_time(value))
    return esc(value)


def table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table of already-rendered cells (``headers`` are escaped)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>" if body else "<p><i>none</i></p>"


def document(title: str, *sections: str) -> str:
    """A whole page."""
    nav = f"<nav>{link(PREFIX + '/', 'devstack console')}{link(page_url('s3') + '/', 'S3')}"
    nav += f"{link(page_url('alarms'), 'alarms')}</nav>"
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{nav}<h1>{esc(title)}</h1>{''.join(sections)}</body></html>"
    )


def section(title: str, body: str) -> str:
    return f"<h2>{esc(title)}</h2>{body}"


# ------------------------------------------------------------------------------------------------ pages


class Console:
    """The console's pages, answered from ``service``.

    :param service: the SageMaker service whose HTTP server serves the pages.
    """

    def __init__(self, service: ServiceApi) -> None:
        self.service = service

    def register(self) -> None:
        """Serve ``GET /console...``."""
        self.service.register_route("GET", PREFIX, self.handle)

    # -- plumbing --------------------------------------------------------------------------------

    def handle(self, request: Any, path: str) -> None:
        """Answer one ``GET`` under ``/console``."""
        query = parse_qs(urlsplit(request.path).query)
        parts = [unquote(p) for p in path[len(PREFIX) :].split("/")]
        try:
            if path in (PREFIX, PREFIX + "/"):
                self._html(request, 200, self.index())
            elif len(parts) == 4 and parts[1] == "jobs" and parts[2] in JOB_KINDS and parts[3]:
                self._html(request, 200, self.job(parts[2], parts[3]))
            elif len(parts) == 4 and parts[1] == "model-packages" and parts[2] and parts[3]:
                self._html(request, 200, self.model_package(parts[2], parts[3]))
            elif len(parts) == 3 and parts[1] == "endpoints" and parts[2]:
                self._html(request, 200, self.endpoint(parts[2]))
            elif len(parts) == 2 and parts[1] == "alarms":
                self._html(request, 200, self.alarms((query.get("prefix") or [""])[0]))
            elif len(parts) >= 2 and parts[1] == "s3":
                raw = path[len(PREFIX + "/s3") :].lstrip("/")
                bucket, _, key = raw.partition("/")
                self.s3(request, unquote(bucket), unquote(key), trailing=raw.endswith("/") or not key)
            else:
                raise NotFoundError(f"The devstack console has no page {path}.")
        except NotFoundError as exc:
            self._html(request, 404, document("Not found", f"<p>{esc(exc)}</p>"))
        except Exception as exc:
            log.exception("Console page %s failed", path)
            self._html(request, 500, document("Error", f"<p>The page failed: {esc(exc)}</p>"))

    @staticmethod
    def _send(request: Any, status: int, body: bytes, content_type: str, **headers: str) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Cache-Control", "no-store")
        request.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers.items():
            request.send_header(name.replace("_", "-"), value)
        request.end_headers()
        request.wfile.write(body)

    def _html(self, request: Any, status: int, text: str) -> None:
        self._send(request, status, text.encode("utf-8"), HTML)

    def _describe(self, action: str, params: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            return self.service.invoke(action, params)
        except SageMakerError as exc:
            if exc.code in ("ValidationException", "ResourceNotFound"):
                raise NotFoundError(f"No {what}: {exc.message}") from exc
            if exc.code == "UnknownOperationException":
                raise NotFoundError(f"No {what}: this service does not run {action}.") from exc
            raise

    def _list(self, action: str, key: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The first page of a ``List*`` action, or nothing when the service does not answer it."""
        try:
            return list(self.service.invoke(action, {"MaxResults": 20, **(params or {})}).get(key) or [])
        except SageMakerError:
            return []

    # -- pages ----------------------------------------------------------------------------------

    def index(self) -> str:
        """The most recent resources of each kind."""
        sections = []
        for kind, (_, name_key, status_key, _group) in JOB_KINDS.items():
            action = {"tuning": "ListHyperParameterTuningJobs"}.get(kind, f"List{kind.title()}Jobs")
            summaries_key = {"tuning": "HyperParameterTuningJobSummaries"}.get(kind, f"{kind.title()}JobSummaries")
            rows = [
                (link(page_url("jobs", kind, s[name_key]), s[name_key]), esc(s.get(status_key, "")))
                for s in self._list(action, summaries_key, {"SortBy": "CreationTime", "SortOrder": "Descending"})
            ]
            sections.append(section(f"{kind.title()} jobs", table(("name", "status"), rows)))
        groups = self._list("ListModelPackageGroups", "ModelPackageGroupSummaryList")
        rows = []
        for group in groups:
            name = group["ModelPackageGroupName"]
            versions = self._list(
                "ListModelPackages",
                "ModelPackageSummaryList",
                {"ModelPackageGroupName": name, "SortBy": "CreationTime", "SortOrder": "Descending"},
            )
            cells = ", ".join(
                link(page_url("model-packages", name, str(v.get("ModelPackageVersion"))), v.get("ModelPackageVersion"))
                for v in versions
            )
            rows.append((esc(name), cells or "<i>none</i>"))
        sections.append(section("Model packages", table(("group", "versions"), rows)))
        rows = [
            (link(page_url("endpoints", e["EndpointName"]), e["EndpointName"]), esc(e.get("EndpointStatus", "")))
            for e in self._list("ListEndpoints", "Endpoints")
        ]
        sections.append(section("Endpoints", table(("name", "status"), rows)))
        return document("Devstack console", *sections)

    def job(self, kind: str, name: str) -> str:
        """A job's status, failure reason, description and log."""
        action, name_key, status_key, group = JOB_KINDS[kind]
        desc = self._describe(action, {name_key: name}, f"{kind} job {name}")
        summary = {"Status": desc.get(status_key), "FailureReason": desc.get("FailureReason")}
        if desc.get("SecondaryStatus"):
            summary["SecondaryStatus"] = desc["SecondaryStatus"]
        sections = [render({k: v for k, v in summary.items() if v is not None})]
        if kind == "tuning":
            jobs = self._list(
                "ListTrainingJobsForHyperParameterTuningJob",
                "TrainingJobSummaries",
                {"HyperParameterTuningJobName": name, "MaxResults": 100},
            )
            best = (desc.get("BestTrainingJob") or {}).get("TrainingJobName")
            rows = [
                (
                    link(page_url("jobs", "training", j["TrainingJobName"]), j["TrainingJobName"])
                    + (" (best)" if j["TrainingJobName"] == best else ""),
                    esc(j.get("TrainingJobStatus", "")),
                    render((j.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value", "")),
                )
                for j in jobs
            ]
            sections.append(section("Training jobs", table(("name", "status", "objective"), rows)))
        sections.append(section("Description", render(desc)))
        if group is not None:
            sections.append(section(f"Log ({group})", self._log(group, name)))
        return document(f"{kind.title()} job {name}", *sections)

    def _log(self, group: str, name: str) -> str:
        logs = self.service.client("logs")
        try:
            streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{name}/")["logStreams"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return "<p><i>no log</i></p>"
            raise
        if not streams:
            return "<p><i>no log</i></p>"
        parts = []
        for stream in streams:
            events = logs.get_log_events(
                logGroupName=group, logStreamName=stream["logStreamName"], limit=LOG_LINES, startFromHead=False
            )["events"]
            text = "\n".join(str(e.get("message", "")).rstrip("\n") for e in events)
            parts.append(f"<h3>{esc(stream['logStreamName'])}</h3><pre>{esc(text)}</pre>")
        return "".join(parts)

    def model_package(self, group: str, version: str) -> str:
        """A model package version: status, approval, metrics, customer metadata (``s3://`` values linked)."""
        arn = self.service.arn("model-package", f"{group}/{version}")
        desc = self._describe("DescribeModelPackage", {"ModelPackageName": arn}, f"model package {group}/{version}")
        summary = {
            key: desc.get(key)
            for key in ("ModelPackageArn", "ModelPackageStatus", "ModelApprovalStatus", "ApprovalDescription")
            if desc.get(key) is not None
        }
        containers = (desc.get("InferenceSpecification") or {}).get("Containers") or []
        artifacts = [c.get("ModelDataUrl") for c in containers if c.get("ModelDataUrl")]
        return document(
            f"Model package {group} version {version}",
            render(summary),
            section("Metrics", render(desc.get("ModelMetrics") or {})),
            section("Customer metadata", render(desc.get("CustomerMetadataProperties") or {})),
            section("Model artifacts", render(artifacts)),
            section("Description", render(desc)),
        )

    def endpoint(self, name: str) -> str:
        """An endpoint: status, variants and their weights, monitoring schedules, its alarms."""
        desc = self._describe("DescribeEndpoint", {"EndpointName": name}, f"endpoint {name}")
        summary = {
            key: desc.get(key)
            for key in ("EndpointArn", "EndpointStatus", "EndpointConfigName", "FailureReason")
            if desc.get(key) is not None
        }
        variants = [
            (
                esc(v.get("VariantName", "")),
                esc(v.get("CurrentWeight", "")),
                esc(v.get("DesiredWeight", "")),
                esc(v.get("CurrentInstanceCount", "")),
                link(page_url("alarms", query="prefix=" + quote(f"{name}-{v.get('VariantName', '')}")), "alarms"),
            )
            for v in desc.get("ProductionVariants") or []
        ]
        schedules = []
        for item in self._list("ListMonitoringSchedules", "MonitoringScheduleSummaries", {"EndpointName": name}):
            schedule = self._describe(
                "DescribeMonitoringSchedule",
                {"MonitoringScheduleName": item["MonitoringScheduleName"]},
                f"monitoring schedule {item['MonitoringScheduleName']}",
            )
            last = schedule.get("LastMonitoringExecutionSummary") or {}
            job_arn = str(last.get("ProcessingJobArn") or "")
            job = job_arn.rsplit("/", 1)[-1]
            schedules.append(
                (
                    esc(schedule.get("MonitoringScheduleName", "")),
                    esc(schedule.get("MonitoringScheduleStatus", "")),
                    esc(
                        ((schedule.get("MonitoringScheduleConfig") or {}).get("ScheduleConfig") or {}).get(
                            "ScheduleExpression", ""
                        )
                    ),
                    esc(last.get("MonitoringExecutionStatus", "")),
                    link(page_url("jobs", "processing", job), job) if job else "",
                    esc(last.get("FailureReason", "")),
                )
            )
        return document(
            f"Endpoint {name}",
            render(summary),
            section(
                "Variants", table(("variant", "weight", "desired weight", "instances", "rollback alarms"), variants)
            ),
            section(
                "Monitoring schedules",
                table(("schedule", "status", "expression", "last execution", "job", "failure reason"), schedules),
            ),
            section("Description", render(desc)),
        )

    def alarms(self, prefix: str) -> str:
        """CloudWatch alarms whose name starts with ``prefix``: state, reason, metric."""
        cloudwatch = self.service.client("cloudwatch")
        params = {"AlarmNamePrefix": prefix} if prefix else {}
        rows = []
        for result in cloudwatch.get_paginator("describe_alarms").paginate(**params):
            for alarm in result.get("MetricAlarms") or []:
                rows.append(
                    (
                        esc(alarm.get("AlarmName", "")),
                        f'<span class="status">{esc(alarm.get("StateValue", ""))}</span>',
                        esc(alarm.get("StateReason", "")),
                        esc(alarm.get("StateUpdatedTimestamp", "")),
                        esc(alarm.get("MetricName") or "(metric math)"),
                    )
                )
        title = f"Alarms starting with {prefix}" if prefix else "Alarms"
        return document(title, table(("alarm", "state", "reason", "since", "metric"), rows))

    def s3(self, request: Any, bucket: str, key: str, *, trailing: bool) -> None:
        """Serve an object with its content type, or list a prefix (or the buckets)."""
        s3 = self.service.client("s3")
        if not bucket:
            names = [b["Name"] for b in s3.list_buckets().get("Buckets") or []]
            rows = [(link(page_url("s3", n) + "/", n),) for n in names]
            self._html(request, 200, document("S3 buckets", table(("bucket",), rows)))
            return
        if not trailing:
            try:
                obj = s3.get_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("NoSuchKey", "404", "NoSuchBucket"):
                    raise
                if exc.response["Error"]["Code"] == "NoSuchBucket":
                    raise NotFoundError(f"No bucket {bucket}.") from exc
            else:
                self._object(request, key, obj)
                return
        prefix = key if trailing or not key else key + "/"
        self._html(request, 200, self._listing(s3, bucket, prefix, bare_key=not trailing))

    def _object(self, request: Any, key: str, obj: dict[str, Any]) -> None:
        content_type = obj.get("ContentType") or ""
        if not content_type or content_type in ("binary/octet-stream", "application/octet-stream"):
            content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        body = obj["Body"]
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(obj["ContentLength"]))
        request.send_header("Cache-Control", "no-store")
        request.send_header("X-Content-Type-Options", "nosniff")
        request.send_header("Content-Security-Policy", OBJECT_POLICY)
        request.end_headers()
        for chunk in iter(lambda: body.read(CHUNK), b""):
            request.wfile.write(chunk)

    def _listing(self, s3: Any, bucket: str, prefix: str, *, bare_key: bool) -> str:
        try:
            pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchBucket":
                raise NotFoundError(f"No bucket {bucket}.") from exc
            raise
        folders = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes") or []]
        objects = [o for page in pages for o in page.get("Contents") or []]
        if prefix and not folders and not objects:
            what = f"object or prefix s3://{bucket}/{prefix[:-1]}" if bare_key else f"prefix s3://{bucket}/{prefix}"
            raise NotFoundError(f"No {what}.")
        rows: list[tuple[str, ...]] = [(link(page_url("s3", bucket, f), f[len(prefix) :]), "", "") for f in folders]
        rows += [
            (
                link(page_url("s3", bucket, o["Key"]), o["Key"][len(prefix) :] or o["Key"]),
                esc(o["Size"]),
                esc(_time_of(o)),
            )
            for o in objects
        ]
        return document(f"s3://{bucket}/{prefix}", table(("key", "bytes", "last modified"), rows))


def _time_of(obj: dict[str, Any]) -> str:
    modified = obj.get("LastModified")
    return modified.isoformat(timespec="seconds") if isinstance(modified, dt.datetime) else str(modified or "")


def register(service: ServiceApi) -> Console:
    """Serve the console from ``service``'s HTTP server."""
    console = Console(service)
    console.register()
    return console


__all__ = ["Console", "NotFoundError", "register", "render"]
