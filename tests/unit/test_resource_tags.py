"""Every resource the package creates carries the configured tags.

Three layers, each failing on a call without tags:

1. the static scan (``tools.iam_scan``, ``ast``, nothing executed) lists every ``Create*`` / ``Put*`` /
   ``Register*`` operation the package and the provider classes it uses can call; each must be in
   :data:`TAGGED` (its request carries the tags, and the run-time audit of the devstack covers its resource
   type) or in :data:`TAGS_ELSEWHERE` (with the reason it takes no tags of its own). A new creating call fails
   here until it is classified;
2. the requests the package builds for each :data:`TAGGED` operation carry every configured tag;
3. at run time, ``tests/e2e/test_mwaa_lifecycle.py`` runs the four DAGs on the devstack and lists every
   resource of the :data:`TAGGED` kinds there with its tags (``tests/e2e/tag_audit.py``).
"""

from __future__ import annotations

import re

import pytest

from ml_lifecycle.config import REQUIRED_TAGS, load_config
from tests.e2e.tag_audit import AUDITED
from tools import iam_scan

CREATING = re.compile(r"^(Create|Put|Register)")

#: operation -> the resource kind the run-time audit lists (``tests/e2e/tag_audit.py``)
TAGGED = {
    ("sagemaker", "CreateProcessingJob"): "processing-job",
    ("sagemaker", "CreateTrainingJob"): "training-job",
    ("sagemaker", "CreateHyperParameterTuningJob"): "hyper-parameter-tuning-job",
    ("sagemaker", "CreateTransformJob"): "transform-job",
    ("sagemaker", "CreateModel"): "model",
    ("sagemaker", "CreateEndpointConfig"): "endpoint-config",
    ("sagemaker", "CreateEndpoint"): "endpoint",
    ("sagemaker", "CreateModelPackageGroup"): "model-package-group",
    ("sagemaker", "CreateMonitoringSchedule"): "monitoring-schedule",
    ("sagemaker", "CreateDataQualityJobDefinition"): "data-quality-job-definition",
    ("cloudwatch", "PutMetricAlarm"): "alarm",
    ("application-autoscaling", "RegisterScalableTarget"): "scalable-target",
}

#: operations that create something without tags of its own, and why
TAGS_ELSEWHERE = {
    ("sagemaker", "CreateModelPackage"): "a versioned model package takes the tags of its model package group; "
    "CreateModelPackage refuses Tags together with ModelPackageGroupName",
    ("application-autoscaling", "PutScalingPolicy"): "a scaling policy takes no tags (no Tags member); its "
    "scalable target carries them",
    ("s3", "PutObject"): "objects are data in the environment's bucket, which the stack tags; object tags are "
    "not cost-allocated and would cost a PutObjectTagging per object",
    ("s3", "CreateMultipartUpload"): "the multipart form of PutObject (boto3's upload_file)",
    ("cloudwatch", "PutMetricData"): "metric data points are not resources: CloudWatch metrics take no tags "
    "(the alarms on them are tagged)",
    ("s3", "CreateBucket"): "the scan's reach into the provider's S3Hook; the package creates no bucket (the "
    "stack's bucket carries the tags)",
}


@pytest.fixture(scope="module")
def creating_calls() -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for call in iam_scan.scan().calls:
        if CREATING.match(call.operation):
            found.setdefault((call.service, call.operation), set()).add(call.where)
    return found


def test_every_creating_call_is_tagged_or_says_why_not(creating_calls):
    unclassified = {
        f"{service}:{operation}": sorted(where)
        for (service, operation), where in creating_calls.items()
        if (service, operation) not in TAGGED and (service, operation) not in TAGS_ELSEWHERE
    }
    assert unclassified == {}, "creating calls neither tagged nor explained (see TAGGED / TAGS_ELSEWHERE)"


def test_the_scan_still_finds_every_tagged_call(creating_calls):
    assert set(TAGGED) <= set(creating_calls), set(TAGGED) - set(creating_calls)


@pytest.mark.parametrize("operation", sorted(TAGGED), ids=lambda op: f"{op[0]}:{op[1]}")
def test_tagged_operations_take_tags_and_are_audited_at_run_time(operation):
    assert "Tags" in iam_scan._input_members(*operation)
    assert TAGGED[operation] in AUDITED


# ------------------------------------------------------------------------------- the requests the package builds


ENVIRONMENTS = ["local", "dev", "prod"]
METRICS = [{"Name": "validation:auc", "Regex": "auc:([0-9.]+)"}]
SPLITS = {"train": "s3://b/j/train/", "validation": "s3://b/j/validation/", "preprocessor": "s3://b/j/p/"}


def _built(env: str) -> dict[str, list[list[dict[str, str]]]]:
    """operation -> the ``Tags`` of each request the package builds for it, in environment ``env``."""
    from datetime import UTC, datetime

    from ml_lifecycle.builders.endpoint import (
        alarm_requests,
        endpoint_config_request,
        model_request,
        production_variant,
        scaling_requests,
    )
    from ml_lifecycle.builders.monitor import baseline_request, job_definition_request
    from ml_lifecycle.builders.processing import evaluate_request, preprocess_request
    from ml_lifecycle.builders.training import TrainingInputs, training_request
    from ml_lifecycle.builders.transform import transform_request
    from ml_lifecycle.builders.tuning import tuning_request
    from ml_lifecycle.dag_defaults import validation_job_settings
    from ml_lifecycle.naming import RunPlan
    from tests.unit.operators._hosting_fakes import package

    cfg = load_config(env)
    plan = RunPlan.create(cfg, dag_id="train_model", run_id="manual__t", anchor=datetime(2026, 3, 1, tzinfo=UTC))
    job = TrainingInputs(SPLITS, "s3://b/code/src.tar.gz", METRICS)
    validation = validation_job_settings(cfg, job_name="v")
    return {
        "CreateProcessingJob": [
            preprocess_request(cfg, plan, dataset_uri=plan.dataset_uri, code_uri="s3://b/c/")["Tags"],
            evaluate_request(cfg, plan, model_uri="s3://b/m.tar.gz", test_uri="s3://b/t/", code_uri="s3://b/c/")[
                "Tags"
            ],
            baseline_request(cfg, job_name="b", dataset_uri="s3://b/d/", output_uri="s3://b/o/")["Tags"],
            [{"Key": k, "Value": v} for k, v in validation["tags"].items()],
        ],
        "CreateTrainingJob": [training_request(cfg, plan, job)["Tags"]],
        "CreateHyperParameterTuningJob": [tuning_request(cfg, plan, job)["Tags"]],
        "CreateTransformJob": [
            transform_request(cfg, job_name="t", model_name="m", input_uri="s3://b/i/", output_uri="s3://b/o/")["Tags"]
        ],
        "CreateModel": [model_request(cfg, package(1))["Tags"]],
        "CreateEndpointConfig": [
            endpoint_config_request(
                cfg, variants=[production_variant(cfg, model="m", variant_name="AllTraffic")], version=1
            )["Tags"]
        ],
        "CreateDataQualityJobDefinition": [
            job_definition_request(
                cfg, endpoint="e", version=1, statistics_uri="s3://b/s.json", constraints_uri="s3://b/c.json"
            )["Tags"]
        ],
        "PutMetricAlarm": [alarm["Tags"] for alarm in alarm_requests(cfg, endpoint="e", variant="AllTraffic")],
        "RegisterScalableTarget": [
            [
                {"Key": k, "Value": v}
                for k, v in scaling_requests(cfg, endpoint="e", variant="AllTraffic")[0]["Tags"].items()
            ]
        ],
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_request_the_package_builds_carries_the_configured_tags(env):
    cfg = load_config(env)
    for operation, requests in _built(env).items():
        for tags in requests:
            carried = {t["Key"]: t["Value"] for t in tags}
            assert {k: carried.get(k) for k in cfg.tags} == dict(cfg.tags), operation
            assert set(REQUIRED_TAGS) <= set(carried), operation


def test_the_builder_check_covers_every_tagged_operation_it_can():
    # CreateEndpoint, CreateMonitoringSchedule and CreateModelPackageGroup are sent by the operators
    # themselves (their tests check the tags, and so does the run-time audit)
    sent_by_operators = {"CreateEndpoint", "CreateMonitoringSchedule", "CreateModelPackageGroup"}
    assert set(_built("local")) | sent_by_operators == {operation for _, operation in TAGGED}
