"""SageMaker Model Monitor (data quality): baseline, schedule, one-off runs, results and drift.

- ``DataQualityBaselineOperator``: a baselining processing job on the model-monitor image over the
  training baseline dataset; writes ``statistics.json`` and ``constraints.json``. Re-attaches to (or
  reuses) the job of the same model version and dataset.
- ``MonitoringScheduleOperator``: create-or-update of the endpoint's data-quality job definition and its
  monitoring schedule, following the SDK's update pattern: create the new definition, point the schedule
  at it, then delete the old definition. A no-op when the schedule already uses the same definition.
- ``MonitoringRunOperator``: a one-off ``NOW`` execution over the last N hours (deferrable), returning the
  same result as the reader.
- ``LatestMonitoringResultOperator``: finds the schedule's newest finished execution, reads its
  ``constraint_violations.json``, writes a small report to S3 and returns the findings.
- ``PublishDriftOperator``: when the findings reach the configured violation threshold, writes the drift
  report at the drift asset's URI, emits the asset (its outlet; ``train_model`` is scheduled on it) and
  notifies; otherwise skips itself (no asset event). An execution is published at most once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSkipException

from ml_lifecycle.links import Console, MonitoringScheduleLink, SageMakerProcessingJobLink
from ml_lifecycle.operators.base import (
    EndpointOperatorBase,
    PollingOperatorBase,
    SageMakerOperatorBase,
    aws_connection,
    describe_or_none,
    is_not_found,
)
from ml_lifecycle.operators.jobs import BASELINING, completed_or_defer, current_attempt, resumed_description

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ml_lifecycle.config import Config

MAX_VIOLATIONS_IN_XCOM = 20
BASELINE_URI_KEY = "baseline_uri"


def baseline_dataset_uri(cfg: Config, package: dict[str, Any]) -> str | None:
    """The Model Monitor baseline dataset of the training run that produced ``package``.

    The dataset is the evaluation job's ``baseline.csv``: the model's own output columns first, then its
    input columns, with a header, which is how Model Monitor flattens a captured CSV record.
    ``CustomerMetadataProperties.baseline_uri`` when the registration recorded it; otherwise derived from the
    run's lineage (``dag_id``, ``dag_run_id``, window) with the same naming the pipeline uses for the
    evaluation job's ``baseline`` output. ``None`` when the lineage is incomplete.
    """
    from ml_lifecycle.builders.processing import monitor_baseline_uri
    from ml_lifecycle.naming import RunPlan, TrainingWindow

    props = package.get("CustomerMetadataProperties") or {}
    if props.get(BASELINE_URI_KEY):
        return props[BASELINE_URI_KEY]
    try:
        window = TrainingWindow(
            start=dt.datetime.fromisoformat(props["window_start"]), end=dt.datetime.fromisoformat(props["window_end"])
        )
        plan = RunPlan(
            dag_id=props["dag_id"],
            run_id=props["dag_run_id"],
            window=window,
            bucket=cfg.storage.bucket,
            name_prefix=cfg.sagemaker.name_prefix,
            datasets_prefix=cfg.storage.prefixes.datasets,
            jobs_prefix=cfg.storage.prefixes.jobs,
            reports_prefix=cfg.storage.prefixes.reports,
        )
    except (KeyError, ValueError):
        return None
    return monitor_baseline_uri(plan)


def processing_job_name(arn: str | None) -> str | None:
    return arn.rsplit("/", 1)[-1] if arn else None


def _int_or(value: Any, default: int) -> int:
    if value in (None, "", "None"):
        return default
    return int(value)


class _MonitorBase(EndpointOperatorBase):
    def _link_endpoint(self, context: Context, endpoint: str) -> None:
        self.persist_link(MonitoringScheduleLink, context, endpoint_name=endpoint)


# ---------------------------------------------------------------------------------------------------- baseline


class DataQualityBaselineOperator(PollingOperatorBase, _MonitorBase):
    """Suggest a data-quality baseline (statistics + constraints) from the model's baseline dataset.

    Once the baselining job has completed, the constraints of ``ignore_features`` are switched off in its
    ``constraints.json`` (see :func:`ml_lifecycle.builders.monitor.ignore_features`); a name the baseline
    does not have fails the task.

    XCom: ``{"job_name", "job_arn", "status", "output_uri", "statistics_uri", "constraints_uri",
    "dataset_uri", "ignored_features"}``.

    :param dataset_uri: S3 prefix of the baseline CSV: header, the endpoint's output columns, then its input
        columns (the evaluation job's ``baseline.csv``) (templated)
    :param default_dataset_uri: the dataset when ``dataset_uri`` is empty (templated; in ``deploy_model`` the
        model's own baseline dataset)
    :param model_package_version: version of the deployed model (templated; names the job and output)
    :param endpoint_name: the monitored endpoint (templated; default ``deployment.endpoint_name``)
    :param dataset_format: the analyzer's ``dataset_format`` (default: CSV with header, output columns at
        the start)
    :param ignore_features: features whose constraints are not evaluated (default
        ``monitoring.ignore_features``)
    :param poll_interval: seconds between job polls (default ``sagemaker.waiter_check_interval_seconds``)
    :param max_attempts: polls before giving up (default ``sagemaker.waiter_max_attempts``)
    """

    template_fields: Sequence[str] = aws_template_fields(
        "dataset_uri", "default_dataset_uri", "model_package_version", "endpoint_name"
    )
    operator_extra_links = (SageMakerProcessingJobLink(),)

    def __init__(
        self,
        *,
        dataset_uri: str | None,
        default_dataset_uri: str | None = None,
        model_package_version: int | str,
        dataset_format: dict[str, Any] | None = None,
        ignore_features: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_uri = dataset_uri
        self.default_dataset_uri = default_dataset_uri
        self.model_package_version = model_package_version
        self.dataset_format = dataset_format
        self.ignore_features = None if ignore_features is None else list(ignore_features)

    def _summary(self, description: dict[str, Any], output_uri: str) -> dict[str, Any]:
        from ml_lifecycle.builders.monitor import CONSTRAINTS, STATISTICS

        base = output_uri.rstrip("/")
        return {
            "job_name": description["ProcessingJobName"],
            "job_arn": description["ProcessingJobArn"],
            "status": description["ProcessingJobStatus"],
            "output_uri": base + "/",
            "statistics_uri": f"{base}/{STATISTICS}",
            "constraints_uri": f"{base}/{CONSTRAINTS}",
            "dataset_uri": self.dataset_uri,
            "ignored_features": self._ignore_features(f"{base}/{CONSTRAINTS}"),
        }

    def _ignore_features(self, constraints_uri: str) -> list[str]:
        """Switch off the constraints of the ignored features in the job's ``constraints.json``."""
        from ml_lifecycle.builders.monitor import ignore_features
        from ml_lifecycle.data.s3 import get_json, put_json

        cfg = self._config()
        names = cfg.monitoring.ignore_features if self.ignore_features is None else self.ignore_features
        if not names:
            return []
        s3 = self._s3()
        constraints = get_json(s3, constraints_uri)
        edited, missing = ignore_features(constraints, list(names))
        if missing:
            present = [f.get("name") for f in constraints.get("features", [])]
            raise AirflowFailException(
                f"monitoring.ignore_features names {', '.join(missing)}, which the baseline {constraints_uri} does "
                f"not have (its columns: {', '.join(map(str, present))})"
            )
        if edited != constraints:
            put_json(s3, constraints_uri, edited, **cfg.storage.encryption())
            self.log.info("Constraints of %s not evaluated (%s)", ", ".join(names), constraints_uri)
        return list(names)

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.builders.monitor import baseline_job_name, baseline_output_uri, baseline_request

        cfg = self._config()
        if str(self.dataset_uri or "").startswith("s3://"):  # the run's baseline_dataset_uri
            from ml_lifecycle.strict_input import InputError, check_s3_uri

            try:
                check_s3_uri(str(self.dataset_uri), cfg, field="baseline_dataset_uri")
            except InputError as exc:
                raise AirflowFailException(str(exc)) from None
        self.dataset_uri = self.dataset_uri or self.default_dataset_uri
        if not self.dataset_uri or not str(self.dataset_uri).startswith("s3://"):
            raise AirflowFailException(
                f"no baseline dataset for the model (got {self.dataset_uri!r}); pass baseline_dataset_uri"
            )
        endpoint = self.target_endpoint(cfg)
        version = _int_or(self.model_package_version, 0)
        output_uri = baseline_output_uri(cfg, endpoint=endpoint, version=version, dataset_uri=self.dataset_uri)
        attempt = current_attempt(
            self.sagemaker,
            BASELINING,
            context,
            lambda number: baseline_job_name(cfg, version=version, dataset_uri=self.dataset_uri, try_number=number),
        )
        name, description = attempt.name, attempt.description
        if description is not None:
            self.log.info("Reusing baselining job %s (%s)", name, description["ProcessingJobStatus"])
        else:
            request = baseline_request(
                cfg,
                job_name=name,
                dataset_uri=self.dataset_uri,
                output_uri=output_uri,
                dataset_format=self.dataset_format,
            )
            self.log.info("Starting baselining job %s over %s -> %s", name, self.dataset_uri, output_uri)
            self.sagemaker.create_processing_job(**request)
            description = BASELINING.describe(self.sagemaker, name)
        self.persist_link(SageMakerProcessingJobLink, context, job_name=name)
        description = completed_or_defer(self, BASELINING, name, description, cfg, kwargs={"output_uri": output_uri})
        return self._summary(description, output_uri)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, output_uri: str = ""
    ) -> dict[str, Any]:
        _, description = resumed_description(self.sagemaker, BASELINING, event)
        return self._summary(description, output_uri)


# ---------------------------------------------------------------------------------------------------- schedule


class MonitoringScheduleOperator(_MonitorBase):
    """Create or update the endpoint's data-quality job definition and hourly monitoring schedule.

    XCom: ``{"schedule_name", "schedule_arn", "job_definition_name", "previous_job_definition_name",
    "action": "created" | "updated" | "unchanged", "schedule_expression", "endpoint_name",
    "reports_uri"}``.

    :param statistics_uri: baseline ``statistics.json`` (templated)
    :param constraints_uri: baseline ``constraints.json`` (templated)
    :param model_package_version: the deployed version (templated; names the definition)
    :param endpoint_name: the endpoint (templated; default ``deployment.endpoint_name``)
    :param schedule_expression: default ``monitoring.schedule_expression``
    :param pending_timeout: seconds to wait for an updated schedule to leave ``Pending`` before the old
        definition is deleted
    """

    template_fields: Sequence[str] = aws_template_fields(
        "statistics_uri", "constraints_uri", "model_package_version", "endpoint_name"
    )
    operator_extra_links = (MonitoringScheduleLink(),)

    def __init__(
        self,
        *,
        statistics_uri: str,
        constraints_uri: str,
        model_package_version: int | str,
        schedule_expression: str | None = None,
        pending_timeout: float = 180,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.statistics_uri = statistics_uri
        self.constraints_uri = constraints_uri
        self.model_package_version = model_package_version
        self.schedule_expression = schedule_expression
        self.pending_timeout = pending_timeout

    def _describe_schedule(self, name: str) -> dict[str, Any] | None:
        return describe_or_none(self.sagemaker.describe_monitoring_schedule, MonitoringScheduleName=name)

    def ensure_definition(self, request: dict[str, Any]) -> str:
        name = request["JobDefinitionName"]
        if describe_or_none(self.sagemaker.describe_data_quality_job_definition, JobDefinitionName=name):
            self.log.info("Data-quality job definition %s exists", name)
        else:
            self.log.info("Creating data-quality job definition %s", name)
            self.sagemaker.create_data_quality_job_definition(**request)
        return name

    def _delete_definition(self, name: str) -> None:
        try:
            self.sagemaker.delete_data_quality_job_definition(JobDefinitionName=name)
            self.log.info("Deleted the previous job definition %s", name)
        except Exception as exc:  # a definition still referenced elsewhere stays; that is harmless
            self.log.warning("Could not delete the previous job definition %s: %s", name, exc)

    def _wait_not_pending(self, name: str) -> dict[str, Any] | None:
        import time

        deadline = time.monotonic() + self.pending_timeout
        while True:
            schedule = self._describe_schedule(name)
            if schedule is None or schedule.get("MonitoringScheduleStatus") != "Pending":
                return schedule
            if time.monotonic() > deadline:
                self.log.warning("Schedule %s still Pending after %s s", name, self.pending_timeout)
                return schedule
            time.sleep(2)

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.builders.monitor import job_definition_request, reports_uri, schedule_config, schedule_name

        cfg = self._config()
        endpoint = self.target_endpoint(cfg)
        expression = self.schedule_expression or cfg.monitoring.schedule_expression
        self._link_endpoint(context, endpoint)
        request = job_definition_request(
            cfg,
            endpoint=endpoint,
            version=_int_or(self.model_package_version, 0),
            statistics_uri=self.statistics_uri,
            constraints_uri=self.constraints_uri,
        )
        definition = request["JobDefinitionName"]
        name = schedule_name(endpoint)
        config = schedule_config(definition, expression)
        existing = self._describe_schedule(name)
        previous = None
        if existing is None:
            self.ensure_definition(request)
            self.log.info("Creating monitoring schedule %s (%s) on %s", name, expression, definition)
            from ml_lifecycle.builders.common import config_tags

            try:
                self.sagemaker.create_monitoring_schedule(
                    MonitoringScheduleName=name,
                    MonitoringScheduleConfig=config,
                    Tags=config_tags(cfg),
                )
            except Exception:
                self._delete_definition(definition)
                raise
            action = "created"
        else:
            self.refresh_tags(cfg, existing["MonitoringScheduleArn"])
            current = existing.get("MonitoringScheduleConfig") or {}
            previous = current.get("MonitoringJobDefinitionName")
            current_expression = (current.get("ScheduleConfig") or {}).get("ScheduleExpression")
            if previous == definition and current_expression == expression:
                action = "unchanged"
                self.log.info("Schedule %s already runs %s (%s)", name, definition, expression)
                if existing.get("MonitoringScheduleStatus") == "Stopped":
                    self.log.info("Schedule %s was Stopped; starting it", name)
                    self.sagemaker.start_monitoring_schedule(MonitoringScheduleName=name)
            else:
                self.ensure_definition(request)
                self.log.info("Pointing schedule %s from %s to %s (%s)", name, previous, definition, expression)
                self.sagemaker.update_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig=config)
                self._wait_not_pending(name)
                if previous and previous != definition:
                    self._delete_definition(previous)
                action = "updated"
        schedule = self._describe_schedule(name) or {}
        return {
            "schedule_name": name,
            "schedule_arn": schedule.get("MonitoringScheduleArn"),
            "schedule_status": schedule.get("MonitoringScheduleStatus"),
            "job_definition_name": definition,
            "previous_job_definition_name": previous if previous != definition else None,
            "action": action,
            "schedule_expression": expression,
            "endpoint_name": endpoint,
            "reports_uri": reports_uri(cfg),
        }


# ----------------------------------------------------------------------------------------------------- results


def newest_execution(client: Any, schedule: str, *, finished_only: bool = True) -> dict[str, Any] | None:
    """The schedule's newest execution (by scheduled time); with ``finished_only``, the newest terminal one."""
    from ml_lifecycle.triggers.monitoring import TERMINAL

    kwargs: dict[str, Any] = {
        "MonitoringScheduleName": schedule,
        "SortBy": "ScheduledTime",
        "SortOrder": "Descending",
        "MaxResults": 20,
    }
    summaries = client.list_monitoring_executions(**kwargs).get("MonitoringExecutionSummaries") or []
    for summary in summaries:
        if not finished_only or summary.get("MonitoringExecutionStatus") in TERMINAL:
            return summary
    return None


def read_execution(sagemaker: Any, s3: Any, execution: dict[str, Any], threshold: int) -> dict[str, Any]:
    """Findings of one finished execution: status, violations (from ``constraint_violations.json``), drift."""
    from botocore.exceptions import ClientError

    from ml_lifecycle.builders.monitor import VIOLATIONS
    from ml_lifecycle.data.s3 import get_json
    from ml_lifecycle.triggers.monitoring import summary_json

    execution = summary_json(execution)
    status = execution.get("MonitoringExecutionStatus")
    job = processing_job_name(execution.get("ProcessingJobArn"))
    result: dict[str, Any] = {
        "schedule_name": execution.get("MonitoringScheduleName"),
        "endpoint_name": execution.get("EndpointName"),
        "execution_status": status,
        "scheduled_time": execution.get("ScheduledTime"),
        "processing_job": job,
        "failure_reason": execution.get("FailureReason"),
        "output_uri": None,
        "violations_uri": None,
        "violation_count": 0,
        "violations": [],
        "features": [],
        "threshold": threshold,
        "drift": False,
    }
    if job is None or status not in {"Completed", "CompletedWithViolations"}:
        return result
    description = sagemaker.describe_processing_job(ProcessingJobName=job)
    outputs = (description.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    if not outputs:
        raise AirflowException(f"monitoring job {job} has no output; cannot read its violations")
    output = outputs[0]["S3Output"]["S3Uri"].rstrip("/")
    result["output_uri"] = output + "/"
    result["violations_uri"] = f"{output}/{VIOLATIONS}"
    try:
        document = get_json(s3, result["violations_uri"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"NoSuchKey", "404", "NotFound"}:
            raise
        if status == "CompletedWithViolations":
            raise AirflowException(
                f"execution {job} reports violations but {result['violations_uri']} does not exist"
            ) from exc
        document = {"violations": []}
    violations = document.get("violations") or []
    result["violation_count"] = len(violations)
    result["violations"] = violations[:MAX_VIOLATIONS_IN_XCOM]
    result["features"] = sorted({v.get("feature_name") for v in violations if v.get("feature_name")})
    result["drift"] = len(violations) >= threshold
    return result


class LatestMonitoringResultOperator(_MonitorBase):
    """Read the newest finished execution of the endpoint's data-quality schedule.

    Publishes its findings in the task log, to XCom and as a small JSON report in S3
    (``s3://<bucket>/<reports>/monitoring/<endpoint>/<execution job>.json``).

    XCom: ``{"schedule_name", "endpoint_name", "execution_status", "scheduled_time", "processing_job",
    "failure_reason", "output_uri", "violations_uri", "violation_count", "violations" (first 20),
    "features", "threshold", "drift", "report_uri"}``; ``{"execution_status": null, ...}`` when the schedule
    has no finished execution yet.

    :param schedule_name: default ``<endpoint>-data-quality``
    :param endpoint_name: default ``deployment.endpoint_name`` (templated)
    :param violation_threshold: violations that count as drift (templated; default
        ``monitoring.violation_threshold``)
    """

    template_fields: Sequence[str] = aws_template_fields("schedule_name", "endpoint_name", "violation_threshold")
    operator_extra_links = (MonitoringScheduleLink(),)

    def __init__(
        self,
        *,
        schedule_name: str | None = None,
        violation_threshold: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.schedule_name = schedule_name
        self.violation_threshold = violation_threshold

    def publish(self, cfg: Config, result: dict[str, Any]) -> dict[str, Any]:
        from ml_lifecycle.data.s3 import put_json

        if result.get("processing_job"):
            uri = cfg.storage.uri("reports", "monitoring", result["endpoint_name"], f"{result['processing_job']}.json")
            put_json(self._s3(), uri, result, **cfg.storage.encryption())
            result["report_uri"] = uri
        self.log.info(
            "Monitoring execution %s of %s: %s, %d violation(s) (drift threshold %d) on %s%s",
            result.get("processing_job"),
            result.get("schedule_name"),
            result.get("execution_status"),
            result["violation_count"],
            result["threshold"],
            ", ".join(result["features"]) or "no feature",
            f"; report {result.get('report_uri')}" if result.get("report_uri") else "",
        )
        for violation in result["violations"]:
            self.log.info(
                "  %s %s: %s",
                violation.get("feature_name"),
                violation.get("constraint_check_type"),
                violation.get("description"),
            )
        return result

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.builders.monitor import schedule_name

        cfg = self._config()
        endpoint = self.target_endpoint(cfg)
        schedule = self.schedule_name or schedule_name(endpoint)
        threshold = _int_or(self.violation_threshold, cfg.monitoring.violation_threshold)
        self._link_endpoint(context, endpoint)
        execution = newest_execution(self.sagemaker, schedule)
        if execution is None:
            self.log.info("Schedule %s has no finished execution yet", schedule)
            return {
                "schedule_name": schedule,
                "endpoint_name": endpoint,
                "execution_status": None,
                "processing_job": None,
                "violation_count": 0,
                "violations": [],
                "features": [],
                "threshold": threshold,
                "drift": False,
                "report_uri": None,
            }
        result = read_execution(self.sagemaker, self._s3(), execution, threshold)
        result["endpoint_name"] = result.get("endpoint_name") or endpoint
        result.setdefault("report_uri", None)
        if result["execution_status"] == "Failed":
            self.log.warning(
                "Newest monitoring execution of %s failed: %s", schedule, result.get("failure_reason") or "no reason"
            )
        return self.publish(cfg, result)


class MonitoringRunOperator(PollingOperatorBase, LatestMonitoringResultOperator):
    """Run the endpoint's data-quality analysis once, now, over the last ``window_hours`` hours.

    Creates a one-off ``NOW`` schedule (``<endpoint>-dq-now-<digest of the run>``) on the given job
    definition, defers until its execution finishes, reads it like
    :class:`LatestMonitoringResultOperator`, then deletes the one-off schedule (executions are kept).

    :param job_definition_name: the data-quality job definition (templated; default: the one the endpoint's
        ``<endpoint>-data-quality`` schedule uses)
    :param window_hours: analysis window, 1-24 hours (templated)
    :param poll_interval: seconds between polls (default ``sagemaker.waiter_check_interval_seconds``)
    :param max_attempts: polls before giving up (default ``sagemaker.waiter_max_attempts``)
    """

    template_fields: Sequence[str] = (
        *LatestMonitoringResultOperator.template_fields,
        "job_definition_name",
        "window_hours",
    )

    def __init__(self, *, job_definition_name: str | None = None, window_hours: int | str = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_definition_name = job_definition_name
        self.window_hours = window_hours

    def _one_off_name(self, endpoint: str, context: Context) -> str:
        from ml_lifecycle.builders.monitor import one_off_schedule_name

        return one_off_schedule_name(endpoint, run_id=context.get("run_id"), definition_name=self.job_definition_name)

    def _definition(self, endpoint: str) -> str:
        from ml_lifecycle.builders.monitor import schedule_name

        if self.job_definition_name and self.job_definition_name != "None":
            return self.job_definition_name
        name = schedule_name(endpoint)
        try:
            schedule = self.sagemaker.describe_monitoring_schedule(MonitoringScheduleName=name)
        except Exception as exc:
            if is_not_found(exc):
                raise AirflowFailException(
                    f"endpoint {endpoint} has no monitoring schedule {name}; deploy_model creates it"
                ) from exc
            raise
        return schedule["MonitoringScheduleConfig"]["MonitoringJobDefinitionName"]

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.builders.common import config_tags
        from ml_lifecycle.builders.monitor import one_off_config
        from ml_lifecycle.triggers.monitoring import MonitoringExecutionTrigger

        cfg = self._config()
        endpoint = self.target_endpoint(cfg)
        self._link_endpoint(context, endpoint)
        self.job_definition_name = self._definition(endpoint)
        name = self._one_off_name(endpoint, context)
        existing = describe_or_none(self.sagemaker.describe_monitoring_schedule, MonitoringScheduleName=name)
        if existing is None:
            self.log.info("Starting a one-off data-quality run %s over the last %s hour(s)", name, self.window_hours)
            self.sagemaker.create_monitoring_schedule(
                MonitoringScheduleName=name,
                MonitoringScheduleConfig=one_off_config(self.job_definition_name, _int_or(self.window_hours, 1)),
                Tags=config_tags(cfg),
            )
        else:
            self.log.info("Re-attaching to the one-off run %s", name)
        interval, attempts = self.job_polling(cfg)
        self.defer(
            trigger=MonitoringExecutionTrigger(
                schedule_name=name,
                poll_interval=interval,
                max_attempts=attempts,
                **aws_connection(self),
            ),
            method_name="execute_complete",
            kwargs={"endpoint": endpoint},
            timeout=dt.timedelta(seconds=interval * attempts + 60),
        )
        raise AssertionError("defer() returns only by raising")  # pragma: no cover

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, endpoint: str = ""
    ) -> dict[str, Any]:
        event = validate_execute_complete_event(event)
        name = event.get("schedule_name")
        if event.get("status") != "success" or not event.get("execution"):
            raise AirflowException(f"one-off monitoring run {name}: {event.get('message')}")
        cfg = self._config()
        threshold = _int_or(self.violation_threshold, cfg.monitoring.violation_threshold)
        execution = newest_execution(self.sagemaker, name) or event["execution"]
        result = read_execution(self.sagemaker, self._s3(), execution, threshold)
        result["endpoint_name"] = result.get("endpoint_name") or endpoint
        result["report_uri"] = None
        try:
            self.sagemaker.delete_monitoring_schedule(MonitoringScheduleName=name)
        except Exception as exc:
            self.log.warning("Could not delete the one-off schedule %s: %s", name, exc)
        if result["execution_status"] == "Failed":
            raise AirflowException(f"one-off monitoring run {name} failed: {result.get('failure_reason')}")
        return self.publish(cfg, result)


# ------------------------------------------------------------------------------------------------------- drift


def notify_drift(
    context: Context, findings: dict[str, Any], drift_uri: str, cfg: Config, console: Console | None = None
) -> bool:
    """Publish the drift to the environment's topic.

    :param console: where the endpoint's page is (default: the AWS console of the config's region)
    """
    from ml_lifecycle.notifications import log_url, publish

    ti = context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_log = log_url(
        cfg.notifications.airflow_base_url,
        dag_id,
        context.get("run_id") or "?",
        getattr(ti, "task_id", "?"),
        getattr(ti, "try_number", None),
    )
    lines = [
        f"  - {v.get('feature_name')}: {v.get('constraint_check_type')}: {v.get('description')}"
        for v in findings.get("violations", [])[:10]
    ]
    body = "\n".join(
        [
            f"Data drift on endpoint {findings.get('endpoint_name')}: {findings.get('violation_count')} violation(s) "
            f"(threshold {findings.get('threshold')}) in monitoring execution {findings.get('processing_job')} "
            f"scheduled {findings.get('scheduled_time')}.",
            "Retraining (train_model) is scheduled on the drift asset and will start.",
            "",
            "Violations:",
            *lines,
            "",
            f"Violations file: {findings.get('violations_uri')}",
            f"Drift report: {drift_uri}",
            f"Endpoint: {(console or Console(cfg.aws.region)).endpoint(str(findings.get('endpoint_name')))}",
            f"Log: {task_log}",
        ]
    )
    return publish(f"[{cfg.environment}] Data drift detected: {findings.get('endpoint_name')}", body, cfg=cfg)


class DriftPublisherBase(SageMakerOperatorBase):
    """What the drift publishers share: ``drift.json`` at the drift asset's URI and the asset event.

    :param drift_uri: where ``drift.json`` goes (templated; default the drift asset's URI)
    """

    def __init__(self, *, drift_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drift_uri = drift_uri

    def unpublished_drift_uri(self, cfg: Config, published: dict[str, Any], what: str) -> str:
        """The drift report's URI; skips the task when the report there already has the values of ``published``
        (this drift was published before: one asset event, one retraining).

        :param published: the report's keys and values that name this drift (its execution, its interval)
        :param what: this drift, for the message (``execution <job>``)
        :raises AirflowSkipException: the report names this drift already
        """
        from ml_lifecycle.assets import drift_uri
        from ml_lifecycle.data.s3 import get_json_or_none

        uri = self.drift_uri or drift_uri(cfg)
        previous = get_json_or_none(self._s3(), uri)
        if isinstance(previous, dict) and previous and all(previous.get(k) == v for k, v in published.items()):
            raise AirflowSkipException(f"Drift of {what} was already published at {uri}")
        return uri

    def emit_drift(
        self, context: Context, cfg: Config, uri: str, document: dict[str, Any], extra: dict[str, Any]
    ) -> Console:
        """Write ``document`` at ``uri`` and put ``extra`` on the asset event of each outlet; return where the
        notification's pages are (the AWS console in the config's region, or the devstack's pages)."""
        from ml_lifecycle.data.s3 import put_json

        put_json(self._s3(), uri, document, **cfg.storage.encryption())
        outlet_events = context.get("outlet_events")
        if outlet_events is not None:
            for outlet in self.outlets or []:
                outlet_events[outlet].extra = extra
        return dataclasses.replace(Console.of(self.hook), region=cfg.aws.region)


class PublishDriftOperator(DriftPublisherBase):
    """Emit the drift asset when the monitoring findings reach the threshold (else skip, no asset event).

    Give it the drift asset as its only outlet. Writes ``drift.json`` at the asset's URI (the findings plus
    ``detected_at``) and notifies the SNS topic. The same execution is never published twice (the previous
    ``drift.json`` names it), so an hourly reader that sees no new execution does not retrain again.

    XCom: ``{"published", "drift_uri", "processing_job", "violation_count", "features"}``.

    :param findings: the monitoring findings, or a list of the results of the tasks that may have read them
        (the first that returned findings wins; a task that was skipped gives ``None``) (templated; in a DAG
        ``[read_latest.output, run_now.output]``)
    :param drift_uri: where ``drift.json`` goes (templated; default the drift asset's URI)
    """

    template_fields: Sequence[str] = aws_template_fields("findings", "drift_uri")

    def __init__(
        self, *, findings: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.findings = findings

    def execute(self, context: Context) -> dict[str, Any]:
        candidates = [self.findings] if isinstance(self.findings, dict) else list(self.findings or [])
        findings = next((f for f in candidates if f), None)
        if not findings:
            raise AirflowFailException("no monitoring findings (every findings input is empty)")
        if findings.get("execution_status") == "Failed":
            raise AirflowSkipException(
                f"No drift decision: monitoring execution {findings.get('processing_job')} FAILED, so nothing was "
                f"analysed: {findings.get('failure_reason') or 'no FailureReason given'}"
                + (f" (report {findings['report_uri']})" if findings.get("report_uri") else "")
            )
        if not findings.get("drift"):
            raise AirflowSkipException(
                f"No drift: {findings.get('violation_count', 0)} violation(s) below the threshold "
                f"{findings.get('threshold')} (execution {findings.get('processing_job')})"
            )
        cfg = self._config()
        job = findings.get("processing_job")
        uri = self.unpublished_drift_uri(cfg, {"processing_job": job}, f"execution {job}")
        document = {**findings, "detected_at": dt.datetime.now(dt.UTC).isoformat(), "dag_run_id": context.get("run_id")}
        self.log.warning(
            "Drift on %s: %d violation(s) on %s; emitting the drift asset",
            findings.get("endpoint_name"),
            findings.get("violation_count"),
            ", ".join(findings.get("features") or []),
        )
        extra = {
            "processing_job": findings.get("processing_job"),
            "violation_count": findings.get("violation_count"),
            "features": findings.get("features") or [],
            "drift_uri": uri,
        }
        console = self.emit_drift(context, cfg, uri, document, extra)
        notify_drift(context, findings, uri, cfg, console)
        return {
            "published": True,
            "drift_uri": uri,
            "processing_job": findings.get("processing_job"),
            "violation_count": findings.get("violation_count"),
            "features": findings.get("features") or [],
        }
