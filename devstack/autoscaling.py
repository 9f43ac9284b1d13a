"""Application Auto Scaling as AWS answers: the tags of scalable targets, which moto does not keep, and what
``DeregisterScalableTarget`` deletes with a target.

AWS (Application Auto Scaling API reference, ``RegisterScalableTarget``, ``TagResource``,
``ListTagsForResource``; the botocore model's documentation of ``RegisterScalableTarget.Tags``):

- ``RegisterScalableTarget`` takes ``Tags`` (a map) "to tag the scalable target when it is created"; when
  the target exists, the call updates it and its tags stay as they were ("to tag an existing scalable target,
  use the TagResource operation");
- ``TagResource`` / ``UntagResource`` / ``ListTagsForResource`` address a target by its ``ScalableTargetARN``
  (what ``RegisterScalableTarget`` returns); an unknown ARN is ``ResourceNotFoundException``;
- at most 50 tags on a target; a key is 1-128 characters, a value 0-256;
- deregistering a target deletes it, tags included, and "deletes the scaling policies and the scheduled actions
  that are associated with it" (moto 5 removes only the target and keeps its policies and scheduled actions,
  which then still show in ``DescribeScalingPolicies``).

:func:`install` adds that behaviour to moto's Application Auto Scaling (process-wide, idempotent), in the process
that runs the moto server (``python -m devstack.moto_server`` and the integration tests' in-process server).
"""

from __future__ import annotations

import json
from typing import Any

from devstack.once import once

MAX_TAGS = 50


def _tags_of(backend: Any) -> dict[str, dict[str, str]]:
    """ARN -> tags of the backend's scalable targets (kept on the backend, so a reset clears them)."""
    store = getattr(backend, "_devstack_tags", None)
    if store is None:
        store = {}
        backend._devstack_tags = store
    return store


def _check(tags: Any) -> dict[str, str]:
    from moto.applicationautoscaling.exceptions import AWSValidationException

    if not isinstance(tags, dict):
        raise AWSValidationException("Tags must be a map of tag keys to tag values")
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise AWSValidationException(f"Tag key {key!r} must be 1-128 characters")
        if key.lower().startswith("aws:"):
            raise AWSValidationException(f"Tag key {key!r} uses the reserved prefix aws:")
        if not isinstance(value, str) or len(value) > 256:
            raise AWSValidationException(f"Tag value of {key!r} must be at most 256 characters")
    return dict(tags)


def _not_found(arn: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError("ResourceNotFoundException", f"No scalable target found for ARN {arn}")


def _target_arns(backend: Any) -> set[str]:
    return {target.arn for by_resource in backend.targets.values() for target in by_resource.values()}


def _tagged_target(response: Any) -> tuple[Any, str]:
    """The backend and the ``ResourceARN`` of a tag request (an unknown target: ResourceNotFoundException)."""
    backend = response.applicationautoscaling_backend
    arn = response._get_param("ResourceARN")
    if arn not in _target_arns(backend):
        raise _not_found(arn)
    return backend, arn


@once
def install() -> None:
    """Install the tag behaviour and the cascading deregistration into moto (idempotent; process-wide)."""
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend
    from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse

    original_register = ApplicationAutoScalingResponse.register_scalable_target
    original_deregister = ApplicationAutoscalingBackend.deregister_scalable_target

    def register_scalable_target(self: Any) -> str:
        tags = self._get_param("Tags")
        checked = _check(tags) if tags is not None else {}
        if len(checked) > MAX_TAGS:
            from moto.applicationautoscaling.exceptions import AWSValidationException

            raise AWSValidationException(f"{len(checked)} tags; a scalable target has at most {MAX_TAGS}")
        backend = self.applicationautoscaling_backend
        before = _target_arns(backend)
        answer = original_register(self)
        arn = json.loads(answer)["ScalableTargetARN"]
        if arn not in before:  # created: its tags are the request's; an update leaves them as they were
            _tags_of(backend)[arn] = checked
        return answer

    def deregister_scalable_target(self: Any, namespace: str, r_id: str, dimension: str) -> None:
        target = self.targets.get(dimension, {}).get(r_id)
        original_deregister(self, namespace, r_id, dimension)  # raises when there is no such target
        if target is not None:
            _tags_of(self).pop(target.arn, None)
        key = (namespace, r_id, dimension)
        for name, policy in list(self.policies.items()):
            if (policy.service_namespace, policy.resource_id, policy.scalable_dimension) == key:
                policy.delete_alarms(self.account_id, self.region_name)
                del self.policies[name]
        self.scheduled_actions = [
            action
            for action in self.scheduled_actions
            if (action.service_namespace, action.resource_id, action.scalable_dimension) != key
        ]

    def tag_resource(self: Any) -> str:
        backend, arn = _tagged_target(self)
        merged = {**_tags_of(backend).get(arn, {}), **_check(self._get_param("Tags") or {})}
        if len(merged) > MAX_TAGS:
            from moto.core.exceptions import JsonRESTError

            raise JsonRESTError("TooManyTagsException", f"{len(merged)} tags; at most {MAX_TAGS}")
        _tags_of(backend)[arn] = merged
        return "{}"

    def untag_resource(self: Any) -> str:
        backend, arn = _tagged_target(self)
        keys = set(self._get_param("TagKeys") or [])
        _tags_of(backend)[arn] = {k: v for k, v in _tags_of(backend).get(arn, {}).items() if k not in keys}
        return "{}"

    def list_tags_for_resource(self: Any) -> str:
        backend, arn = _tagged_target(self)
        return json.dumps({"Tags": _tags_of(backend).get(arn, {})})

    ApplicationAutoScalingResponse.register_scalable_target = register_scalable_target
    ApplicationAutoscalingBackend.deregister_scalable_target = deregister_scalable_target
    ApplicationAutoScalingResponse.tag_resource = tag_resource
    ApplicationAutoScalingResponse.untag_resource = untag_resource
    ApplicationAutoScalingResponse.list_tags_for_resource = list_tags_for_resource
