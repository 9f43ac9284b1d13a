"""Stepwise traffic shifting between two production variants, with a health check between steps.

``StepwiseTrafficShiftOperator`` moves an endpoint from the model it serves to a new approved model in
steps (e.g. 10 % -> 50 % -> 100 %) with ``UpdateEndpointWeightsAndCapacities``:

1. the endpoint is moved (``UpdateEndpoint``) to a config with two variants: the serving one (weight 1)
   and the new model's variant ``<prefix>-v<version>`` (weight 0);
2. for each step, the new variant's weight is set, the endpoint settles and bakes for ``bake_seconds``
   (deferred in the triggerer), then the new variant is checked over the bake window: its CloudWatch
   alarms must not be in ALARM, its 5XX rate (``Invocation5XXErrors / Invocations``) must not exceed
   ``deployment.max_5xx_rate`` and its ``ModelLatency`` p99 must not exceed ``deployment.max_latency_p99_ms``;
3. on a breach, ALL traffic returns to the old variant, then the failed variant is removed: its scalable
   target (if any) is deregistered, the endpoint is moved (``UpdateEndpoint``) back to the one-variant
   config it served before the shift, and the failed variant's alarms are deleted. The endpoint ends with
   one variant serving the previous (champion) model at weight 1, its auto-scaling untouched; the new
   package is marked ``RolledBack`` in the registry (:mod:`ml_lifecycle.operators.champion`) and the task fails naming
   the breach and what was removed (evidence in XCom key ``rollback``, S3 and an SNS notification);
4. after the last step passes, the old variant is retired: its scalable target is deregistered (SageMaker
   refuses to remove a variant registered with Application Auto Scaling), the config with only the new
   variant is applied with ``UpdateEndpoint``, and the old variant's alarms are deleted; the
   ``autoscale`` task then registers the new variant, and the new package is marked the champion
   (``ModelLifeCycle`` ``Production``/``Deployed``; the previous champion ``Archived``/``Retired``).

State is derived from the endpoint itself (its config and current weights), never from memory, so the
operator resumes after a restart or a retry: at a share above 0 it re-bakes the current step before going
on. When the endpoint already serves the final config it is a no-op (beyond deleting what a removed
variant left behind). A rollback is recorded in S3 (keyed by the run) before traffic moves back, so a retry
after a worker died mid-clean-up finishes the clean-up from where the endpoint is, never starting the
shift again nor updating the endpoint a second time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowFailException

from ml_lifecycle.links import CloudWatchAlarmsLink, Console
from ml_lifecycle.operators.base import (
    ENDPOINT_IN_PROGRESS,
    describe_or_none,
    failed_message,
    update_rollback_failed_message,
)
from ml_lifecycle.operators.deploy import (
    ROLLBACK_XCOM_KEY,
    EndpointDeploymentBase,
    alarm_evidence,
    evidence_key,
    notify_rollback,
    removed_text,
    write_evidence,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ml_lifecycle.config import Config

EPSILON = 1e-6


def parse_percentages(value: Any) -> list[float]:
    """``[10, 50, 100]`` from a list or a JSON/comma-separated string; strictly increasing, ending at 100."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [p for p in text.split(",") if p.strip()]
    try:
        steps = [float(p) for p in value]
    except (TypeError, ValueError):
        raise AirflowFailException(f"percentages must be numbers, got {value!r}") from None
    if not steps or any(not 0 < p <= 100 for p in steps):
        raise AirflowFailException(f"percentages must be in (0, 100], got {steps}")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise AirflowFailException(f"percentages must increase, got {steps}")
    if steps[-1] != 100:
        steps.append(100.0)
    return steps


def variant_share(description: dict[str, Any], variant: str) -> float:
    """Share of traffic routed to ``variant`` (current weight / sum of current weights)."""
    variants = description.get("ProductionVariants") or []
    total = sum(float(v.get("CurrentWeight") or 0) for v in variants)
    if total <= 0:
        return 0.0
    mine = sum(float(v.get("CurrentWeight") or 0) for v in variants if v["VariantName"] == variant)
    return mine / total


def _stopped_at(rollback: dict[str, Any]) -> str:
    """Where a rollback stopped the shift, and why: ``at 10%: <breaches>.``"""
    return f"at {rollback['stopped_at_percent']:g}%: {'; '.join(rollback['breaches'])}."


def _sum(datapoints: list[dict[str, Any]], stat: str) -> float:
    return float(sum(point.get(stat, 0.0) for point in datapoints))


def variant_health(
    cloudwatch: Any,
    *,
    endpoint: str,
    variant: str,
    start: dt.datetime,
    end: dt.datetime,
    max_5xx_rate: float,
    max_latency_p99_ms: float,
    alarms: Sequence[str] = (),
    min_invocations: int = 0,
) -> dict[str, Any]:
    """Measure one variant over ``[start, end]`` and list every breached guard.

    Returns ``{"invocations", "errors_5xx", "error_rate", "latency_p99_ms", "latency_statistic", "alarms_in_alarm",
    "breaches": [text], "window": {"start", "end"}}``.
    """
    dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    period = max(60, int(-(-(end - start).total_seconds() // 60)) * 60)

    def stats(metric: str, **kwargs: Any) -> list[dict[str, Any]]:
        return cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=dimensions,
            StartTime=start,
            EndTime=end,
            Period=period,
            **kwargs,
        ).get("Datapoints", [])

    invocations = _sum(stats("Invocations", Statistics=["Sum"]), "Sum")
    errors = _sum(stats("Invocation5XXErrors", Statistics=["Sum"]), "Sum")
    latency_points = stats("ModelLatency", ExtendedStatistics=["p99"])
    p99_values = [
        p["ExtendedStatistics"]["p99"] for p in latency_points if "p99" in (p.get("ExtendedStatistics") or {})
    ]
    statistic = "p99"
    if not p99_values and invocations:
        # percentiles need raw values; with statistic sets only, Maximum bounds p99 from above
        p99_values = [p["Maximum"] for p in stats("ModelLatency", Statistics=["Maximum"]) if "Maximum" in p]
        statistic = "Maximum (upper bound of p99)"
    latency_ms = max(p99_values) / 1000.0 if p99_values else None
    rate = errors / invocations if invocations else 0.0
    in_alarm: list[str] = []
    if alarms:
        described = cloudwatch.describe_alarms(AlarmNames=list(alarms)).get("MetricAlarms", [])
        in_alarm = sorted(a["AlarmName"] for a in described if a.get("StateValue") == "ALARM")
    breaches = [f"alarm {name} is in ALARM" for name in in_alarm]
    if invocations and rate > max_5xx_rate:
        breaches.append(
            f"5XX error rate {rate:.4f} ({errors:.0f}/{invocations:.0f}) above {max_5xx_rate:.4g} on variant {variant}"
        )
    if latency_ms is not None and latency_ms > max_latency_p99_ms:
        breaches.append(
            f"model latency {statistic} {latency_ms:.1f} ms above {max_latency_p99_ms:g} ms on variant {variant}"
        )
    if invocations < min_invocations:
        breaches.append(
            f"only {invocations:.0f} invocations reached variant {variant} during the bake (need {min_invocations})"
        )
    return {
        "invocations": invocations,
        "errors_5xx": errors,
        "error_rate": rate,
        "latency_p99_ms": latency_ms,
        "latency_statistic": statistic,
        "alarms_in_alarm": in_alarm,
        "breaches": breaches,
        "window": {"start": start.isoformat(), "end": end.isoformat()},
    }


class StepwiseTrafficShiftOperator(EndpointDeploymentBase):
    """Shift an endpoint's traffic to a new approved model in checked steps, then retire the old variant.

    XCom (success): ``{"endpoint_name", "endpoint_config_name", "model_package_arn", "model_package_version",
    "variant_name", "retired_variant", "removed": {"variants", "scalable_targets", "alarms"}, "action":
    "created" | "shifted" | "unchanged", "steps": [percent], "checks": [{"percent", "invocations",
    "error_rate", "latency_p99_ms", ...}], "alarms", "champion": {"champion", "version", "retired", "changed"}}``.
    On a rollback the evidence (XCom key ``rollback``, S3) holds the breaches, the checks, the alarms' states,
    the config and variant that serve afterwards and ``removed`` (the failed variant, its scalable target and
    alarms).

    :param model_package_arn: the approved model package version to shift to (templated)
    :param endpoint_name: the endpoint (templated; default ``deployment.endpoint_name``)
    :param percentages: steps in percent of traffic (templated; list or ``"10,50,100"``; default
        ``deployment.stepwise_percentages``; 100 is appended when missing)
    :param bake_seconds: bake time per step (templated; default ``deployment.wait_interval_seconds``)
    :param min_invocations: fewer invocations of the new variant during a bake count as a breach (default 0:
        no traffic is not evidence of a problem)
    :param alarm_period_seconds: period of the new variant's alarms
    :param notify_on_rollback: publish a breach to the SNS topic
    """

    template_fields: Sequence[str] = aws_template_fields(
        "model_package_arn", "endpoint_name", "percentages", "bake_seconds"
    )

    def __init__(
        self,
        *,
        percentages: Sequence[float] | str | None = None,
        bake_seconds: int | str | None = None,
        min_invocations: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.percentages = percentages
        self.bake_seconds = bake_seconds
        self.min_invocations = min_invocations

    # ------------------------------------------------------------------------------------------------ entry

    def execute(self, context: Context) -> dict[str, Any]:
        return self._advance(context, progress={"checks": []})

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, progress: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        event = self.check_event(event)
        progress = dict(progress or {"checks": []})
        if event.get("settled_at"):
            progress["settled_at"] = event["settled_at"]
        return self._advance(context, progress=progress)

    # ------------------------------------------------------------------------------------------- the steps

    def _advance(self, context: Context, *, progress: dict[str, Any]) -> dict[str, Any]:
        """One move from what the endpoint is now: create it, wait, add the variant, step, retire or finish.

        Every move but the last defers (and resumes here); the last returns the result.
        """
        cfg = self._config()
        base, model = self._target(context, cfg)
        if "rollback" not in progress:
            record = self._rollback_record(context, cfg, base)
            if record is not None:
                self.log.warning(
                    "This run rolled %s back already (%s); finishing that rollback's clean-up",
                    base["endpoint"],
                    record["evidence_uri"],
                )
                progress["rollback"] = record["rollback"]
        description = self._settled_endpoint(cfg, base, model, progress)
        if progress.get("rollback"):
            self._roll_back(context, cfg, base, description, progress)
        if description.get("EndpointConfigName") == base["final"]:
            return self._finished(description, base, progress)
        if progress.get("retiring"):
            raise AirflowFailException(
                f"retiring the old variant of {base['endpoint']} did not take effect: it serves "
                f"{description.get('EndpointConfigName')}, not {base['final']} "
                f"({description.get('FailureReason') or 'no FailureReason'})"
            )
        names = [v["VariantName"] for v in description.get("ProductionVariants") or []]
        if progress.get("adding") and base["variant"] not in names:
            self._fail_add_rolled_back(context, cfg, base, progress, description)
        if base["variant"] not in names:
            self._add_new_variant(cfg, base, model, description, progress)
        if len(names) != 2:
            raise AirflowFailException(
                f"endpoint {base['endpoint']} has variants {names}; expected the old and {base['variant']}"
            )
        self._next_step(context, cfg, base, description, progress)

    def _target(self, context: Context, cfg: Config) -> tuple[dict[str, Any], str]:
        """Where the shift goes: ``(base, model)``; the model, its final config and its alarms exist after it.

        ``base``: ``{"endpoint", "version", "variant", "final", "final_request", "alarms", "steps", "bake"}``.
        """
        from ml_lifecycle.builders.endpoint import endpoint_config_request, package_version, production_variant
        from ml_lifecycle.naming import sagemaker_name

        endpoint = self.target_endpoint(cfg)
        steps = parse_percentages(self.percentages or cfg.deployment.stepwise_percentages)
        bake = float(
            self.bake_seconds if self.bake_seconds not in (None, "", "None") else cfg.deployment.wait_interval_seconds
        )
        package = self.approved_package(self.model_package_arn)
        self.persist_endpoint_link(context, endpoint)
        version = package_version(package)
        model = self.ensure_model(cfg, package)
        new_variant = sagemaker_name(cfg.sagemaker.name_prefix, f"v{version}")
        final = endpoint_config_request(
            cfg, variants=[production_variant(cfg, model=model, variant_name=new_variant)], version=version
        )
        alarms = self.ensure_alarms(cfg, endpoint, new_variant, self.alarm_period_seconds)
        self.persist_link(CloudWatchAlarmsLink, context, prefix=f"{endpoint}-{new_variant}")
        base = {
            "endpoint": endpoint,
            "version": version,
            "variant": new_variant,
            "final": final["EndpointConfigName"],
            "final_request": final,
            "alarms": alarms,
            "steps": steps,
            "bake": bake,
        }
        return base, model

    def _settled_endpoint(
        self, cfg: Config, base: dict[str, Any], model: str, progress: dict[str, Any]
    ) -> dict[str, Any]:
        """The endpoint ``InService``; creates it on the final config when absent (or Failed before this shift),
        waits while this shift's own change runs, refuses another deployment in progress."""
        endpoint = base["endpoint"]
        description = self.describe_endpoint_or_none(endpoint)
        if description is not None and description["EndpointStatus"] == "Failed":
            if (
                progress.get("adding")
                or progress.get("retiring")
                or progress.get("rollback_update")
                or progress.get("action") == "created"
            ):
                # this task's own update or creation ended Failed: report it, never delete what it just broke
                raise AirflowFailException(
                    failed_message(
                        endpoint,
                        progress.get("adding") or progress.get("rollback_update") or base["final"],
                        description.get("FailureReason"),
                    )
                )
            description = self.replace_if_failed(cfg, endpoint, description)
        if description is None:
            self.ensure_endpoint_config(base["final_request"])
            self.log.info("Endpoint %s does not exist; creating it on %s", endpoint, base["final"])
            self.create_endpoint(cfg, endpoint, base["final"])
            progress["action"] = "created"
            self.defer_until_settled(cfg, endpoint, kwargs={"progress": progress})
        status = description["EndpointStatus"]
        if status in ENDPOINT_IN_PROGRESS:
            allowed = {base["final"], (progress.get("rollback") or {}).get("previous_config")}
            self._refuse_other_deployment(endpoint, description, model, base["variant"], allowed)
            self.log.info("Endpoint %s is %s; waiting for it to settle", endpoint, status)
            self.defer_until_settled(cfg, endpoint, kwargs={"progress": progress})
        if status == "UpdateRollbackFailed":
            raise AirflowFailException(update_rollback_failed_message(endpoint, description, progress.get("adding")))
        if status != "InService":
            raise AirflowFailException(f"endpoint {endpoint} is {status}: {description.get('FailureReason')}")
        return description

    def _finished(self, description: dict[str, Any], base: dict[str, Any], progress: dict[str, Any]) -> dict[str, Any]:
        action = progress.get("action") or ("shifted" if progress.get("retiring") else "unchanged")
        progress["removed"] = self._remove_leftovers(base["endpoint"], description, progress)
        self.log.info(
            "Endpoint %s serves %s on %s only (%s)",
            base["endpoint"],
            self.model_package_arn,
            description.get("EndpointConfigName"),
            action,
        )
        return {**self._result(description, base, progress, action), "champion": self.record_champion(base["endpoint"])}

    def _add_new_variant(
        self, cfg: Config, base: dict[str, Any], model: str, description: dict[str, Any], progress: dict[str, Any]
    ) -> NoReturn:
        """Move the endpoint to a config with the serving variant (weight 1) and the new one (weight 0)."""
        from ml_lifecycle.builders.endpoint import endpoint_config_request, production_variant

        endpoint, new_variant = base["endpoint"], base["variant"]
        serving = description.get("EndpointConfigName")
        variants = description.get("ProductionVariants") or []
        names = [v["VariantName"] for v in variants]
        if len(variants) != 1:
            raise AirflowFailException(
                f"endpoint {endpoint} has variants {names}; stepwise shifting starts from one serving variant"
            )
        old_config = self.sagemaker.describe_endpoint_config(EndpointConfigName=serving)
        old = next(v for v in old_config["ProductionVariants"] if v["VariantName"] == names[0])
        two = endpoint_config_request(
            cfg,
            variants=[
                {k: old[k] for k in ("VariantName", "ModelName", "InstanceType", "InitialInstanceCount")}
                | {"InitialVariantWeight": 1.0},
                production_variant(cfg, model=model, variant_name=new_variant, weight=0.0),
            ],
            version=base["version"],
        )
        self.ensure_endpoint_config(two)
        target = two["EndpointConfigName"]
        self.log.info("Adding variant %s (weight 0) beside %s: %s -> %s", new_variant, names[0], serving, target)
        self.sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=two["EndpointConfigName"])
        progress["adding"] = two["EndpointConfigName"]
        progress["previous_config"] = serving
        progress["started_at"] = dt.datetime.now(dt.UTC).isoformat()
        self.defer_until_settled(cfg, endpoint, kwargs={"progress": progress})

    def _refuse_other_deployment(
        self, endpoint: str, description: dict[str, Any], model: str, new_variant: str, allowed: set[str | None]
    ) -> None:
        """Fail (retryable) when the endpoint is busy with a deployment that is not this shift's own.

        This shift's own updates go to a config holding ``new_variant`` on ``model`` or to a config in
        ``allowed`` (the final one, the one a rollback returns to); a weight change (Updating with nothing
        pending) cannot be told apart from this shift's own steps and is waited for.
        """
        from airflow.providers.common.compat.sdk import AirflowException

        status = description["EndpointStatus"]
        pending = (description.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        if status == "Creating":
            pending = pending or description.get("EndpointConfigName")
        if pending is None or pending in allowed:
            return
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=pending)
        if any(v["VariantName"] == new_variant and v["ModelName"] == model for v in config["ProductionVariants"]):
            return
        raise AirflowException(
            f"endpoint {endpoint} is {status} with another deployment ({pending}); not starting a second one. "
            "A retry waits for it."
        )

    def _fail_add_rolled_back(
        self, context: Context, cfg: Config, base: dict[str, Any], progress: dict[str, Any], description: dict[str, Any]
    ) -> NoReturn:
        """SageMaker rolled back the update that adds the new variant: evidence, notification, final failure."""
        endpoint = base["endpoint"]
        console = Console.of(self.hook, cfg.aws.region)
        reason = str(description.get("FailureReason") or "")
        serving = [v["VariantName"] for v in description.get("ProductionVariants") or []]
        removed = {
            "variants": [],
            "scalable_targets": self.release_scaling(endpoint, keep=serving),
            "alarms": self.delete_variant_alarms(endpoint, keep=serving),
        }
        evidence = {
            "endpoint_name": endpoint,
            "model_package_arn": self.model_package_arn,
            "model_package_version": base["version"],
            "strategy": "stepwise",
            "target_endpoint_config": progress["adding"],
            "serving_endpoint_config": description.get("EndpointConfigName"),
            "serving_variant": ", ".join(v["VariantName"] for v in description.get("ProductionVariants") or []),
            "serving_share": 1.0,
            "failure_reason": reason,
            "breaches": [],
            "checks": progress.get("checks", []),
            "alarms": [],
            "fired_alarms": [],
            "started_at": progress.get("started_at"),
            "detected_at": dt.datetime.now(dt.UTC).isoformat(),
            "cleanup": "done",
            "removed": removed,
            "links": {
                "endpoint": console.endpoint(endpoint),
                "alarms": console.alarms(f"{endpoint}-{base['variant']}"),
            },
            "evidence_uri": cfg.storage.uri(
                "reports", "deployments", endpoint, progress["adding"], f"stepwise-{base['variant']}-add.json"
            ),
        }
        outcome = (
            f"by SageMaker before any traffic moved: adding variant {base['variant']} ({progress['adding']}) did not "
            f"take effect; the endpoint serves {description.get('EndpointConfigName')}; removed "
            f"{removed_text(removed)}. FailureReason: {reason or '(empty)'}."
        )
        self._report_rollback(context, cfg, evidence, outcome)

    def _next_step(
        self, context: Context, cfg: Config, base: dict[str, Any], description: dict[str, Any], progress: dict[str, Any]
    ) -> NoReturn:
        """Check the step that baked and shift to the next (or retire the old variant); else bake again."""
        endpoint, new_variant, steps, bake = base["endpoint"], base["variant"], base["steps"], base["bake"]
        names = [v["VariantName"] for v in description["ProductionVariants"]]
        old_variant = next(n for n in names if n != new_variant)
        share = variant_share(description, new_variant)
        baked = progress.get("baked")
        if baked is not None and abs(baked - share) < EPSILON and share > 0:
            health = self._check(cfg, base, progress, share, bake)
            if health["breaches"]:
                self._start_rollback(context, cfg, base, progress, old_variant, share, health)
            following = [p for p in steps if p / 100.0 > share + EPSILON]
            if not following:
                self._retire_old_variant(cfg, base, description, old_variant, progress)
            self._shift(cfg, endpoint, old_variant, new_variant, following[0] / 100.0, bake, progress)
        if share <= EPSILON:
            self._shift(cfg, endpoint, old_variant, new_variant, steps[0] / 100.0, bake, progress)
        self.log.info("Resuming at %.0f%% on %s: baking this step again before going on", share * 100, new_variant)
        progress["baked"] = share
        self.defer_until_settled(cfg, endpoint, bake_seconds=bake, kwargs={"progress": progress})

    def _retire_old_variant(
        self,
        cfg: Config,
        base: dict[str, Any],
        description: dict[str, Any],
        old_variant: str,
        progress: dict[str, Any],
    ) -> NoReturn:
        """All steps passed: move the endpoint to the config with the new variant only.

        The old variant's scalable target goes first: SageMaker refuses to remove a variant registered with
        Application Auto Scaling.
        """
        self.ensure_endpoint_config(base["final_request"])
        released = self.release_scaling(base["endpoint"], keep=[base["variant"]])
        progress["released_targets"] = sorted({*progress.get("released_targets", []), *released})
        self.log.info(
            "All steps passed; retiring variant %s: %s -> %s",
            old_variant,
            description.get("EndpointConfigName"),
            base["final"],
        )
        self.sagemaker.update_endpoint(EndpointName=base["endpoint"], EndpointConfigName=base["final"])
        progress.update(retiring=True, baked=None, retired=old_variant)
        self.defer_until_settled(cfg, base["endpoint"], kwargs={"progress": progress})

    def _shift(
        self,
        cfg: Config,
        endpoint: str,
        old: str,
        new: str,
        share: float,
        bake: float,
        progress: dict[str, Any],
    ) -> NoReturn:
        self.log.info("Shifting %.0f%% of traffic to %s (bake %s s)", share * 100, new, bake)
        self.sagemaker.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[
                {"VariantName": old, "DesiredWeight": round(1.0 - share, 6)},
                {"VariantName": new, "DesiredWeight": round(share, 6)},
            ],
        )
        progress["baked"] = round(share, 6)
        progress.pop("settled_at", None)
        progress.setdefault("started_at", dt.datetime.now(dt.UTC).isoformat())
        self.defer_until_settled(cfg, endpoint, bake_seconds=bake, kwargs={"progress": progress})

    def _check(
        self, cfg: Config, base: dict[str, Any], progress: dict[str, Any], share: float, bake: float
    ) -> dict[str, Any]:
        """Measure the step that baked, record the check in ``progress`` and return it (``breaches`` empty when
        the step is healthy)."""
        end = dt.datetime.now(dt.UTC)
        start = (
            dt.datetime.fromisoformat(progress["settled_at"])
            if progress.get("settled_at")
            else end - dt.timedelta(seconds=bake)
        )
        health = variant_health(
            self._client("cloudwatch"),
            endpoint=base["endpoint"],
            variant=base["variant"],
            start=start,
            end=end + dt.timedelta(seconds=60),
            max_5xx_rate=cfg.deployment.max_5xx_rate,
            max_latency_p99_ms=cfg.deployment.max_latency_p99_ms,
            alarms=base["alarms"],
            min_invocations=self.min_invocations,
        )
        check = {"percent": round(share * 100, 4), **health}
        progress.setdefault("checks", []).append(check)
        if health["breaches"]:
            breaches = "; ".join(health["breaches"])
            self.log.error("Step %.0f%% on %s breached: %s", share * 100, base["variant"], breaches)
            return health
        self.log.info(
            "Step %.0f%% on %s healthy: %.0f invocations, 5XX rate %.4f, latency %s ms",
            share * 100,
            base["variant"],
            health["invocations"],
            health["error_rate"],
            health["latency_p99_ms"],
        )
        return health

    # ------------------------------------------------------------------------------------------- rollback

    def _rollback_uri(self, context: Context, cfg: Config, base: dict[str, Any]) -> str:
        """Where this run's rollback of this shift is recorded (and its evidence kept)."""
        run = evidence_key(str(context.get("run_id") or "manual"))
        name = f"stepwise-rollback-{run}.json"
        return cfg.storage.uri("reports", "deployments", base["endpoint"], base["final"], name)

    def _rollback_record(self, context: Context, cfg: Config, base: dict[str, Any]) -> dict[str, Any] | None:
        """This run's rollback whose clean-up has not finished (a retry after the worker died), else None.

        A finished rollback (``cleanup`` ``done`` or ``failed``) is history: clearing the task starts a new shift.
        """
        from ml_lifecycle.data.s3 import get_json_or_none

        uri = self._rollback_uri(context, cfg, base)
        record = get_json_or_none(self._s3(), uri)
        if not isinstance(record, dict) or record.get("cleanup") != "pending":
            return None
        return {"rollback": record, "evidence_uri": uri}

    def _start_rollback(
        self,
        context: Context,
        cfg: Config,
        base: dict[str, Any],
        progress: dict[str, Any],
        old_variant: str,
        share: float,
        health: dict[str, Any],
    ) -> NoReturn:
        """A step breached: record the rollback (in S3, before anything moves), send all traffic back to the old
        variant, then remove the failed one (:meth:`_roll_back`)."""
        endpoint = base["endpoint"]
        console = Console.of(self.hook, cfg.aws.region)
        started = dt.datetime.fromisoformat(progress["started_at"]) if progress.get("started_at") else None
        try:  # read before the clean-up deletes the failed variant's alarms
            alarms = alarm_evidence(self._client("cloudwatch"), base["alarms"], started)
        except Exception as exc:
            self.log.warning("Cannot read the alarms %s: %s", base["alarms"], exc)
            alarms = []
        percent = round(share * 100, 4)
        evidence: dict[str, Any] = {
            "endpoint_name": endpoint,
            "model_package_arn": self.model_package_arn,
            "model_package_version": base["version"],
            "strategy": "stepwise",
            "stopped_at_percent": percent,
            "target_endpoint_config": base["final"],
            "previous_endpoint_config": progress.get("previous_config"),
            "serving_endpoint_config": None,
            "serving_variant": old_variant,
            "serving_share": None,
            "failed_variant": base["variant"],
            "failure_reason": f"stepwise shift stopped at {percent:g}%: " + "; ".join(health["breaches"]),
            "breaches": health["breaches"],
            "checks": progress.get("checks", []),
            "alarms": alarms,
            "fired_alarms": health["alarms_in_alarm"],
            "started_at": progress.get("started_at"),
            "detected_at": dt.datetime.now(dt.UTC).isoformat(),
            "cleanup": "pending",
            "removed": {"variants": [], "scalable_targets": [], "alarms": []},
            "links": {
                "endpoint": console.endpoint(endpoint),
                "alarms": console.alarms(f"{endpoint}-{base['variant']}"),
            },
            "evidence_uri": self._rollback_uri(context, cfg, base),
        }
        progress["rollback"] = evidence
        # the record a retry resumes from; without it a retry would take the weight-0 variant for a fresh shift
        try:
            write_evidence(self._s3(), evidence["evidence_uri"], evidence, cfg)
        except Exception as exc:  # traffic goes back to the old variant whatever happens to the record
            self.log.warning("Could not record the rollback in %s: %s", evidence["evidence_uri"], exc)
        self.log.info("Rollback recorded in %s; all traffic back to %s", evidence["evidence_uri"], old_variant)
        self.sagemaker.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[
                {"VariantName": old_variant, "DesiredWeight": 1.0},
                {"VariantName": base["variant"], "DesiredWeight": 0.0},
            ],
        )
        description = self.wait_settled_sync(cfg, endpoint) or {}
        self._roll_back(context, cfg, base, description, progress)

    def _roll_back(
        self, context: Context, cfg: Config, base: dict[str, Any], description: dict[str, Any], progress: dict[str, Any]
    ) -> NoReturn:
        """One move of the rollback's clean-up from what the endpoint is now.

        Two variants: all traffic to the old one (unless it has it), deregister the failed variant's scalable
        target, ``UpdateEndpoint`` to the one-variant config of the old variant, defer. The old variant only:
        delete what the failed variant left (scalable target, alarms) and fail the task with the evidence.
        """
        rollback = progress["rollback"]
        endpoint, old, failed = base["endpoint"], rollback["serving_variant"], rollback["failed_variant"]
        names = [v["VariantName"] for v in description.get("ProductionVariants") or []]
        if names == [old]:
            self._end_rollback(context, cfg, description, progress)
        if progress.get("rollback_update") or sorted(names) != sorted([old, failed]):
            serving = description.get("EndpointConfigName")
            why = (
                f"moving it to {progress['rollback_update']} did not take effect"
                if progress.get("rollback_update")
                else f"it has variants {names}, expected {old} and {failed}"
            )
            self._fail_cleanup(
                context,
                cfg,
                description,
                progress,
                f"removing the failed variant {failed} from {endpoint} failed: {why}; it serves {serving} "
                f"({description.get('FailureReason') or 'no FailureReason'})",
            )
        if variant_share(description, old) < 1 - EPSILON:
            self.sagemaker.update_endpoint_weights_and_capacities(
                EndpointName=endpoint,
                DesiredWeightsAndCapacities=[
                    {"VariantName": old, "DesiredWeight": 1.0},
                    {"VariantName": failed, "DesiredWeight": 0.0},
                ],
            )
            description = self.wait_settled_sync(cfg, endpoint) or description
        previous = self._rollback_config(cfg, base, rollback, description)
        released = self.release_scaling(endpoint, keep=[old])
        rollback["removed"]["scalable_targets"] = sorted({*rollback["removed"]["scalable_targets"], *released})
        self.log.info(
            "Removing the failed variant %s from %s: %s -> %s (variant %s only)",
            failed,
            endpoint,
            description.get("EndpointConfigName"),
            previous,
            old,
        )
        # retain the old variant's instance count (auto-scaling may have changed it); its weight is the config's 1
        self.sagemaker.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=previous,
            RetainAllVariantProperties=True,
            ExcludeRetainedVariantProperties=[{"VariantPropertyType": "DesiredWeight"}],
        )
        progress["rollback_update"] = previous
        self.defer_until_settled(cfg, endpoint, kwargs={"progress": progress})

    def _rollback_config(
        self, cfg: Config, base: dict[str, Any], rollback: dict[str, Any], description: dict[str, Any]
    ) -> str:
        """The one-variant config to return to: the config served before the shift when it still holds the old
        variant on the same model, else one made from the old variant of the two-variant config."""
        from ml_lifecycle.builders.endpoint import endpoint_config_request

        old = rollback["serving_variant"]
        current = self.sagemaker.describe_endpoint_config(EndpointConfigName=description["EndpointConfigName"])
        spec = next(v for v in current["ProductionVariants"] if v["VariantName"] == old)
        previous = rollback.get("previous_endpoint_config")
        if previous:
            config = describe_or_none(self.sagemaker.describe_endpoint_config, EndpointConfigName=previous)
            variants = [(v["VariantName"], v["ModelName"]) for v in (config or {}).get("ProductionVariants") or []]
            if variants == [(old, spec["ModelName"])]:
                return previous
            self.log.warning("Config %s no longer serves %s on %s alone; making one", previous, old, spec["ModelName"])
        found = re.search(r"-v(\d+)-", spec["ModelName"])
        request = endpoint_config_request(
            cfg,
            variants=[
                {k: spec[k] for k in ("VariantName", "ModelName", "InstanceType", "InitialInstanceCount")}
                | {"InitialVariantWeight": 1.0}
            ],
            version=found.group(1) if found else base["version"],
        )
        rollback["previous_endpoint_config"] = self.ensure_endpoint_config(request)
        return rollback["previous_endpoint_config"]

    def _end_rollback(
        self, context: Context, cfg: Config, description: dict[str, Any], progress: dict[str, Any]
    ) -> NoReturn:
        """The endpoint serves the old variant alone: delete what the failed variant left, report, fail."""
        rollback = progress["rollback"]
        endpoint, old, failed = rollback["endpoint_name"], rollback["serving_variant"], rollback["failed_variant"]
        released = self.release_scaling(endpoint, keep=[old])
        deleted = self.delete_variant_alarms(endpoint, keep=[old])
        removed = rollback["removed"]
        removed["variants"] = [failed]
        removed["scalable_targets"] = sorted({*removed["scalable_targets"], *released})
        removed["alarms"] = sorted({*removed["alarms"], *deleted})
        rollback.update(
            cleanup="done",
            serving_endpoint_config=description.get("EndpointConfigName"),
            serving_share=variant_share(description, old),
            cleaned_at=dt.datetime.now(dt.UTC).isoformat(),
        )
        outcome = (
            f"{_stopped_at(rollback)} The endpoint serves {rollback['serving_endpoint_config']} with variant {old} "
            f"alone; removed {removed_text(removed)}."
        )
        self._report_rollback(context, cfg, rollback, outcome)

    def _fail_cleanup(
        self, context: Context, cfg: Config, description: dict[str, Any], progress: dict[str, Any], problem: str
    ) -> NoReturn:
        """The traffic is back on the old variant but the failed one could not be removed: report, fail."""
        rollback = progress["rollback"]
        rollback.update(
            cleanup="failed",
            cleanup_error=problem,
            serving_endpoint_config=description.get("EndpointConfigName"),
            serving_share=variant_share(description, rollback["serving_variant"]) if description else None,
        )
        outcome = (
            f"{_stopped_at(rollback)} All traffic is back on variant {rollback['serving_variant']}, but {problem}; "
            "remove it by hand (docs/runbook-rollback.md)."
        )
        self._report_rollback(context, cfg, rollback, outcome)

    def _remove_leftovers(
        self, endpoint: str, description: dict[str, Any], progress: dict[str, Any]
    ) -> dict[str, list[str]]:
        """After a shift: what removed variants left (scalable targets, alarms) is deleted; what was removed."""
        keep = [v["VariantName"] for v in description.get("ProductionVariants") or []]
        released = self.release_scaling(endpoint, keep)
        return {
            "variants": [progress["retired"]] if progress.get("retired") else [],
            "scalable_targets": sorted({*progress.get("released_targets", []), *released}),
            "alarms": self.delete_variant_alarms(endpoint, keep),
        }

    def _report_rollback(self, context: Context, cfg: Config, evidence: dict[str, Any], outcome: str) -> NoReturn:
        """Mark the package RolledBack in the registry, keep a rollback's evidence (XCom and S3), notify, and fail
        the task for good with a message naming the package, the endpoint, ``outcome`` and the evidence."""
        message = (
            f"Stepwise deployment of {evidence['model_package_arn']} to {evidence['endpoint_name']} ROLLED BACK "
            f"{outcome} Evidence: {evidence['evidence_uri']}"
        )
        self.log.error("%s", message)
        problem = self.record_rollback(evidence["endpoint_name"], str(evidence.get("failure_reason") or "rolled back"))
        evidence["marked_rolled_back"] = problem is None
        if problem:
            message += f" The package could NOT be marked RolledBack in the registry ({problem}); mark it by hand."
        context["ti"].xcom_push(key=ROLLBACK_XCOM_KEY, value=evidence)
        try:
            write_evidence(self.hook.s3_hook.get_conn(), evidence["evidence_uri"], evidence, cfg)
        except Exception as exc:
            self.log.warning("Could not write the evidence to %s: %s", evidence["evidence_uri"], exc)
        if self.notify_on_rollback:
            notify_rollback(context, evidence, cfg)
        raise AirflowFailException(message)

    def _result(
        self, description: dict[str, Any], base: dict[str, Any], progress: dict[str, Any], action: str
    ) -> dict[str, Any]:
        return {
            "endpoint_name": description["EndpointName"],
            "endpoint_config_name": description.get("EndpointConfigName"),
            "model_package_arn": self.model_package_arn,
            "model_package_version": base["version"],
            "variant_name": base["variant"],
            "retired_variant": progress.get("retired"),
            "removed": progress.get("removed") or {"variants": [], "scalable_targets": [], "alarms": []},
            "action": action,
            "steps": base["steps"],
            "checks": progress.get("checks", []),
            "alarms": base["alarms"],
        }
