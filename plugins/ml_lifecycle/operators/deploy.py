"""Guarded deployment of an approved model to a SageMaker real-time endpoint, and its auto-scaling.

``GuardedEndpointDeployOperator``

1. creates the SageMaker Model and the EndpointConfig (one variant, data capture from config) when they do
   not exist yet (content-addressed names, see :mod:`ml_lifecycle.builders.endpoint`);
2. creates or updates the variant's CloudWatch alarms (5XX error rate, p99 model latency);
3. creates the endpoint when it is absent, or updates it with a blue/green ``DeploymentConfig``
   (canary / linear / all-at-once traffic routing, bake intervals, termination wait, maximum execution
   time) whose ``AutoRollbackConfiguration`` names those alarms;
4. defers until the endpoint settles (:class:`~ml_lifecycle.triggers.endpoint.EndpointSettledTrigger`);
5. checks the outcome. Success means ``InService`` **and** the endpoint's ``EndpointConfigName`` is the
   config this task deployed. ``InService`` on any other config is SageMaker's auto-rollback: the task
   collects the evidence (FailureReason, the alarms that fired with their state reasons), pushes it to
   XCom (key ``rollback``) and S3, notifies the SNS topic, and fails with ``AirflowFailException`` (a
   retry would deploy the same bad model into the same alarms).

Re-running it when the endpoint already serves the target config is a no-op success; a retry while the
endpoint is still updating to the target config re-attaches to that update.

``EndpointAutoScalingOperator`` registers the endpoint's variant with Application Auto Scaling and puts a
target-tracking policy on ``SageMakerVariantInvocationsPerInstance``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ml_lifecycle.config import Config

IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound", "ResourceNotFoundException"})
ROLLBACK_XCOM_KEY = "rollback"
FAILURE_REASON_MAX = 1024


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


class SageMakerEndpointLink(BaseAwsLink):
    """Console page of a SageMaker endpoint (``endpoint_name``)."""

    name = "SageMaker Endpoint"
    key = "ml_lifecycle_endpoint"
    format_str = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/endpoints/{endpoint_name}"


class CloudWatchAlarmsLink(BaseAwsLink):
    """Console page listing the CloudWatch alarms whose name starts with ``prefix``."""

    name = "CloudWatch Alarms"
    key = "ml_lifecycle_alarms"
    format_str = (
        BASE_AWS_CONSOLE_LINK + "/cloudwatch/home?region={region_name}#alarmsV2:?search={prefix}&alarmStateFilter=ALL"
    )


def endpoint_console_url(region: str, endpoint: str) -> str:
    return f"https://console.aws.amazon.com/sagemaker/home?region={region}#/endpoints/{endpoint}"


def alarms_console_url(region: str, prefix: str) -> str:
    return f"https://console.aws.amazon.com/cloudwatch/home?region={region}#alarmsV2:?search={prefix}"


def is_not_found(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    if error.get("Code") not in NOT_FOUND_CODES:
        return False
    message = str(error.get("Message", "")).lower()
    return error.get("Code") != "ValidationException" or "could not find" in message or "not found" in message


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class HostingOperatorBase(AwsBaseOperator[SageMakerHook]):
    """What the hosting operators share: config, clients, idempotent create-if-absent, deferral."""

    aws_hook_class = SageMakerHook

    def __init__(self, *, poll_interval: float | None = None, max_attempts: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts

    # ------------------------------------------------------------------------------------------- plumbing

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

    @property
    def sagemaker(self) -> Any:
        return self.hook.conn

    def _poll(self, cfg: Config) -> tuple[float, int]:
        interval = self.poll_interval or cfg.sagemaker.waiter_check_interval_seconds
        attempts = self.max_attempts or max(1, int(cfg.deployment.max_execution_timeout_seconds * 2 // interval) + 10)
        return float(interval), int(attempts)

    def describe_endpoint_or_none(self, name: str) -> dict[str, Any] | None:
        try:
            return self.sagemaker.describe_endpoint(EndpointName=name)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    def describe_package(self, arn: str) -> dict[str, Any]:
        try:
            return self.sagemaker.describe_model_package(ModelPackageName=arn)
        except Exception as exc:
            if is_not_found(exc):
                raise AirflowFailException(f"model package {arn} does not exist") from exc
            raise

    def ensure_model(self, cfg: Config, package: dict[str, Any]) -> str:
        """Create the SageMaker Model of ``package`` unless it exists; returns its name."""
        from ml_lifecycle.builders.endpoint import model_request

        request = model_request(cfg, package)
        name = request["ModelName"]
        try:
            self.sagemaker.describe_model(ModelName=name)
            self.log.info("Model %s exists", name)
        except Exception as exc:
            if not is_not_found(exc):
                raise
            self.log.info("Creating model %s from %s", name, package["ModelPackageArn"])
            self.sagemaker.create_model(**request)
        return name

    def ensure_endpoint_config(self, request: dict[str, Any]) -> str:
        """Create the endpoint config unless one of that name exists; returns its name."""
        name = request["EndpointConfigName"]
        try:
            self.sagemaker.describe_endpoint_config(EndpointConfigName=name)
            self.log.info("Endpoint config %s exists", name)
        except Exception as exc:
            if not is_not_found(exc):
                raise
            self.log.info(
                "Creating endpoint config %s (variants %s)",
                name,
                ", ".join(f"{v['VariantName']}={v['ModelName']}" for v in request["ProductionVariants"]),
            )
            self.sagemaker.create_endpoint_config(**request)
        return name

    def ensure_alarms(self, cfg: Config, endpoint: str, variant: str, period_seconds: int) -> list[str]:
        """Create or update (PutMetricAlarm is an upsert) the variant's rollback alarms; returns their names."""
        from ml_lifecycle.builders.endpoint import alarm_requests

        cloudwatch = self._client("cloudwatch")
        names = []
        for request in alarm_requests(cfg, endpoint=endpoint, variant=variant, period_seconds=period_seconds):
            cloudwatch.put_metric_alarm(**request)
            names.append(request["AlarmName"])
        self.log.info("Alarms in place for %s/%s: %s", endpoint, variant, ", ".join(names))
        return names

    def defer_until_settled(
        self, cfg: Config, endpoint: str, *, bake_seconds: float = 0, kwargs: dict[str, Any] | None = None
    ) -> None:
        from ml_lifecycle.triggers.endpoint import EndpointSettledTrigger

        interval, attempts = self._poll(cfg)
        timeout = dt.timedelta(seconds=interval * attempts + bake_seconds + 300)
        self.defer(
            trigger=EndpointSettledTrigger(
                endpoint_name=endpoint,
                poll_interval=interval,
                max_attempts=attempts,
                bake_seconds=bake_seconds,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
            kwargs=kwargs or {},
            timeout=timeout,
        )

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
        SageMakerEndpointLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            endpoint_name=endpoint,
        )

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
            if description is None or description["EndpointStatus"] not in IN_PROGRESS:
                return description
            if time.monotonic() > deadline:
                status = description["EndpointStatus"]
                raise AirflowException(f"endpoint {endpoint} still {status} after {limit_seconds} s")
            time.sleep(interval)


# ------------------------------------------------------------------------------------------ rollback evidence


def alarm_evidence(cloudwatch: Any, names: Sequence[str], since: dt.datetime | None) -> list[dict[str, Any]]:
    """State, reason and (when CloudWatch keeps history) the ALARM transitions since ``since`` of each alarm."""
    if not names:
        return []
    found = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNames=list(names)).get("MetricAlarms", [])}
    result = []
    for name in names:
        alarm = found.get(name, {})
        entry: dict[str, Any] = {
            "name": name,
            "state": alarm.get("StateValue", "MISSING"),
            "state_reason": alarm.get("StateReason"),
            "state_updated": _iso(alarm.get("StateUpdatedTimestamp")),
            "metric": alarm.get("MetricName"),
            "threshold": alarm.get("Threshold"),
            "went_into_alarm": [],
        }
        try:
            kwargs: dict[str, Any] = {"AlarmName": name, "HistoryItemType": "StateUpdate", "MaxRecords": 20}
            if since is not None:
                kwargs["StartDate"] = since
            history = cloudwatch.describe_alarm_history(**kwargs).get("AlarmHistoryItems", [])
            entry["went_into_alarm"] = [
                {"at": _iso(item.get("Timestamp")), "summary": item.get("HistorySummary")}
                for item in history
                if "to ALARM" in str(item.get("HistorySummary", ""))
            ]
        except Exception as exc:  # history is optional evidence (not every CloudWatch stand-in has it)
            entry["history_error"] = f"{type(exc).__name__}: {exc}"[:300]
        result.append(entry)
    return result


def fired_alarms(alarms: list[dict[str, Any]], failure_reason: str | None) -> list[str]:
    """Alarms that went into ALARM during the update, are in ALARM now, or that SageMaker's reason names."""
    reason = failure_reason or ""
    fired = []
    for alarm in alarms:
        name = alarm["name"]
        if alarm["went_into_alarm"] or alarm["state"] == "ALARM" or re.search(rf"\b{re.escape(name)}\b", reason):
            fired.append(name)
    return fired


def rollback_message(evidence: dict[str, Any]) -> str:
    fired = ", ".join(evidence["fired_alarms"]) or "none identified (see the alarms' states in the evidence)"
    return (
        f"Deployment of {evidence['model_package_arn']} to endpoint {evidence['endpoint_name']} was ROLLED BACK by "
        f"SageMaker: the endpoint serves {evidence['serving_endpoint_config']}, not "
        f"{evidence['target_endpoint_config']}. Alarm(s) that fired: {fired}. "
        f"FailureReason: {evidence['failure_reason'] or '(empty)'}. Evidence: {evidence['evidence_uri']}"
    )


def notify_rollback(context: Context, evidence: dict[str, Any], cfg: Config) -> bool:
    """Publish the rollback to the environment's SNS topic with the links a person needs."""
    from ml_lifecycle.notifications import log_url, publish

    ti = context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    links = evidence.get("links", {})
    task_log = log_url(cfg.notifications.airflow_base_url, dag_id, run_id, task_id, getattr(ti, "try_number", None))
    alarm_lines = [
        f"  - {a['name']}: {a['state']} ({a.get('state_reason') or 'no reason recorded'})" for a in evidence["alarms"]
    ]
    body = "\n".join(
        [
            rollback_message(evidence),
            "",
            f"The previous model keeps serving 100 % of traffic on {evidence['serving_endpoint_config']}.",
            "Alarms:",
            *alarm_lines,
            "",
            f"Endpoint: {links.get('endpoint')}",
            f"Alarms: {links.get('alarms')}",
            f"Log: {task_log}",
            "Runbook: docs/runbook-rollback.md",
        ]
    )
    subject = f"[{cfg.environment}] Deployment rolled back: {evidence['endpoint_name']}"
    return publish(subject, body, cfg=cfg)


def write_evidence(s3: Any, uri: str, evidence: dict[str, Any], cfg: Config) -> None:
    from ml_lifecycle.data.s3 import put_json

    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": cfg.storage.kms_key_id} if cfg.storage.kms_key_id else {}
    put_json(s3, uri, evidence, **extra)


# ------------------------------------------------------------------------------------------------ the operator


class GuardedEndpointDeployOperator(HostingOperatorBase):
    """Deploy an approved model package to a real-time endpoint behind deployment guardrails.

    XCom (success): ``{"endpoint_name", "endpoint_arn", "endpoint_config_name", "model_name", "variant_name",
    "model_package_arn", "model_package_version", "action": "created" | "updated" | "unchanged", "strategy",
    "alarms": [names], "previous_endpoint_config_name", "data_capture_uri"}``.
    On rollback the evidence ``{"endpoint_name", "model_package_arn", "target_endpoint_config",
    "serving_endpoint_config", "failure_reason", "alarms": [{"name", "state", "state_reason", ...}],
    "fired_alarms", "evidence_uri", "links"}`` goes to XCom key ``rollback`` before the task fails.

    :param model_package_arn: the approved model package version to deploy (templated)
    :param endpoint_name: endpoint to create or update (templated; default ``deployment.endpoint_name``)
    :param strategy: ``canary``, ``linear`` or ``all_at_once`` (templated; default ``deployment.strategy``;
        ``stepwise`` is :class:`~ml_lifecycle.operators.traffic.StepwiseTrafficShiftOperator`'s job)
    :param alarm_period_seconds: period of the rollback alarms (10, 30 or a multiple of 60)
    :param notify_on_rollback: publish the rollback to the SNS topic
    :param poll_interval: seconds between endpoint polls (default ``sagemaker.waiter_check_interval_seconds``)
    :param max_attempts: polls before the wait gives up (default: twice the maximum execution timeout)
    """

    template_fields: Sequence[str] = aws_template_fields("model_package_arn", "endpoint_name", "strategy")
    operator_extra_links = (SageMakerEndpointLink(), CloudWatchAlarmsLink())
    ui_color = "#f4d6a0"

    def __init__(
        self,
        *,
        model_package_arn: str,
        endpoint_name: str | None = None,
        strategy: str | None = None,
        alarm_period_seconds: int = 60,
        notify_on_rollback: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_package_arn = model_package_arn
        self.endpoint_name = endpoint_name
        self.strategy = strategy
        self.alarm_period_seconds = alarm_period_seconds
        self.notify_on_rollback = notify_on_rollback

    def _strategy(self, cfg: Config) -> str:
        from ml_lifecycle.builders.endpoint import GUARDRAIL_TYPES

        strategy = (self.strategy or cfg.deployment.strategy).strip().lower()
        if strategy not in GUARDRAIL_TYPES:
            raise AirflowFailException(
                f"strategy {strategy!r} is not a guardrail strategy ({', '.join(GUARDRAIL_TYPES)}); "
                "use StepwiseTrafficShiftOperator for stepwise shifting"
            )
        return strategy

    @staticmethod
    def serving_variant(current: dict[str, Any] | None) -> str:
        """The variant name to deploy under: guardrails need the new config to keep the serving variant's name."""
        from ml_lifecycle.builders.endpoint import DEFAULT_VARIANT

        variants = (current or {}).get("ProductionVariants") or []
        if not variants:
            return DEFAULT_VARIANT
        return max(variants, key=lambda v: float(v.get("CurrentWeight", v.get("DesiredWeight", 0)) or 0))["VariantName"]

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.builders.endpoint import (
            data_capture_config,
            deployment_config,
            endpoint_config_request,
            package_version,
            production_variant,
        )

        cfg = self._config()
        endpoint = self.endpoint_name or cfg.deployment.endpoint_name
        strategy = self._strategy(cfg)
        package = self.describe_package(self.model_package_arn)
        if package.get("ModelApprovalStatus") != "Approved":
            raise AirflowFailException(
                f"model package {self.model_package_arn} is {package.get('ModelApprovalStatus')}; only Approved "
                "versions are deployed (approve it in the model registry first)"
            )
        self.persist_endpoint_link(context, endpoint)
        current = self.replace_if_failed(cfg, endpoint, self.describe_endpoint_or_none(endpoint))
        if current is not None and current["EndpointStatus"] == "UpdateRollbackFailed":
            raise AirflowFailException(update_rollback_failed_message(endpoint, current))

        variant = self.serving_variant(current)
        model = self.ensure_model(cfg, package)
        version = package_version(package)
        request = endpoint_config_request(
            cfg, variants=[production_variant(cfg, model=model, variant_name=variant)], version=version
        )
        target = request["EndpointConfigName"]
        alarms = self.ensure_alarms(cfg, endpoint, variant, self.alarm_period_seconds)
        CloudWatchAlarmsLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            prefix=f"{endpoint}-{variant}",
        )
        capture = data_capture_config(cfg)
        state = {
            "endpoint": endpoint,
            "target": target,
            "model": model,
            "variant": variant,
            "version": version,
            "strategy": strategy,
            "alarms": alarms,
            "previous": current.get("EndpointConfigName") if current else None,
            "started_at": dt.datetime.now(dt.UTC).isoformat(),
            "capture_uri": capture["DestinationS3Uri"] if capture else None,
        }

        if current is None:
            self.ensure_endpoint_config(request)
            self.log.info("Creating endpoint %s on %s (model %s)", endpoint, target, model)
            self.sagemaker.create_endpoint(
                EndpointName=endpoint,
                EndpointConfigName=target,
                Tags=[{"Key": k, "Value": v} for k, v in cfg.sagemaker.tags.items()],
            )
            state["action"] = "created"
        elif current["EndpointStatus"] in IN_PROGRESS:
            pending = (current.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
            creating = current["EndpointStatus"] == "Creating"
            if pending == target or (creating and current.get("EndpointConfigName") == target):
                self.log.info("Endpoint %s is already moving to %s; re-attaching", endpoint, target)
                state["action"] = "created" if creating else "updated"
                state["previous"] = None if creating else state["previous"]
            else:
                raise AirflowException(
                    f"endpoint {endpoint} is {current['EndpointStatus']} with another deployment "
                    f"({pending or current.get('EndpointConfigName')}); not starting a second one. "
                    "A retry waits for it."
                )
        elif current.get("EndpointConfigName") == target:
            self.log.info("Endpoint %s already serves %s; nothing to deploy", endpoint, target)
            return self._result(current, state, action="unchanged")
        else:
            self.ensure_endpoint_config(request)
            deploy_config = deployment_config(cfg, strategy=strategy, alarms=alarms)
            routing = deploy_config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
            self.log.info(
                "Updating endpoint %s: %s -> %s (%s, wait %s s per step, rollback on %s)",
                endpoint,
                current.get("EndpointConfigName"),
                target,
                routing["Type"],
                routing["WaitIntervalInSeconds"],
                ", ".join(alarms),
            )
            self.sagemaker.update_endpoint(
                EndpointName=endpoint, EndpointConfigName=target, DeploymentConfig=deploy_config
            )
            state["action"] = "updated"

        description = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        if description["EndpointStatus"] in IN_PROGRESS:
            self.defer_until_settled(cfg, endpoint, kwargs={"state": state})
        return self._outcome(context, cfg, description, state)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, state: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self.check_event(event)
        if not state:
            raise AirflowException("resumed without the deployment state; clear the task to run it again")
        cfg = self._config()
        self.persist_endpoint_link(context, state["endpoint"])
        description = self.sagemaker.describe_endpoint(EndpointName=state["endpoint"])
        if description["EndpointStatus"] in IN_PROGRESS:
            raise AirflowException(
                f"endpoint {state['endpoint']} is still {description['EndpointStatus']}; a retry re-attaches"
            )
        return self._outcome(context, cfg, description, state)

    # ---------------------------------------------------------------------------------------------- outcome

    def _result(self, description: dict[str, Any], state: dict[str, Any], action: str) -> dict[str, Any]:
        return {
            "endpoint_name": description["EndpointName"],
            "endpoint_arn": description["EndpointArn"],
            "endpoint_config_name": description.get("EndpointConfigName"),
            "model_name": state["model"],
            "variant_name": state["variant"],
            "model_package_arn": self.model_package_arn,
            "model_package_version": state["version"],
            "action": action,
            "strategy": state["strategy"],
            "alarms": state["alarms"],
            "previous_endpoint_config_name": state.get("previous"),
            "data_capture_uri": state.get("capture_uri"),
        }

    def _outcome(
        self, context: Context, cfg: Config, description: dict[str, Any], state: dict[str, Any]
    ) -> dict[str, Any]:
        endpoint = state["endpoint"]
        status = description["EndpointStatus"]
        serving = description.get("EndpointConfigName")
        reason = str(description.get("FailureReason") or "")[:FAILURE_REASON_MAX]
        if status == "InService" and serving == state["target"]:
            self.log.info("Endpoint %s is InService on %s (%s)", endpoint, serving, state["action"])
            return self._result(description, state, state["action"])
        if status == "InService":
            self._fail_rollback(context, cfg, description, state)
        if status == "Failed":
            raise AirflowFailException(failed_message(endpoint, state["target"], reason))
        if status == "UpdateRollbackFailed":
            raise AirflowFailException(update_rollback_failed_message(endpoint, description, state["target"]))
        raise AirflowException(f"endpoint {endpoint} ended {status} on {serving} while deploying {state['target']}")

    def _fail_rollback(self, context: Context, cfg: Config, description: dict[str, Any], state: dict[str, Any]) -> None:
        endpoint = state["endpoint"]
        since = dt.datetime.fromisoformat(state["started_at"]) if state.get("started_at") else None
        reason = str(description.get("FailureReason") or "")[:FAILURE_REASON_MAX]
        try:
            alarms = alarm_evidence(self._client("cloudwatch"), state["alarms"], since)
        except Exception as exc:
            self.log.warning("Cannot read the alarms %s: %s", state["alarms"], exc)
            alarms = [{"name": n, "state": "UNKNOWN", "went_into_alarm": []} for n in state["alarms"]]
        region = self.hook.conn_region_name or cfg.aws.region
        evidence_uri = cfg.storage.uri(
            "reports", "deployments", endpoint, state["target"], f"rollback-{context.get('run_id') or 'manual'}.json"
        )
        evidence_uri = re.sub(r"[^A-Za-z0-9/_.:+=-]", "_", evidence_uri)
        evidence = {
            "endpoint_name": endpoint,
            "model_package_arn": self.model_package_arn,
            "model_package_version": state["version"],
            "strategy": state["strategy"],
            "target_endpoint_config": state["target"],
            "serving_endpoint_config": description.get("EndpointConfigName"),
            "previous_endpoint_config": state.get("previous"),
            "endpoint_status": description["EndpointStatus"],
            "failure_reason": reason,
            "alarms": alarms,
            "fired_alarms": fired_alarms(alarms, reason),
            "last_deployment_config": description.get("LastDeploymentConfig"),
            "started_at": state.get("started_at"),
            "detected_at": dt.datetime.now(dt.UTC).isoformat(),
            "evidence_uri": evidence_uri,
            "links": {
                "endpoint": endpoint_console_url(region, endpoint),
                "alarms": alarms_console_url(region, f"{endpoint}-{state['variant']}"),
            },
        }
        context["ti"].xcom_push(key=ROLLBACK_XCOM_KEY, value=evidence)
        try:
            write_evidence(self.hook.s3_hook.get_conn(), evidence_uri, evidence, cfg)
        except Exception as exc:
            self.log.warning("Could not write the rollback evidence to %s: %s", evidence_uri, exc)
            evidence["evidence_uri"] = f"(not written: {type(exc).__name__}) XCom key {ROLLBACK_XCOM_KEY!r}"
        message = rollback_message(evidence)
        self.log.error("%s", message)
        if self.notify_on_rollback:
            notify_rollback(context, evidence, cfg)
        raise AirflowFailException(message)


# -------------------------------------------------------------------------------------------- auto-scaling


class EndpointAutoScalingOperator(HostingOperatorBase):
    """Register the endpoint's variant(s) with Application Auto Scaling and a target-tracking policy.

    Idempotent: ``RegisterScalableTarget`` and ``PutScalingPolicy`` update what exists. Skipped (XCom
    ``{"enabled": false}``) when ``deployment.autoscaling.enabled`` is false.

    XCom: ``{"enabled", "endpoint_name", "targets": [{"resource_id", "min_capacity", "max_capacity",
    "policy_arn", "target_value"}]}``.

    :param endpoint_name: the endpoint (templated; default ``deployment.endpoint_name``)
    """

    template_fields: Sequence[str] = aws_template_fields("endpoint_name")
    operator_extra_links = (SageMakerEndpointLink(),)

    def __init__(self, *, endpoint_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.builders.endpoint import scaling_requests

        cfg = self._config()
        endpoint = self.endpoint_name or cfg.deployment.endpoint_name
        if not cfg.deployment.autoscaling.enabled:
            self.log.info("Auto-scaling is disabled in config (deployment.autoscaling.enabled)")
            return {"enabled": False, "endpoint_name": endpoint, "targets": []}
        self.persist_endpoint_link(context, endpoint)
        description = self.describe_endpoint_or_none(endpoint)
        if description is None or description["EndpointStatus"] != "InService":
            status = description["EndpointStatus"] if description else "absent"
            raise AirflowException(f"endpoint {endpoint} is {status}; auto-scaling needs it InService")
        client = self._client("application-autoscaling")
        targets = []
        for variant in description.get("ProductionVariants") or []:
            target, policy = scaling_requests(cfg, endpoint=endpoint, variant=variant["VariantName"])
            client.register_scalable_target(**target)
            response = client.put_scaling_policy(**policy)
            self.log.info(
                "Auto-scaling %s: %d-%d instances, target %s invocations/instance/minute",
                target["ResourceId"],
                target["MinCapacity"],
                target["MaxCapacity"],
                policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"],
            )
            targets.append(
                {
                    "resource_id": target["ResourceId"],
                    "min_capacity": target["MinCapacity"],
                    "max_capacity": target["MaxCapacity"],
                    "policy_arn": response.get("PolicyARN"),
                    "target_value": policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"],
                }
            )
        return {"enabled": True, "endpoint_name": endpoint, "targets": targets}
