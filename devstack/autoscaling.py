"""Application Auto Scaling as AWS answers: what the devstack adds to moto's.

``DeregisterScalableTarget`` on AWS "deletes the scaling policies and the scheduled actions that are associated
with it" (Application Auto Scaling API reference); moto 5 removes only the target and keeps its policies and
scheduled actions, which then still show in ``DescribeScalingPolicies``. :func:`install` makes moto's backend
delete them with the target, in the process that runs the moto server (``python -m devstack.aws`` and the
integration tests' in-process server).
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.Lock()
_INSTALLED = False


def install() -> None:
    """Install the cascading ``DeregisterScalableTarget`` into moto (idempotent; process-wide)."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED:
            return
        _install()
        _INSTALLED = True


def _install() -> None:
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend

    original = ApplicationAutoscalingBackend.deregister_scalable_target

    def deregister_scalable_target(self: Any, namespace: str, r_id: str, dimension: str) -> None:
        original(self, namespace, r_id, dimension)  # raises when there is no such target
        for key, policy in list(self.policies.items()):
            if (policy.service_namespace, policy.resource_id, policy.scalable_dimension) == (
                namespace,
                r_id,
                dimension,
            ):
                policy.delete_alarms(self.account_id, self.region_name)
                del self.policies[key]
        self.scheduled_actions = [
            action
            for action in self.scheduled_actions
            if (action.service_namespace, action.resource_id, action.scalable_dimension) != (namespace, r_id, dimension)
        ]

    ApplicationAutoscalingBackend.deregister_scalable_target = deregister_scalable_target
