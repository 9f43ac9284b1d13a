"""``CreateHyperParameterTuningJob`` requests over the training job definition of :mod:`.training`.

The search space comes from ``sagemaker.tuning.ranges``; a hyperparameter that is tuned is left out of the
static hyperparameters. Script-mode containers read every hyperparameter as JSON, so categorical values are
JSON-encoded like the static ones. The objective metric must be one of the metric definitions: SageMaker
reads it from the training log with that regex.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from ml_lifecycle.builders.common import BuilderError, encode_hyperparameters, run_tags
from ml_lifecycle.builders.training import (
    TrainingInputs,
    framework_hyperparameters,
    job_definition,
    merged_hyperparameters,
)
from ml_lifecycle.config import CategoricalRange, ContinuousRange, IntegerRange

if TYPE_CHECKING:
    from ml_lifecycle.config import Config
    from ml_lifecycle.naming import RunPlan

RESOURCE_LIMIT_MAX_RUNTIME = 15_768_000


def parameter_ranges(cfg: Config) -> dict[str, list[dict[str, Any]]]:
    """``ParameterRanges`` of the tuning config (values as strings, as the API wants them)."""
    integer, continuous, categorical = [], [], []
    for name, rng in cfg.sagemaker.tuning.ranges.items():
        if isinstance(rng, IntegerRange):
            integer.append(
                {"Name": name, "MinValue": str(rng.min), "MaxValue": str(rng.max), "ScalingType": rng.scaling}
            )
        elif isinstance(rng, ContinuousRange):
            continuous.append(
                {"Name": name, "MinValue": repr(rng.min), "MaxValue": repr(rng.max), "ScalingType": rng.scaling}
            )
        elif isinstance(rng, CategoricalRange):
            categorical.append({"Name": name, "Values": [json.dumps(v) for v in rng.values]})
    ranges: dict[str, list[dict[str, Any]]] = {}
    if integer:
        ranges["IntegerParameterRanges"] = integer
    if continuous:
        ranges["ContinuousParameterRanges"] = continuous
    if categorical:
        ranges["CategoricalParameterRanges"] = categorical
    return ranges


def tuning_request(
    cfg: Config,
    plan: RunPlan,
    inputs: TrainingInputs,
    *,
    max_jobs: int | None = None,
    max_parallel_jobs: int | None = None,
    try_number: int = 1,
) -> dict[str, Any]:
    """The ``CreateHyperParameterTuningJob`` request (the ``config`` of ``SageMakerTuningOperator``).

    :param max_jobs: the run's budget (total training jobs), else ``sagemaker.tuning.max_jobs``
    :param max_parallel_jobs: the run's parallelism, else ``sagemaker.tuning.max_parallel_jobs``
    """
    tuning = cfg.sagemaker.tuning
    total = tuning.max_jobs if max_jobs is None else int(max_jobs)
    parallel = tuning.max_parallel_jobs if max_parallel_jobs is None else int(max_parallel_jobs)
    if total < 1 or parallel < 1:
        raise BuilderError(f"tuning budget must be positive (max_jobs={total}, max_parallel_jobs={parallel})")
    if parallel > total:
        raise BuilderError(f"tuning max_parallel_jobs ({parallel}) must not exceed max_jobs ({total})")
    metric_names = {m["Name"] for m in inputs.metric_definitions}
    if tuning.objective_metric not in metric_names:
        raise BuilderError(
            f"sagemaker.tuning.objective_metric {tuning.objective_metric!r} is not among the metric definitions"
            f" ({', '.join(sorted(metric_names))}); SageMaker could not read the objective from the log"
        )
    if tuning.strategy == "Hyperband":
        raise BuilderError("sagemaker.tuning.strategy 'Hyperband' needs per-epoch resources; use Random or Bayesian")
    ranges = parameter_ranges(cfg)
    if tuning.strategy == "Grid" and set(ranges) != {"CategoricalParameterRanges"}:
        raise BuilderError("sagemaker.tuning.strategy 'Grid' accepts categorical ranges only")

    static = merged_hyperparameters(cfg, inputs.hyperparameter_overrides)
    for name in tuning.ranges:
        static.pop(name, None)
    # sagemaker_job_name is left out: every child job has its own name.
    static.update(framework_hyperparameters(cfg, inputs.sourcedir_uri, job_name=None))

    limits: dict[str, Any] = {"MaxParallelTrainingJobs": parallel}
    if tuning.strategy != "Grid":
        limits["MaxNumberOfTrainingJobs"] = total
    waves = math.ceil(total / parallel)
    limits["MaxRuntimeInSeconds"] = max(
        120, min(RESOURCE_LIMIT_MAX_RUNTIME, waves * cfg.sagemaker.training.max_runtime_seconds)
    )
    return {
        "HyperParameterTuningJobName": plan.job_name("tune", try_number),
        "HyperParameterTuningJobConfig": {
            "Strategy": tuning.strategy,
            "HyperParameterTuningJobObjective": {
                "Type": tuning.objective_type,
                "MetricName": tuning.objective_metric,
            },
            "ResourceLimits": limits,
            "ParameterRanges": ranges,
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": encode_hyperparameters(static),
            **job_definition(cfg, inputs, plan.job_uri("tune") + "/"),
        },
        "Tags": run_tags(cfg, plan),
    }
