"""
# train_model

`plan -> extract -> validate -> preprocess -> train|tune -> evaluate -> gate -> register -> approve -> publish_approval`

Trains the fraud model on the last `window_days` days of transactions and registers it in the SageMaker
Model Registry when it passes the quality gate.

- **When**: weekly (`training.schedule`) or when the monitoring DAG reports drift (the drift asset).
  Backfills (`airflow backfill create --dag-id train_model --from-date ... --to-date ...`) make one run per
  logical date, each over its own window.
- **Window**: `[end - window_days, end)` where `end` is the run's logical date at 00:00 UTC (the run's
  `run_after` for drift-triggered runs). Scheduled, manual, drift-triggered and backfill runs all use it.
- **Names**: every job, key and report derives from the run (window key + a hash of the run id): a retry
  re-attaches to its running SageMaker job, a re-run of an interval overwrites that interval's dataset.
- **Bad data** stops the run at `validate` (the report stays in S3); nothing reaches SageMaker.
- **Gate**: absolute thresholds and no regression against the latest approved model. A rejected model is
  not registered: `gate` succeeds with decision `rejected`, `register` is skipped with the reason, and a
  notification goes to the team's topic.
- **Step cache**: a step (validate, preprocess, train or tune, evaluate) whose inputs (window, dataset content,
  params, code, image, instance settings) equal those of a completed step reuses that job's outputs instead
  of starting a job; its log and the model's lineage (`reused:<step>`) say so. `force: true` runs them all.
- **Approval**: `training.approval` of the environment (`auto` approves a passing model, `manual` waits
  for a person), overridable per run. With `manual`, `approve` asks in Airflow (**Required Actions**, or
  `PATCH /api/v2/dags/train_model/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails`) the users of
  `training.manual_approval.approvers`, holding no worker slot while it waits. Approve: the package becomes
  Approved with the responder and comment recorded. Reject: Rejected with the reason. No answer within
  `training.manual_approval.timeout_seconds`: Rejected, and `approve` fails. With `auto`, `approve` skips
  itself. An approved model updates the approved-model asset, which starts the deployment DAG.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param

from ml_lifecycle.assets import approved_model_asset, approved_model_uri, drift_asset
from ml_lifecycle.config import load_config
from ml_lifecycle.dag_defaults import (
    dag_defaults,
    dag_failure_callback,
    force_param,
    hyperparameters_param,
    validation_job_settings,
)
from ml_lifecycle.operators.branch import ParamBranchOperator
from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator
from ml_lifecycle.operators.gate import QualityGateOperator
from ml_lifecycle.operators.human_approval import ModelApprovalOperator
from ml_lifecycle.operators.registry import ModelRegistrationOperator, PublishApprovedModelOperator
from ml_lifecycle.operators.sagemaker import (
    EvaluationJobOperator,
    PrepareRunOperator,
    PreprocessJobOperator,
    TrainingJobOperator,
    TuningJobOperator,
)
from ml_lifecycle.operators.validation import DataValidationOperator

cfg = load_config()
sm = cfg.sagemaker

#: CPU instance types offered in the trigger form (plus the configured one)
TRAINING_INSTANCE_TYPES = sorted(
    {
        sm.training.instance_type,
        "ml.m5.large",
        "ml.m5.xlarge",
        "ml.m5.2xlarge",
        "ml.m5.4xlarge",
        "ml.c5.xlarge",
        "ml.c5.2xlarge",
        "ml.c5.4xlarge",
    }
)
# The first scheduled interval and catch-up come from the environment: with catchup, unpausing the DAG runs
# the weeks missed since then (max_active_runs at a time); backfills may go further back either way.
START_DATE = datetime.combine(cfg.training.start_date, time.min, tzinfo=UTC)

MODEL = "(ti.xcom_pull(task_ids='train') or ti.xcom_pull(task_ids='tune'))"
#: the steps the step cache may reuse from an earlier run (param ``force`` bypasses it)
JOB_STEPS = ("validate", "preprocess", "train", "tune", "evaluate")
waits = {
    "check_interval": sm.waiter_check_interval_seconds,
    "max_attempts": sm.waiter_max_attempts,
    "max_ingestion_time": sm.waiter_check_interval_seconds * sm.waiter_max_attempts,
}

with DAG(
    dag_id="train_model",
    description="Extract, validate, train or tune, evaluate, gate and register the fraud model",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(cfg.training.schedule, timezone="UTC"),
        assets=[drift_asset(cfg)],
    ),
    start_date=START_DATE,
    catchup=cfg.training.catchup,
    max_active_runs=cfg.training.max_active_runs,
    # the pipeline's own budget, plus the time a manual approval may wait (it times out first and rejects)
    dagrun_timeout=timedelta(hours=12) + cfg.training.manual_approval.timeout,
    tags=["ml-lifecycle", "training", "sagemaker", cfg.environment],
    default_args=dag_defaults(cfg, max_retry_delay=timedelta(minutes=20)),
    on_failure_callback=dag_failure_callback(cfg),
    params={
        "window_days": Param(
            cfg.training.window_days,
            type="integer",
            minimum=1,
            maximum=3650,
            title="Training window (days)",
            description="Train on the days before the run's logical date (00:00 UTC).",
        ),
        "tuning": Param(
            False,
            type="boolean",
            title="Hyperparameter tuning",
            description="Run a SageMaker tuning job over the configured ranges instead of one training job.",
        ),
        "tuning_max_jobs": Param(
            sm.tuning.max_jobs,
            type="integer",
            minimum=1,
            maximum=100,
            title="Tuning budget: training jobs",
            description="Total training jobs of the search (tuning only).",
        ),
        "tuning_max_parallel_jobs": Param(
            sm.tuning.max_parallel_jobs,
            type="integer",
            minimum=1,
            maximum=20,
            title="Tuning budget: parallel jobs",
            description="Training jobs at once; at most the total (tuning only).",
        ),
        "training_instance_type": Param(
            sm.training.instance_type,
            type="string",
            enum=TRAINING_INSTANCE_TYPES,
            title="Training instance type",
            description="Instance type of the training (or each tuning) job.",
        ),
        "hyperparameters": hyperparameters_param(cfg),
        "approval": Param(
            "config",
            type="string",
            enum=["config", "auto", "manual"],
            title="Approval",
            description=f"config: the environment's setting ({cfg.training.approval}); auto: approve a model "
            "that passes the gate; manual: register it as PendingManualApproval and wait for a person to approve "
            "or reject it in Airflow (Required Actions).",
        ),
        "force": force_param(),
    },
) as dag:
    plan = PrepareRunOperator(task_id="plan")

    extract = SnowflakeToS3ParquetOperator(
        task_id="extract",
        snowflake_conn_id=cfg.snowflake.conn_id,
        sql_path="sql/features.sql",
        contract_path="code/common/features_schema.json",
        interval_start=plan.output["window_start"],
        interval_end=plan.output["window_end"],
        s3_uri=plan.output["dataset_uri"],
        batch_rows=cfg.snowflake.extraction.batch_rows,
        mode=cfg.snowflake.extraction.mode,
        stage=cfg.snowflake.extraction.stage,
        storage_integration=cfg.snowflake.extraction.storage_integration,
        min_rows=cfg.training.min_rows,
        kms_key_id=cfg.storage.kms_key_id,
        multiple_outputs=True,
    )

    validation = cfg.training.validation
    validate = DataValidationOperator(
        task_id="validate",
        dataset_uri=extract.output["dataset_uri"],
        suite_path=validation.suite,
        contract_path="code/common/features_schema.json",
        report_uri=plan.output["validation_report_uri"],
        mode=validation.mode,
        batch_rows=validation.batch_rows,
        processing_job=None
        if validation.mode == "worker"
        else validation_job_settings(cfg, job_name=plan.output["validate_job_name"]),
        check_interval=sm.waiter_check_interval_seconds,
        max_attempts=sm.waiter_max_attempts,
        multiple_outputs=True,
    )

    preprocess = PreprocessJobOperator(
        task_id="preprocess",
        dataset_uri=extract.output["dataset_uri"],
        code_uri=plan.output["preprocessing_src_uri"],
        **waits,
    )

    def train_or_tune(params: dict | None = None) -> str:
        """Follow the `tuning` param: one training job, or a tuning job."""
        return "tune" if (params or {}).get("tuning") else "train"

    splits = {
        name: f"{{{{ ti.xcom_pull(task_ids='preprocess')['outputs']['{name}'] }}}}"
        for name in ("train", "validation", "preprocessor")
    }
    splits["inference"] = plan.output["inference_src_uri"]  # bundled into model.tar.gz
    training_inputs = {
        "splits": splits,
        "sourcedir_uri": plan.output["training_sourcedir_uri"],
        "hyperparameter_overrides": "{{ params.hyperparameters | tojson }}",
        "instance_type": "{{ params.training_instance_type }}",
    }
    train = TrainingJobOperator(task_id="train", **training_inputs, **waits)
    tune = TuningJobOperator(
        task_id="tune",
        max_jobs="{{ params.tuning_max_jobs }}",
        max_parallel_jobs="{{ params.tuning_max_parallel_jobs }}",
        **training_inputs,
        **waits,
    )

    evaluate = EvaluationJobOperator(
        task_id="evaluate",
        model_uri=f"{{{{ {MODEL}['model_uri'] }}}}",
        test_uri="{{ ti.xcom_pull(task_ids='preprocess')['outputs']['test'] }}",
        # pulled, not an XComArg: an XComArg would make plan an upstream of evaluate, and plan's success would
        # satisfy none_failed_min_one_success when neither train nor tune ran (an empty interval)
        code_uri="{{ ti.xcom_pull(task_ids='plan', key='evaluation_src_uri') }}",
        trigger_rule="none_failed_min_one_success",
        multiple_outputs=True,
        **waits,
    )

    gate = QualityGateOperator(
        task_id="gate",
        evaluation_uri=evaluate.output["evaluation_uri"],
        # this run's folder, also when evaluate was reused (pulled like evaluate's code: plan's wiring stays as is)
        report_uri="{{ ti.xcom_pull(task_ids='plan', key='evaluation_report_uri') }}",
    )

    register = ModelRegistrationOperator(
        task_id="register",
        model_uri=f"{{{{ {MODEL}['model_uri'] }}}}",
        image_uri=sm.images.inference,
        package_group_name=sm.model_package_group,
        package_group_desc=f"{cfg.owner}: models trained by train_model",
        dataset_uri=extract.output["dataset_uri"],
        manifest_uri=extract.output["manifest_uri"],
        validation_result_uri=validate.output["result_uri"],
        training_job=f"{{{{ {MODEL}.get('best_training_job') or {MODEL}['job_name'] }}}}",
        code_digest=plan.output["training_digest"],
        baseline_uri=evaluate.output["baseline_uri"],
        approval="{{ params.approval }}",
        gate=gate.output,
        # pulled, not XComArgs: one of train / tune is always skipped; the steps the cache reused go to the lineage
        step_results="{{ [" + ", ".join(f"ti.xcom_pull(task_ids='{t}')" for t in JOB_STEPS) + "] | tojson }}",
    )

    # manual approval: a person answers (Required Actions / REST API); auto: skips itself
    approve = ModelApprovalOperator(task_id="approve", registration=register.output, cfg=cfg)

    publish_approval = PublishApprovedModelOperator(
        task_id="publish_approval",
        pointer_uri=approved_model_uri(cfg),
        registration=register.output,
        outlets=[approved_model_asset(cfg)],
        # runs after an approval and after an automatic one (approve skipped); a rejection skips it, a timeout
        # fails approve, and a model the gate rejected skips register and so both
        trigger_rule="none_failed_min_one_success",
    )

    branch = ParamBranchOperator(task_id="train_or_tune", choose=train_or_tune)
    plan >> extract >> validate >> preprocess >> branch >> [train, tune] >> evaluate
    evaluate >> gate >> register >> approve >> publish_approval
