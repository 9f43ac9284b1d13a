"""A local, SageMaker-compatible service that really runs training, processing and tuning jobs.

It speaks SageMaker's JSON 1.1 wire protocol, so boto3 and the Airflow Amazon provider talk to it
unchanged (only ``endpoint_url`` differs), and runs jobs as local subprocesses following SageMaker's
container contracts. See ``docs/devstack-sagemaker.md``.
"""

from __future__ import annotations

from devstack.sagemaker.service import SageMakerService

__all__ = ["SageMakerService"]
