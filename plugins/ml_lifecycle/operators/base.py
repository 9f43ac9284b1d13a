"""What every operator of the package that talks to SageMaker shares: errors, states, clients and links.

- :func:`is_not_found` / :func:`is_in_use`: the one reading of SageMaker's "no such resource" and "name
  taken" answers (``Describe*`` of an unknown job is a ``ValidationException``, of an unknown tuning job or
  monitoring schedule a ``ResourceNotFound``; see ``docs/architecture.md``).
- :data:`JOB_ACTIVE` / :data:`JOB_FAILED` / :data:`JOB_COMPLETED` (every job kind) and
  :data:`ENDPOINT_IN_PROGRESS` (endpoints): the status sets every waiter and re-attach decision reads.
- :class:`SageMakerOperatorBase`: config, per-service clients, ``describe_or_none`` and console links.
- :class:`EndpointOperatorBase`: the ``endpoint_name`` of an operator on one endpoint, and its default.
- :class:`PollingOperatorBase`: the ``poll_interval`` / ``max_attempts`` of an operator that waits, and the job
  waiter's defaults.
- :class:`HostingOperatorBase`: what the endpoint operators (deployment, traffic shifting, auto-scaling,
  batch transform) share: model packages, models, endpoint configs, alarms, the clean-up of a removed
  variant's scalable target and alarms, and the deferred wait.

The re-attach routine of run-named jobs is :mod:`ml_lifecycle.operators.jobs`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from ml_lifecycle.links import ConsoleLink, SageMakerEndpointLink, persist_link
from ml_lifecycle.notifications import redact

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ml_lifecycle.config import Config

#: Error codes SageMaker answers a ``Describe*`` of an unknown name with.
NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound", "ResourceNotFoundException"})
#: A ``ValidationException`` is "not found" only when its message says so (it also reports bad input).
NOT_FOUND_MESSAGES = ("not found", "could not find", "can't find", "cannot find", "does not exist")
#: Error codes of a ``Create*`` whose name is taken (the resource exists already).
IN_USE_CODES = frozenset({"ResourceInUse", "ResourceInUseException"})

JOB_COMPLETED = "Completed"
JOB_ACTIVE = frozenset({"InProgress", "Stopping"})
JOB_FAILED = frozenset({"Failed", "Stopped"})
ENDPOINT_IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
FAILURE_REASON_MAX = 1024


def _error(exc: Exception) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    return exc.response.get("Error", {}) if isinstance(exc, ClientError) else None


def is_not_found(exc: Exception) -> bool:
    """``True`` when ``exc`` is SageMaker saying the named resource does not exist."""
    error = _error(exc)
    if error is None or error.get("Code") not in NOT_FOUND_CODES:
        return False
    message = str(error.get("Message", "")).lower()
    return error.get("Code") != "ValidationException" or any(text in message for text in NOT_FOUND_MESSAGES)


def is_in_use(exc: Exception) -> bool:
    """``True`` when ``exc`` is SageMaker refusing a ``Create*`` because the name is taken."""
    error = _error(exc)
    return error is not None and error.get("Code") in IN_USE_CODES


def describe_or_none(describe: Callable[..., dict[str, Any]], **name: Any) -> dict[str, Any] | None:
    """``describe(**name)``, or ``None`` when SageMaker has no resource of that name."""
    try:
        return describe(**name)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def _scaling_object_gone(exc: Exception) -> bool:
    """``True`` when Application Auto Scaling says the scalable target or policy does not exist (any more)."""
    error = _error(exc)
    if error is None:
        return False
    message = str(error.get("Message", "")).lower()
    return error.get("Code") == "ObjectNotFoundException" or (
        error.get("Code") == "ValidationException" and ("not found" in message or "no scalable target" in message)
    )


def aws_connection(operator: AwsBaseOperator) -> dict[str, Any]:
    """The AWS connection settings of ``operator``, as a trigger's keyword arguments."""
    return {
        "aws_conn_id": operator.aws_conn_id,
        "region_name": operator.region_name,
        "verify": operator.verify,
        "botocore_config": operator.botocore_config,
    }


def failure_reason(description: dict[str, Any]) -> str:
    """The job's ``FailureReason`` (or ``ExitMessage``), credentials masked, cut to a length fit for a task log
    and XCom.

    The reason ends with what the job's script last wrote, which may be its connection settings.
    """
    reason = description.get("FailureReason") or description.get("ExitMessage") or "no FailureReason given"
    return redact(str(reason))[:FAILURE_REASON_MAX]


def failed_message(endpoint: str, target: str, reason: str | None) -> str:
    """The error of a deployment that left the endpoint ``Failed``."""
    return (
        f"endpoint {endpoint} Failed while deploying {target}: {reason or '(no FailureReason)'}. A Failed endpoint "
        "serves nothing and accepts only DeleteEndpoint: trigger deploy_model with the previous model's package "
        "ARN to delete and re-create it (docs/runbook-rollback.md)"
    )


def update_rollback_failed_message(endpoint: str, description: dict[str, Any], target: str | None = None) -> str:
    """The error of an endpoint in ``UpdateRollbackFailed``: an update and its rollback both failed."""
    update = f"the update to {target}" if target else "an update"
    reason = str(description.get("FailureReason") or "(no FailureReason)")[:FAILURE_REASON_MAX]
    return (
        f"endpoint {endpoint} is UpdateRollbackFailed: {update} failed AND its rollback failed; the endpoint "
        f"serves a mix of {description.get('EndpointConfigName')} and the new fleet and needs a person "
        f"(docs/runbook-rollback.md): {reason}"
    )


class SageMakerOperatorBase(AwsBaseOperator[SageMakerHook]):
    """An operator on the task's AWS connection with the SageMaker hook, the config and console links."""

    aws_hook_class = SageMakerHook

    def _config(self) -> Config:
        from ml_lifecycle.config import load_config

        return load_config()

    def _client(self, service: str) -> Any:
        """A boto3 client of ``service`` from this task's AWS connection (honours per-service endpoints)."""
        return AwsBaseHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
            client_type=service,
        ).conn

    def put_alarms(self, requests: list[dict[str, Any]]) -> list[str]:
        """PutMetricAlarm each request (an upsert); an alarm that existed before is tagged with TagResource,
        since PutMetricAlarm ignores tags on update. Returns the alarms' names."""
        cloudwatch = self._client("cloudwatch")
        names = [request["AlarmName"] for request in requests]
        existing = {
            alarm["AlarmName"]: alarm["AlarmArn"]
            for alarm in cloudwatch.describe_alarms(AlarmNames=names, AlarmTypes=["MetricAlarm"])["MetricAlarms"]
        }
        for request in requests:
            cloudwatch.put_metric_alarm(**request)
            if request["AlarmName"] in existing:
                cloudwatch.tag_resource(ResourceARN=existing[request["AlarmName"]], Tags=request["Tags"])
        return names

    @property
    def sagemaker(self) -> Any:
        return self.hook.conn

    def _s3(self) -> Any:
        return self.hook.s3_hook.get_conn()

    def persist_link(self, link: type[ConsoleLink], context: Context, **fields: Any) -> None:
        """Show ``link`` (filled with ``fields``) on this task instance."""
        persist_link(link, self, context, **fields)

    def refresh_tags(self, cfg: Config, arn: str) -> None:
        """``AddTags`` the configured tags to an existing SageMaker resource: its update calls
        (``UpdateEndpoint``, ``UpdateMonitoringSchedule``) take no tags, and ``AddTags`` overwrites a key's value.
        """
        from ml_lifecycle.builders.common import config_tags

        self.sagemaker.add_tags(ResourceArn=arn, Tags=config_tags(cfg))


class PollingOperatorBase(SageMakerOperatorBase):
    """An operator that waits for SageMaker: its ``poll_interval`` and ``max_attempts`` parameters.

    :param poll_interval: seconds between polls (default ``sagemaker.waiter_check_interval_seconds``)
    :param max_attempts: polls before the wait gives up (default ``sagemaker.waiter_max_attempts`` for a job)
    """

    def __init__(self, *, poll_interval: float | None = None, max_attempts: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts

    def job_polling(self, cfg: Config) -> tuple[float, int]:
        """``(seconds between polls, polls)`` of the wait for a job: the parameters, else the config's waiter."""
        return (
            self.poll_interval or cfg.sagemaker.waiter_check_interval_seconds,
            self.max_attempts or cfg.sagemaker.waiter_max_attempts,
        )


class EndpointOperatorBase(SageMakerOperatorBase):
    """An operator on one endpoint: its ``endpoint_name`` parameter.

    :param endpoint_name: the endpoint (default ``deployment.endpoint_name``)
    """

    def __init__(self, *, endpoint_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name

    def target_endpoint(self, cfg: Config) -> str:
        """``endpoint_name``, else the config's ``deployment.endpoint_name``."""
        return self.endpoint_name or cfg.deployment.endpoint_name


class HostingOperatorBase(PollingOperatorBase):
    """What the hosting operators share: clients, idempotent create-if-absent, deferral."""

    def _poll(self, cfg: Config) -> tuple[float, int]:
        interval = self.poll_interval or cfg.sagemaker.waiter_check_interval_seconds
        attempts = self.max_attempts or max(1, int(cfg.deployment.max_execution_timeout_seconds * 2 // interval) + 10)
        return float(interval), int(attempts)

    def describe_endpoint_or_none(self, name: str) -> dict[str, Any] | None:
        return describe_or_none(self.sagemaker.describe_endpoint, EndpointName=name)

    def describe_package(self, arn: str) -> dict[str, Any]:
        try:
            return self.sagemaker.describe_model_package(ModelPackageName=arn)
        except Exception as exc:
            if is_not_found(exc):
                raise AirflowFailException(f"model package {arn} does not exist") from exc
            raise

    def approved_package(self, arn: str, hint: str = "") -> dict[str, Any]:
        """The model package ``arn``; fails the task unless it is ``Approved``."""
        package = self.describe_package(arn)
        if package.get("ModelApprovalStatus") != "Approved":
            raise AirflowFailException(
                f"model package {arn} is {package.get('ModelApprovalStatus')}; only Approved versions are deployed"
                + hint
            )
        return package

    def ensure_model(self, cfg: Config, package: dict[str, Any]) -> str:
        """Create the SageMaker Model of ``package`` unless it exists; returns its name."""
        from ml_lifecycle.builders.endpoint import model_request

        request = model_request(cfg, package)
        name = request["ModelName"]
        if describe_or_none(self.sagemaker.describe_model, ModelName=name) is not None:
            self.log.info("Model %s exists", name)
        else:
            self.log.info("Creating model %s from %s", name, package["ModelPackageArn"])
            self.sagemaker.create_model(**request)
        return name

    def ensure_endpoint_config(self, request: dict[str, Any]) -> str:
        """Create the endpoint config unless one of that name exists; returns its name."""
        name = request["EndpointConfigName"]
        if describe_or_none(self.sagemaker.describe_endpoint_config, EndpointConfigName=name) is not None:
            self.log.info("Endpoint config %s exists", name)
        else:
            self.log.info(
                "Creating endpoint config %s (variants %s)",
                name,
                ", ".join(f"{v['VariantName']}={v['ModelName']}" for v in request["ProductionVariants"]),
            )
            self.sagemaker.create_endpoint_config(**request)
        return name

    def create_endpoint(self, cfg: Config, endpoint: str, config_name: str) -> None:
        """``CreateEndpoint`` on ``config_name`` with the configured tags."""
        from ml_lifecycle.builders.common import config_tags

        self.sagemaker.create_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=config_name,
            Tags=config_tags(cfg),
        )

    def ensure_alarms(self, cfg: Config, endpoint: str, variant: str, period_seconds: int) -> list[str]:
        """Create or update (PutMetricAlarm is an upsert) the variant's rollback alarms; returns their names.

        PutMetricAlarm takes the configured tags when it creates an alarm and ignores them when it updates one,
        so an alarm that existed is tagged with TagResource (an alarm made before its tags were configured, or
        when they changed).
        """
        from ml_lifecycle.builders.endpoint import alarm_requests

        requests = alarm_requests(cfg, endpoint=endpoint, variant=variant, period_seconds=period_seconds)
        names = self.put_alarms(requests)
        self.log.info("Alarms in place for %s/%s: %s", endpoint, variant, ", ".join(names))
        return names

    def release_scaling(self, endpoint: str, keep: Collection[str]) -> list[str]:
        """Deregister the scalable targets of ``endpoint``'s variants not in ``keep``; their ResourceIds.

        SageMaker refuses an ``UpdateEndpoint`` that removes a production variant registered with Application
        Auto Scaling (the variant must be deregistered first: "Update endpoints that use auto scaling" in the
        SageMaker developer guide), so this runs before such an update. The target's scaling policies are
        deleted first, as that guide says (``DeregisterScalableTarget`` deletes them on AWS too). Idempotent: a
        target already gone is skipped.
        """
        from ml_lifecycle.builders.endpoint import scalable_resource_id

        client = self._client("application-autoscaling")
        prefix = scalable_resource_id(endpoint, "")
        kept = {scalable_resource_id(endpoint, variant) for variant in keep}
        doomed = [
            (target["ResourceId"], target["ScalableDimension"])
            for page in client.get_paginator("describe_scalable_targets").paginate(ServiceNamespace="sagemaker")
            for target in page.get("ScalableTargets", [])
            if target["ResourceId"].startswith(prefix) and target["ResourceId"] not in kept
        ]
        released = []
        for resource, dimension in doomed:
            where = {"ServiceNamespace": "sagemaker", "ResourceId": resource, "ScalableDimension": dimension}
            try:
                for page in client.get_paginator("describe_scaling_policies").paginate(**where):
                    for policy in page.get("ScalingPolicies", []):
                        client.delete_scaling_policy(PolicyName=policy["PolicyName"], **where)
                client.deregister_scalable_target(**where)
            except Exception as exc:
                if not _scaling_object_gone(exc):
                    raise
                self.log.info("Scalable target %s (%s) is gone already", resource, dimension)
                continue
            self.log.info("Deregistered scalable target %s (%s) and its scaling policies", resource, dimension)
            released.append(resource)
        return sorted(set(released))

    def delete_variant_alarms(self, endpoint: str, keep: Collection[str]) -> list[str]:
        """Delete the rollback alarms (:func:`~ml_lifecycle.builders.endpoint.alarm_names`) of ``endpoint``'s
        variants not in ``keep``; returns their names. Only alarms on the endpoint's own metrics under the
        names this package gives are touched. Idempotent."""
        from ml_lifecycle.builders.endpoint import alarm_names

        cloudwatch = self._client("cloudwatch")
        doomed = []
        for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=f"{endpoint}-"):
            for alarm in page.get("MetricAlarms", []):
                dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions") or []}
                variant = dimensions.get("VariantName")
                if dimensions.get("EndpointName") != endpoint or variant is None or variant in keep:
                    continue
                if alarm["AlarmName"] in alarm_names(endpoint, variant):
                    doomed.append(alarm["AlarmName"])
        doomed = sorted(set(doomed))
        for start in range(0, len(doomed), 100):  # DeleteAlarms takes at most 100 names
            cloudwatch.delete_alarms(AlarmNames=doomed[start : start + 100])
        if doomed:
            self.log.info("Deleted the alarms of removed variants of %s: %s", endpoint, ", ".join(doomed))
        return doomed

    def defer_until_settled(
        self, cfg: Config, endpoint: str, *, bake_seconds: float = 0, kwargs: dict[str, Any] | None = None
    ) -> NoReturn:
        """Hand the wait for the endpoint to settle (then bake) to the triggerer; always raises."""
        from ml_lifecycle.triggers.endpoint import EndpointSettledTrigger

        interval, attempts = self._poll(cfg)
        timeout = dt.timedelta(seconds=interval * attempts + bake_seconds + 300)
        self.defer(
            trigger=EndpointSettledTrigger(
                endpoint_name=endpoint,
                poll_interval=interval,
                max_attempts=attempts,
                bake_seconds=bake_seconds,
                **aws_connection(self),
            ),
            method_name="execute_complete",
            kwargs=kwargs or {},
            timeout=timeout,
        )
        raise AssertionError("defer() returns only by raising")  # pragma: no cover

    def check_event(self, event: dict[str, Any] | None) -> dict[str, Any]:
        event = validate_execute_complete_event(event)
        if event.get("status") == "error":
            raise AirflowException(f"Watching endpoint {event.get('endpoint_name')} failed: {event.get('message')}")
        if event.get("status") == "timeout":
            raise AirflowException(
                f"Gave up waiting: {event.get('message')}. The update keeps running in SageMaker; a retry of this "
                "task re-attaches to it."
            )
        return event

    def persist_endpoint_link(self, context: Context, endpoint: str) -> None:
        self.persist_link(SageMakerEndpointLink, context, endpoint_name=endpoint)

    def replace_if_failed(self, cfg: Config, endpoint: str, current: dict[str, Any] | None) -> dict[str, Any] | None:
        """Delete a ``Failed`` endpoint (SageMaker accepts nothing else on it) so it can be created again.

        :return: ``current`` unchanged when the endpoint is not Failed, None once the Failed one is gone.
        """
        if current is None or current["EndpointStatus"] != "Failed":
            return current
        self.log.warning(
            "Endpoint %s is Failed (%s) and can only be deleted; deleting it to create it again",
            endpoint,
            current.get("FailureReason"),
        )
        self.sagemaker.delete_endpoint(EndpointName=endpoint)
        remaining = self.wait_settled_sync(cfg, endpoint)
        if remaining is not None:
            raise AirflowException(f"endpoint {endpoint} is {remaining['EndpointStatus']} after deletion")
        return None

    def wait_settled_sync(self, cfg: Config, endpoint: str, limit_seconds: float = 600) -> dict[str, Any] | None:
        """Poll in the worker until the endpoint settles (short operations only: weight changes, deletes)."""
        import time

        interval, _ = self._poll(cfg)
        deadline = time.monotonic() + limit_seconds
        while True:
            description = self.describe_endpoint_or_none(endpoint)
            if description is None or description["EndpointStatus"] not in ENDPOINT_IN_PROGRESS:
                return description
            if time.monotonic() > deadline:
                status = description["EndpointStatus"]
                raise AirflowException(f"endpoint {endpoint} still {status} after {limit_seconds} s")
            time.sleep(interval)
