"""Hyperparameter tuning on the devstack SageMaker service: real children, parallelism, best job."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.devstack.sagemaker_support import ROLE, SKLEARN_IMAGE, put_sourcedir, put_text, wait_for

pytestmark = pytest.mark.integration

# The "score" peaks at max_depth=4 and rises with eta; each run records when it started and ended so
# the test can see the children overlap.
TRAIN_PY = """
import argparse, json, os, time
parser = argparse.ArgumentParser()
parser.add_argument("--max_depth", type=int)
parser.add_argument("--eta", type=float)
parser.add_argument("--booster", default="gbtree")
parser.add_argument("--fixed")
args = parser.parse_args()
start = time.time()
time.sleep(0.6)
score = 1.0 - abs(args.max_depth - 4) / 10 + args.eta / 100
print(f"validation-auc={score:.5f}")
json.dump({"start": start, "end": time.time(), "fixed": args.fixed},
          open(os.path.join(os.environ["SM_MODEL_DIR"], "run.json"), "w"))
"""


def tuning_request(name: str, bucket: str, source: str, strategy: str, **config: Any) -> dict[str, Any]:
    ranges: dict[str, Any] = config.pop(
        "ranges",
        {
            "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": "6"}],
            "ContinuousParameterRanges": [
                {"Name": "eta", "MinValue": "0.01", "MaxValue": "0.5", "ScalingType": "Logarithmic"}
            ],
        },
    )
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"},
            "ResourceLimits": config.pop("limits", {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2}),
            "ParameterRanges": ranges,
            **config,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {
                "sagemaker_program": json.dumps("train.py"),
                "sagemaker_submit_directory": json.dumps(source),
                "fixed": "static",
            },
            "AlgorithmSpecification": {
                "TrainingImage": SKLEARN_IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "validation:auc", "Regex": r"validation-auc=([0-9\.]+)"}],
            },
            "RoleArn": ROLE,
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/"}},
                }
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/tuning"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        },
    }


@pytest.fixture
def source(s3: Any, bucket: str) -> str:
    put_text(s3, bucket, "train/data.csv", "1,2\n")
    return put_sourcedir(s3, bucket, "code/sourcedir.tar.gz", {"train.py": TRAIN_PY})


def test_random_search_runs_children_in_parallel_and_reports_the_best(
    sm: Any, s3: Any, bucket: str, source: str, unique_name: Any
) -> None:
    name = unique_name("tune")[:32]
    arn = sm.create_hyper_parameter_tuning_job(**tuning_request(name, bucket, source, "Random"))[
        "HyperParameterTuningJobArn"
    ]
    assert arn.endswith(f":hyper-parameter-tuning-job/{name.lower()}")

    desc = wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        "HyperParameterTuningJobStatus",
        timeout=90,
    )

    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["TrainingJobStatusCounters"] == {
        "Completed": 4,
        "InProgress": 0,
        "RetryableError": 0,
        "NonRetryableError": 0,
        "Stopped": 0,
    }
    assert desc["ObjectiveStatusCounters"] == {"Succeeded": 4, "Pending": 0, "Failed": 0}
    children = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, SortBy="FinalObjectiveMetricValue", SortOrder="Descending"
    )["TrainingJobSummaries"]
    assert len(children) == 4
    for index, child in enumerate(sorted(c["TrainingJobName"] for c in children), start=1):
        assert re.fullmatch(rf"{name}-{index:03d}-[0-9a-f]{{8}}", child)
    best = desc["BestTrainingJob"]
    assert best["TrainingJobName"] == children[0]["TrainingJobName"]
    values = [c["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for c in children]
    assert values == sorted(values, reverse=True)
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == values[0]
    tuned = best["TunedHyperParameters"]
    assert set(tuned) == {"max_depth", "eta"}
    assert 2 <= int(tuned["max_depth"]) <= 6
    assert 0.01 <= float(tuned["eta"]) <= 0.5

    child = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
    assert child["TuningJobArn"] == arn
    assert child["HyperParameters"]["_tuning_objective_metric"] == "validation:auc"
    assert child["HyperParameters"]["fixed"] == "static"

    runs = []
    for summary in children:
        detail = sm.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        from tests.integration.devstack.sagemaker_support import read_tarball

        runs.append(json.loads(read_tarball(s3, detail["ModelArtifacts"]["S3ModelArtifacts"])["run.json"]))
    assert all(run["fixed"] == "static" for run in runs)
    intervals = sorted((r["start"], r["end"]) for r in runs)
    overlaps = sum(1 for a, b in itertools.pairwise(intervals) if b[0] < a[1])
    assert overlaps >= 1, "children never ran concurrently"
    max_concurrent = max(sum(1 for s, e in intervals if s <= t < e) for t, _ in intervals)
    assert max_concurrent <= 2


def test_grid_search_runs_every_combination(sm: Any, bucket: str, source: str, unique_name: Any) -> None:
    name = unique_name("grid")[:32]
    ranges = {
        "CategoricalParameterRanges": [
            {"Name": "max_depth", "Values": ["3", "4"]},
            {"Name": "eta", "Values": ["0.1", "0.2"]},
        ]
    }
    request = tuning_request(name, bucket, source, "Grid", ranges=ranges, limits={"MaxParallelTrainingJobs": 2})
    sm.create_hyper_parameter_tuning_job(**request)

    desc = wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        "HyperParameterTuningJobStatus",
        timeout=90,
    )

    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    children = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
        "TrainingJobSummaries"
    ]
    combos = sorted((c["TunedHyperParameters"]["max_depth"], c["TunedHyperParameters"]["eta"]) for c in children)
    assert combos == [("3", "0.1"), ("3", "0.2"), ("4", "0.1"), ("4", "0.2")]
    assert desc["BestTrainingJob"]["TunedHyperParameters"] == {"max_depth": "4", "eta": "0.2"}

    listed = sm.list_hyper_parameter_tuning_jobs(NameContains=name)["HyperParameterTuningJobSummaries"]
    assert [s["HyperParameterTuningJobName"] for s in listed] == [name]
    assert listed[0]["Strategy"] == "Grid"


def test_random_search_is_reproducible(sm: Any, bucket: str, source: str, unique_name: Any) -> None:
    """The same tuning job name proposes the same configurations (seeded from the name)."""
    from devstack.sagemaker import search

    name = unique_name("repro")[:32]
    sm.create_hyper_parameter_tuning_job(**tuning_request(name, bucket, source, "Bayesian"))
    wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        "HyperParameterTuningJobStatus",
        timeout=90,
    )
    children = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
        "TrainingJobSummaries"
    ]
    ranges = search.parse_ranges(
        tuning_request(name, bucket, source, "Random")["HyperParameterTuningJobConfig"]["ParameterRanges"]
    )
    expected = search.random_configurations(ranges, 4, search.seed_for(name))
    assert [c["TunedHyperParameters"] for c in sorted(children, key=lambda c: c["TrainingJobName"])] == expected


def test_stop_and_errors(sm: Any, bucket: str, source: str, unique_name: Any) -> None:
    name = unique_name("stop")[:32]
    request = tuning_request(
        name, bucket, source, "Random", limits={"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 1}
    )
    sm.create_hyper_parameter_tuning_job(**request)
    with pytest.raises(ClientError) as duplicate:
        sm.create_hyper_parameter_tuning_job(**request)
    assert duplicate.value.response["Error"]["Code"] == "ResourceInUse"
    assert duplicate.value.response["Error"]["Message"] == (
        f"A hyperparameter tuning job with the name, {name}, already exists. Choose a different name."
    )
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    desc = wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        "HyperParameterTuningJobStatus",
        timeout=60,
    )
    assert desc["HyperParameterTuningJobStatus"] == "Stopped"
    assert sum(desc["TrainingJobStatusCounters"].values()) < 6

    with pytest.raises(ClientError) as unknown:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="nothing-here")
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFound"

    grid = tuning_request(unique_name("badgrid")[:32], bucket, source, "Grid")
    with pytest.raises(ClientError, match="Grid search supports only categorical parameter ranges"):
        sm.create_hyper_parameter_tuning_job(**grid)

    no_metric = tuning_request(unique_name("nometric")[:32], bucket, source, "Random")
    no_metric["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"] = "other"
    with pytest.raises(ClientError, match="objective metric other is not defined"):
        sm.create_hyper_parameter_tuning_job(**no_metric)


def test_tuning_fails_when_every_child_fails(sm: Any, s3: Any, bucket: str, unique_name: Any) -> None:
    put_text(s3, bucket, "train/data.csv", "1,2\n")
    broken = put_sourcedir(s3, bucket, "broken/sourcedir.tar.gz", {"train.py": "raise SystemExit('boom')\n"})
    name = unique_name("allfail")[:32]
    request = tuning_request(
        name, bucket, broken, "Random", limits={"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2}
    )
    sm.create_hyper_parameter_tuning_job(**request)
    desc = wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        "HyperParameterTuningJobStatus",
        timeout=60,
    )
    assert desc["HyperParameterTuningJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("No training job succeeded after 2 attempts.")
    assert desc["TrainingJobStatusCounters"]["NonRetryableError"] == 2
    assert desc["ObjectiveStatusCounters"]["Failed"] == 2
    assert "BestTrainingJob" not in desc
