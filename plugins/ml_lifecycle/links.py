"""Extra links from task instances to the page of the resource the task worked on.

Each operator that creates or finds an AWS resource calls :func:`persist_link` with the resource's name;
the Airflow UI then shows a button on the task instance that opens the resource's page. Notifications and
XCom use :class:`Console` for the same pages.

Which page: with a real AWS connection, the AWS console. When the task's AWS connection points SageMaker at
another endpoint (its ``endpoint_url``, or ``service_config.sagemaker.endpoint_url``, is set and is not an
AWS host), the task runs against the devstack, and the links open the read-only pages that endpoint serves
under ``/console/`` (``docs/devstack.md``). The URL is computed from the connection when the task runs and
stored with the link, so the link of an old run names the endpoint of the devstack that ran it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook
    from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
    from airflow.sdk import Context

_SAGEMAKER = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#"
_CLOUDWATCH = BASE_AWS_CONSOLE_LINK + "/cloudwatch/home?region={region_name}#"

#: where the devstack's SageMaker endpoint serves its pages
DEVSTACK_CONSOLE_PATH = "/console"
#: hosts that are AWS itself (regional, FIPS, dual-stack and VPC endpoints): an ``endpoint_url`` naming one of
#: them is still AWS, and the links stay on the AWS console
_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws", ".on.aws")
#: the persisted field holding the devstack page of a link
DEVSTACK_URL_FIELD = "devstack_url"


class ConsoleLink(BaseAwsLink):
    """An extra link to the AWS console page of a resource, or to the devstack's page of it.

    ``format_str`` is the AWS console page; ``devstack_path`` the devstack's page under ``/console``, with the
    same fields. When the task ran against the devstack, :func:`persist_link` stores the devstack page's URL
    with the fields, and the link opens it.
    """

    devstack_path: ClassVar[str]

    def format_link(self, **kwargs: Any) -> str:
        if devstack_url := kwargs.get(DEVSTACK_URL_FIELD):
            return str(devstack_url)
        return super().format_link(**kwargs)


class SageMakerProcessingJobLink(ConsoleLink):
    """Console page of a SageMaker processing job (``job_name``)."""

    name = "SageMaker Processing Job"
    key = "ml_lifecycle_processing_job"
    format_str = _SAGEMAKER + "/processing-jobs/{job_name}"
    devstack_path = "/jobs/processing/{job_name}"


class SageMakerTrainingJobLink(ConsoleLink):
    """Console page of a SageMaker training job (``job_name``)."""

    name = "SageMaker Training Job"
    key = "ml_lifecycle_training_job"
    format_str = _SAGEMAKER + "/jobs/{job_name}"
    devstack_path = "/jobs/training/{job_name}"


class SageMakerTuningJobLink(ConsoleLink):
    """Console page of a SageMaker hyperparameter tuning job (``job_name``)."""

    name = "SageMaker Tuning Job"
    key = "ml_lifecycle_tuning_job"
    format_str = _SAGEMAKER + "/hyper-tuning-jobs/{job_name}"
    devstack_path = "/jobs/tuning/{job_name}"


class SageMakerTransformJobLink(ConsoleLink):
    """Console page of a SageMaker batch transform job (``job_name``): the provider's link, devstack-aware."""

    name = "SageMaker Transform Job"
    key = "ml_lifecycle_transform_job"
    format_str = _SAGEMAKER + "/transform-jobs/{job_name}"
    devstack_path = "/jobs/transform/{job_name}"


class SageMakerModelPackageLink(ConsoleLink):
    """Console page of a model package version (``group`` and ``version``)."""

    name = "SageMaker Model Package"
    key = "ml_lifecycle_model_package"
    format_str = _SAGEMAKER + "/model-packages/{group}/{version}"
    devstack_path = "/model-packages/{group}/{version}"


class SageMakerEndpointLink(ConsoleLink):
    """Console page of a SageMaker endpoint (``endpoint_name``)."""

    name = "SageMaker Endpoint"
    key = "ml_lifecycle_endpoint"
    format_str = _SAGEMAKER + "/endpoints/{endpoint_name}"
    devstack_path = "/endpoints/{endpoint_name}"


class MonitoringScheduleLink(ConsoleLink):
    """Console page of an endpoint's monitoring (schedules live under the endpoint: ``endpoint_name``)."""

    name = "Model Monitor Schedule"
    key = "ml_lifecycle_monitoring_schedule"
    format_str = _SAGEMAKER + "/endpoints/{endpoint_name}"
    devstack_path = "/endpoints/{endpoint_name}"


class CloudWatchAlarmsLink(ConsoleLink):
    """Console page listing the CloudWatch alarms whose name starts with ``prefix``."""

    name = "CloudWatch Alarms"
    key = "ml_lifecycle_alarms"
    format_str = _CLOUDWATCH + "alarmsV2:?search={prefix}&alarmStateFilter=ALL"
    devstack_path = "/alarms?prefix={prefix}"


class S3ReportLink(ConsoleLink):
    """Console page of an S3 prefix holding a report (``bucket`` and ``prefix``; a key opens the object)."""

    name = "Report in S3"
    key = "ml_lifecycle_s3_report"
    format_str = BASE_AWS_CONSOLE_LINK + "/s3/buckets/{bucket}?region={region_name}&prefix={prefix}"
    devstack_path = "/s3/{bucket}/{prefix}"


def devstack_console_url(endpoint_url: str | None) -> str | None:
    """The base URL of the devstack's pages for a SageMaker endpoint URL, or None when it is AWS.

    :param endpoint_url: the connection's SageMaker endpoint URL (None: boto3's default, AWS)
    """
    if not endpoint_url:
        return None
    parts = urlsplit(endpoint_url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return None
    if host == "amazonaws.com" or host.endswith(_AWS_HOST_SUFFIXES):
        return None
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never carry credentials into a link
    return f"{parts.scheme}://{netloc}{DEVSTACK_CONSOLE_PATH}"


@dataclass(frozen=True)
class Console:
    """Where a person opens the pages of one connection's resources.

    :param region: the AWS region of the connection
    :param partition: its partition (``aws``, ``aws-cn``, ``aws-us-gov``)
    :param devstack_url: the base URL of the devstack's pages, or None for the AWS console
    """

    region: str
    partition: str = "aws"
    devstack_url: str | None = None

    @classmethod
    def of(cls, hook: AwsGenericHook, default_region: str | None = None) -> Console:
        """The console of a hook's AWS connection, read when the task runs.

        :param hook: the task's AWS hook
        :param default_region: the region when the connection names none
        """
        endpoint = hook.conn_config.get_service_endpoint_url("sagemaker")
        region = hook.conn_region_name or default_region or "us-east-1"
        return cls(region, hook.conn_partition or "aws", devstack_console_url(endpoint))

    def link(self, link: type[ConsoleLink], **fields: Any) -> str:
        """The page of ``link``'s resource.

        :param link: the link class
        :param fields: its fields (``job_name``, ``endpoint_name``, ...)
        """
        if self.devstack_url:
            quoted = {name: quote(str(value), safe="/") for name, value in fields.items()}
            return self.devstack_url + link.devstack_path.format(**quoted)
        return link.format_str.format(
            region_name=self.region, aws_domain=BaseAwsLink.get_aws_domain(self.partition), **fields
        )

    def endpoint(self, endpoint: str) -> str:
        """The page of an endpoint (its variants and monitoring)."""
        if self.devstack_url:
            return self.link(SageMakerEndpointLink, endpoint_name=endpoint)
        return f"https://console.aws.amazon.com/sagemaker/home?region={self.region}#/endpoints/{endpoint}"

    def alarms(self, prefix: str) -> str:
        """The page of the CloudWatch alarms whose name starts with ``prefix``."""
        if self.devstack_url:
            return self.link(CloudWatchAlarmsLink, prefix=prefix)
        return f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}#alarmsV2:?search={prefix}"

    def model_package(self, group: str, version: int | str) -> str:
        """The page of a model package version."""
        return self.link(SageMakerModelPackageLink, group=group, version=version)

    def s3(self, uri: str) -> str:
        """The page of an S3 object or prefix (``s3://bucket/key``): the object itself on the devstack."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return self.link(S3ReportLink, bucket=bucket, prefix=key)


def persist_link(link: type[ConsoleLink], operator: AwsBaseOperator, context: Context, **fields: Any) -> None:
    """Show ``link`` on ``operator``'s task instance: the AWS console, or the devstack's page of the resource.

    :param link: the link class
    :param operator: the running operator (its ``hook``'s connection names the region, partition and endpoint)
    :param context: the task's context
    :param fields: the link's own fields (``job_name``, ``endpoint_name``, ...)
    """
    console = Console.of(operator.hook)
    if console.devstack_url:
        fields[DEVSTACK_URL_FIELD] = console.link(link, **fields)
    link.persist(
        context=context,
        operator=operator,
        region_name=console.region,
        aws_partition=console.partition,
        **fields,
    )


def persist_package_link(operator: AwsBaseOperator, context: Context, package: dict[str, Any]) -> None:
    """Show the model package version of a ``DescribeModelPackage`` response on the task instance."""
    persist_link(
        SageMakerModelPackageLink,
        operator,
        context,
        group=package.get("ModelPackageGroupName") or getattr(operator, "package_group_name", None),
        version=package.get("ModelPackageVersion"),
    )
