"""Request builders: one per SageMaker job kind, fed by the environment config and the run's plan.

Each returns the exact request dict of the SageMaker ``Create*`` API, which is also the ``config`` the Amazon
provider's operators take. They are pure functions (no I/O), checked against botocore's input shapes.
"""

from __future__ import annotations

from ml_lifecycle.builders.common import BuilderError, load_metric_definitions
from ml_lifecycle.builders.model import model_package_request
from ml_lifecycle.builders.processing import evaluate_request, preprocess_request
from ml_lifecycle.builders.training import TrainingInputs, training_request
from ml_lifecycle.builders.tuning import tuning_request

__all__ = [
    "BuilderError",
    "TrainingInputs",
    "evaluate_request",
    "load_metric_definitions",
    "model_package_request",
    "preprocess_request",
    "training_request",
    "tuning_request",
]
