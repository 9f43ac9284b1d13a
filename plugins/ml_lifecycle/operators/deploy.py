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
   retry would deploy the same bad model into the same alarms);
6. records the outcome in the model registry (:mod:`ml_lifecycle.operators.champion`): on success the package is the
   champion (``ModelLifeCycle`` ``Production``/``Deployed``) and the previous champion is ``Archived``/
   ``Retired``; on a rollback the package is ``Archived``/``RolledBack`` and the champion stays.

Re-running it when the endpoint already serves the target config is a no-op success; a retry while the
endpoint is still updating to the target config re-attaches to that update.

``EndpointAutoScalingOperator`` registers the endpoint's variant with Application Auto Scaling and puts a
target-tracking policy on ``SageMakerVariantInvocationsPerInstance``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from ml_lifecycle.links import (
    CloudWatchAlarmsLink,
    Console,
    SageMakerEndpointLink,
)
from ml_lifecycle.operators.base import (
    ENDPOINT_IN_PROGRESS,
    FAILURE_REASON_MAX,
    EndpointOperatorBase,
    HostingOperatorBase,
    failed_message,
    update_rollback_failed_message,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ml_lifecycle.config import Config

ROLLBACK_XCOM_KEY = "rollback"


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


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


def evidence_key(run_id: str) -> str:
    """``run_id`` made safe as part of an S3 key (a run id holds ``:`` and ``+``)."""
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", run_id)


def removed_text(removed: dict[str, list[str]] | None) -> str:
    """``variant X, scalable target(s) ..., alarm(s) ...``: what a clean-up deleted, for messages."""
    removed = removed or {}
    parts = [
        f"variant {', '.join(removed.get('variants') or []) or '(none)'}",
        f"scalable target(s) {', '.join(removed.get('scalable_targets') or []) or '(none registered)'}",
        f"alarm(s) {', '.join(removed.get('alarms') or []) or '(none)'}",
    ]
    return ", ".join(parts)


def monitoring_reports_uri(cfg: Config, endpoint: str, package: dict[str, Any]) -> str:
    """Where the monitoring reports of ``package`` serving ``endpoint`` go: with the evidently engine, its own
    folder (one entry per interval it served, naming that interval's reports); with Model Monitor, the
    schedule's report prefix."""
    from ml_lifecycle.builders.endpoint import package_version

    if cfg.monitoring.engine == "evidently":
        from ml_lifecycle.builders.monitoring_job import model_reports_uri

        return model_reports_uri(cfg, endpoint, package_version(package))
    from ml_lifecycle.builders.monitor import reports_uri

    return f"{reports_uri(cfg)}/{endpoint}/"


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
            *([f"Removed: {removed_text(evidence['removed'])}."] if evidence.get("removed") else []),
            *([f"Clean-up FAILED: {evidence['cleanup_error']}"] if evidence.get("cleanup_error") else []),
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

    put_json(s3, uri, evidence, **cfg.storage.encryption())


# ------------------------------------------------------------------------------------------------ the operators


class EndpointDeploymentBase(EndpointOperatorBase, HostingOperatorBase):
    """What the deployment strategies' operators share: the model package, the endpoint, alarms, rollback.

    :param model_package_arn: the approved model package version to deploy (templated)
    :param endpoint_name: the endpoint (templated; default ``deployment.endpoint_name``)
    :param alarm_period_seconds: period of the new variant's rollback alarms (10, 30 or a multiple of 60)
    :param notify_on_rollback: publish a rollback to the SNS topic
    """

    operator_extra_links = (SageMakerEndpointLink(), CloudWatchAlarmsLink())
    ui_color = "#f4d6a0"

    def __init__(
        self,
        *,
        model_package_arn: str,
        alarm_period_seconds: int = 60,
        notify_on_rollback: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_package_arn = model_package_arn
        self.alarm_period_seconds = alarm_period_seconds
        self.notify_on_rollback = notify_on_rollback

    def record_champion(self, endpoint: str) -> dict[str, Any]:
        """Mark the deployed package the champion in the registry (``ModelLifeCycle``), retiring the previous one.

        See :mod:`ml_lifecycle.operators.champion`. Returns ``{"champion", "version", "retired", "changed"}``.
        """
        from ml_lifecycle.operators.champion import mark_champion

        marked = mark_champion(
            self.sagemaker,
            self.model_package_arn,
            endpoint=endpoint,
            metadata=lambda package: {"monitoring_reports": monitoring_reports_uri(self._config(), endpoint, package)},
        )
        if marked["changed"] or marked["retired"]:
            self.log.info(
                "Champion of %s: %s (retired: %s)",
                endpoint,
                self.model_package_arn,
                ", ".join(marked["retired"]) or "none",
            )
        return marked

    def record_rollback(self, endpoint: str, reason: str) -> str | None:
        """Mark the package whose deployment rolled back ``RolledBack`` so no automatic choice picks it again.

        Returns ``None``, or what went wrong (the task fails for the rollback anyway; its message says it).
        """
        from ml_lifecycle.operators.champion import mark_rolled_back

        try:
            if mark_rolled_back(self.sagemaker, self.model_package_arn, endpoint=endpoint, reason=reason):
                self.log.info("Marked %s RolledBack in the model registry", self.model_package_arn)
        except Exception as exc:
            self.log.error("Could not mark %s RolledBack in the model registry: %s", self.model_package_arn, exc)
            return f"{type(exc).__name__}: {exc}"[:300]
        return None


class GuardedEndpointDeployOperator(EndpointDeploymentBase):
    """Deploy an approved model package to a real-time endpoint behind deployment guardrails.

    XCom (success): ``{"endpoint_name", "endpoint_arn", "endpoint_config_name", "model_name", "variant_name",
    "model_package_arn", "model_package_version", "action": "created" | "updated" | "unchanged", "strategy",
    "alarms": [names], "previous_endpoint_config_name", "data_capture_uri", "champion": {"champion", "version",
    "retired", "changed"}}``.
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

    def __init__(self, *, strategy: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strategy = strategy

    def _strategy(self, cfg: Config) -> str:
        from ml_lifecycle.strategies import GUARDRAIL_TYPES

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
        endpoint = self.target_endpoint(cfg)
        strategy = self._strategy(cfg)
        package = self.approved_package(self.model_package_arn, " (approve it in the model registry first)")
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
        self.persist_link(CloudWatchAlarmsLink, context, prefix=f"{endpoint}-{variant}")
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
            self.create_endpoint(cfg, endpoint, target)
            state["action"] = "created"
        elif current["EndpointStatus"] in ENDPOINT_IN_PROGRESS:
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
            return {**self._result(current, state, action="unchanged"), "champion": self.record_champion(endpoint)}
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
            self.refresh_tags(cfg, current["EndpointArn"])
            state["action"] = "updated"

        description = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        if description["EndpointStatus"] in ENDPOINT_IN_PROGRESS:
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
        if description["EndpointStatus"] in ENDPOINT_IN_PROGRESS:
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
            return {**self._result(description, state, state["action"]), "champion": self.record_champion(endpoint)}
        if status == "InService":
            self._fail_rollback(context, cfg, description, state)
        if status == "Failed":
            raise AirflowFailException(failed_message(endpoint, state["target"], reason))
        if status == "UpdateRollbackFailed":
            raise AirflowFailException(update_rollback_failed_message(endpoint, description, state["target"]))
        raise AirflowException(f"endpoint {endpoint} ended {status} on {serving} while deploying {state['target']}")

    def _fail_rollback(
        self, context: Context, cfg: Config, description: dict[str, Any], state: dict[str, Any]
    ) -> NoReturn:
        endpoint = state["endpoint"]
        since = dt.datetime.fromisoformat(state["started_at"]) if state.get("started_at") else None
        reason = str(description.get("FailureReason") or "")[:FAILURE_REASON_MAX]
        try:
            alarms = alarm_evidence(self._client("cloudwatch"), state["alarms"], since)
        except Exception as exc:
            self.log.warning("Cannot read the alarms %s: %s", state["alarms"], exc)
            alarms = [{"name": n, "state": "UNKNOWN", "went_into_alarm": []} for n in state["alarms"]]
        console = Console.of(self.hook, cfg.aws.region)
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
                "endpoint": console.endpoint(endpoint),
                "alarms": console.alarms(f"{endpoint}-{state['variant']}"),
            },
        }
        problem = self.record_rollback(endpoint, f"alarms {', '.join(evidence['fired_alarms']) or 'none'}; {reason}")
        evidence["marked_rolled_back"] = problem is None
        context["ti"].xcom_push(key=ROLLBACK_XCOM_KEY, value=evidence)
        try:
            write_evidence(self.hook.s3_hook.get_conn(), evidence_uri, evidence, cfg)
        except Exception as exc:
            self.log.warning("Could not write the rollback evidence to %s: %s", evidence_uri, exc)
            evidence["evidence_uri"] = f"(not written: {type(exc).__name__}) XCom key {ROLLBACK_XCOM_KEY!r}"
        message = rollback_message(evidence)
        if problem:
            message += f". The package could NOT be marked RolledBack in the registry ({problem}); mark it by hand"
        self.log.error("%s", message)
        if self.notify_on_rollback:
            notify_rollback(context, evidence, cfg)
        raise AirflowFailException(message)


# -------------------------------------------------------------------------------------------- auto-scaling


class EndpointAutoScalingOperator(EndpointOperatorBase, HostingOperatorBase):
    """Register the endpoint's variant(s) with Application Auto Scaling and a target-tracking policy.

    Idempotent: ``RegisterScalableTarget`` and ``PutScalingPolicy`` update what exists. Skipped (XCom
    ``{"enabled": false}``) when ``deployment.autoscaling.enabled`` is false.

    XCom: ``{"enabled", "endpoint_name", "targets": [{"resource_id", "min_capacity", "max_capacity",
    "policy_arn", "target_value"}]}``.

    :param endpoint_name: the endpoint (templated; default ``deployment.endpoint_name``)
    """

    template_fields: Sequence[str] = aws_template_fields("endpoint_name")
    operator_extra_links = (SageMakerEndpointLink(),)

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.builders.endpoint import scaling_requests

        cfg = self._config()
        endpoint = self.target_endpoint(cfg)
        if not cfg.deployment.autoscaling.enabled:
            self.log.info("Auto-scaling is disabled in config (deployment.autoscaling.enabled)")
            return {"enabled": False, "endpoint_name": endpoint, "targets": []}
        self.persist_endpoint_link(context, endpoint)
        description = self.describe_endpoint_or_none(endpoint)
        if description is None or description["EndpointStatus"] != "InService":
            status = description["EndpointStatus"] if description else "absent"
            raise AirflowException(f"endpoint {endpoint} is {status}; auto-scaling needs it InService")
        autoscaling = self._client("application-autoscaling")
        targets = []
        for variant in description.get("ProductionVariants") or []:
            target, policy = scaling_requests(cfg, endpoint=endpoint, variant=variant["VariantName"])
            existed = autoscaling.describe_scalable_targets(
                ServiceNamespace=target["ServiceNamespace"],
                ResourceIds=[target["ResourceId"]],
                ScalableDimension=target["ScalableDimension"],
            )["ScalableTargets"]
            registered = autoscaling.register_scalable_target(**target)
            if existed:  # RegisterScalableTarget tags a target it creates, not one it updates
                autoscaling.tag_resource(ResourceARN=registered["ScalableTargetARN"], Tags=target["Tags"])
            response = autoscaling.put_scaling_policy(**policy)
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
