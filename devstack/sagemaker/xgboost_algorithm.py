"""The built-in XGBoost algorithm ("algorithm mode" of the SageMaker XGBoost image), service side.

A training job on a ``sagemaker-xgboost`` image with neither ``SAGEMAKER_PROGRAM`` nor the
``sagemaker_program`` hyperparameter runs the algorithm itself: :data:`SCRIPT` runs inside the image's
environment (it imports only the standard library and the image's xgboost, numpy and pyarrow) and follows
the container's contract (hyperparameters as strings, validated; channels ``train``, ``validation`` and
``code`` only; CSV with the label first, libsvm by default, parquet; the evaluation log; the
``xgboost-model`` artefact). The service adds the metric definitions SageMaker adds for the built-in
algorithm (``train:<metric>`` and ``validation:<metric>``), applied to the log as for any job.
"""

from __future__ import annotations

from pathlib import Path

#: The runner executed inside the image environment.
SCRIPT = Path(__file__).with_name("xgboost_algorithm_runner.py")

#: The evaluation metrics XGBoost itself reports (the names in its evaluation log).
EVAL_METRICS = (
    "rmse",
    "rmsle",
    "mae",
    "mape",
    "mphe",
    "logloss",
    "error",
    "merror",
    "mlogloss",
    "auc",
    "aucpr",
    "ndcg",
    "map",
    "poisson-nloglik",
    "gamma-nloglik",
    "cox-nloglik",
    "gamma-deviance",
    "tweedie-nloglik",
    "aft-nloglik",
    "interval-regression-accuracy",
)

_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
MAX_DEFINITIONS = 40


def builtin_definitions() -> list[dict[str, str]]:
    """The definitions SageMaker fills in for the built-in algorithm, as DescribeTrainingJob returns them."""
    out = []
    for channel in ("train", "validation"):
        for metric in EVAL_METRICS:
            out.append({"Name": f"{channel}:{metric}", "Regex": rf".*\[[0-9]+\].*#011{channel}-{metric}:{_NUMBER}.*"})
    return out


def metric_definitions(user: list[dict[str, str]]) -> list[dict[str, str]]:
    """The job's definitions: the user's, then the built-in ones not named by the user (at most 40)."""
    names = {d["Name"] for d in user}
    merged = list(user) + [d for d in builtin_definitions() if d["Name"] not in names]
    return merged[:MAX_DEFINITIONS]
