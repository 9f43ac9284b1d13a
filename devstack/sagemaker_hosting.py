"""SageMaker service extension: hosting, sagemaker-runtime, CloudWatch alarm evaluation, Model Monitor and
batch transform (see ``docs/devstack-hosting.md``).

Loaded by :class:`devstack.sagemaker.service.SageMakerService` at construction (it loads every
``devstack.sagemaker_*`` module that defines ``register_sagemaker_extension``). Knobs, read from the
environment when the service starts:

- ``DEVSTACK_TELEMETRY_FLUSH_SECONDS`` (default 1): how often endpoint metrics and capture files are sent;
- ``DEVSTACK_ALARM_EVALUATION_SECONDS`` (default 5): how often CloudWatch metric alarms are evaluated
  (0 disables the evaluator);
- ``DEVSTACK_MONITORING_TICK_SECONDS`` (default 10): how often monitoring schedules are checked.

The components are reachable as ``service.hosting``, ``service.runtime``, ``service.telemetry``,
``service.alarms``, ``service.monitoring`` and ``service.transform``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def register_sagemaker_extension(service: ServiceApi) -> None:
    """Register the hosting, runtime, alarm, monitoring and transform components on ``service``."""
    from devstack.sagemaker.alarms import AlarmEvaluator
    from devstack.sagemaker.hosting import Hosting
    from devstack.sagemaker.monitor import Monitoring
    from devstack.sagemaker.runtime import Runtime
    from devstack.sagemaker.telemetry import Flusher
    from devstack.sagemaker.transform import TransformJobs

    hosting = Hosting(service)
    hosting.register()
    runtime = Runtime(service, hosting)
    runtime.register()
    telemetry = Flusher(
        [runtime.metrics.flush, runtime.capture.flush], _seconds("DEVSTACK_TELEMETRY_FLUSH_SECONDS", 1.0)
    )
    service.on_shutdown(telemetry.close)
    service.hosting = hosting  # type: ignore[attr-defined]
    service.runtime = runtime  # type: ignore[attr-defined]
    service.telemetry = telemetry  # type: ignore[attr-defined]
    alarms = AlarmEvaluator(lambda: service.client("cloudwatch"), _seconds("DEVSTACK_ALARM_EVALUATION_SECONDS", 5.0))
    service.on_shutdown(alarms.close)
    service.alarms = alarms  # type: ignore[attr-defined]
    monitoring = Monitoring(service, _seconds("DEVSTACK_MONITORING_TICK_SECONDS", 10.0))
    monitoring.register()
    service.monitoring = monitoring  # type: ignore[attr-defined]
    transform = TransformJobs(service)
    transform.register()
    service.transform = transform  # type: ignore[attr-defined]
    hosting.recover()
    transform.recover()
