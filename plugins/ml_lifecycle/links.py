"""Extra links from task instances to the AWS console page of the resource the task worked on.

Each operator that creates or finds an AWS resource calls :func:`persist_link` with the resource's name;
the Airflow UI then shows a button on the task instance that opens the console page. Notifications use the
``*_console_url`` functions for the same pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
    from airflow.sdk import Context

_SAGEMAKER = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#"
_CLOUDWATCH = BASE_AWS_CONSOLE_LINK + "/cloudwatch/home?region={region_name}#"


class SageMakerProcessingJobLink(BaseAwsLink):
    """Console page of a SageMaker processing job (``job_name``)."""

    name = "SageMaker Processing Job"
    key = "ml_lifecycle_processing_job"
    format_str = _SAGEMAKER + "/processing-jobs/{job_name}"


class SageMakerTrainingJobLink(BaseAwsLink):
    """Console page of a SageMaker training job (``job_name``)."""

    name = "SageMaker Training Job"
    key = "ml_lifecycle_training_job"
    format_str = _SAGEMAKER + "/jobs/{job_name}"


class SageMakerTuningJobLink(BaseAwsLink):
    """Console page of a SageMaker hyperparameter tuning job (``job_name``)."""

    name = "SageMaker Tuning Job"
    key = "ml_lifecycle_tuning_job"
    format_str = _SAGEMAKER + "/hyper-tuning-jobs/{job_name}"


class SageMakerModelPackageLink(BaseAwsLink):
    """Console page of a model package version (``group`` and ``version``)."""

    name = "SageMaker Model Package"
    key = "ml_lifecycle_model_package"
    format_str = _SAGEMAKER + "/model-packages/{group}/{version}"


class SageMakerEndpointLink(BaseAwsLink):
    """Console page of a SageMaker endpoint (``endpoint_name``)."""

    name = "SageMaker Endpoint"
    key = "ml_lifecycle_endpoint"
    format_str = _SAGEMAKER + "/endpoints/{endpoint_name}"


class MonitoringScheduleLink(BaseAwsLink):
    """Console page of an endpoint's monitoring (schedules live under the endpoint: ``endpoint_name``)."""

    name = "Model Monitor Schedule"
    key = "ml_lifecycle_monitoring_schedule"
    format_str = _SAGEMAKER + "/endpoints/{endpoint_name}"


class CloudWatchAlarmsLink(BaseAwsLink):
    """Console page listing the CloudWatch alarms whose name starts with ``prefix``."""

    name = "CloudWatch Alarms"
    key = "ml_lifecycle_alarms"
    format_str = _CLOUDWATCH + "alarmsV2:?search={prefix}&alarmStateFilter=ALL"


class S3ReportLink(BaseAwsLink):
    """Console page of an S3 prefix holding a report (``bucket`` and ``prefix``)."""

    name = "Report in S3"
    key = "ml_lifecycle_s3_report"
    format_str = BASE_AWS_CONSOLE_LINK + "/s3/buckets/{bucket}?region={region_name}&prefix={prefix}"


def persist_link(link: type[BaseAwsLink], operator: AwsBaseOperator, context: Context, **fields: Any) -> None:
    """Show ``link`` on ``operator``'s task instance, in the region and partition of its AWS connection.

    :param link: the link class
    :param operator: the running operator (its ``hook`` names the region and partition)
    :param context: the task's context
    :param fields: the link's own fields (``job_name``, ``endpoint_name``, ...)
    """
    hook = operator.hook
    link.persist(
        context=context,
        operator=operator,
        region_name=hook.conn_region_name,
        aws_partition=hook.conn_partition,
        **fields,
    )


def endpoint_console_url(region: str, endpoint: str) -> str:
    return f"https://console.aws.amazon.com/sagemaker/home?region={region}#/endpoints/{endpoint}"


def alarms_console_url(region: str, prefix: str) -> str:
    return f"https://console.aws.amazon.com/cloudwatch/home?region={region}#alarmsV2:?search={prefix}"


def persist_package_link(operator: AwsBaseOperator, context: Context, package: dict[str, Any]) -> None:
    """Show the model package version of a ``DescribeModelPackage`` response on the task instance."""
    persist_link(
        SageMakerModelPackageLink,
        operator,
        context,
        group=package.get("ModelPackageGroupName") or getattr(operator, "package_group_name", None),
        version=package.get("ModelPackageVersion"),
    )
