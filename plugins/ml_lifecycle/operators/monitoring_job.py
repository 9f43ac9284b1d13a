"""The evidently monitoring engine: one monitoring job per Airflow data interval, and its reactions.

- ``MonitoringJobOperator``: lists the endpoint's capture objects of the lookback window, writes the S3
  manifest, runs the interval's monitoring job (named per interval and inputs; a retry re-attaches; the wait
  is deferred), then reads ``summary.json`` and ``metrics.json``, publishes the metrics to CloudWatch
  (``MlLifecycle/Monitoring``), creates or updates the alarms of ``monitoring.alarms``, links the report,
  writes the bias hold and notifies on a bias breach, and returns the summary's checks (small) for XCom. An
  interval without captured traffic is reported, not failed (no job runs).
- ``MonitoringDriftOperator``: when the decision is to retrain (data drift or a model-quality breach),
  writes ``drift.json`` with the reasons at the drift asset's URI and emits the asset (``train_model`` is
  scheduled on it); otherwise skips itself. An interval is published at most once.

Neither calls a SageMaker Model Monitor API.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from ml_lifecycle.links import Console, S3ReportLink, SageMakerProcessingJobLink
from ml_lifecycle.operators.base import EndpointOperatorBase, PollingOperatorBase
from ml_lifecycle.operators.jobs import JobKind, completed_or_defer, current_attempt, resumed_description
from ml_lifecycle.operators.monitor import DriftPublisherBase

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ml_lifecycle.config import Config

MONITORING = JobKind("monitoring", "Processing", "describe_processing_job", "ProcessingJobName", "ProcessingJobStatus")
#: CloudWatch accepts at most this many datums in one PutMetricData call
METRICS_PER_CALL = 1000


def _when(value: Any, fallback: Any) -> dt.datetime:
    """A templated interval bound (ISO text or a datetime; empty = ``fallback``) as an aware UTC datetime."""
    if value in (None, "", "None"):
        value = fallback
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise AirflowFailException(f"interval bound {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, dt.datetime):
        raise AirflowFailException(f"interval bound {value!r} is neither a time nor ISO 8601 text")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def model_features() -> tuple[list[str], list[str]]:
    """The model's input features (in order) and which of them are categorical (or boolean), from
    ``include/code/common/features_schema.json``."""
    from ml_lifecycle.config import include_dir

    schema = json.loads((include_dir() / "code" / "common" / "features_schema.json").read_text(encoding="utf-8"))
    kinds = {c["name"]: c.get("kind") for c in schema.get("columns", [])}
    features = list(schema["features"])
    return features, [f for f in features if kinds.get(f) in ("categorical", "boolean")]


def checks_text(summary: dict[str, Any]) -> list[str]:
    """Every check of a summary, one line each: drift, data quality, model quality, bias, the decision."""
    drift = summary.get("drift") or {}
    features = drift.get("features") or {}
    drifted = sorted(n for n, f in features.items() if f.get("drifted"))
    lines = [
        f"rows: {(summary.get('rows') or {}).get('interval', 0)} in the interval, "
        f"{(summary.get('rows') or {}).get('labelled', 0)} labelled in the lookback window",
        f"drift: {'DRIFT' if drift.get('drifted') else 'ok'}, share {drift.get('share', 0):.3g} of "
        f"{len(features)} feature(s) drifted{': ' + ', '.join(drifted) if drifted else ''}",
    ]
    for name in sorted(features):
        f = features[name]
        lines.append(
            f"  {name}: {f.get('test')} score {f.get('score')} threshold {f.get('threshold')}"
            f"{' DRIFTED' if f.get('drifted') else ''}"
        )
    for check in (summary.get("data_quality") or {}).get("checks", []):
        lines.append(
            f"data quality {check.get('name')}: {'ok' if check.get('passed') else 'FAILED'} {check.get('detail', '')}"
        )
    quality = summary.get("model_quality") or {}
    metrics = quality.get("metrics") or {}
    shown = ", ".join(f"{k} {metrics[k]:.3g}" for k in ("recall", "precision", "f1", "auc") if _number(metrics.get(k)))
    lines.append(
        f"model quality: {quality.get('status', 'not reported')} ({quality.get('labelled', 0)} labelled)"
        f"{': ' + shown if shown else ''}"
    )
    lines += [f"  breach: {_breach(b)}" for b in quality.get("breaches") or []]
    bias = summary.get("bias") or {}
    lines.append(f"bias ({bias.get('facet')}): {bias.get('status', 'not reported')}")
    lines += [f"  breach: {_breach(b)}" for b in bias.get("breaches") or []]
    decision = summary.get("decision") or {}
    reasons = "; ".join(_breach(r) for r in decision.get("reasons") or [])
    lines.append(
        f"decision: {'retrain' if decision.get('retrain') else 'no retraining'}"
        f"{' (' + reasons + ')' if reasons else ''}{', bias hold' if decision.get('bias_hold') else ''}"
    )
    return lines


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _breach(item: dict[str, Any]) -> str:
    where = item.get("check") or item.get("facet_value") or ""
    return (
        f"{where + ' ' if where else ''}{item.get('metric')} = {item.get('value')} "
        f"{item.get('comparison') or 'vs'} threshold {item.get('threshold')}"
    )


def xcom_result(summary: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What goes to XCom: the checks' outcome and the decision, not the per-feature detail."""
    drift = summary.get("drift") or {}
    quality = summary.get("model_quality") or {}
    bias = summary.get("bias") or {}
    checks = (summary.get("data_quality") or {}).get("checks", [])
    return {
        **extra,
        "interval": summary.get("interval"),
        "rows": summary.get("rows"),
        "drift": {
            "drifted": bool(drift.get("drifted")),
            "share": drift.get("share"),
            "features": sorted(n for n, f in (drift.get("features") or {}).items() if f.get("drifted")),
        },
        "data_quality": {"failed": [c.get("name") for c in checks if not c.get("passed")]},
        "model_quality": {"status": quality.get("status"), "breaches": quality.get("breaches") or []},
        "bias": {"status": bias.get("status"), "breaches": bias.get("breaches") or []},
        "decision": summary.get("decision") or {"retrain": False, "reasons": [], "bias_hold": False},
    }


class MonitoringJobOperator(PollingOperatorBase, EndpointOperatorBase):
    """Run the evidently monitoring job over one data interval of the endpoint's captured traffic.

    XCom: ``{"status": "completed" | "no_traffic", "endpoint_name", "job_name", "report_uri", "summary_uri",
    "interval", "rows", "drift", "data_quality", "model_quality", "bias", "decision", "metrics_published",
    "alarms", "model_package_arn", "model_reports_uri"}``.

    :param endpoint_name: the endpoint (templated; default ``deployment.endpoint_name``)
    :param interval_start: start of the interval (templated ISO time; empty = the run's ``data_interval_start``)
    :param interval_end: its end (templated; empty = the run's ``data_interval_end``)
    :param baseline_dataset_uri: the baseline dataset (templated; empty = the champion's registry
        ``baseline_uri``)
    :param labels_uri: the ground-truth prefix (templated; empty = ``<monitoring>/<endpoint>/labels/``)
    :param poll_interval: seconds between job polls (default ``sagemaker.waiter_check_interval_seconds``)
    :param max_attempts: polls before giving up (default ``sagemaker.waiter_max_attempts``)
    """

    template_fields: Sequence[str] = aws_template_fields(
        "endpoint_name", "interval_start", "interval_end", "baseline_dataset_uri", "labels_uri"
    )
    operator_extra_links = (SageMakerProcessingJobLink(), S3ReportLink())

    def __init__(
        self,
        *,
        interval_start: str | dt.datetime | None = None,
        interval_end: str | dt.datetime | None = None,
        baseline_dataset_uri: str | None = None,
        labels_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.baseline_dataset_uri = baseline_dataset_uri
        self.labels_uri = labels_uri

    # -- inputs ----------------------------------------------------------------------------------------

    def _baseline(self, cfg: Config) -> tuple[str, str | None]:
        """The baseline dataset and the model package it belongs to (the champion's unless given)."""
        from ml_lifecycle.operators.champion import find_champion
        from ml_lifecycle.operators.monitor import baseline_dataset_uri

        if self.baseline_dataset_uri and str(self.baseline_dataset_uri) != "None":
            from ml_lifecycle.strict_input import InputError, check_s3_uri

            try:
                check_s3_uri(str(self.baseline_dataset_uri), cfg, field="baseline_dataset_uri")
            except InputError as exc:
                raise AirflowFailException(str(exc)) from None
            return str(self.baseline_dataset_uri), None
        group = cfg.sagemaker.model_package_group
        champion = find_champion(self.sagemaker, group)
        if champion is None:
            raise AirflowSkipException(
                f"No monitoring: no model of {group} serves the endpoint yet (no champion in the registry)"
            )
        package = self.sagemaker.describe_model_package(ModelPackageName=champion["ModelPackageArn"])
        uri = baseline_dataset_uri(cfg, package)
        if not uri:
            raise AirflowFailException(
                f"the champion {champion['ModelPackageArn']} names no baseline dataset (baseline_uri) and its "
                "lineage is incomplete; pass baseline_dataset_uri"
            )
        return uri, champion["ModelPackageArn"]

    def _capture_keys(self, cfg: Config, endpoint: str, start: dt.datetime, end: dt.datetime) -> tuple[str, list[str]]:
        from ml_lifecycle.builders.endpoint import capture_destination
        from ml_lifecycle.builders.monitoring_job import window_objects
        from ml_lifecycle.data.s3 import iter_objects

        prefix = capture_destination(cfg).rstrip("/") + f"/{endpoint}/"
        keys = [o["Key"] for o in iter_objects(self._s3(), prefix)]
        return prefix, window_objects(keys, start, end)

    def _has_objects(self, uri: str) -> bool:
        from ml_lifecycle.data.s3 import iter_objects

        return next(iter(iter_objects(self._s3(), uri)), None) is not None

    def _code_uri(self, cfg: Config) -> tuple[str, str]:
        from ml_lifecycle.code_package import package_component, publish_component
        from ml_lifecycle.config import include_dir

        archive = package_component(include_dir() / "code", "monitoring")
        published = publish_component(
            self._s3(),
            archive,
            bucket=cfg.storage.bucket,
            prefix=cfg.storage.prefixes.code,
            kms_key_id=cfg.storage.kms_key_id,
        )
        return published["src_uri"], published["digest"]

    # -- run -------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.builders import monitoring_job as b
        from ml_lifecycle.data.s3 import put_json

        cfg = self._config()
        endpoint = self.target_endpoint(cfg)
        start = _when(self.interval_start, context.get("data_interval_start"))
        end = _when(self.interval_end, context.get("data_interval_end"))
        if end <= start:
            raise AirflowFailException(f"interval end {end.isoformat()} is not after its start {start.isoformat()}")
        features, categorical = model_features()
        config = b.monitor_config(
            cfg, endpoint=endpoint, interval_start=start, interval_end=end, features=features, categorical=categorical
        )
        lookback_start = dt.datetime.fromisoformat(config["lookback_start"])
        prefix, keys = self._capture_keys(cfg, endpoint, lookback_start, end)
        interval_keys = b.window_objects(keys, start, end)
        output_uri = b.report_uri(cfg, endpoint, start)
        if not interval_keys:
            self.log.warning(
                "No captured traffic of %s in %s .. %s (under %s): nothing to monitor, no job started",
                endpoint,
                start.isoformat(),
                end.isoformat(),
                prefix,
            )
            return {
                "status": "no_traffic",
                "endpoint_name": endpoint,
                "job_name": None,
                "report_uri": None,
                "summary_uri": None,
                **xcom_result({"interval": {"start": start.isoformat(), "end": end.isoformat()}}),
            }
        baseline, package_arn = self._baseline(cfg)
        config["model_package_arn"] = package_arn
        code_uri, code_digest = self._code_uri(cfg)
        labels = self.labels_uri if self.labels_uri and str(self.labels_uri) != "None" else b.labels_uri(cfg, endpoint)
        labels = labels if self._has_objects(labels) else None
        history = b.history_uri(cfg, endpoint)
        history = history if self._has_objects(history) else None
        digest = b.inputs_digest(config=config, baseline=baseline, code=code_digest, labels=labels)
        attempt = current_attempt(
            self.sagemaker, MONITORING, context, lambda n: b.job_name(endpoint, start, digest, try_number=n)
        )
        name, description = attempt.name, attempt.description
        if description is not None:
            self.log.info("Re-attaching to monitoring job %s (%s)", name, description["ProcessingJobStatus"])
        else:
            inputs_uri = f"{output_uri}inputs/{name}/"
            manifest_uri = f"{inputs_uri}{b.MANIFEST}"
            config_uri = f"{inputs_uri}config/"
            put_json(self._s3(), manifest_uri, b.capture_manifest(prefix, keys), **cfg.storage.encryption())
            put_json(self._s3(), config_uri + b.CONFIG_FILE, config, **cfg.storage.encryption())
            request = b.monitoring_request(
                cfg,
                name=name,
                endpoint=endpoint,
                code_uri=code_uri,
                manifest_uri=manifest_uri,
                config_uri=config_uri,
                baseline_uri=baseline,
                output_uri=output_uri,
                labels_uri=labels,
                history_uri=history,
                extra_tags={"ml-lifecycle:interval": b.interval_key(start)},
            )
            self.log.info(
                "Starting monitoring job %s: %d capture object(s) (%d of the interval's hours, %s .. %s), "
                "baseline %s%s, labels %s -> %s",
                name,
                len(keys),
                len(interval_keys),
                start.isoformat(),
                end.isoformat(),
                baseline,
                f" of {package_arn}" if package_arn else "",
                labels or "none yet",
                output_uri,
            )
            self.sagemaker.create_processing_job(**request)
            description = MONITORING.describe(self.sagemaker, name)
        self.persist_link(SageMakerProcessingJobLink, context, job_name=name)
        kwargs = {"endpoint": endpoint, "output_uri": output_uri}
        description = completed_or_defer(self, MONITORING, name, description, cfg, kwargs=kwargs)
        return self.finish(context, name, endpoint, output_uri)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, endpoint: str = "", output_uri: str = ""
    ) -> dict[str, Any]:
        # the resume may carry only the trigger's event (``dag.test``'s does): the job's description names both
        name, description = resumed_description(self.sagemaker, MONITORING, event)
        output_uri = description["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
        endpoint = self.target_endpoint(self._config())
        return self.finish(context, name, endpoint, output_uri)

    # -- results ---------------------------------------------------------------------------------------

    def finish(self, context: Context, name: str, endpoint: str, output_uri: str) -> dict[str, Any]:
        from ml_lifecycle.builders import monitoring_job as b
        from ml_lifecycle.data.s3 import get_json, get_json_or_none, put_json, split_s3_uri

        cfg = self._config()
        s3 = self._s3()
        summary_uri = output_uri + b.SUMMARY
        summary = get_json_or_none(s3, summary_uri)
        if not isinstance(summary, dict):
            raise AirflowFailException(f"monitoring job {name} completed without a summary at {summary_uri}")
        report = output_uri + b.REPORT
        bucket, key = split_s3_uri(report)
        self.persist_link(S3ReportLink, context, bucket=bucket, prefix=key)
        end = _when((summary.get("interval") or {}).get("end"), dt.datetime.now(dt.UTC))
        datums = get_json(s3, output_uri + b.METRICS)
        if not isinstance(datums, list):
            raise AirflowFailException(f"{output_uri + b.METRICS} is not a list of metric datums")
        published = self.publish_metrics(b.metric_data(datums, endpoint, end))
        alarms = self.ensure_alarms(cfg, endpoint)
        start_key = b.interval_key(_when((summary.get("interval") or {}).get("start"), end))
        put_json(s3, f"{b.history_uri(cfg, endpoint)}{start_key}.json", summary, **cfg.storage.encryption())
        model_reports = self.link_from_model(cfg, endpoint, start_key, name, output_uri, summary)
        self.log.info(
            "Monitoring of %s, job %s (report %s):\n  %s", endpoint, name, report, "\n  ".join(checks_text(summary))
        )
        result = xcom_result(
            summary,
            status="completed",
            endpoint_name=endpoint,
            job_name=name,
            report_uri=report,
            summary_uri=summary_uri,
            metrics_published=published,
            alarms=alarms,
            model_package_arn=summary.get("model_package_arn"),
            model_reports_uri=model_reports,
        )
        if (summary.get("decision") or {}).get("bias_hold") or (summary.get("bias") or {}).get("status") == "breach":
            result["bias_hold_uri"] = self.on_bias_breach(
                context, cfg, result, (summary.get("bias") or {}).get("facet")
            )
        return result

    def link_from_model(
        self, cfg: Config, endpoint: str, start_key: str, name: str, output_uri: str, summary: dict[str, Any]
    ) -> str | None:
        """Name this interval's reports under the served version's folder (``monitoring_reports`` in its registry
        metadata, set when it became the champion); the folder, or ``None`` when the job names no version."""
        from ml_lifecycle.builders import monitoring_job as b
        from ml_lifecycle.builders.endpoint import package_version
        from ml_lifecycle.data.s3 import put_json

        arn = summary.get("model_package_arn")
        if not arn:
            return None
        folder = b.model_reports_uri(cfg, endpoint, package_version({"ModelPackageArn": arn}))
        entry = {
            "model_package_arn": arn,
            "interval": summary.get("interval"),
            "job_name": name,
            "decision": summary.get("decision"),
            "reports": {
                file: output_uri + file
                for file in b.REPORT_FILES
                # the model-quality report exists only for an interval whose inferences have labels
                if file != b.QUALITY_REPORT or (summary.get("model_quality") or {}).get("report")
            },
        }
        put_json(self._s3(), f"{folder}{start_key}.json", entry, **cfg.storage.encryption())
        return folder

    def publish_metrics(self, data: list[dict[str, Any]]) -> int:
        from ml_lifecycle.config import MONITORING_NAMESPACE

        cloudwatch = self._client("cloudwatch")
        for i in range(0, len(data), METRICS_PER_CALL):
            cloudwatch.put_metric_data(Namespace=MONITORING_NAMESPACE, MetricData=data[i : i + METRICS_PER_CALL])
        self.log.info("Published %d datum(s) to CloudWatch namespace %s", len(data), MONITORING_NAMESPACE)
        return len(data)

    def ensure_alarms(self, cfg: Config, endpoint: str) -> list[str]:
        """Create or update the alarms of ``monitoring.alarms`` (PutMetricAlarm is an upsert; an existing alarm
        is tagged with TagResource, as PutMetricAlarm ignores tags on update)."""
        from ml_lifecycle.builders.monitoring_job import alarm_requests

        requests = alarm_requests(cfg, endpoint)
        if not requests:
            return []
        names = self.put_alarms(requests)
        self.log.info("Monitoring alarms in place for %s: %s", endpoint, ", ".join(names))
        return names

    def on_bias_breach(self, context: Context, cfg: Config, result: dict[str, Any], facet: str | None) -> str:
        """Write the endpoint's bias hold (the next model is not approved automatically until a person approves
        it: :mod:`ml_lifecycle.bias_hold`) and notify the team's topic; returns the hold's URI."""
        from ml_lifecycle.bias_hold import write_hold
        from ml_lifecycle.notifications import publish

        breaches = result["bias"]["breaches"]
        hold = write_hold(
            self._s3(),
            cfg,
            result["endpoint_name"],
            reason="bias breach: " + "; ".join(_breach(b) for b in breaches[:5]) if breaches else "bias breach",
            breaches=breaches,
            facet=facet,
            interval=result["interval"],
            report_uri=result["report_uri"],
        )
        console = dataclasses.replace(Console.of(self.hook), region=cfg.aws.region)
        body = "\n".join(
            [
                f"Bias breach on endpoint {result['endpoint_name']} in monitoring job {result['job_name']} "
                f"(interval {result['interval']}):",
                *[f"  - {_breach(b)}" for b in breaches[:20]],
                "",
                f"The next model is not approved automatically until a person approves it (bias hold {hold['uri']}).",
                f"Report: {console.s3(result['report_uri'])}",
            ]
        )
        self.log.warning(
            "Bias breach on %s: %d breach(es); bias hold written at %s; notifying",
            result["endpoint_name"],
            len(breaches),
            hold["uri"],
        )
        publish(f"[{cfg.environment}] Bias breach: {result['endpoint_name']}", body, cfg=cfg)
        return hold["uri"]


class MonitoringDriftOperator(DriftPublisherBase):
    """Emit the drift asset when the monitoring decision is to retrain (drift or a model-quality breach).

    Give it the drift asset as its only outlet. Writes ``drift.json`` at the asset's URI (the interval, the
    reasons ``[{"check", "metric", "value", "threshold"}]``, the report) and puts the reasons in the asset
    event's ``extra``; notifies the team's topic. An interval already published (the previous ``drift.json``
    names it) is skipped, as is a decision not to retrain.

    :param result: the :class:`MonitoringJobOperator`'s result (templated)
    :param drift_uri: where ``drift.json`` goes (templated; default the drift asset's URI)
    """

    template_fields: Sequence[str] = aws_template_fields("result", "drift_uri")

    def __init__(self, *, result: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result = result

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.notifications import publish

        result = self.result
        if not isinstance(result, dict):
            raise AirflowFailException(f"no monitoring result (got {result!r})")
        if result.get("status") != "completed":
            raise AirflowSkipException(f"No drift decision: {result.get('status')} for {result.get('interval')}")
        decision = result.get("decision") or {}
        if not decision.get("retrain"):
            raise AirflowSkipException(
                f"No retraining: no drift (share {result['drift'].get('share')}) and model quality "
                f"{result['model_quality'].get('status')} in {result.get('interval')}"
            )
        cfg = self._config()
        published = {"interval": result.get("interval"), "endpoint_name": result.get("endpoint_name")}
        uri = self.unpublished_drift_uri(cfg, published, f"interval {result.get('interval')}")
        reasons = [
            {k: r.get(k) for k in ("check", "metric", "value", "threshold")} for r in decision.get("reasons") or []
        ]
        document = {
            "engine": "evidently",
            "endpoint_name": result.get("endpoint_name"),
            "job_name": result.get("job_name"),
            "interval": result.get("interval"),
            "reasons": reasons,
            "drifted_features": result["drift"].get("features"),
            "report_uri": result.get("report_uri"),
            "summary_uri": result.get("summary_uri"),
            "detected_at": dt.datetime.now(dt.UTC).isoformat(),
            "dag_run_id": context.get("run_id"),
        }
        self.log.warning(
            "Retraining %s: %s; emitting the drift asset",
            result.get("endpoint_name"),
            "; ".join(_breach(r) for r in reasons),
        )
        extra = {
            "job_name": result.get("job_name"),
            "interval": result.get("interval"),
            "reasons": reasons,
            "drift_uri": uri,
            "report_uri": result.get("report_uri"),
        }
        console = self.emit_drift(context, cfg, uri, document, extra)
        publish(
            f"[{cfg.environment}] Retraining {result.get('endpoint_name')}: drift or model-quality breach",
            "\n".join(
                [
                    f"Monitoring of {result.get('endpoint_name')} over {result.get('interval')} decided to retrain:",
                    *[f"  - {_breach(r)}" for r in reasons],
                    "train_model is scheduled on the drift asset and will start.",
                    f"Report: {console.s3(str(result.get('report_uri')))}",
                    f"Drift report: {uri}",
                ]
            ),
            cfg=cfg,
        )
        return {"published": True, "drift_uri": uri, "interval": result.get("interval"), "reasons": reasons}
