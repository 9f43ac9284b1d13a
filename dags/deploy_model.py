"""
# deploy_model

`resolve -> choose_strategy -> deploy_guarded | deploy_stepwise -> autoscale [-> baseline -> schedule_monitoring]`

Deploys an approved fraud model to the real-time endpoint (with data capture) and, under
`monitoring.engine: model_monitor`, puts Model Monitor on it. Under `evidently` (the default) the DAG ends at
`autoscale`: `baseline` and `schedule_monitoring` are not in it, no Model Monitor resource is created (an
account without Model Monitor refuses them), and `monitor_model` monitors the endpoint with the served
model's baseline dataset from the registry, computing the statistics in its own job.

- **When**: every time `train_model` publishes an approved model (the approved-model asset), every time a
  version of the group is Approved anywhere else (SageMaker Studio, the AWS CLI, another pipeline: SageMaker's
  approval event reaches the environment's approval queue, which an asset watcher reads), or from the UI with
  a model package ARN (`latest` = the approval that triggered the run, else the newest Approved version of
  the group that never rolled back).
- **Idempotent**: an approval can arrive twice (SageMaker may send an event more than once, and an approval
  in Airflow arrives both as the approved-model asset and as a SageMaker event). A run for the model the
  endpoint already serves changes nothing: `resolve` says so in its log, and every task finds its work done.
- **Deployment**: the SageMaker Model and EndpointConfig (with data capture) are created when absent. The
  first deployment creates the endpoint. Later ones update it with the strategy of the environment
  (`deployment.strategy`) or of the run:
  - `canary` / `linear` / `all_at_once`: SageMaker blue/green deployment guardrails, with auto-rollback on
    the variant's CloudWatch alarms (5XX error rate, p99 latency), thresholds from config;
  - `stepwise`: two production variants, weights moved step by step (e.g. 10 -> 50 -> 100 %), metrics and
    alarms checked after each bake, the old variant retired at the end (with its scalable target and alarms).
- **Rollback**: when SageMaker (or the stepwise check) rolls back, the previous model keeps serving 100 %
  (stepwise: the failed variant, its scalable target and alarms are removed; one variant is left), the
  evidence (alarms that fired, FailureReason, metrics) goes to XCom key `rollback` and S3, a notification
  with the console links is published, and the deploy task fails. See `docs/runbook-rollback.md`.
- **Champion**: a deployment that ends with the new model at 100 % marks its package the champion in the
  registry (`ModelLifeCycle` `Production`/`Deployed`; the previous one `Archived`/`Retired`); a rollback marks
  the package `Archived`/`RolledBack`, so `latest` never picks it again, and leaves the champion as it was.
  A run started by an event naming a version deployed before (champion, retired, rolled back) is skipped.
- **After a deployment**: auto-scaling (target tracking on invocations per instance); under `model_monitor`
  also a data-quality baseline from the model's baseline dataset (written by its evaluation: the model's
  outputs, then its inputs, the layout of a captured record), and the hourly monitoring schedule
  (`monitor_model` reads it).
- Re-running a run that already deployed its model is a no-op for the endpoint.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Param

from ml_lifecycle.assets import approvals_asset, approved_model_asset
from ml_lifecycle.config import load_config
from ml_lifecycle.dag_defaults import dag_defaults, dag_failure_callback, model_package_param, s3_uri_param
from ml_lifecycle.operators.approval import ResolveModelPackageOperator
from ml_lifecycle.operators.branch import ParamBranchOperator
from ml_lifecycle.operators.deploy import EndpointAutoScalingOperator, GuardedEndpointDeployOperator
from ml_lifecycle.operators.monitor import DataQualityBaselineOperator, MonitoringScheduleOperator
from ml_lifecycle.operators.traffic import StepwiseTrafficShiftOperator
from ml_lifecycle.strategies import FROM_CONFIG, GUARDED_TASK, REGISTRY, STEPWISE_TASK, param_description

cfg = load_config()
dep = cfg.deployment
approvals = approvals_asset(cfg)

with DAG(
    dag_id="deploy_model",
    description="Deploy an approved model with guarded traffic shifting, auto-scaling and Model Monitor",
    doc_md=__doc__,
    schedule=(approved_model_asset(cfg) | approvals) if approvals is not None else [approved_model_asset(cfg)],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    tags=["ml-lifecycle", "deployment", "sagemaker", cfg.environment],
    default_args=dag_defaults(cfg, max_retry_delay=timedelta(minutes=15)),
    on_failure_callback=dag_failure_callback(cfg),
    params={
        "model_package_arn": model_package_param(
            cfg,
            "the approval that triggered the run (approved-model asset event or SageMaker approval event), else "
            f"the newest Approved version of {cfg.sagemaker.model_package_group} that never rolled back",
        ),
        "strategy": Param(
            FROM_CONFIG,
            type="string",
            enum=[FROM_CONFIG, *REGISTRY],
            title="Deployment strategy",
            description=param_description(dep.strategy),
        ),
        "stepwise_percentages": Param(
            list(dep.stepwise_percentages),
            type="array",
            items={"type": "number", "exclusiveMinimum": 0, "maximum": 100},
            minItems=1,
            maxItems=10,
            title="Stepwise traffic steps (%)",
            description="Increasing shares of traffic for the new model (stepwise only); 100 is added if missing.",
        ),
        "bake_seconds": Param(
            dep.wait_interval_seconds,
            type="integer",
            minimum=0,
            maximum=3600,
            title="Bake time per step (s)",
            description="How long each stepwise step runs before its metrics are checked (stepwise only).",
        ),
        "baseline_dataset_uri": s3_uri_param(
            cfg,
            title="Baseline dataset (optional)",
            description="S3 prefix of the CSV to baseline Model Monitor on (header; the endpoint's output "
            "columns, then its input columns); empty = the model's own baseline dataset (its registry baseline_uri).",
        ),
    },
) as dag:
    resolve = ResolveModelPackageOperator(
        task_id="resolve",
        model_package_arn="{{ params.model_package_arn }}",
        endpoint_name=dep.endpoint_name,
        multiple_outputs=True,
    )

    def choose_strategy(params: dict | None = None) -> str:
        """The task of the run's (or the environment's) strategy, from the strategy registry."""
        from ml_lifecycle.config import load_config
        from ml_lifecycle.strategies import task_for

        strategy = (params or {}).get("strategy") or FROM_CONFIG
        if strategy == FROM_CONFIG:
            strategy = load_config().deployment.strategy
        return task_for(strategy)

    choose = ParamBranchOperator(task_id="choose_strategy", choose=choose_strategy)

    deploy_guarded = GuardedEndpointDeployOperator(
        task_id=GUARDED_TASK,
        model_package_arn=resolve.output["model_package_arn"],
        endpoint_name=dep.endpoint_name,
        strategy="{{ params.strategy if params.strategy != 'config' else '' }}",
    )
    deploy_stepwise = StepwiseTrafficShiftOperator(
        task_id=STEPWISE_TASK,
        model_package_arn=resolve.output["model_package_arn"],
        endpoint_name=dep.endpoint_name,
        percentages="{{ params.stepwise_percentages | tojson }}",
        bake_seconds="{{ params.bake_seconds }}",
    )
    autoscale = EndpointAutoScalingOperator(
        task_id="autoscale", endpoint_name=dep.endpoint_name, trigger_rule="none_failed_min_one_success"
    )
    resolve >> choose >> [deploy_guarded, deploy_stepwise] >> autoscale

    if cfg.monitoring.engine == "model_monitor":
        baseline = DataQualityBaselineOperator(
            task_id="baseline",
            dataset_uri="{{ params.baseline_dataset_uri }}",
            default_dataset_uri=resolve.output["baseline_dataset_uri"],
            model_package_version=resolve.output["version"],
            endpoint_name=dep.endpoint_name,
            multiple_outputs=True,
        )
        schedule_monitoring = MonitoringScheduleOperator(
            task_id="schedule_monitoring",
            statistics_uri=baseline.output["statistics_uri"],
            constraints_uri=baseline.output["constraints_uri"],
            model_package_version=resolve.output["version"],
            endpoint_name=dep.endpoint_name,
        )
        autoscale >> baseline >> schedule_monitoring
