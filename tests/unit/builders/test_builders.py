from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import botocore.session
import pytest
from botocore.validate import ParamValidator

from ml_lifecycle.builders import (
    BuilderError,
    TrainingInputs,
    evaluate_request,
    load_metric_definitions,
    model_package_request,
    preprocess_request,
    training_request,
    tuning_request,
)
from ml_lifecycle.builders.training import LOCAL_SOURCEDIR
from ml_lifecycle.config import include_dir, load_config
from ml_lifecycle.naming import RunPlan

SERVICE = botocore.session.get_session().get_service_model("sagemaker")
#: every environment of include/config/ (a new environment is one new file there)
ENVIRONMENTS = [pytest.param(p.stem, id=p.stem) for p in sorted((include_dir() / "config").glob("*.yaml"))]
SOURCEDIR = "s3://ml-lifecycle-local/code/0123456789abcdef/sourcedir.tar.gz"
SPLITS = {
    "train": "s3://b/jobs/x/train/",
    "validation": "s3://b/jobs/x/validation/",
    "preprocessor": "s3://b/jobs/x/preprocessor/",
    "inference": "s3://b/code/abc/src/",
}


def _strict_problems(shape, value, path="") -> list[str]:
    """What botocore's client-side validator leaves to the server: max lengths, enums, patterns."""
    problems: list[str] = []
    meta = shape.metadata
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                problems += _strict_problems(member, value[name], f"{path}.{name}")
    elif shape.type_name == "list":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} items > {meta['max']}")
        for i, item in enumerate(value):
            problems += _strict_problems(shape.member, item, f"{path}[{i}]")
    elif shape.type_name == "map":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} entries > {meta['max']}")
        for k, v in value.items():
            problems += _strict_problems(shape.key, k, f"{path}<key {k}>")
            problems += _strict_problems(shape.value, v, f"{path}[{k}]")
    elif shape.type_name == "string":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: length {len(value)} > {meta['max']}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not in {shape.enum}")
        pattern = meta.get("pattern")
        if pattern and r"\p" not in pattern and not re.match(pattern, value):
            problems.append(f"{path}: {value!r} does not match {pattern}")
    elif shape.type_name in {"integer", "long"} and "max" in meta and value > meta["max"]:
        problems.append(f"{path}: {value} > {meta['max']}")
    return problems


def assert_valid_request(operation: str, request: dict) -> None:
    shape = SERVICE.operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    problems = _strict_problems(shape, request)
    assert not problems, "\n".join(problems)
    json.dumps(request)  # XCom / rendered-template safe


def _plan(cfg, run_id="scheduled__2026-03-01T00:00:00+00:00"):
    return RunPlan.create(cfg, dag_id="train_model", run_id=run_id, anchor=datetime(2026, 3, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def metrics():
    return load_metric_definitions(include_dir() / "code" / "training" / "metric_definitions.json")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_preprocess_request_is_a_valid_create_processing_job(env):
    cfg = load_config(env)
    plan = _plan(cfg)
    request = preprocess_request(cfg, plan, dataset_uri=plan.dataset_uri, code_uri="s3://b/code/abc/src/")
    assert_valid_request("CreateProcessingJob", request)
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs["data"]["S3Uri"] == plan.dataset_uri
    assert inputs["code"]["LocalPath"] == "/opt/ml/processing/input/code"
    assert request["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/preprocess.py",
    ]
    outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in request["ProcessingOutputConfig"]["Outputs"]}
    assert set(outputs) == {"train", "validation", "test", "baseline", "preprocessor"}
    assert all(plan.run_hash in uri for uri in outputs.values()), "outputs are run-keyed"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_evaluate_request_is_valid(env):
    cfg = load_config(env)
    plan = _plan(cfg)
    request = evaluate_request(
        cfg, plan, model_uri="s3://b/m/model.tar.gz", test_uri="s3://b/t/", code_uri="s3://b/code/abc/src/"
    )
    assert_valid_request("CreateProcessingJob", request)
    outputs = {o["OutputName"]: o["S3Output"] for o in request["ProcessingOutputConfig"]["Outputs"]}
    assert outputs["evaluation"]["S3Uri"].startswith(plan.report_uri(""))
    # the Model Monitor baseline dataset: a run-keyed prefix, written from the path the script is told
    assert outputs["baseline"]["S3Uri"] == plan.job_uri("evaluate", "baseline") + "/"
    arguments = request["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--baseline-dir") + 1] == outputs["baseline"]["LocalPath"]
    # pre-training bias by the configured facet (analysis.json beside evaluation.json)
    assert arguments[arguments.index("--bias-facet") + 1] == cfg.monitoring.bias.facet.name == "customer_segment"
    assert "--bias-facet-values" not in arguments


def test_security_settings_reach_every_job():
    cfg = load_config("prod")
    plan = _plan(cfg)
    security = cfg.sagemaker.security
    proc = preprocess_request(cfg, plan, dataset_uri=plan.dataset_uri, code_uri="s3://b/c/")
    assert proc["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert proc["NetworkConfig"]["EnableInterContainerTrafficEncryption"] is True
    assert proc["NetworkConfig"]["VpcConfig"]["Subnets"] == list(security.vpc.subnets)
    assert proc["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == security.volume_kms_key_id
    assert proc["ProcessingOutputConfig"]["KmsKeyId"] == security.output_kms_key_id
    tags = {t["Key"]: t["Value"] for t in proc["Tags"]}
    assert tags["environment"] == "prod"
    assert tags["ml-lifecycle:window"] == plan.window.key


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_training_request_is_a_valid_create_training_job(env, metrics):
    cfg = load_config(env)
    request = training_request(cfg, _plan(cfg), TrainingInputs(SPLITS, SOURCEDIR, metrics))
    assert_valid_request("CreateTrainingJob", request)
    hps = request["HyperParameters"]
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert json.loads(hps["max_depth"]) == cfg.sagemaker.hyperparameters["max_depth"]
    channels = [c["ChannelName"] for c in request["InputDataConfig"]]
    assert channels[:4] == ["train", "validation", "inference", "preprocessor"]


def test_network_isolation_ships_code_as_a_channel(metrics):
    cfg = load_config("prod")
    assert cfg.sagemaker.security.enable_network_isolation
    request = training_request(cfg, _plan(cfg), TrainingInputs(SPLITS, SOURCEDIR, metrics))
    assert json.loads(request["HyperParameters"]["sagemaker_submit_directory"]) == LOCAL_SOURCEDIR
    code = next(c for c in request["InputDataConfig"] if c["ChannelName"] == "code")
    assert code["DataSource"]["S3DataSource"]["S3Uri"] == SOURCEDIR
    assert request["EnableNetworkIsolation"] is True
    assert request["VpcConfig"]["SecurityGroupIds"]


def test_without_isolation_the_toolkit_downloads_the_code(metrics):
    cfg = load_config("local")
    request = training_request(cfg, _plan(cfg), TrainingInputs(SPLITS, SOURCEDIR, metrics))
    assert json.loads(request["HyperParameters"]["sagemaker_submit_directory"]) == SOURCEDIR
    assert "code" not in [c["ChannelName"] for c in request["InputDataConfig"]]


def test_run_overrides_win_over_config(metrics):
    cfg = load_config("local")
    inputs = TrainingInputs(
        SPLITS, SOURCEDIR, metrics, hyperparameter_overrides={"num_round": 7}, instance_type="ml.m5.2xlarge"
    )
    request = training_request(cfg, _plan(cfg), inputs)
    assert request["HyperParameters"]["num_round"] == "7"
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.2xlarge"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"sagemaker_program": "x.py"}, id="reserved-name"),
        pytest.param({"max_depth": [1, 2]}, id="non-scalar"),
    ],
)
def test_bad_overrides_are_rejected(overrides, metrics):
    cfg = load_config("local")
    with pytest.raises(BuilderError, match="hyperparameter override"):
        training_request(
            cfg, _plan(cfg), TrainingInputs(SPLITS, SOURCEDIR, metrics, hyperparameter_overrides=overrides)
        )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_tuning_request_is_valid(env, metrics):
    cfg = load_config(env)
    request = tuning_request(
        cfg, _plan(cfg), TrainingInputs(SPLITS, SOURCEDIR, metrics), max_jobs=3, max_parallel_jobs=1
    )
    assert_valid_request("CreateHyperParameterTuningJob", request)
    assert len(request["HyperParameterTuningJobName"]) <= 32
    limits = request["HyperParameterTuningJobConfig"]["ResourceLimits"]
    assert (limits["MaxNumberOfTrainingJobs"], limits["MaxParallelTrainingJobs"]) == (3, 1)
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert not set(cfg.sagemaker.tuning.ranges) & set(static), "tuned hyperparameters are not static"
    assert "sagemaker_job_name" not in static


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_jobs": 2, "max_parallel_jobs": 3}, "must not exceed", id="parallel-above-total"),
        pytest.param({"max_jobs": 0}, "positive", id="zero-budget"),
    ],
)
def test_bad_tuning_budget_is_rejected(kwargs, message, metrics):
    cfg = load_config("local")
    with pytest.raises(BuilderError, match=message):
        tuning_request(cfg, _plan(cfg), TrainingInputs(SPLITS, SOURCEDIR, metrics), **kwargs)


def test_tuning_objective_must_be_a_logged_metric(metrics):
    cfg = load_config("local")
    unlogged = [m for m in metrics if m["Name"] != cfg.sagemaker.tuning.objective_metric]
    with pytest.raises(BuilderError, match="objective_metric"):
        tuning_request(cfg, _plan(cfg), TrainingInputs(SPLITS, SOURCEDIR, unlogged))


@pytest.mark.parametrize("status", ["Approved", "PendingManualApproval"])
def test_model_package_request_is_valid(status):
    cfg = load_config("local")
    plan = _plan(cfg)
    lineage = {
        "git_commit": "0123abcd",
        "dag_id": plan.dag_id,
        "dag_run_id": plan.run_id,
        "window_start": plan.window.start.isoformat(),
        "dataset_uri": plan.dataset_uri,
        "gate_uri": plan.report_uri("gate", "gate.json"),
        "odd": "a,b#c",
    }
    request = model_package_request(
        cfg, plan, model_uri="s3://b/m/model.tar.gz", evaluation_uri="s3://b/r/evaluation.json",
        approval_status=status, lineage=lineage, metrics={"auc": 0.91234567, "recall": 0.5},
    )  # fmt: skip
    assert_valid_request("CreateModelPackage", request)
    props = request["CustomerMetadataProperties"]
    assert props["dag_run_id"] == plan.run_id
    assert props["metric:auc"] == "0.912346"
    assert props["odd"] == "a_b_c", "characters the API rejects are replaced"
    assert request["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == "s3://b/r/evaluation.json"
    assert request["ClientToken"] == model_package_request(
        cfg, plan, model_uri="s3://b/m/model.tar.gz", evaluation_uri="s3://b/r/evaluation.json",
        approval_status=status, lineage={}, metrics={},
    )["ClientToken"], "the idempotency token depends on the run only"  # fmt: skip


def test_metric_definitions_file_problems_are_named(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text('[{"Name": "x", "Regex": "("}]')
    with pytest.raises(BuilderError, match=r"m.json: entry \[0\] \(x\) has an invalid regex"):
        load_metric_definitions(bad)
    with pytest.raises(BuilderError, match="not found"):
        load_metric_definitions(tmp_path / "missing.json")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_validation_request_is_a_valid_create_processing_job(env):
    from ml_lifecycle.builders.processing import validation_request
    from ml_lifecycle.dag_defaults import validation_job_settings

    cfg = load_config(env)
    plan = _plan(cfg)
    settings = validation_job_settings(cfg, job_name=plan.job_name("validate"))
    request = validation_request(
        settings,
        job_name=settings["job_name"],
        dataset_uri=plan.dataset_uri,
        report_uri=plan.report_uri("validation") + "/",
        code_uri="s3://b/reports/_job/code/",
        suite_uri="s3://b/reports/_job/suite/",
        suite_name="suite.json",
        batch_rows=1000,
    )
    assert_valid_request("CreateProcessingJob", request)
    assert request["RoleArn"] == cfg.sagemaker.role_arn
    assert request["AppSpecification"]["ImageUri"] == cfg.sagemaker.images.validation, "the image with GX inside"
    entrypoint = request["AppSpecification"]["ContainerEntrypoint"]
    assert entrypoint == ["python3", "/opt/ml/processing/input/code/validate.py"]
    inputs = {i["InputName"]: i["S3Input"]["LocalPath"] for i in request["ProcessingInputs"]}
    assert inputs == {
        "code": "/opt/ml/processing/input/code",
        "data": "/opt/ml/processing/input/data",
        "suite": "/opt/ml/processing/input/suite",
    }
