"""Extra links from task instances to the AWS console page of the resource the task worked on.

Each operator that creates or finds an AWS resource calls ``<Link>.persist(...)`` with the resource's name;
the Airflow UI then shows a button on the task instance that opens the console page.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

_SAGEMAKER = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#"


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


class S3ReportLink(BaseAwsLink):
    """Console page of an S3 prefix holding a report (``bucket`` and ``prefix``)."""

    name = "Report in S3"
    key = "ml_lifecycle_s3_report"
    format_str = BASE_AWS_CONSOLE_LINK + "/s3/buckets/{bucket}?region={region_name}&prefix={prefix}"
