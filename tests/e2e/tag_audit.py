"""Every resource of the kinds the package creates, as the devstack holds it, with its tags.

:data:`AUDITED` lists, for each kind of resource the package creates with tags (``tests/unit/
test_resource_tags.py`` ties each creating operation to one of these kinds), how to list the resources of
that kind and read their tags through the AWS APIs (``ListTags``, ``ListTagsForResource``). :func:`untagged`
is what a run-time test asserts empty after the DAGs ran.

Processing jobs that SageMaker itself starts for a monitoring schedule (``MonitoringScheduleArn`` in their
description) are not the package's requests and are left out: whether SageMaker copies a schedule's tags to
its executions is not documented.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Lister = Callable[[Any], Iterator[tuple[str, dict[str, str]]]]


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    token = None
    while True:
        page = getattr(client, operation)(**kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


def _sagemaker_tags(sm: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in _pages(sm, "list_tags", "Tags", ResourceArn=arn)}


def _sagemaker(operation: str, key: str, arn_key: str, skip: Callable[[Any, dict], bool] | None = None) -> Lister:
    def listed(clients: Any) -> Iterator[tuple[str, dict[str, str]]]:
        sm = clients("sagemaker")
        for summary in _pages(sm, operation, key):
            if skip is None or not skip(sm, summary):
                yield summary[arn_key], _sagemaker_tags(sm, summary[arn_key])

    return listed


def _monitoring_execution(sm: Any, summary: dict[str, Any]) -> bool:
    job = sm.describe_processing_job(ProcessingJobName=summary["ProcessingJobName"])
    return bool(job.get("MonitoringScheduleArn"))


def _alarms(clients: Any) -> Iterator[tuple[str, dict[str, str]]]:
    cloudwatch = clients("cloudwatch")
    for alarm in _pages(cloudwatch, "describe_alarms", "MetricAlarms", AlarmTypes=["MetricAlarm"]):
        tags = cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
        yield alarm["AlarmArn"], {t["Key"]: t["Value"] for t in tags}


def _scalable_targets(clients: Any) -> Iterator[tuple[str, dict[str, str]]]:
    autoscaling = clients("application-autoscaling")
    for target in _pages(autoscaling, "describe_scalable_targets", "ScalableTargets", ServiceNamespace="sagemaker"):
        arn = target["ScalableTargetARN"]
        yield arn, autoscaling.list_tags_for_resource(ResourceARN=arn)["Tags"]


#: resource kind -> the resources of that kind and their tags
AUDITED: dict[str, Lister] = {
    "processing-job": _sagemaker(
        "list_processing_jobs", "ProcessingJobSummaries", "ProcessingJobArn", skip=_monitoring_execution
    ),
    "training-job": _sagemaker("list_training_jobs", "TrainingJobSummaries", "TrainingJobArn"),
    "hyper-parameter-tuning-job": _sagemaker(
        "list_hyper_parameter_tuning_jobs", "HyperParameterTuningJobSummaries", "HyperParameterTuningJobArn"
    ),
    "transform-job": _sagemaker("list_transform_jobs", "TransformJobSummaries", "TransformJobArn"),
    "model": _sagemaker("list_models", "Models", "ModelArn"),
    "endpoint-config": _sagemaker("list_endpoint_configs", "EndpointConfigs", "EndpointConfigArn"),
    "endpoint": _sagemaker("list_endpoints", "Endpoints", "EndpointArn"),
    "model-package-group": _sagemaker(
        "list_model_package_groups", "ModelPackageGroupSummaryList", "ModelPackageGroupArn"
    ),
    "monitoring-schedule": _sagemaker(
        "list_monitoring_schedules", "MonitoringScheduleSummaries", "MonitoringScheduleArn"
    ),
    "data-quality-job-definition": _sagemaker(
        "list_data_quality_job_definitions", "JobDefinitionSummaries", "MonitoringJobDefinitionArn"
    ),
    "alarm": _alarms,
    "scalable-target": _scalable_targets,
}


#: the kinds only SageMaker Model Monitor holds (an account without it refuses to list them)
MODEL_MONITOR_KINDS = frozenset({"monitoring-schedule", "data-quality-job-definition"})


def audit(
    clients: Callable[[str], Any], *, leave_out: frozenset[str] = frozenset()
) -> dict[str, dict[str, dict[str, str]]]:
    """kind -> {ARN: tags} of every audited resource.

    :param clients: makes a boto3 client of the devstack for a service name
    :param leave_out: kinds not listed (:data:`MODEL_MONITOR_KINDS` where Model Monitor refuses)
    """
    return {kind: dict(lister(clients)) for kind, lister in AUDITED.items() if kind not in leave_out}


def untagged(found: dict[str, dict[str, dict[str, str]]], expected: dict[str, str]) -> dict[str, list[str]]:
    """ARN -> the expected tags it lacks (or carries with another value), over everything ``found``."""
    problems: dict[str, list[str]] = {}
    for resources in found.values():
        for arn, tags in resources.items():
            wrong = [key for key, value in expected.items() if tags.get(key) != value]
            if wrong:
                problems[arn] = wrong
    return problems
