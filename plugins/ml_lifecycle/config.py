"""Per-environment configuration.

One YAML file per environment lives in ``include/config/<env>.yaml``. The environment is chosen by the
``ML_LIFECYCLE_ENV`` variable (default ``local``, the devstack). Every value an environment decides lives
there: connection ids, bucket and prefixes, role, images, instance types, security settings, thresholds,
schedules and the notification topic. DAG files read it at parse time, so loading is cheap (one small file
read, no network) and a bad file fails with a message naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ml_lifecycle.hyperparameters import ALGORITHMS, HyperparameterError, check_hyperparameters, check_range
from ml_lifecycle.strategies import StrategyName

ENV_VAR = "ML_LIFECYCLE_ENV"
CONFIG_DIR_VAR = "ML_LIFECYCLE_CONFIG_DIR"
INCLUDE_DIR_VAR = "ML_LIFECYCLE_INCLUDE_DIR"
DEFAULT_ENV = "local"
EXTRACTION_MODE_VAR = "ML_LIFECYCLE_EXTRACTION_MODE"

_ENV_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$"
_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$"
_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
_SM_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
_INSTANCE = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
_IMAGE = r"^[\w.-]+(/[\w.-]+)+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$"
_IDENT = r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$"
#: an SQS queue URL as AWS writes it (the watcher's provider recognises this form)
_SQS_URL = re.compile(
    r"^https://sqs\.(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d)\.amazonaws\.com(\.cn)?/(?P<account>\d{12})/"
    r"(?P<name>[A-Za-z0-9_-]{1,80})$"
)


def _not_a_boolean(value: Any) -> Any:
    """Refuse a boolean where a number is expected.

    pydantic's lax mode reads ``True`` as 1, and YAML reads ``true``, ``yes`` and ``on`` as booleans, so a
    slip such as ``max_jobs: yes`` would otherwise load as 1. Every other input goes on to the normal
    number validation.
    """
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean (YAML reads true/false, yes/no and on/off as booleans)")
    return value


# integers and floats that refuse booleans; every numeric field of the config uses them
Int = Annotated[int, BeforeValidator(_not_a_boolean)]
Float = Annotated[float, BeforeValidator(_not_a_boolean)]
Percent = Annotated[Float, Field(ge=0, le=100)]
Fraction = Annotated[Float, Field(ge=0, le=1)]


#: the tags every resource carries (AWS cost allocation and ownership); free-form tags may be added
REQUIRED_TAGS = ("owner", "cost-centre", "project", "environment")
#: prefix of the tags the package adds itself (a run's identity, a model's package)
PACKAGE_TAG_PREFIX = "ml-lifecycle:"
#: AWS allows 50 tags on a resource; the package adds up to 5 of its own
MAX_CONFIG_TAGS = 45
# what SageMaker, CloudWatch, SNS, Application Auto Scaling and CloudFormation all accept in a tag
_TAG_KEY = re.compile(r"^[\w\s.:/=+\-@]{1,128}$")
_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]{1,256}$")


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    """The ``tags`` block: the required tags present, every key and value one AWS accepts everywhere."""
    missing = [key for key in REQUIRED_TAGS if key not in tags]
    if missing:
        raise ValueError(
            f"missing required tag(s) {', '.join(missing)}: every resource the package and the stack create "
            f"carries {', '.join(REQUIRED_TAGS)} (plus any free-form tags)"
        )
    if len(tags) > MAX_CONFIG_TAGS:
        raise ValueError(f"{len(tags)} tags; at most {MAX_CONFIG_TAGS} (AWS allows 50, the package adds up to 5)")
    for key, value in tags.items():
        if not _TAG_KEY.match(key):
            raise ValueError(
                f"tag key {key!r}: 1-128 letters, digits, spaces or _ . : / = + - @ (what every AWS service accepts)"
            )
        if key.lower().startswith("aws:"):
            raise ValueError(f"tag key {key!r}: the aws: prefix is reserved by AWS")
        if key.startswith(PACKAGE_TAG_PREFIX):
            raise ValueError(f"tag key {key!r}: the {PACKAGE_TAG_PREFIX} prefix is the package's own (run identity)")
        if not _TAG_VALUE.match(value):
            raise ValueError(
                f"tag {key!r}: the value {value!r} must be 1-256 letters, digits, spaces or _ . : / = + - @"
            )
    return tags


#: ``tags``: the required tags and free-form ones, as key -> value
ResourceTags = Annotated[dict[str, str], AfterValidator(_check_tags)]


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# --------------------------------------------------------------------------------------------- AWS + Snowflake


class AwsConfig(_Strict):
    conn_id: str = Field(min_length=1, description="Airflow connection id for AWS")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    account_id: str = Field(pattern=r"^\d{12}$")


class ExtractionConfig(_Strict):
    mode: Literal["stream", "unload"] = Field(
        "stream",
        description="stream: the worker pages rows to Parquet; unload: Snowflake COPY INTO an external S3 stage",
    )
    batch_rows: Int = Field(50_000, ge=1_000, le=5_000_000)
    stage: str | None = Field(None, description="external stage for the unload mode, e.g. FRAUD_DB.RAW.ML_STAGE")
    storage_integration: str | None = None

    @model_validator(mode="after")
    def _unload_needs_stage(self) -> ExtractionConfig:
        if self.mode == "unload" and not self.stage:
            raise ValueError("extraction.mode 'unload' needs extraction.stage (an external S3 stage)")
        return self


class SnowflakeConfig(_Strict):
    conn_id: str = Field(min_length=1)
    database: str = Field(pattern=_IDENT)
    schema_: str = Field(alias="schema", pattern=_IDENT)
    warehouse: str | None = Field(None, pattern=_IDENT)
    role: str | None = Field(None, pattern=_IDENT)
    source_table: str = Field(pattern=_IDENT)
    predictions_table: str = Field(pattern=_IDENT)
    labels_table: str = Field(
        "FRAUD_LABELS",
        pattern=_IDENT,
        description="late ground truth: TRANSACTION_ID, IS_FRAUD, LABELED_AT (when the outcome became known)",
    )
    extraction: ExtractionConfig = ExtractionConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def source_fqn(self) -> str:
        return f"{self.database}.{self.schema_}.{self.source_table}"

    @property
    def predictions_fqn(self) -> str:
        return f"{self.database}.{self.schema_}.{self.predictions_table}"

    @property
    def labels_fqn(self) -> str:
        return f"{self.database}.{self.schema_}.{self.labels_table}"


class Prefixes(_Strict):
    datasets: str = "datasets"
    code: str = "code"
    jobs: str = "jobs"
    reports: str = "reports"
    models: str = "models"
    data_capture: str = "data-capture"
    monitoring: str = "monitoring"
    batch: str = "batch"
    cache: str = "cache"  #: step-cache records (``ml_lifecycle.cache``)

    @field_validator("*")
    @classmethod
    def _no_slashes_at_ends(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/"):
            raise ValueError("prefix must be non-empty and must not start or end with '/'")
        return value


class StorageConfig(_Strict):
    bucket: str = Field(pattern=_BUCKET)
    prefixes: Prefixes = Prefixes()
    kms_key_id: str | None = Field(None, description="KMS key for S3 outputs written by jobs")
    input_buckets: list[Annotated[str, Field(pattern=_BUCKET)]] = Field(
        default_factory=list,
        max_length=20,
        description="other buckets a run's params may read from (baseline_dataset_uri); bucket is always allowed",
    )

    def uri(self, prefix: str, *parts: str) -> str:
        """``s3://<bucket>/<prefix>/<parts...>`` for one of the configured prefixes."""
        base = getattr(self.prefixes, prefix)
        tail = "/".join(p.strip("/") for p in parts if p)
        return f"s3://{self.bucket}/{base}/{tail}" if tail else f"s3://{self.bucket}/{base}"

    def encryption(self) -> dict[str, str]:
        """``PutObject`` arguments of the bucket's server-side encryption (none without ``kms_key_id``)."""
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id} if self.kms_key_id else {}


# ------------------------------------------------------------------------------------------------- SageMaker


class VpcConfig(_Strict):
    subnets: list[str] = Field(min_length=1, max_length=16)
    security_group_ids: list[str] = Field(min_length=1, max_length=5)


class SecurityConfig(_Strict):
    volume_kms_key_id: str | None = None
    output_kms_key_id: str | None = None
    vpc: VpcConfig | None = None
    enable_network_isolation: bool = False
    enable_inter_container_traffic_encryption: bool = False


class Images(_Strict):
    processing: str = Field(pattern=_IMAGE)
    training: str = Field(pattern=_IMAGE)
    inference: str = Field(pattern=_IMAGE)
    model_monitor: str = Field(pattern=_IMAGE)
    validation: str = Field(
        pattern=_IMAGE,
        description="data validation jobs (mode: processing): the project's image with Great Expectations "
        "(include/images/ml-lifecycle-validation/Dockerfile)",
    )
    monitoring: str = Field(
        pattern=_IMAGE,
        description="the monitoring job of the evidently engine: the project's image with Evidently and "
        "matplotlib (include/images/ml-lifecycle-monitoring/Dockerfile)",
    )


class ComputeConfig(_Strict):
    instance_type: str = Field(pattern=_INSTANCE)
    instance_count: Int = Field(1, ge=1, le=100)
    volume_size_gb: Int = Field(30, ge=1, le=16384)
    max_runtime_seconds: Int = Field(3600, ge=60, le=432_000)


HyperParameterValue = str | int | float | bool


class IntegerRange(_Strict):
    type: Literal["integer"]
    min: Int
    max: Int
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = "Auto"


class ContinuousRange(_Strict):
    type: Literal["continuous"]
    min: Float
    max: Float
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = "Auto"


class CategoricalRange(_Strict):
    type: Literal["categorical"]
    values: list[str] = Field(min_length=1, max_length=30)


ParameterRange = Annotated[IntegerRange | ContinuousRange | CategoricalRange, Field(discriminator="type")]


class TuningConfig(_Strict):
    strategy: Literal["Bayesian", "Random", "Grid", "Hyperband"] = "Random"
    objective_metric: str = "validation:auc"
    objective_type: Literal["Maximize", "Minimize"] = "Maximize"
    max_jobs: Int = Field(6, ge=1, le=500)
    max_parallel_jobs: Int = Field(2, ge=1, le=100)
    ranges: dict[str, ParameterRange] = Field(min_length=1)

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> TuningConfig:
        for name, rng in self.ranges.items():
            if isinstance(rng, IntegerRange | ContinuousRange) and rng.min >= rng.max:
                raise ValueError(f"ranges.{name}: min must be below max")
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError("max_parallel_jobs must not exceed max_jobs")
        return self


class SageMakerConfig(_Strict):
    role_arn: str = Field(pattern=_ROLE_ARN)
    images: Images
    processing: ComputeConfig
    training: ComputeConfig
    algorithm: Literal[ALGORITHMS] = Field(  # type: ignore[valid-type]
        "xgboost",
        description="the training code's hyperparameter schema (ml_lifecycle.hyperparameters.SCHEMAS): "
        "hyperparameters, tuning ranges and the run's overrides are checked against it",
    )
    hyperparameters: dict[str, HyperParameterValue] = Field(default_factory=dict)
    tuning: TuningConfig
    security: SecurityConfig = SecurityConfig()
    model_package_group: str = Field(pattern=_SM_NAME)
    name_prefix: str = Field("fraud", pattern=r"^[a-z0-9](-*[a-z0-9]){0,11}$")
    waiter_check_interval_seconds: Int = Field(30, ge=1, le=600)
    waiter_max_attempts: Int = Field(240, ge=1, le=10_000)

    @model_validator(mode="before")
    @classmethod
    def _tags_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tags" in data:
            raise ValueError(
                "sagemaker.tags is no longer read: the tags of every resource (SageMaker, CloudWatch, Application "
                f"Auto Scaling, SNS) are the top-level 'tags' block, with {', '.join(REQUIRED_TAGS)} required"
            )
        return data

    @model_validator(mode="after")
    def _hyperparameters_follow_the_schema(self) -> SageMakerConfig:
        try:
            check_hyperparameters(self.hyperparameters, self.algorithm, source="hyperparameters")
            for name, rng in self.tuning.ranges.items():
                if isinstance(rng, CategoricalRange):
                    values = [_categorical_value(v) for v in rng.values]
                    integer = all(isinstance(v, int) for v in values)
                else:
                    values, integer = [rng.min, rng.max], isinstance(rng, IntegerRange)
                check_range(name, values, integer=integer, algorithm=self.algorithm, source="tuning.ranges")
        except HyperparameterError as exc:
            raise ValueError(f"{exc} (algorithm {self.algorithm})") from None
        return self


def _categorical_value(text: str) -> Any:
    """A categorical tuning value as the training script reads it (JSON, else the string itself)."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


# -------------------------------------------------------------------------------------------------- Pipeline


class SplitConfig(_Strict):
    validation: Fraction = 0.15
    test: Fraction = 0.15

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> SplitConfig:
        if self.validation + self.test >= 0.9:
            raise ValueError("validation + test must leave at least 10 % of rows for training")
        return self


class DataValidationConfig(_Strict):
    mode: Literal["worker", "processing"] = Field(
        "worker", description="worker: validate in the Airflow worker; processing: in a SageMaker job"
    )
    suite: str = Field("gx/card_transactions_features.json", description="path under include/")
    batch_rows: Int = Field(100_000, ge=1_000, le=5_000_000)


class GateConfig(_Strict):
    thresholds: dict[str, Fraction] = Field(min_length=1, description="metric -> minimum value")
    max_regression: dict[str, Fraction] = Field(
        default_factory=dict, description="metric -> largest allowed drop against the approved model"
    )
    decision_threshold: Fraction = 0.5


#: bounds of ``training.manual_approval.timeout_seconds``: ten seconds to thirty days
APPROVAL_TIMEOUT_MIN = 10
APPROVAL_TIMEOUT_MAX = 30 * 24 * 3600


class Approver(_Strict):
    """A person who may answer an approval request: an Airflow user as the auth manager names it."""

    id: str = Field(min_length=1, max_length=256, description="the Airflow user id (the auth manager's)")
    name: str = Field(min_length=1, max_length=256, description="the name the Required Actions page shows")


class ManualApprovalConfig(_Strict):
    """How a run with manual approval waits for a person (Airflow's Human-in-the-loop approval)."""

    timeout_seconds: Int = Field(
        86400,
        ge=APPROVAL_TIMEOUT_MIN,
        le=APPROVAL_TIMEOUT_MAX,
        description="how long the request waits for an answer; at the deadline the model package is Rejected "
        "(never approved) and nothing is deployed",
    )
    approvers: list[Approver] = Field(
        default_factory=list,
        description="the only users who may answer (assigned users); empty: any user allowed to answer "
        "Required Actions of the DAG",
    )

    @field_validator("approvers")
    @classmethod
    def _unique_ids(cls, value: list[Approver]) -> list[Approver]:
        ids = [a.id for a in value]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"approver ids must be unique; given more than once: {', '.join(twice)}")
        return value

    @property
    def timeout(self) -> dt.timedelta:
        """:attr:`timeout_seconds` as a ``timedelta``."""
        return dt.timedelta(seconds=self.timeout_seconds)

    def assigned_users(self) -> list[dict[str, str]] | None:
        """The approvers as the HITL operator's ``assigned_users`` (``None``: anyone permitted)."""
        return [{"id": a.id, "name": a.name} for a in self.approvers] or None


class TrainingPipelineConfig(_Strict):
    schedule: str = Field("@weekly", min_length=1)
    start_date: dt.date = Field(description="first scheduled interval (UTC)")
    catchup: bool = Field(True, description="run the intervals missed since start_date when unpaused")
    window_days: Int = Field(90, ge=1, le=3650)
    min_rows: Int = Field(1000, ge=1)
    max_active_runs: Int = Field(2, ge=1, le=16)
    approval: Literal["auto", "manual"] = "manual"
    manual_approval: ManualApprovalConfig = ManualApprovalConfig()
    split: SplitConfig = SplitConfig()
    validation: DataValidationConfig = DataValidationConfig()
    gate: GateConfig


# ------------------------------------------------------------------------------- Deployment and monitoring


class AutoScalingConfig(_Strict):
    enabled: bool = True
    min_capacity: Int = Field(1, ge=1)
    max_capacity: Int = Field(2, ge=1)
    target_invocations_per_instance: Float = Field(100.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> AutoScalingConfig:
        if self.min_capacity > self.max_capacity:
            raise ValueError("min_capacity must not exceed max_capacity")
        return self


#: SageMaker names derived from the endpoint name keep all of it (``<endpoint>-dq-now-<8 hex>`` within
#: SageMaker's 63 characters), because the IAM policy grants them as ``${EndpointName}-*``
ENDPOINT_NAME_MAX = 47


class DeploymentConfig(_Strict):
    endpoint_name: str = Field(pattern=_SM_NAME)
    instance_type: str = Field(pattern=_INSTANCE)
    initial_instance_count: Int = Field(1, ge=1, le=100)
    strategy: StrategyName = "canary"
    canary_percent: Percent = 10
    linear_step_percent: Percent = 25
    wait_interval_seconds: Int = Field(300, ge=0, le=3600)
    termination_wait_seconds: Int = Field(300, ge=0, le=3600)
    max_execution_timeout_seconds: Int = Field(3600, ge=600, le=14400)
    stepwise_percentages: list[Percent] = Field(default_factory=lambda: [10.0, 50.0, 100.0], min_length=1)
    max_5xx_rate: Fraction = 0.01
    max_latency_p99_ms: Float = Field(500, gt=0)
    data_capture_percent: Percent = 100
    autoscaling: AutoScalingConfig = AutoScalingConfig()

    @field_validator("endpoint_name")
    @classmethod
    def _leaves_room_for_derived_names(cls, value: str) -> str:
        if len(value) > ENDPOINT_NAME_MAX:
            raise ValueError(
                f"at most {ENDPOINT_NAME_MAX} characters, got {len(value)}: the monitoring schedules are named "
                "<endpoint>-data-quality and <endpoint>-dq-now-<8 hex> within SageMaker's 63 characters, and the "
                "IAM policy grants them as ${EndpointName}-*"
            )
        return value


MonitoringEngine = Literal["evidently", "model_monitor"]
#: CloudWatch namespace of the evidently engine's metrics (the IAM policy's ``cloudwatch:namespace`` condition)
MONITORING_NAMESPACE = "MlLifecycle/Monitoring"
#: the longest endpoint name whose monitoring jobs (``<endpoint>-mon-<%Y%m%d%H%M>-<8 hex>-r<nnn>``) fit in 63,
#: up to try 999 as every other job name
MONITORING_ENDPOINT_MAX = 32


class ModelQualityThresholds(_Strict):
    """Model quality on late labels (evidently engine): the lowest acceptable scores and the label window."""

    lookback_hours: Int = Field(
        168,
        ge=1,
        le=2160,
        description="hours of captured inferences whose late labels count (labels arrive days after a transaction)",
    )
    min_labelled_rows: Int = Field(
        50, ge=1, description="labelled inferences needed before model quality is judged (fewer: too_few_labels)"
    )
    recall_min: Fraction = 0.5
    precision_min: Fraction = 0.3
    f1_min: Fraction = 0.4
    auc_min: Fraction = 0.7


class DriftThresholds(_Strict):
    """Data drift (evidently engine): per feature Evidently's default test for its type; the share decides."""

    share: Fraction = Field(
        0.5, gt=0, description="share of the checked features that drift at which the interval counts as drift"
    )


class BiasFacet(_Strict):
    """The column bias is measured on: an attribute of the dataset contract (in the data, never a model input)."""

    name: str = Field(
        "customer_segment",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="an attribute column of include/code/common/features_schema.json",
    )
    values_or_threshold: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        min_length=1,
        description="the sensitive group (Clarify's facet value_or_threshold); omitted: each value against the rest",
    )


class BiasConfig(_Strict):
    """What bias is measured on, at training time (pre-training metrics) and in monitoring (post-training), and
    the post-training thresholds on labelled traffic (evidently engine), with SageMaker Clarify's metric names."""

    facet: BiasFacet = BiasFacet()

    dppl_abs_max: Fraction = Field(0.1, description="|DPPL| above this is a breach")
    di_min: Float = Field(0.8, gt=0, description="DI below this is a breach (the four-fifths rule)")
    di_max: Float = Field(1.25, gt=0, description="DI above this is a breach")
    rd_abs_max: Fraction = Field(0.2, description="|RD| (recall difference) above this is a breach")

    @model_validator(mode="after")
    def _ordered(self) -> BiasConfig:
        if self.di_min >= self.di_max:
            raise ValueError("di_min must be below di_max")
        return self


_COMPARISONS = Literal[
    "GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"
]


class MonitoringAlarm(_Strict):
    """A CloudWatch alarm on one of the monitoring metrics (namespace ``MlLifecycle/Monitoring``).

    Named ``<endpoint>-monitoring-<name>``; its dimensions are ``Endpoint`` plus ``dimensions``.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", description="the alarm's suffix")
    metric: Literal["FeatureDriftScore", "DriftShare", "ModelQuality", "Bias", "LabelledRows"]
    dimensions: dict[Literal["Feature", "Metric", "Facet", "FacetValue"], Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict
    )
    statistic: Literal["Average", "Minimum", "Maximum", "Sum", "SampleCount"] = "Maximum"
    comparison: _COMPARISONS
    threshold: Float
    period_seconds: Int = Field(3600, ge=60, le=86400)
    evaluation_periods: Int = Field(1, ge=1, le=24)
    treat_missing_data: Literal["breaching", "notBreaching", "ignore", "missing"] = "notBreaching"

    @field_validator("period_seconds")
    @classmethod
    def _whole_minutes(cls, value: int) -> int:
        if value % 60:
            raise ValueError("a multiple of 60 seconds")
        return value


class MonitoringConfig(_Strict):
    engine: MonitoringEngine = Field(
        "evidently",
        description="evidently: the project's own monitoring job per Airflow interval (works in every account); "
        "model_monitor: SageMaker Model Monitor's data-quality schedule (accounts that still have Model Monitor)",
    )
    model_quality: ModelQualityThresholds = ModelQualityThresholds()
    drift: DriftThresholds = DriftThresholds()
    bias: BiasConfig = BiasConfig()
    alarms: list[MonitoringAlarm] = Field(
        default_factory=list, max_length=20, description="CloudWatch alarms on the monitoring metrics (evidently)"
    )
    schedule_expression: str = Field("cron(0 * ? * * *)", min_length=1, max_length=256)
    instance_type: str = Field("ml.m5.large", pattern=_INSTANCE)
    max_runtime_seconds: Int = Field(3600, ge=60, le=86400)
    violation_threshold: Int = Field(1, ge=1, description="violations that count as drift")
    schedule: str = Field("@hourly", min_length=1, description="Airflow schedule of monitor_model")
    ignore_features: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="baseline columns whose constraints Model Monitor does not evaluate (no drift, type or "
        "completeness check): features that describe when traffic arrives rather than what it is, such as "
        "the hour of day, which any one-hour window of live traffic 'drifts' on",
    )

    @field_validator("alarms")
    @classmethod
    def _unique_alarm_names(cls, value: list[MonitoringAlarm]) -> list[MonitoringAlarm]:
        names = [alarm.name for alarm in value]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"alarm names must be unique: {', '.join(dupes)}")
        return value


class BatchScoringConfig(_Strict):
    schedule: str = Field("@daily", min_length=1)
    start_date: dt.date = Field(description="first scored day (UTC)")
    catchup: bool = Field(False, description="score the days missed since start_date when unpaused")
    instance_type: str = Field(pattern=_INSTANCE)
    instance_count: Int = Field(1, ge=1, le=100)
    max_payload_mb: Int = Field(6, ge=1, le=100)


class ApprovalEventsConfig(_Strict):
    """Approvals made outside Airflow (SageMaker Studio, the AWS CLI, another pipeline) start ``deploy_model``.

    SageMaker's "Model Package State Change" events of the group, with status Approved, reach this SQS queue
    through the stack's EventBridge rule; an asset watcher of ``deploy_model`` reads the queue.
    """

    queue_url: str = Field(
        description="the queue the EventBridge rule sends approvals to (the stack's ApprovalQueueUrl output)"
    )
    wait_time_seconds: Int = Field(20, ge=0, le=20, description="SQS long polling: how long one receive waits")
    poll_interval_seconds: Int = Field(
        10, ge=0, le=3600, description="pause between two receives that found nothing (the triggerer's)"
    )

    @field_validator("queue_url")
    @classmethod
    def _sqs_url(cls, value: str) -> str:
        if not _SQS_URL.match(value):
            raise ValueError(
                "an SQS queue URL https://sqs.<region>.amazonaws.com/<12-digit account>/<queue name> "
                "(1-80 letters, digits, - or _)"
            )
        return value

    @property
    def queue_name(self) -> str:
        """The queue's name (the URL's last part)."""
        return self.queue_url.rsplit("/", 1)[1]


class NotificationsConfig(_Strict):
    sns_topic_arn: str | None = Field(None, pattern=_TOPIC_ARN)
    airflow_base_url: str = Field("http://localhost:8080", pattern=r"^https?://")


class Config(_Strict):
    environment: str = Field(pattern=_ENV_NAME.pattern)
    owner: str = Field("ml-platform", min_length=1)
    aws: AwsConfig
    snowflake: SnowflakeConfig
    storage: StorageConfig
    sagemaker: SageMakerConfig
    training: TrainingPipelineConfig
    deployment: DeploymentConfig
    monitoring: MonitoringConfig
    batch_scoring: BatchScoringConfig
    notifications: NotificationsConfig = NotificationsConfig()
    approval_events: ApprovalEventsConfig | None = Field(
        None, description="the queue of approvals made outside Airflow; absent: only Airflow's approvals deploy"
    )
    tags: ResourceTags = Field(
        description="tags of every resource the package creates: owner, cost-centre, project and environment "
        "(required) and free-form ones"
    )

    source_file: str | None = Field(None, exclude=True, description="the file this was loaded from")

    @model_validator(mode="after")
    def _approval_queue_in_the_environment(self) -> Config:
        if self.approval_events is not None:
            match = _SQS_URL.match(self.approval_events.queue_url)
            if match is not None and (match["region"], match["account"]) != (self.aws.region, self.aws.account_id):
                raise ValueError(
                    f"approval_events.queue_url is in {match['region']} / account {match['account']}, not the "
                    f"environment's {self.aws.region} / {self.aws.account_id} (aws.region, aws.account_id)"
                )
        return self

    @model_validator(mode="after")
    def _monitoring_job_names_fit(self) -> Config:
        endpoint = self.deployment.endpoint_name
        if self.monitoring.engine == "evidently" and len(endpoint) > MONITORING_ENDPOINT_MAX:
            raise ValueError(
                f"deployment.endpoint_name: at most {MONITORING_ENDPOINT_MAX} characters under monitoring.engine "
                f"evidently, got {len(endpoint)}: the monitoring jobs are named <endpoint>-mon-<interval>-<8 hex>"
                "[-r<try>] within SageMaker's 63 characters, and the IAM policy grants them as ${EndpointName}-mon-*"
            )
        return self


# ------------------------------------------------------------------------------------------------- Loading


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def include_dir() -> Path:
    """The ``include/`` folder: SQL, GX suites, per-environment config and container code.

    Looked up, in order: ``$ML_LIFECYCLE_INCLUDE_DIR``; ``$AIRFLOW_HOME/include`` (Astro); the ``include``
    folder beside the DAG files (what ``make dist`` ships to MWAA); the repository's own ``include/``.
    """
    explicit = os.environ.get(INCLUDE_DIR_VAR)
    if explicit:
        return Path(explicit)
    candidates = []
    if home := os.environ.get("AIRFLOW_HOME"):
        candidates.append(Path(home) / "include")
    if dags := os.environ.get("AIRFLOW__CORE__DAGS_FOLDER"):
        candidates.append(Path(dags) / "include")
    candidates.append(_repo_root() / "include")
    candidates.append(_repo_root() / "dags" / "include")
    for candidate in candidates:
        if (candidate / "config").is_dir():
            return candidate
    return candidates[-2]


def config_path(env: str | None = None) -> Path:
    env = env or os.environ.get(ENV_VAR, DEFAULT_ENV)
    if not _ENV_NAME.match(env):
        raise ConfigError(f"{ENV_VAR}={env!r} is not a valid environment name (lower-case letters, digits, - or _)")
    folder = Path(os.environ[CONFIG_DIR_VAR]) if os.environ.get(CONFIG_DIR_VAR) else include_dir() / "config"
    return folder / f"{env}.yaml"


def _format_location(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + ("schema" if item == "schema_" else str(item)))
    return "".join(parts) or "<top level>"


def _document_path(loc: tuple[Any, ...], document: Any) -> tuple[Any, ...]:
    """``loc`` without the parts pydantic adds that are not keys of the document.

    Those are validator wrappers (``function-...``, ``tagged-union[...]``) and the tag of a discriminated
    union (``integer`` in ``sagemaker.tuning.ranges.max_depth.integer.min``): a tag is recognised as a part
    that is not a key of the mapping it is read from but is that mapping's ``type``.
    """
    kept: list[Any] = []
    node = document
    for part in loc:
        if str(part).startswith(("function-", "tagged-")):
            continue
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        kept.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(kept)


def _describe(error: dict[str, Any], document: Any = None) -> str:
    where = _format_location(_document_path(tuple(error["loc"]), document))
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key (not part of the schema; check the spelling)"
    if error["type"] == "missing":
        return f"{where}: required field is missing"
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    if error["type"] not in {"model_type", "dict_type"} and not isinstance(got, dict | list):
        return f"{where}: {message} (got {got!r})"
    return f"{where}: {message}"


def parse_config(text: str, source: str) -> Config:
    """Parse and validate one config document; errors name ``source`` and each offending field."""
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe loader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Config.model_validate({**data, "source_file": source})
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(err, data)}" for err in exc.errors())
        count = exc.error_count()
        raise ConfigError(f"{source}: {count} invalid field{'s' if count > 1 else ''}:\n{problems}") from None


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> Config:
    del mtime_ns  # part of the cache key only: an edited file is read again
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    return parse_config(text, path)


def load_config(env: str | None = None) -> Config:
    """Load the configuration of ``env`` (default: ``$ML_LIFECYCLE_ENV``, else ``local``).

    :param env: environment name; its file is ``include/config/<env>.yaml``
    :raises ConfigError: the file is missing or invalid; the message names the file and the field
    """
    path = config_path(env)
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        available = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise ConfigError(
            f"{path}: no config file for environment {path.stem!r} (available: {', '.join(available) or 'none'};"
            f" set {ENV_VAR})"
        ) from None
    config = _load_cached(str(path), mtime)
    return _with_extraction_mode(config, os.environ.get(EXTRACTION_MODE_VAR, "").strip())


def _with_extraction_mode(config: Config, mode: str) -> Config:
    """``config`` with ``snowflake.extraction.mode`` set to ``mode`` (``$ML_LIFECYCLE_EXTRACTION_MODE``), if given.

    :raises ConfigError: an unknown mode, or ``unload`` for an environment without an extraction stage
    """
    if not mode or mode == config.snowflake.extraction.mode:
        return config
    extraction = config.snowflake.extraction.model_dump()
    try:
        replaced = ExtractionConfig.model_validate({**extraction, "mode": mode})
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ConfigError(
            f"{EXTRACTION_MODE_VAR}={mode!r} does not apply to {config.source_file}: {problems}"
        ) from None
    snowflake = config.snowflake.model_copy(update={"extraction": replaced})
    return config.model_copy(update={"snowflake": snowflake})
