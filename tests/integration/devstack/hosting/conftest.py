"""Fixtures for the hosting, runtime, alarm, monitoring and transform integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack.sagemaker.service import SageMakerService
from tests.integration.devstack.hosting_support import client


@pytest.fixture
def fast(sagemaker_service: SageMakerService) -> Iterator[SageMakerService]:
    """The shared service with short telemetry, alarm and deployment intervals."""
    telemetry = sagemaker_service.telemetry  # type: ignore[attr-defined]
    engine = sagemaker_service.hosting.engine  # type: ignore[attr-defined]
    saved = (telemetry.interval, engine.alarm_poll_seconds, engine.activation_seconds)
    telemetry.interval = 0.2
    engine.alarm_poll_seconds = 0.2
    engine.activation_seconds = 0.4
    alarms = getattr(sagemaker_service, "alarms", None)
    saved_tick = alarms.interval if alarms is not None else None
    if alarms is not None:
        alarms.interval = 0.3
    yield sagemaker_service
    telemetry.interval, engine.alarm_poll_seconds, engine.activation_seconds = saved
    if alarms is not None:
        alarms.interval = saved_tick


@pytest.fixture
def runtime(sagemaker_service: SageMakerService) -> Any:
    """A sagemaker-runtime client against the service's port (botocore parses every answer)."""
    assert sagemaker_service.url is not None
    return client("sagemaker-runtime", sagemaker_service.url)


@pytest.fixture
def cloudwatch(moto_endpoint: str) -> Any:
    """A CloudWatch client against moto."""
    return client("cloudwatch", moto_endpoint)
