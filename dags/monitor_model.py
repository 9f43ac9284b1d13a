"""
# monitor_model

The tasks depend on the environment's `monitoring.engine` (only its engine's tasks are in the DAG).

## engine: evidently (the default)

`export_labels -> run_monitoring -> publish_drift`

Runs the project's monitoring job on each data interval of the endpoint's captured traffic and starts
retraining on drift or a model-quality breach. No SageMaker Model Monitor API is called.

- **When**: hourly (`monitoring.schedule`); each run monitors its data interval (params `interval_start` /
  `interval_end` override it; a manual run with neither and no logical date monitors the hour before it was
  triggered).
- **export_labels**: the late labels (`snowflake.labels_table`) that arrived for the inferences of the
  model-quality lookback window (`monitoring.model_quality.lookback_hours`), Snowflake -> S3 in SageMaker's
  ground-truth layout with the bias facet as an attribute. No label yet is not an error.
- **run_monitoring**: a SageMaker Processing job in the monitoring image over the interval's capture (and the
  lookback window's, for model quality on late labels), the served model's baseline dataset and the labels
  that arrived. Data drift (Evidently's test per feature), data quality, model quality (or `no_labels` /
  `too_few_labels`) and post-training bias are all reported together in the task log; the report
  (`report.html`) is linked from the task. Metrics go to CloudWatch (`MlLifecycle/Monitoring`), the alarms of
  `monitoring.alarms` are created or updated, a bias breach notifies the team's topic. An interval without
  traffic is reported, not failed. A retry re-attaches to the interval's job.
- **publish_drift**: drift or a model-quality breach writes `drift.json` with the reasons (metric, value,
  threshold) and emits the drift asset, which `train_model` is scheduled on; once per interval.

## engine: model_monitor

`choose_source -> read_latest | run_now -> publish_drift`

Reads what SageMaker Model Monitor found on the endpoint's captured traffic and starts retraining when the
data drifts.

- **When**: hourly (`monitoring.schedule`), after the endpoint's hourly data-quality schedule has run.
- **read_latest**: the newest finished execution of `<endpoint>-data-quality`; its
  `constraint_violations.json` is summarised in the task log, in XCom and as a small JSON report in S3.
  A failed execution (for example no captured traffic in the hour) is reported, not raised.
- **run_now** (param `run_now`): a one-off analysis of the last `window_hours` hours instead, deferred
  until it finishes.
- **publish_drift**: when the violations reach `violation_threshold`, writes `drift.json` at the drift
  asset's URI and emits the drift asset, which `train_model` is scheduled on, and notifies the team's
  topic. Below the threshold it is skipped (no asset event). An execution triggers retraining once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Param

from ml_lifecycle.assets import drift_asset
from ml_lifecycle.config import load_config
from ml_lifecycle.dag_defaults import dag_defaults, dag_failure_callback

cfg = load_config()

EVIDENTLY = cfg.monitoring.engine == "evidently"

if EVIDENTLY:
    PARAMS = {
        "interval_start": Param(
            "",
            type="string",
            title="Interval start (optional)",
            description="ISO 8601 UTC start of the traffic to monitor; empty = the run's data interval.",
        ),
        "interval_end": Param(
            "",
            type="string",
            title="Interval end (optional)",
            description="ISO 8601 UTC end of the traffic to monitor; empty = the run's data interval.",
        ),
    }
else:
    PARAMS = {
        "violation_threshold": Param(
            cfg.monitoring.violation_threshold,
            type="integer",
            minimum=1,
            maximum=1000,
            title="Drift threshold (violations)",
            description="Constraint violations in one execution that count as drift and start retraining.",
        ),
        "run_now": Param(
            False,
            type="boolean",
            title="Analyse now",
            description="Run a one-off data-quality analysis now instead of reading the schedule's newest execution.",
        ),
        "window_hours": Param(
            1,
            type="integer",
            minimum=1,
            maximum=24,
            title="Analysis window (hours)",
            description="Hours of captured traffic a one-off analysis covers (with 'Analyse now').",
        ),
    }

with DAG(
    dag_id="monitor_model",
    description="Monitor the endpoint's traffic (data drift, data quality, model quality, bias) and emit the drift "
    "asset on drift",
    doc_md=__doc__,
    schedule=cfg.monitoring.schedule,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    tags=["ml-lifecycle", "monitoring", "sagemaker", cfg.environment],
    default_args=dag_defaults(cfg, max_retry_delay=timedelta(minutes=10)),
    on_failure_callback=dag_failure_callback(cfg),
    params=PARAMS,
) as dag:
    if EVIDENTLY:
        from ml_lifecycle.operators.labels import LabelsToS3Operator
        from ml_lifecycle.operators.monitoring_job import MonitoringDriftOperator, MonitoringJobOperator

        endpoint = cfg.deployment.endpoint_name
        # the params, else the run's data interval; a manual run without a logical date has none: the hour before
        # it was triggered
        end = (
            "(params.interval_end or (data_interval_end if data_interval_end is defined and data_interval_end "
            "else dag_run.run_after).isoformat())"
        )
        start = (
            "(params.interval_start or (data_interval_start if data_interval_start is defined and "
            "data_interval_start else dag_run.run_after - macros.timedelta(hours=1)).isoformat())"
        )
        interval_end = f"{{{{ {end} }}}}"
        export_labels = LabelsToS3Operator(
            task_id="export_labels",
            snowflake_conn_id=cfg.snowflake.conn_id,
            aws_conn_id=cfg.aws.conn_id,
            # the labels that arrived for the inferences of the model-quality lookback window
            arrived_from=f"{{{{ (macros.datetime.fromisoformat({end}) - "
            f"macros.timedelta(hours={cfg.monitoring.model_quality.lookback_hours})).isoformat() }}}}",
            arrived_until=interval_end,
            labels_uri=cfg.storage.uri("monitoring", endpoint, "labels") + "/",
            source_name=cfg.snowflake.labels_fqn,
            kms_key_id=cfg.storage.kms_key_id,
            multiple_outputs=True,
        )
        run_monitoring = MonitoringJobOperator(
            task_id="run_monitoring",
            endpoint_name=endpoint,
            interval_start=f"{{{{ {start} }}}}",
            interval_end=interval_end,
            labels_uri=export_labels.output["labels_uri"],
        )
        MonitoringDriftOperator(task_id="publish_drift", result=run_monitoring.output, outlets=[drift_asset(cfg)])
    else:
        from ml_lifecycle.operators.branch import ParamBranchOperator
        from ml_lifecycle.operators.monitor import (
            LatestMonitoringResultOperator,
            MonitoringRunOperator,
            PublishDriftOperator,
        )

        def choose_source(params: dict | None = None) -> str:
            """A one-off analysis when asked, else the schedule's newest execution."""
            return "run_now" if (params or {}).get("run_now") else "read_latest"

        choose = ParamBranchOperator(task_id="choose_source", choose=choose_source)

        read_latest = LatestMonitoringResultOperator(
            task_id="read_latest",
            endpoint_name=cfg.deployment.endpoint_name,
            violation_threshold="{{ params.violation_threshold }}",
        )
        run_now = MonitoringRunOperator(
            task_id="run_now",
            endpoint_name=cfg.deployment.endpoint_name,
            violation_threshold="{{ params.violation_threshold }}",
            window_hours="{{ params.window_hours }}",
        )
        publish_drift = PublishDriftOperator(
            task_id="publish_drift",
            findings=[read_latest.output, run_now.output],
            outlets=[drift_asset(cfg)],
            trigger_rule="none_failed_min_one_success",
        )

        choose >> [read_latest, run_now] >> publish_drift
