from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from ml_lifecycle.config import load_config
from ml_lifecycle.naming import RunPlan
from ml_lifecycle.operators.sagemaker import (
    EvaluationJobOperator,
    PreprocessJobOperator,
    TrainingJobOperator,
    TuningJobOperator,
)

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # pragma: no cover - older layouts
    from airflow.exceptions import TaskDeferred

from airflow.providers.common.compat.sdk import AirflowException

from tests.unit.operators._hosting_fakes import AWS_CONNECTION

ANCHOR = datetime(2026, 3, 1, tzinfo=UTC)
RUN_ID = "manual__2026-03-01T00:00:00+00:00"
SPLITS = {"train": "s3://b/p/train/", "validation": "s3://b/p/validation/", "preprocessor": "s3://b/p/preprocessor/"}


class FakeSageMaker:
    """In-memory SageMaker control plane with the hook methods the operators call."""

    def __init__(self):
        self.jobs: dict[str, dict] = {}
        self.created: list[str] = []
        self.status_after_create = "InProgress"
        self.conn_region_name = "us-east-1"
        self.conn_partition = "aws"
        self.conn_config = AWS_CONNECTION

    def add(self, name, status, **extra):
        self.jobs[name] = {"status": status, **extra}

    def _get(self, name, code="ValidationException"):
        if name not in self.jobs:
            raise ClientError({"Error": {"Code": code, "Message": "Requested resource not found."}}, "Describe")
        return self.jobs[name]

    def configure_s3_resources(self, config):
        config.pop("S3Operations", None)

    # processing
    def describe_processing_job(self, name):
        job = self._get(name)
        return {
            "ProcessingJobName": name,
            "ProcessingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{name}",
            "ProcessingJobStatus": job["status"],
            "FailureReason": job.get("reason"),
            "ProcessingOutputConfig": job.get("request", {}).get("ProcessingOutputConfig", {"Outputs": []}),
        }

    def create_processing_job(self, config, wait_for_completion=False):
        assert not wait_for_completion
        self._create(config["ProcessingJobName"], config)

    # training
    def describe_training_job(self, name):
        job = self._get(name)
        return {
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
            "TrainingJobStatus": job["status"],
            "FailureReason": job.get("reason"),
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://b/jobs/{name}/output/model.tar.gz"},
            "HyperParameters": {"max_depth": "5", "sagemaker_program": '"train.py"'},
            "FinalMetricDataList": [{"MetricName": "validation:auc", "Value": 0.93}],
        }

    def create_training_job(self, config, wait_for_completion=False, print_log=False):
        assert not wait_for_completion
        self._create(config["TrainingJobName"], config)

    # tuning
    def describe_tuning_job(self, name):
        job = self._get(name, code="ResourceNotFound")
        best = job.get("best")
        description = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{name}",
            "HyperParameterTuningJobStatus": job["status"],
            "TrainingJobStatusCounters": {"Completed": 2},
            "FailureReason": job.get("reason"),
        }
        if best:
            description["BestTrainingJob"] = {
                "TrainingJobName": best,
                "TunedHyperParameters": {"max_depth": "7"},
                "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "validation:auc", "Value": 0.95},
            }
        return description

    @property
    def conn(self):
        return self

    def list_training_jobs_for_hyper_parameter_tuning_job(self, HyperParameterTuningJobName, StatusEquals, **_):  # noqa: N803
        children = [
            {"TrainingJobName": name, "TrainingJobStatus": job["status"], "FailureReason": job.get("reason")}
            for name, job in sorted(self.jobs.items())
            if name.startswith(f"{HyperParameterTuningJobName}-0") and job["status"] == StatusEquals
        ]
        return {"TrainingJobSummaries": children[:1]}

    def create_tuning_job(self, config, wait_for_completion=False):
        assert not wait_for_completion
        self._create(config["HyperParameterTuningJobName"], config)

    def _create(self, name, config):
        if name in self.jobs:
            raise ClientError({"Error": {"Code": "ResourceInUse", "Message": "exists"}}, "Create")
        self.created.append(name)
        self.jobs[name] = {"status": self.status_after_create, "request": json.loads(json.dumps(config))}


def _context(try_number=1, params=None, run_id=RUN_ID):
    pushed = {}
    ti = SimpleNamespace(try_number=try_number, xcom_push=lambda key, value: pushed.__setitem__(key, value))
    return {
        "ti": ti,
        "logical_date": ANCHOR,
        "dag_run": SimpleNamespace(run_after=ANCHOR),
        "run_id": run_id,
        "dag": SimpleNamespace(dag_id="train_model"),
        "params": params or {"window_days": 30},
        "_pushed": pushed,
    }


@pytest.fixture
def plan():
    return RunPlan.create(load_config(), dag_id="train_model", run_id=RUN_ID, anchor=ANCHOR, window_days=30)


@pytest.fixture
def fake():
    return FakeSageMaker()


@pytest.fixture(autouse=True)
def s3(monkeypatch):
    """The step cache's S3 (moto, in process), with the environment's bucket."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=load_config().storage.bucket)
        monkeypatch.setattr("ml_lifecycle.operators.sagemaker.s3_client", lambda operator: client)
        yield client


def _with_fake(op, fake):
    op.__dict__["hook"] = fake
    return op


def _preprocess(fake, **kwargs):
    op = PreprocessJobOperator(
        task_id="preprocess", dataset_uri="s3://b/datasets/x/", code_uri="s3://b/code/abc/src/",
        check_interval=5, max_attempts=12, max_ingestion_time=60, **kwargs,
    )  # fmt: skip
    return _with_fake(op, fake)


def test_first_try_creates_the_run_named_job_and_defers_with_bounds(fake, plan):
    op = _preprocess(fake)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(_context())
    name = plan.job_name("preprocess")
    assert fake.created == [name]
    trigger = deferred.value.trigger
    assert trigger.job_name == name
    assert (trigger.waiter_delay, trigger.attempts) == (5, 12)
    assert deferred.value.timeout == timedelta(seconds=60)
    assert deferred.value.method_name == "execute_complete"


def test_retry_reattaches_to_the_running_job(fake, plan):
    name = plan.job_name("preprocess")
    fake.add(name, "InProgress")
    op = _preprocess(fake)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(_context(try_number=2))
    assert fake.created == [], "no duplicate job"
    assert deferred.value.trigger.job_name == name


def test_retry_returns_the_completed_job_without_running_it_again(fake, plan):
    name = plan.job_name("preprocess")
    fake.status_after_create = "Completed"
    _preprocess(fake).execute(_context())  # try 1 finished the job but the worker died before reporting
    fake.created.clear()
    result = _preprocess(fake).execute(_context(try_number=2))
    assert fake.created == []
    assert result["job_name"] == name
    assert result["outputs"]["train"].endswith("/preprocess/train/")


@pytest.mark.parametrize("ended", [pytest.param("Failed", id="failed"), pytest.param("Stopped", id="stopped")])
def test_retry_after_a_failed_job_creates_one_suffixed_with_the_try(fake, plan, ended):
    fake.add(plan.job_name("preprocess"), ended, reason="AlgorithmError: boom")
    with pytest.raises(TaskDeferred) as deferred:
        _preprocess(fake).execute(_context(try_number=3))
    assert fake.created == [plan.job_name("preprocess", 3)]
    assert deferred.value.trigger.job_name.endswith("-r3")


def test_newest_job_of_the_run_wins(fake, plan):
    fake.add(plan.job_name("preprocess"), "Failed", reason="x")
    fake.add(plan.job_name("preprocess", 2), "InProgress")
    with pytest.raises(TaskDeferred) as deferred:
        _preprocess(fake).execute(_context(try_number=3))
    assert fake.created == []
    assert deferred.value.trigger.job_name == plan.job_name("preprocess", 2)


def test_reset_try_count_still_finds_the_newest_job(fake, plan):
    fake.add(plan.job_name("preprocess"), "Failed", reason="x")
    fake.add(plan.job_name("preprocess", 2), "Completed")
    result = _preprocess(fake).execute(_context(try_number=1))
    assert fake.created == []
    assert result["job_name"] == plan.job_name("preprocess", 2)


def test_job_that_fails_at_once_fails_the_task_with_the_aws_reason(fake):
    fake.status_after_create = "Failed"
    op = _preprocess(fake)
    original = fake.create_processing_job

    def create_and_fail(config, wait_for_completion=False):
        original(config, wait_for_completion)
        fake.jobs[config["ProcessingJobName"]]["reason"] = "ClientError: No S3 objects found under S3 URL"

    fake.create_processing_job = create_and_fail
    with pytest.raises(AirflowException, match="Failed: ClientError: No S3 objects found"):
        op.execute(_context())


def test_execute_complete_reports_the_failure_reason(fake, plan):
    name = plan.job_name("preprocess")
    fake.add(name, "Failed", reason="AlgorithmError: ValueError: no rows, exit code: 1")
    op = _preprocess(fake)
    event = {"status": "error", "message": "Error while waiting", "job_name": name}
    with pytest.raises(AirflowException, match=r"preprocess job .* Failed: AlgorithmError: ValueError: no rows"):
        op.execute_complete(_context(), event)


def test_execute_complete_on_a_timeout_says_a_retry_reattaches(fake, plan):
    name = plan.job_name("preprocess")
    fake.add(name, "InProgress")
    with pytest.raises(AirflowException, match=r"still InProgress.*re-attaches"):
        _preprocess(fake).execute_complete(_context(), {"status": "error", "message": "max attempts", "job_name": name})


def test_execute_complete_success_returns_small_json(fake, plan):
    name = plan.job_name("evaluate")
    op = EvaluationJobOperator(
        task_id="evaluate", model_uri="s3://b/m/model.tar.gz", test_uri="s3://b/p/test/", code_uri="s3://b/c/"
    )
    _with_fake(op, fake)
    fake.status_after_create = "Completed"
    op.execute(_context())
    result = op.execute_complete(_context(), {"status": "success", "job_name": name})
    assert result["evaluation_uri"] == plan.report_uri("evaluation", "evaluation.json")
    json.dumps(result)
    assert op.config["ProcessingJobName"] == name, "the rendered config is the request that created the job"


def _training(fake, **kwargs):
    kwargs.setdefault("hyperparameter_overrides", '{"num_round": 5}')
    op = TrainingJobOperator(
        task_id="train", splits=SPLITS, sourcedir_uri="s3://b/code/abc/sourcedir.tar.gz",
        instance_type="ml.m5.2xlarge", **kwargs,
    )  # fmt: skip
    return _with_fake(op, fake)


def test_training_uses_run_params_and_returns_model_and_metrics(fake, plan):
    fake.status_after_create = "Completed"
    result = _training(fake).execute(_context())
    request = fake.jobs[plan.job_name("train")]["request"]
    assert request["HyperParameters"]["num_round"] == "5"
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.2xlarge"
    assert result["model_uri"].endswith("/output/model.tar.gz")
    assert result["metrics"] == {"validation:auc": 0.93}
    assert result["hyperparameters"] == {"max_depth": 5}


def test_training_rejects_non_object_overrides(fake):
    op = TrainingJobOperator(task_id="train", splits=SPLITS, sourcedir_uri="s3://b/c.tar.gz",
                             hyperparameter_overrides="[1, 2]")  # fmt: skip
    with pytest.raises(AirflowException, match="JSON object"):
        _with_fake(op, fake).execute(_context())


def test_tuning_reattaches_by_name_and_reports_the_best_job(fake, plan):
    tune = plan.job_name("tune")
    best = f"{tune}-002-abcdef12"
    fake.add(tune, "Completed", best=best)
    fake.add(best, "Completed")
    op = TuningJobOperator(task_id="tune", splits=SPLITS, sourcedir_uri="s3://b/c/sourcedir.tar.gz",
                           max_jobs="3", max_parallel_jobs="1")  # fmt: skip
    result = _with_fake(op, fake).execute(_context(try_number=2))
    assert fake.created == []
    assert result["best_training_job"] == best
    assert result["model_uri"] == f"s3://b/jobs/{best}/output/model.tar.gz"
    assert result["objective"] == {"name": "validation:auc", "value": 0.95}
    assert result["tuned_hyperparameters"] == {"max_depth": 7}


def test_failed_tuning_names_the_first_failed_training_jobs_reason_masked(fake, plan):
    tune = plan.job_name("tune")
    fake.add(tune, "Failed", reason="No training job succeeded after 2 attempts.")
    fake.add(f"{tune}-001-abcdef12", "Failed", reason="AlgorithmError: cannot reach db with password=hunter2x")
    fake.add(f"{tune}-002-abcdef13", "Failed", reason="AlgorithmError: second")
    op = TuningJobOperator(task_id="tune", splits=SPLITS, sourcedir_uri="s3://b/c/sourcedir.tar.gz")
    with pytest.raises(AirflowException) as failure:
        _with_fake(op, fake).execute_complete(_context(), {"status": "error", "message": "failed", "job_name": tune})
    assert str(failure.value) == (
        f"SageMaker tune job {tune} Failed: No training job succeeded after 2 attempts. First failed training job "
        f"{tune}-001-abcdef12: AlgorithmError: cannot reach db with password=***"
    )


def test_tuning_budget_comes_from_templated_params(fake, plan):
    op = TuningJobOperator(task_id="tune", splits=SPLITS, sourcedir_uri="s3://b/c/sourcedir.tar.gz",
                           max_jobs="3", max_parallel_jobs="1", max_attempts=7)  # fmt: skip
    with pytest.raises(TaskDeferred) as deferred:
        _with_fake(op, fake).execute(_context())
    limits = fake.jobs[plan.job_name("tune")]["request"]["HyperParameterTuningJobConfig"]["ResourceLimits"]
    assert (limits["MaxNumberOfTrainingJobs"], limits["MaxParallelTrainingJobs"]) == (3, 1)
    assert deferred.value.trigger.attempts == 7


# ------------------------------------------------------------------------------------------------ step cache

OTHER_RUN = "manual__2026-03-01T14:30:00+00:00"


def _dataset(s3, plan, checksum="a" * 64):
    """The interval's dataset manifest (its part checksums decide the dataset digest)."""
    manifest = {
        "manifest_version": 1,
        "dataset_uri": plan.dataset_uri,
        "schema": [{"name": "amount", "type": "double"}],
        "row_count": 10,
        "parts": [{"name": "part-00000.parquet", "rows": 10, "bytes": 100, "sha256": checksum}],
    }
    key = plan.dataset_uri.split("/", 3)[3] + "_manifest.json"
    s3.put_object(Bucket=plan.bucket, Key=key, Body=json.dumps(manifest).encode())
    return plan.dataset_uri


def _write_outputs(s3, fake, name):
    """What a completed processing job leaves: a file under each output prefix."""
    for output in fake.jobs[name]["request"]["ProcessingOutputConfig"]["Outputs"]:
        bucket, key = output["S3Output"]["S3Uri"].removeprefix("s3://").split("/", 1)
        s3.put_object(Bucket=bucket, Key=key.rstrip("/") + "/part.csv", Body=b"1")


def _preprocess_on(fake, plan):
    op = PreprocessJobOperator(task_id="preprocess", dataset_uri=plan.dataset_uri, code_uri="s3://b/code/abc/src/")
    return _with_fake(op, fake)


def _first_run(s3, fake, plan):
    """Run A's preprocess: a job that completes and is recorded in the cache."""
    _dataset(s3, plan)
    with pytest.raises(TaskDeferred) as deferred:
        _preprocess_on(fake, plan).execute(_context())
    name = plan.job_name("preprocess")
    assert not deferred.value.kwargs, "the key does not travel with the deferral (dag.test drops resume kwargs)"
    fake.jobs[name]["status"] = "Completed"
    _write_outputs(s3, fake, name)
    # a new operator instance resumes, as after a deferral: the key noted at creation is found by the job's name
    result = _preprocess_on(fake, plan).execute_complete(_context(), {"status": "success", "job_name": name})
    assert result["cache"]["reused"] is False and result["cache"]["record_uri"].startswith(f"s3://{plan.bucket}/cache/")
    fake.created.clear()
    return name, result


def _logged(capsys):
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


def test_a_second_run_of_the_interval_reuses_the_completed_step(fake, plan, s3, capsys):
    name, first = _first_run(s3, fake, plan)
    capsys.readouterr()
    result = _preprocess_on(fake, plan).execute(_context(run_id=OTHER_RUN))
    assert fake.created == [], "no new job"
    assert result["job_name"] == name and result["outputs"] == first["outputs"]
    assert result["cache"] == {
        "reused": True,
        "key": first["cache"]["key"],
        "step": "preprocess",
        "source_run_id": RUN_ID,
        "source_job_name": name,
        "record_uri": first["cache"]["record_uri"],
    }
    logged = _logged(capsys)
    assert f"reused outputs of preprocess job {name} from run {RUN_ID}, cache key {first['cache']['key']}" in logged


def test_force_runs_the_step_again(fake, plan, s3):
    _first_run(s3, fake, plan)
    with pytest.raises(TaskDeferred):
        _preprocess_on(fake, plan).execute(_context(run_id=OTHER_RUN, params={"window_days": 30, "force": True}))
    other = RunPlan.create(load_config(), dag_id="train_model", run_id=OTHER_RUN, anchor=ANCHOR, window_days=30)
    assert fake.created == [other.job_name("preprocess")]


def test_force_must_be_a_boolean(fake, plan, s3):
    _dataset(s3, plan)
    with pytest.raises(AirflowException, match=r"param force must be a boolean \(true or false\), got 'yes'"):
        _preprocess_on(fake, plan).execute(_context(params={"window_days": 30, "force": "yes"}))
    assert fake.created == []


def test_other_dataset_content_misses(fake, plan, s3):
    _first_run(s3, fake, plan)
    _dataset(s3, plan, checksum="b" * 64)  # the interval was extracted again and its data changed
    with pytest.raises(TaskDeferred):
        _preprocess_on(fake, plan).execute(_context(run_id=OTHER_RUN))
    assert len(fake.created) == 1


def test_a_record_whose_outputs_are_gone_is_not_reused(fake, plan, s3, capsys):
    _, first = _first_run(s3, fake, plan)
    gone = first["outputs"]["train"]
    bucket, key = gone.removeprefix("s3://").split("/", 1)
    s3.delete_object(Bucket=bucket, Key=key.rstrip("/") + "/part.csv")
    with pytest.raises(TaskDeferred):
        _preprocess_on(fake, plan).execute(_context(run_id=OTHER_RUN))
    assert len(fake.created) == 1
    assert f"outputs are gone ({gone})" in _logged(capsys)


def test_a_retry_of_the_same_run_reattaches_before_looking_at_the_cache(fake, plan, s3):
    name, _ = _first_run(s3, fake, plan)
    result = _preprocess_on(fake, plan).execute(_context(try_number=2, params={"window_days": 30, "force": True}))
    assert fake.created == [] and result["job_name"] == name
    assert result["cache"]["reused"] is False, "its own job, not a reuse"


def test_training_is_reused_with_its_model(fake, plan, s3):
    fake.status_after_create = "Completed"
    describe = fake.describe_training_job
    fake.describe_training_job = lambda name: {
        **describe(name),
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{plan.bucket}/jobs/{name}/output/model.tar.gz"},
    }
    first = _training(fake).execute(_context())
    assert first["cache"]["record_uri"] is None, "no record while the model does not exist"
    bucket, key = first["model_uri"].removeprefix("s3://").split("/", 1)
    s3.put_object(Bucket=bucket, Key=key, Body=b"model")
    fake.created.clear()
    again = _training(fake).execute(_context())  # its own completed job: re-attach, now recorded
    assert again["cache"]["record_uri"] and fake.created == []
    reused = _training(fake).execute(_context(run_id=OTHER_RUN))
    assert fake.created == [] and reused["model_uri"] == first["model_uri"] and reused["cache"]["reused"]
    changed = _training(fake, hyperparameter_overrides='{"num_round": 6}').execute(_context(run_id=OTHER_RUN))
    assert len(fake.created) == 1 and changed["cache"]["reused"] is False, "other hyperparameters: a new job"
