"""Every resource name the code can build, at the config's limits, is granted by the IAM policy's patterns.

The MWAA execution role grants SageMaker resources by name pattern (``processing-job/${NamePrefix}-*``,
``monitoring-schedule/${EndpointName}-*``, ...). A name the code shortens to fit SageMaker's 63 characters
(cutting the prefix or the endpoint name it starts with) no longer matches and is denied on AWS, while the
devstack, which checks no IAM, accepts it. So this builds each name with the longest name prefix, endpoint
name and model package group the config accepts, the longest try numbers and versions, and checks it
against the policy statement that grants the action creating or reading it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
from pathlib import Path

import pytest
import yaml

from ml_lifecycle.builders.endpoint import (
    alarm_names,
    endpoint_config_request,
    model_name,
    production_variant,
)
from ml_lifecycle.builders.monitor import (
    baseline_job_name,
    job_definition_request,
    one_off_schedule_name,
    schedule_name,
)
from ml_lifecycle.builders.monitoring_job import job_name as monitoring_job_name
from ml_lifecycle.builders.transform import transform_job_name
from ml_lifecycle.config import ConfigError, parse_config
from ml_lifecycle.naming import JOB_KINDS, RunPlan, sagemaker_name

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "infra" / "iam" / "mwaa-execution-role.json"
LOCAL = ROOT / "include" / "config" / "local.yaml"
REGION, ACCOUNT = "eu-west-1", "123456789012"
RUN_ID = "scheduled__2026-03-01T00:00:00+00:00"
TRIES = (1, 2, 999)
VERSION = 99999
#: SageMaker's own limit for the names below
SAGEMAKER_MAX = 63


def _with(document: dict, dotted: str, value: str) -> dict:
    copy = json.loads(json.dumps(document, default=str))
    node = copy
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    return copy


def _longest(document: dict, dotted: str) -> str:
    """The longest value of ``dotted`` the config accepts (letters only, as SageMaker names allow)."""
    for length in range(SAGEMAKER_MAX + 20, 0, -1):
        value = "a" * length
        try:
            parse_config(yaml.safe_dump(_with(document, dotted, value)), "limits.yaml")
        except ConfigError:
            continue
        return value
    raise AssertionError(f"the config accepts no value of {dotted}")


#: the longest endpoint name each monitoring engine's derived names allow
ENDPOINT_MAX = {"evidently": 32, "model_monitor": 47}


@pytest.fixture(scope="module", params=sorted(ENDPOINT_MAX))
def cfg(request):
    document = yaml.safe_load(LOCAL.read_text())
    document["monitoring"]["engine"] = request.param
    document["aws"]["region"], document["aws"]["account_id"] = REGION, ACCOUNT
    # the approval queue is in the environment's region and account
    queue = document["approval_events"]["queue_url"].rsplit("/", 1)[1]
    document["approval_events"]["queue_url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{queue}"
    for dotted in ("sagemaker.name_prefix", "deployment.endpoint_name", "sagemaker.model_package_group"):
        document = _with(document, dotted, _longest(document, dotted))
    return parse_config(yaml.safe_dump(document), "limits.yaml")


def _names(cfg) -> list[tuple[str, str, str]]:
    """(IAM action, resource type, name) for every name the code builds."""
    prefix, endpoint, group = cfg.sagemaker.name_prefix, cfg.deployment.endpoint_name, cfg.sagemaker.model_package_group
    plan = RunPlan.create(cfg, dag_id="train_model", run_id=RUN_ID, anchor=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    job_types = {"train": "training-job", "tune": "hyper-parameter-tuning-job"}
    found = []
    for kind in JOB_KINDS:
        resource = job_types.get(kind, "processing-job")
        action = {"training-job": "CreateTrainingJob", "hyper-parameter-tuning-job": "CreateHyperParameterTuningJob"}
        for try_number in TRIES:
            name = plan.job_name(kind, try_number)
            found.append((f"sagemaker:{action.get(resource, 'CreateProcessingJob')}", resource, name))
            if kind == "tune":  # SageMaker names the search's training jobs <tuning job>-<NNN>-<8 hex>
                found.append(("sagemaker:DescribeTrainingJob", "training-job", f"{name}-500-0123abcd"))
    for try_number in TRIES:
        found.append(
            (
                "sagemaker:CreateProcessingJob",
                "processing-job",
                baseline_job_name(cfg, version=VERSION, dataset_uri="s3://b/d/", try_number=try_number),
            )
        )
        found.append(
            (
                "sagemaker:CreateTransformJob",
                "transform-job",
                transform_job_name(
                    cfg, dag_id="batch_score", run_id=RUN_ID, start=dt.datetime(2026, 3, 1), try_number=try_number
                ),
            )
        )
    package_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{VERSION}"
    package = {
        "ModelPackageArn": package_arn,
        "ModelPackageVersion": VERSION,
        "InferenceSpecification": {"Containers": [{"Image": "image", "ModelDataUrl": "s3://b/model.tar.gz"}]},
    }
    model = model_name(cfg, package)
    variant = sagemaker_name(prefix, f"v{VERSION}")
    config = endpoint_config_request(
        cfg, variants=[production_variant(cfg, model=model, variant_name=variant)], version=VERSION
    )
    definition = job_definition_request(
        cfg, endpoint=endpoint, version=VERSION, statistics_uri="s3://b/s.json", constraints_uri="s3://b/c.json"
    )["JobDefinitionName"]
    found += [
        ("sagemaker:CreateModel", "model", model),
        ("sagemaker:CreateEndpointConfig", "endpoint-config", config["EndpointConfigName"]),
        ("sagemaker:UpdateEndpoint", "endpoint", endpoint),
        ("sagemaker:CreateDataQualityJobDefinition", "data-quality-job-definition", definition),
        ("sagemaker:CreateMonitoringSchedule", "monitoring-schedule", schedule_name(endpoint)),
        (
            "sagemaker:CreateMonitoringSchedule",
            "monitoring-schedule",
            one_off_schedule_name(endpoint, run_id=RUN_ID, definition_name=definition),
        ),
        ("sagemaker:CreateModelPackage", "model-package-group", group),
        ("sagemaker:DescribeModelPackage", "model-package", f"{group}/{VERSION}"),
    ]
    found += [("cloudwatch:PutMetricAlarm", "alarm", name) for name in alarm_names(endpoint, "v" * SAGEMAKER_MAX)]
    if cfg.monitoring.engine == "evidently":
        start = dt.datetime(2026, 3, 1, 23, tzinfo=dt.UTC)
        found += [
            ("sagemaker:CreateProcessingJob", "processing-job", monitoring_job_name(endpoint, start, "0123abcd", t))
            for t in TRIES
        ]
        found += [
            ("cloudwatch:PutMetricAlarm", "alarm", f"{endpoint}-monitoring-{alarm.name}")
            for alarm in cfg.monitoring.alarms
        ]
    return found


def _arn(action: str, resource: str, name: str) -> str:
    service = action.split(":")[0]
    separator = ":" if service == "cloudwatch" else "/"
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}{separator}{name}"


def _granted(cfg, action: str, arn: str) -> bool:
    values = {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "NamePrefix": cfg.sagemaker.name_prefix,
        "EndpointName": cfg.deployment.endpoint_name,
        "ModelPackageGroup": cfg.sagemaker.model_package_group,
    }
    for statement in json.loads(POLICY.read_text())["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if not any(fnmatch.fnmatchcase(action, granted) for granted in actions):
            continue
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for pattern in resources:
            for key, value in values.items():
                pattern = pattern.replace(f"${{{key}}}", value)
            if fnmatch.fnmatchcase(arn, pattern):
                return True
    return False


def test_the_limits_are_the_configs_own(cfg):
    assert len(cfg.sagemaker.name_prefix) == 12
    assert len(cfg.deployment.endpoint_name) == ENDPOINT_MAX[cfg.monitoring.engine]
    assert len(cfg.sagemaker.model_package_group) == SAGEMAKER_MAX


def test_every_name_fits_sagemaker(cfg):
    too_long = [
        (resource, name)
        for _, resource, name in _names(cfg)
        if resource not in ("alarm", "model-package") and len(name) > SAGEMAKER_MAX
    ]
    assert too_long == []


def test_every_name_the_code_builds_is_granted_by_the_policy(cfg):
    denied = [
        f"{action} on {_arn(action, resource, name)}"
        for action, resource, name in _names(cfg)
        if not _granted(cfg, action, _arn(action, resource, name))
    ]
    assert denied == [], "names the policy's resource patterns do not grant"


@pytest.mark.parametrize("engine", sorted(ENDPOINT_MAX))
def test_an_endpoint_name_too_long_for_its_derived_names_is_refused(engine):
    document = yaml.safe_load(LOCAL.read_text())
    document["monitoring"]["engine"] = engine
    most = ENDPOINT_MAX[engine]
    with pytest.raises(ConfigError, match=rf"deployment\.endpoint_name.*at most {most} characters.* got {most + 1}"):
        parse_config(yaml.safe_dump(_with(document, "deployment.endpoint_name", "e" * (most + 1))), "local.yaml")
