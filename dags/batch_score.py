"""
# batch_score

`resolve -> extract -> prepare -> transform -> load`

Scores each day's transactions with the champion (the model serving the endpoint) and writes the
predictions to Snowflake (`snowflake.predictions_table`).

- **When**: daily. Each run owns one period, its data interval `[data_interval_start, data_interval_end)`
  (`CronDataIntervalTimetable`). Backfill history with
  `airflow backfill create --dag-id batch_score --from-date 2026-03-01 --to-date 2026-03-03`: one run, and
  one partition of predictions, per day.
- **extract**: the interval's feature rows (`include/sql/features.sql`) to Parquet on S3; an interval
  without transactions skips the rest of the run.
- **prepare**: the model input (feature columns in contract order) and the row keys, per part.
- **transform**: a SageMaker batch transform job with the model of the Approved package (param, else the
  champion, else, before any deployment, the newest Approved version that never rolled back); a retry
  re-attaches to the run's job.
- **Step cache**: a transform whose inputs (interval, dataset content, model package, transform settings)
  equal those of a completed job whose output is still the one it wrote reuses that output instead of
  starting a job; the task log and `load`'s result (`reused_steps`) say so. `force: true` runs it again.
- **load**: the interval's rows in the predictions table are deleted and the new ones inserted in one
  transaction, so re-running a day replaces that day and leaves every other day untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable

from ml_lifecycle.config import load_config
from ml_lifecycle.dag_defaults import dag_defaults, dag_failure_callback, force_param, model_package_param
from ml_lifecycle.operators.approval import ResolveModelPackageOperator
from ml_lifecycle.operators.batch import BatchTransformJobOperator, LoadPredictionsOperator, PrepareBatchInputOperator
from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator

cfg = load_config()
INTERVAL = "{{ data_interval_start.strftime('%Y%m%dT%H%M') }}-{{ data_interval_end.strftime('%Y%m%dT%H%M') }}"
DATASET_URI = cfg.storage.uri("datasets", "batch_score", INTERVAL) + "/"
BATCH_URI = cfg.storage.uri("batch", "batch_score", INTERVAL) + "/"
CRON_PRESETS = {"@daily": "0 0 * * *", "@hourly": "0 * * * *", "@weekly": "0 0 * * 0"}

with DAG(
    dag_id="batch_score",
    description="Score each day's transactions with the champion model (batch transform) into Snowflake",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(
        CRON_PRESETS.get(cfg.batch_scoring.schedule, cfg.batch_scoring.schedule), timezone="UTC"
    ),
    start_date=datetime.combine(cfg.batch_scoring.start_date, time.min, tzinfo=UTC),
    catchup=cfg.batch_scoring.catchup,
    max_active_runs=3,
    dagrun_timeout=timedelta(hours=4),
    tags=["ml-lifecycle", "batch-scoring", "sagemaker", "snowflake", cfg.environment],
    default_args=dag_defaults(cfg, max_retry_delay=timedelta(minutes=15)),
    on_failure_callback=dag_failure_callback(cfg),
    params={
        "model_package_arn": model_package_param(
            cfg,
            "the champion (the model serving the endpoint), else the newest Approved version that never rolled back",
        ),
        "force": force_param(),
    },
) as dag:
    resolve = ResolveModelPackageOperator(
        task_id="resolve",
        model_package_arn="{{ params.model_package_arn }}",
        fallback="champion",
        multiple_outputs=True,
    )
    extract = SnowflakeToS3ParquetOperator(
        task_id="extract",
        snowflake_conn_id=cfg.snowflake.conn_id,
        sql_path="sql/features.sql",
        contract_path="code/common/features_schema.json",
        interval_start="{{ data_interval_start }}",
        interval_end="{{ data_interval_end }}",
        s3_uri=DATASET_URI,
        batch_rows=cfg.snowflake.extraction.batch_rows,
        mode=cfg.snowflake.extraction.mode,
        stage=cfg.snowflake.extraction.stage,
        storage_integration=cfg.snowflake.extraction.storage_integration,
        min_rows=1,
        kms_key_id=cfg.storage.kms_key_id,
        source_name=cfg.snowflake.source_fqn,
        multiple_outputs=True,
    )
    prepare = PrepareBatchInputOperator(
        task_id="prepare", dataset_uri=extract.output["dataset_uri"], batch_uri=BATCH_URI, multiple_outputs=True
    )
    transform = BatchTransformJobOperator(
        task_id="transform",
        model_package_arn=resolve.output["model_package_arn"],
        input_uri=prepare.output["input_uri"],
        output_uri=BATCH_URI + "output/",
        interval_start="{{ data_interval_start }}",
        interval_end="{{ data_interval_end }}",
        dataset_uri=extract.output["dataset_uri"],
        multiple_outputs=True,
    )
    load = LoadPredictionsOperator(
        task_id="load",
        snowflake_conn_id=cfg.snowflake.conn_id,
        keys_uri=prepare.output["keys_uri"],
        output_uri=transform.output["output_uri"],
        parts=prepare.output["parts"],
        interval_start="{{ data_interval_start }}",
        interval_end="{{ data_interval_end }}",
        model_package_arn=resolve.output["model_package_arn"],
        model_package_version=resolve.output["version"],
        table=cfg.snowflake.predictions_fqn,
        step_results="{{ [ti.xcom_pull(task_ids='transform')] | tojson }}",
    )

    resolve >> extract >> prepare >> transform >> load
