"""Model Monitor: data-quality job definitions, monitoring schedules and their executions.

Actions: CreateDataQualityJobDefinition, DescribeDataQualityJobDefinition, ListDataQualityJobDefinitions,
DeleteDataQualityJobDefinition, CreateMonitoringSchedule, DescribeMonitoringSchedule,
ListMonitoringSchedules, UpdateMonitoringSchedule, DeleteMonitoringSchedule, StartMonitoringSchedule,
StopMonitoringSchedule, ListMonitoringExecutions.

An execution is a processing job of the definition's image (the ``sagemaker-model-monitor-analyzer``
image runs :mod:`devstack.monitor_analyzer`), laid out as SageMaker lays it out:

- one input per capture hour overlapping the analysis window, ``endpoint_input_<n>``:
  ``<capture prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh`` to ``<LocalPath>/<endpoint>/<variant>/yyyy/mm/dd/hh``;
- baseline files to ``/opt/ml/processing/baseline/constraints`` and ``/opt/ml/processing/baseline/stats``;
- output ``result`` to ``<S3Uri>/<endpoint>/<schedule>/yyyy/mm/dd/hh`` (the scheduled hour);
- environment ``dataset_format`` (capture JSON), ``dataset_source``, ``output_path``, ``start_time``,
  ``end_time``, ``metric_time``, ``baseline_constraints``, ``baseline_statistics``,
  ``publish_cloudwatch_metrics``, ``sagemaker_endpoint_name``, ``sagemaker_monitoring_schedule_name``, ...

Schedules: ``cron(0 * ? * * *)`` (hourly), ``cron(0 H ? * * *)`` (daily), ``cron(0 H/N ? * * *)`` run at the
boundary (the first scheduler tick after it; SageMaker starts within 20 minutes) and analyse the period that
ended there, or the ``StartTimeOffset``/``EndTimeOffset`` window; ``NOW`` runs once at creation over
``DataAnalysisStartTime``/``DataAnalysisEndTime``. For tests, ``POST /_devstack/monitoring/run-now``
``{"MonitoringScheduleName": ..., "ScheduledTime": optional ISO time}`` starts the next scheduled execution
at once (as if its time had come; default: the schedule's next boundary) and returns its summary.

Availability: SageMaker Model Monitor is no longer open to new customers ("Model Monitor availability
change"); an account without access is refused its APIs. ``DEVSTACK_MODEL_MONITOR=unavailable`` starts the
devstack that way, and ``POST /_devstack/monitoring/availability`` ``{"available": false}`` (or ``true``)
switches it at run time (answer: ``{"available": ...}``). While unavailable every action above answers
``AccessDeniedException`` naming the availability change; the run-now route is refused too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.sagemaker import awsio
from devstack.sagemaker.common import (
    Listing,
    as_epoch,
    descriptions,
    echoed_members,
    now,
    pick,
    read_json,
    require,
    send_json,
)
from devstack.sagemaker.errors import SageMakerError, resource_in_use, resource_not_found, validation_error

if TYPE_CHECKING:
    from devstack.sagemaker.images import ImageInfo
    from devstack.sagemaker.paths import PathMapper
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

DEFINITIONS = "data-quality-job-definitions"
SCHEDULES = "monitoring-schedules"
EXECUTIONS = "monitoring-executions"
RUN_NOW_PATH = "/_devstack/monitoring/run-now"
AVAILABILITY_PATH = "/_devstack/monitoring/availability"
#: ``unavailable``: Model Monitor's APIs refuse, as for an account without access (default ``available``)
AVAILABILITY_ENV = "DEVSTACK_MODEL_MONITOR"
UNAVAILABLE_MESSAGE = (
    "User is not authorized to perform: sagemaker:{action}: Amazon SageMaker Model Monitor is no longer "
    "available to new customers (Model Monitor availability change)"
)
ANALYZER = Path(__file__).resolve().parents[1] / "monitor_analyzer" / "run.py"
CAPTURE_FORMAT = json.dumps({"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}})
NO_DATA = "Job inputs had no data"

_CRON = re.compile(r"^cron\(0 (?P<hour>\*|\d{1,2}|\d{1,2}/\d{1,2}) \? \* \* \*\)$")
_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)S)?)?$"
)


def parse_duration(text: str) -> dt.timedelta:
    """Parse an ISO-8601 duration such as ``-PT1H`` or ``-P1DT2H`` (sign allowed).

    :raises ValueError: for other forms.
    """
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "-P", "PT", "-PT"):
        raise ValueError(f"{text!r} is not an ISO-8601 duration such as -PT1H")
    parts = {k: int(v) for k, v in match.groupdict().items() if k != "sign" and v}
    delta = dt.timedelta(
        weeks=parts.get("weeks", 0),
        days=parts.get("days", 0),
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
        seconds=parts.get("seconds", 0),
    )
    return -delta if match["sign"] else delta


def cron_period(expression: str) -> tuple[int, int]:
    """Return (first hour, period in hours) of a supported cron expression.

    :raises ValueError: for an expression Model Monitor does not accept.
    """
    match = _CRON.match(expression.strip())
    if not match:
        raise ValueError(
            f"Schedule expression {expression!r} is not supported: use cron(0 * ? * * *), cron(0 H ? * * *), "
            "cron(0 H/N ? * * *) or NOW"
        )
    hour = match["hour"]
    if hour == "*":
        return 0, 1
    if "/" in hour:
        first, every = (int(x) for x in hour.split("/"))
        if not 0 <= first <= 23 or not 1 <= every <= 24:
            raise ValueError(f"Schedule expression {expression!r} has an hour outside 0-23 or a period outside 1-24")
        return first, every
    if not 0 <= int(hour) <= 23:
        raise ValueError(f"Schedule expression {expression!r} has an hour outside 0-23")
    return int(hour), 24


def _matches(hour_of_day: int, first: int, every: int) -> bool:
    if every == 24:
        return hour_of_day == first
    return hour_of_day >= first and (hour_of_day - first) % every == 0


def boundaries(expression: str, after: float, until: float) -> list[float]:
    """Scheduled times (epoch) of a cron expression in ``(after, until]`` (at most the last 48)."""
    first, every = cron_period(expression)
    hour = max(math.floor(after / 3600) + 1, math.ceil(until / 3600) - 48 * 24)
    out = []
    while hour * 3600 <= until:
        if _matches(hour % 24, first, every):
            out.append(hour * 3600.0)
        hour += 1
    return out[-48:]


def next_boundary(expression: str, moment: float) -> float:
    """The first scheduled time strictly after ``moment``."""
    found = boundaries(expression, moment, moment + 25 * 3600)
    return found[0]


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hours(start: float, end: float) -> list[dt.datetime]:
    first = math.floor(start / 3600) * 3600
    out = []
    hour = first
    while hour < end:
        out.append(dt.datetime.fromtimestamp(hour, dt.UTC))
        hour += 3600
    return out


def _job_shape(
    source: dict[str, Any],
    *,
    definition: str | None,
    app: dict[str, Any],
    environment: dict[str, str],
    job_input: dict[str, Any],
    output: dict[str, Any],
    resources: dict[str, Any],
    baseline: dict[str, Any],
) -> dict[str, Any]:
    """A schedule's job in the one internal shape, from a job definition or an inline MonitoringJobDefinition.

    :param source: the definition or the inline job (``StoppingCondition``, ``NetworkConfig``, ``RoleArn``).
    """
    return {
        "definition": definition,
        "image": app["ImageUri"],
        "entrypoint": app.get("ContainerEntrypoint"),
        "arguments": app.get("ContainerArguments"),
        "environment": environment,
        "preprocessor": app.get("RecordPreprocessorSourceUri"),
        "postprocessor": app.get("PostAnalyticsProcessorSourceUri"),
        "endpoint_input": job_input.get("EndpointInput"),
        "batch_input": job_input.get("BatchTransformInput"),
        "output": output,
        "resources": resources,
        "stopping": source.get("StoppingCondition"),
        "network": source.get("NetworkConfig"),
        "role": source["RoleArn"],
        "constraints": (baseline.get("ConstraintsResource") or {}).get("S3Uri"),
        "statistics": (baseline.get("StatisticsResource") or {}).get("S3Uri"),
    }


def _definition_endpoint(desc: dict[str, Any]) -> str:
    return (desc["DataQualityJobInput"].get("EndpointInput") or {}).get("EndpointName", "")


def _definition_summary(desc: dict[str, Any]) -> dict[str, Any]:
    return {
        "MonitoringJobDefinitionName": desc["JobDefinitionName"],
        "MonitoringJobDefinitionArn": desc["JobDefinitionArn"],
        "CreationTime": desc["CreationTime"],
        "EndpointName": _definition_endpoint(desc),
    }


_SCHEDULE_FIELDS = (
    "MonitoringScheduleName",
    "MonitoringScheduleArn",
    "CreationTime",
    "LastModifiedTime",
    "MonitoringScheduleStatus",
    "EndpointName",
    "MonitoringType",
)


def _schedule_summary(desc: dict[str, Any]) -> dict[str, Any]:
    shown = pick(desc, _SCHEDULE_FIELDS)
    definition = desc["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName")
    if definition:
        shown["MonitoringJobDefinitionName"] = definition
    return shown


DEFINITION_LISTING = Listing("JobDefinitionSummaries", "JobDefinitionName", _definition_summary)
SCHEDULE_LISTING = Listing(
    "MonitoringScheduleSummaries", "MonitoringScheduleName", _schedule_summary, status_key="MonitoringScheduleStatus"
)
#: executions are listed by their summaries (no Name sort; ScheduledTime instead)
EXECUTION_LISTING = Listing(
    "MonitoringExecutionSummaries",
    "MonitoringScheduleName",
    sort_keys={
        "CreationTime": lambda s: s["CreationTime"],
        "ScheduledTime": lambda s: s["ScheduledTime"],
        "Status": lambda s: s["MonitoringExecutionStatus"],
    },
)


class Monitoring:
    """The Model Monitor actions and the scheduler thread.

    :param service: the owning service.
    :param tick: seconds between two scheduler checks (0: no scheduler thread).
    """

    def __init__(self, service: ServiceApi, tick: float = 10.0) -> None:
        self.service = service
        self.store = service.store
        self.tick = tick
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.available = os.environ.get(AVAILABILITY_ENV, "available").strip().lower() != "unavailable"
        self._echo = echoed_members(service, "CreateDataQualityJobDefinition", "DescribeDataQualityJobDefinition")

    def register(self) -> None:
        """Register the actions, the analyzer image's runtime, the run-now route and the scheduler."""
        for action, handler in (
            ("CreateDataQualityJobDefinition", self.create_definition),
            ("DescribeDataQualityJobDefinition", self.describe_definition),
            ("ListDataQualityJobDefinitions", self.list_definitions),
            ("DeleteDataQualityJobDefinition", self.delete_definition),
            ("CreateMonitoringSchedule", self.create_schedule),
            ("DescribeMonitoringSchedule", self.describe_schedule),
            ("ListMonitoringSchedules", self.list_schedules),
            ("UpdateMonitoringSchedule", self.update_schedule),
            ("DeleteMonitoringSchedule", self.delete_schedule),
            ("StartMonitoringSchedule", self.start_schedule),
            ("StopMonitoringSchedule", self.stop_schedule),
            ("ListMonitoringExecutions", self.list_executions),
        ):
            self.service.register_action(action, self._guarded(action, handler))
        self.service.register_processing_runtime("model-monitor", self.analyzer_command)
        self.service.register_route("POST", RUN_NOW_PATH, self.handle_run_now)
        self.service.register_route("POST", AVAILABILITY_PATH, self.handle_availability)
        self.service.on_shutdown(self.close)
        if self.tick > 0:
            self._thread = threading.Thread(target=self._loop, name="devstack-monitoring", daemon=True)
            self._thread.start()

    def _guarded(self, action: str, handler: Any) -> Any:
        """``handler``, refused with ``AccessDeniedException`` while Model Monitor is unavailable."""

        def guarded(params: dict[str, Any]) -> dict[str, Any]:
            self.check_available(action)
            return handler(params)

        guarded.__doc__ = handler.__doc__
        return guarded

    def check_available(self, action: str) -> None:
        """Raise ``AccessDeniedException`` for ``action`` while Model Monitor is switched off."""
        if not self.available:
            raise SageMakerError("AccessDeniedException", UNAVAILABLE_MESSAGE.format(action=action))

    def handle_availability(self, request: Any, path: str) -> None:
        """``POST /_devstack/monitoring/availability`` ``{"available": bool}``: switch Model Monitor on or off."""
        status = 200
        try:
            payload = read_json(request)
            if not isinstance(payload, dict) or not isinstance(payload.get("available"), bool):
                raise ValueError('give {"available": true} or {"available": false}')
            self.available = payload["available"]
            answer: dict[str, Any] = {"available": self.available}
        except ValueError as exc:
            status, answer = 400, {"message": str(exc)}
        send_json(request, status, answer)

    def analyzer_command(self, image: ImageInfo, app: dict[str, Any], mapper: PathMapper) -> list[str]:
        """The command that plays the analyzer image: the devstack analyzer on the local Python."""
        return [self.service.python, str(ANALYZER), "--opt-ml", str(mapper.root)]

    # -- job definitions -------------------------------------------------------------------------

    def create_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle CreateDataQualityJobDefinition."""
        name = params["JobDefinitionName"]
        arn = self.service.arn("data-quality-job-definition", name)
        job_input = params["DataQualityJobInput"]
        if bool(job_input.get("EndpointInput")) == bool(job_input.get("BatchTransformInput")):
            raise validation_error("DataQualityJobInput must have exactly one of EndpointInput or BatchTransformInput.")
        outputs = params["DataQualityJobOutputConfig"]["MonitoringOutputs"]
        if len(outputs) != 1:
            raise validation_error("DataQualityJobOutputConfig.MonitoringOutputs must hold exactly one output.")
        self._check_offsets(job_input.get("EndpointInput") or job_input.get("BatchTransformInput") or {})
        desc = pick(params, self._echo)
        desc.update({"JobDefinitionName": name, "JobDefinitionArn": arn, "CreationTime": now()})
        if not self.store.insert_new(DEFINITIONS, name, {"desc": desc}):
            raise resource_in_use(f"Data quality job definition {name} already exists ({arn}).")
        self.service.set_tags(arn, params.get("Tags"))
        return {"JobDefinitionArn": arn}

    @staticmethod
    def _check_offsets(job_input: dict[str, Any]) -> None:
        for key in ("StartTimeOffset", "EndTimeOffset"):
            if job_input.get(key):
                try:
                    parse_duration(job_input[key])
                except ValueError as exc:
                    raise validation_error(f"{key}: {exc}") from exc

    def _definition(self, name: str) -> dict[str, Any]:
        missing = resource_not_found(f"Could not find job definition {name}.")
        return require(self.store.get(DEFINITIONS, name), missing)["desc"]

    def describe_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle DescribeDataQualityJobDefinition."""
        return self._definition(params["JobDefinitionName"])

    def list_definitions(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListDataQualityJobDefinitions."""
        descs = descriptions(self.store, DEFINITIONS)
        if params.get("EndpointName"):
            descs = [d for d in descs if _definition_endpoint(d) == params["EndpointName"]]
        return DEFINITION_LISTING.answer(descs, params)

    def delete_definition(self, params: dict[str, Any]) -> None:
        """Handle DeleteDataQualityJobDefinition."""
        name = params["JobDefinitionName"]
        self._definition(name)
        users = [
            r["desc"]["MonitoringScheduleName"]
            for r in self.store.values(SCHEDULES)
            if r["desc"]["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName") == name
        ]
        if users:
            raise resource_in_use(f"Job definition {name} is used by monitoring schedule(s) {', '.join(users)}.")
        self.store.delete(DEFINITIONS, name)
        self.service.delete_tags_of(self.service.arn("data-quality-job-definition", name))

    # -- schedules -------------------------------------------------------------------------------

    def _resolve(self, config: dict[str, Any]) -> dict[str, Any]:
        """Normalise a schedule's job (by reference or inline) to one internal shape."""
        if config.get("MonitoringJobDefinitionName"):
            kind = config.get("MonitoringType", "DataQuality")
            if kind != "DataQuality":
                raise validation_error(f"The devstack runs DataQuality monitoring only, not {kind}.")
            desc = self._definition(config["MonitoringJobDefinitionName"])
            app = desc["DataQualityAppSpecification"]
            return _job_shape(
                desc,
                definition=desc["JobDefinitionName"],
                app=app,
                environment=app.get("Environment") or {},
                job_input=desc["DataQualityJobInput"],
                output=desc["DataQualityJobOutputConfig"],
                resources=desc["JobResources"],
                baseline=desc.get("DataQualityBaselineConfig") or {},
            )
        inline = config.get("MonitoringJobDefinition")
        if not inline:
            raise validation_error(
                "MonitoringScheduleConfig needs MonitoringJobDefinitionName or MonitoringJobDefinition."
            )
        if len(inline["MonitoringInputs"]) != 1:
            raise validation_error("MonitoringJobDefinition.MonitoringInputs must hold exactly one input.")
        return _job_shape(
            inline,
            definition=None,
            app=inline["MonitoringAppSpecification"],
            environment=inline.get("Environment") or {},
            job_input=inline["MonitoringInputs"][0],
            output=inline["MonitoringOutputConfig"],
            resources=inline["MonitoringResources"],
            baseline=inline.get("BaselineConfig") or {},
        )

    def _check_schedule(self, config: dict[str, Any]) -> dict[str, Any]:
        job = self._resolve(config)
        if job["endpoint_input"] is None:
            raise validation_error("The devstack monitors endpoints only (EndpointInput), not batch transform output.")
        schedule = config.get("ScheduleConfig")
        if schedule is None:
            raise validation_error("MonitoringScheduleConfig.ScheduleConfig is required.")
        expression = schedule["ScheduleExpression"].strip()
        if expression == "NOW":
            if not schedule.get("DataAnalysisStartTime") or not schedule.get("DataAnalysisEndTime"):
                raise validation_error(
                    "DataAnalysisStartTime and DataAnalysisEndTime are required with ScheduleExpression NOW."
                )
            try:
                start = parse_duration(schedule["DataAnalysisStartTime"])
                end = parse_duration(schedule["DataAnalysisEndTime"])
            except ValueError as exc:
                raise validation_error(str(exc)) from exc
            if end <= start or end - start > dt.timedelta(hours=24):
                raise validation_error(
                    "DataAnalysisEndTime must come after DataAnalysisStartTime, at most 24 hours later."
                )
        else:
            try:
                cron_period(expression)
            except ValueError as exc:
                raise validation_error(str(exc)) from exc
        return job

    def create_schedule(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle CreateMonitoringSchedule."""
        name = params["MonitoringScheduleName"]
        arn = self.service.arn("monitoring-schedule", name)
        config = params["MonitoringScheduleConfig"]
        job = self._check_schedule(config)
        created = now()
        config = dict(config)
        config.setdefault("MonitoringType", "DataQuality")
        desc: dict[str, Any] = {
            "MonitoringScheduleArn": arn,
            "MonitoringScheduleName": name,
            "MonitoringScheduleStatus": "Pending",
            "MonitoringType": config["MonitoringType"],
            "CreationTime": created,
            "LastModifiedTime": created,
            "MonitoringScheduleConfig": config,
            "EndpointName": job["endpoint_input"]["EndpointName"],
        }
        if not self.store.insert_new(SCHEDULES, name, {"desc": desc, "last_scheduled": created}):
            raise resource_in_use(f"Monitoring schedule {name} already exists ({arn}).")
        self.service.set_tags(arn, params.get("Tags"))
        threading.Thread(target=self._activate, args=(name,), daemon=True).start()
        return {"MonitoringScheduleArn": arn}

    def _activate(self, name: str) -> None:
        """Pending -> Scheduled; a NOW schedule starts its one execution."""
        record = self.store.get(SCHEDULES, name)
        if record is None:
            return
        self._update(name, MonitoringScheduleStatus="Scheduled")
        config = record["desc"]["MonitoringScheduleConfig"]
        if config["ScheduleConfig"]["ScheduleExpression"].strip() == "NOW":
            try:
                self.start_execution(name, now())
            except Exception:
                log.exception("Cannot start the NOW execution of monitoring schedule %s", name)

    def _schedule(self, name: str) -> dict[str, Any]:
        missing = resource_not_found(f"Could not find monitoring schedule {name}.")
        return require(self.store.get(SCHEDULES, name), missing)

    def _update(self, name: str, **members: Any) -> None:
        def change(record: dict[str, Any]) -> None:
            record["desc"].update(members)
            record["desc"]["LastModifiedTime"] = now()

        with contextlib.suppress(KeyError):
            self.store.update(SCHEDULES, name, change)

    def describe_schedule(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle DescribeMonitoringSchedule."""
        desc = self._schedule(params["MonitoringScheduleName"])["desc"]
        executions = self._summaries(lambda s: s["MonitoringScheduleName"] == desc["MonitoringScheduleName"])
        if executions:
            desc["LastMonitoringExecutionSummary"] = max(executions, key=lambda s: s["ScheduledTime"])
        return desc

    def list_schedules(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListMonitoringSchedules."""
        descs = descriptions(self.store, SCHEDULES)
        if params.get("EndpointName"):
            descs = [d for d in descs if d.get("EndpointName") == params["EndpointName"]]
        if params.get("MonitoringJobDefinitionName"):
            descs = [
                d
                for d in descs
                if d["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName")
                == params["MonitoringJobDefinitionName"]
            ]
        if params.get("MonitoringTypeEquals"):
            descs = [d for d in descs if d.get("MonitoringType") == params["MonitoringTypeEquals"]]
        return SCHEDULE_LISTING.answer(descs, params)

    def update_schedule(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle UpdateMonitoringSchedule: replaces the config; Pending, then Scheduled."""
        name = params["MonitoringScheduleName"]
        record = self._schedule(name)
        config = dict(params["MonitoringScheduleConfig"])
        job = self._check_schedule(config)
        config.setdefault("MonitoringType", "DataQuality")
        self._update(
            name,
            MonitoringScheduleConfig=config,
            MonitoringScheduleStatus="Pending",
            MonitoringType=config["MonitoringType"],
            EndpointName=job["endpoint_input"]["EndpointName"],
        )
        threading.Thread(target=self._activate, args=(name,), daemon=True).start()
        return {"MonitoringScheduleArn": record["desc"]["MonitoringScheduleArn"]}

    def delete_schedule(self, params: dict[str, Any]) -> None:
        """Handle DeleteMonitoringSchedule (the execution history is kept)."""
        name = params["MonitoringScheduleName"]
        record = self._schedule(name)
        self.store.delete(SCHEDULES, name)
        self.service.delete_tags_of(record["desc"]["MonitoringScheduleArn"])

    def start_schedule(self, params: dict[str, Any]) -> None:
        """Handle StartMonitoringSchedule."""
        name = params["MonitoringScheduleName"]
        self._schedule(name)

        def change(record: dict[str, Any]) -> None:
            record["desc"]["MonitoringScheduleStatus"] = "Scheduled"
            record["desc"]["LastModifiedTime"] = now()
            record["last_scheduled"] = max(record.get("last_scheduled", 0), now())

        self.store.update(SCHEDULES, name, change)

    def stop_schedule(self, params: dict[str, Any]) -> None:
        """Handle StopMonitoringSchedule."""
        name = params["MonitoringScheduleName"]
        self._schedule(name)
        self._update(name, MonitoringScheduleStatus="Stopped")

    # -- executions ------------------------------------------------------------------------------

    def _summary(self, record: dict[str, Any]) -> dict[str, Any]:
        summary = dict(record["summary"])
        job_name = record.get("job")
        if job_name:
            job = self.store.get("processing-jobs", job_name)
            if job is not None:
                desc = job["desc"]
                status = desc["ProcessingJobStatus"]
                exit_message = desc.get("ExitMessage") or ""
                if status == "Completed":
                    status = (
                        "CompletedWithViolations" if exit_message.startswith("CompletedWithViolations") else "Completed"
                    )
                summary["MonitoringExecutionStatus"] = status
                summary["LastModifiedTime"] = desc.get("LastModifiedTime", summary["LastModifiedTime"])
                if status == "Failed":
                    reason = exit_message.strip() or desc.get("FailureReason") or "The monitoring job failed."
                    summary["FailureReason"] = reason[:1024]
                elif status == "Stopped" and desc.get("FailureReason"):
                    summary["FailureReason"] = desc["FailureReason"][:1024]
        return summary

    def _summaries(self, keep: Any = None) -> list[dict[str, Any]]:
        out = [self._summary(r) for r in self.store.values(EXECUTIONS)]
        return [s for s in out if keep is None or keep(s)]

    def list_executions(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListMonitoringExecutions (default: newest CreationTime first, 10 per page)."""
        summaries = self._summaries()
        for key, field in (
            ("MonitoringScheduleName", "MonitoringScheduleName"),
            ("EndpointName", "EndpointName"),
            ("MonitoringJobDefinitionName", "MonitoringJobDefinitionName"),
            ("MonitoringTypeEquals", "MonitoringType"),
            ("StatusEquals", "MonitoringExecutionStatus"),
        ):
            if params.get(key):
                summaries = [s for s in summaries if s.get(field) == params[key]]
        before, after = as_epoch(params.get("ScheduledTimeBefore")), as_epoch(params.get("ScheduledTimeAfter"))
        if before is not None:
            summaries = [s for s in summaries if s["ScheduledTime"] < before]
        if after is not None:
            summaries = [s for s in summaries if s["ScheduledTime"] > after]
        return EXECUTION_LISTING.answer(summaries, params)

    def _window(self, config: dict[str, Any], job: dict[str, Any], scheduled: float) -> tuple[float, float]:
        schedule = config["ScheduleConfig"]
        expression = schedule["ScheduleExpression"].strip()
        if expression == "NOW":
            start = scheduled + parse_duration(schedule["DataAnalysisStartTime"]).total_seconds()
            end = scheduled + parse_duration(schedule["DataAnalysisEndTime"]).total_seconds()
            return start, end
        _, every = cron_period(expression)
        start, end = scheduled - every * 3600, scheduled
        endpoint_input = job["endpoint_input"]
        if endpoint_input.get("StartTimeOffset"):
            start = scheduled + parse_duration(endpoint_input["StartTimeOffset"]).total_seconds()
        if endpoint_input.get("EndTimeOffset"):
            end = scheduled + parse_duration(endpoint_input["EndTimeOffset"]).total_seconds()
        return start, end

    def start_execution(self, schedule_name: str, scheduled: float) -> dict[str, Any]:
        """Start the execution of a schedule for one scheduled time; return its summary.

        Without captured data in the window the execution is recorded Failed (``Job inputs had no data``).
        """
        record = self._schedule(schedule_name)
        desc = record["desc"]
        config = desc["MonitoringScheduleConfig"]
        job = self._resolve(config)
        endpoint = job["endpoint_input"]["EndpointName"]
        created = now()
        key = f"{schedule_name}/{int(scheduled)}/{uuid.uuid4().hex[:8]}"
        summary: dict[str, Any] = {
            "MonitoringScheduleName": schedule_name,
            "ScheduledTime": float(scheduled),
            "CreationTime": created,
            "LastModifiedTime": created,
            "MonitoringExecutionStatus": "Pending",
            "EndpointName": endpoint,
            "MonitoringType": desc.get("MonitoringType", "DataQuality"),
        }
        if job["definition"]:
            summary["MonitoringJobDefinitionName"] = job["definition"]

        def change(rec: dict[str, Any]) -> None:
            rec["last_scheduled"] = max(rec.get("last_scheduled", 0), scheduled)

        self.store.update(SCHEDULES, schedule_name, change)
        try:
            request = self._job_request(desc, job, scheduled)
        except SageMakerError as exc:
            summary.update(MonitoringExecutionStatus="Failed", FailureReason=exc.message[:1024])
            self.store.put(EXECUTIONS, key, {"summary": summary})
            return summary
        job_name = request["ProcessingJobName"]
        self.store.put(EXECUTIONS, key, {"summary": summary, "job": job_name})
        try:
            arn = self.service.processing.create(
                request, extra={"MonitoringScheduleArn": desc["MonitoringScheduleArn"]}
            )
        except SageMakerError as exc:
            summary.update(MonitoringExecutionStatus="Failed", FailureReason=exc.message[:1024])
            self.store.put(EXECUTIONS, key, {"summary": summary})
            return summary
        summary.update(ProcessingJobArn=arn, MonitoringExecutionStatus="InProgress")
        self.store.put(EXECUTIONS, key, {"summary": summary, "job": job_name})
        log.info("Monitoring schedule %s: execution %s for %s", schedule_name, job_name, _iso(scheduled))
        return self._summary({"summary": summary, "job": job_name})

    def _job_request(self, desc: dict[str, Any], job: dict[str, Any], scheduled: float) -> dict[str, Any]:
        schedule_name = desc["MonitoringScheduleName"]
        endpoint_input = job["endpoint_input"]
        endpoint = endpoint_input["EndpointName"]
        start, end = self._window(desc["MonitoringScheduleConfig"], job, scheduled)
        endpoint_record = self.store.get("endpoints", endpoint)
        if endpoint_record is None:
            raise validation_error(f"Endpoint {endpoint} does not exist.")
        capture = endpoint_record["desc"].get("DataCaptureConfig")
        if not capture:
            raise validation_error(f"Endpoint {endpoint} does not capture data (no DataCaptureConfig).")
        prefix = capture["DestinationS3Uri"].rstrip("/")
        s3 = self.service.client("s3")
        local_root = endpoint_input["LocalPath"].rstrip("/")
        inputs: list[dict[str, Any]] = []
        variants = sorted(
            {
                obj["Key"][len(awsio.parse_s3_uri(f"{prefix}/{endpoint}/")[1]) :].split("/", 1)[0]
                for obj in awsio.list_objects(s3, f"{prefix}/{endpoint}/")
            }
        )
        for variant in variants:
            for hour in _hours(start, end):
                path = f"{endpoint}/{variant}/{hour:%Y/%m/%d/%H}"
                uri = f"{prefix}/{path}"
                if not awsio.has_objects(s3, uri + "/"):
                    continue
                inputs.append(
                    {
                        "InputName": f"endpoint_input_{len(inputs) + 1}",
                        "AppManaged": False,
                        "S3Input": {
                            "S3Uri": uri,
                            "LocalPath": f"{local_root}/{path}",
                            "S3DataType": "S3Prefix",
                            "S3InputMode": endpoint_input.get("S3InputMode", "File"),
                            "S3DataDistributionType": endpoint_input.get("S3DataDistributionType", "FullyReplicated"),
                        },
                    }
                )
        if not inputs:
            raise validation_error(NO_DATA)
        environment = {
            "dataset_format": CAPTURE_FORMAT,
            "dataset_source": local_root,
            "sagemaker_endpoint_name": endpoint,
            "sagemaker_monitoring_schedule_name": schedule_name,
            "sagemaker_endpoint_datacapture_prefix": prefix,
            "start_time": _iso(start),
            "end_time": _iso(end),
            "metric_time": _iso(start),
            "publish_cloudwatch_metrics": "Enabled",
            "monitoring_input_type": "ENDPOINT_INPUT",
        }
        for key, local, name in (
            ("constraints", "/opt/ml/processing/baseline/constraints", "constraints"),
            ("statistics", "/opt/ml/processing/baseline/stats", "baseline"),
        ):
            uri = job[key]
            if not uri:
                continue
            inputs.append(
                {
                    "InputName": name,
                    "AppManaged": False,
                    "S3Input": {
                        "S3Uri": uri,
                        "LocalPath": local,
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                        "S3DataDistributionType": "FullyReplicated",
                    },
                }
            )
            environment[f"baseline_{key}"] = f"{local}/{uri.rsplit('/', 1)[-1]}"
        if job["preprocessor"] or job["postprocessor"]:
            raise validation_error(
                "The devstack analyzer does not run record preprocessor or post-analytics processor scripts."
            )
        for item in ("FeaturesAttribute", "InferenceAttribute", "ExcludeFeaturesAttribute"):
            if endpoint_input.get(item):
                environment[re.sub(r"(?<!^)([A-Z])", r"_\1", item).lower()] = endpoint_input[item]
        output = job["output"]["MonitoringOutputs"][0]["S3Output"]
        environment["output_path"] = output["LocalPath"]
        environment.update(job["environment"])
        hour = dt.datetime.fromtimestamp(scheduled, dt.UTC)
        app: dict[str, Any] = {"ImageUri": job["image"]}
        if job["entrypoint"]:
            app["ContainerEntrypoint"] = job["entrypoint"]
        if job["arguments"]:
            app["ContainerArguments"] = job["arguments"]
        request: dict[str, Any] = {
            "ProcessingJobName": f"model-monitoring-{hour:%Y%m%d%H%M}-{uuid.uuid4().hex[:24]}",
            "ProcessingInputs": inputs,
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "result",
                        "AppManaged": False,
                        "S3Output": {
                            "S3Uri": f"{output['S3Uri'].rstrip('/')}/{endpoint}/{schedule_name}/{hour:%Y/%m/%d/%H}",
                            "LocalPath": output["LocalPath"],
                            "S3UploadMode": output.get("S3UploadMode", "Continuous"),
                        },
                    }
                ]
            },
            "ProcessingResources": job["resources"],
            "AppSpecification": app,
            "Environment": environment,
            "RoleArn": job["role"],
            "StoppingCondition": job["stopping"] or {"MaxRuntimeInSeconds": 3600},
        }
        if job["output"].get("KmsKeyId"):
            request["ProcessingOutputConfig"]["KmsKeyId"] = job["output"]["KmsKeyId"]
        if job["network"]:
            request["NetworkConfig"] = job["network"]
        return request

    # -- scheduler -------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.run_due()
            except Exception:
                log.exception("Monitoring scheduler round failed")

    def run_due(self, moment: float | None = None) -> list[dict[str, Any]]:
        """Start the executions whose scheduled time has come; return their summaries."""
        current = moment if moment is not None else now()
        started = []
        for record in self.store.values(SCHEDULES):
            desc = record["desc"]
            if desc["MonitoringScheduleStatus"] != "Scheduled":
                continue
            expression = desc["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"].strip()
            if expression == "NOW":
                continue
            due = boundaries(expression, record.get("last_scheduled", desc["CreationTime"]), current)
            if due:
                started.append(self.start_execution(desc["MonitoringScheduleName"], due[-1]))
        return started

    def handle_run_now(self, request: Any, path: str) -> None:
        """``POST /_devstack/monitoring/run-now``: start a schedule's next execution at once."""
        status = 200
        try:
            self.check_available("StartMonitoringSchedule")
            payload = read_json(request)
            name = payload["MonitoringScheduleName"]
            record = self._schedule(name)
            expression = record["desc"]["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"].strip()
            if payload.get("ScheduledTime"):
                scheduled = as_epoch(payload["ScheduledTime"])
            elif expression == "NOW":
                scheduled = now()
            else:
                scheduled = next_boundary(expression, now())
            answer: Any = self.start_execution(name, float(scheduled))
        except (KeyError, ValueError) as exc:
            status, answer = 400, {"message": f"Give MonitoringScheduleName (and optionally ScheduledTime): {exc}"}
        except SageMakerError as exc:
            status, answer = 400, {"__type": exc.code, "message": exc.message}
        send_json(request, status, answer)

    def close(self) -> None:
        """Stop the scheduler thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
