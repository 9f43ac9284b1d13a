"""The endpoints' serving state and the deployment engine behind the hosting actions
(:mod:`devstack.sagemaker.hosting`): starting and stopping fleets, blue/green updates with guardrails,
rollbacks, restarting the serving endpoints after a restart of the service.

Every production variant is served by one long-lived model worker (:mod:`devstack.sagemaker.serving`),
whatever its instance count; traffic is routed by weight (see :mod:`devstack.sagemaker.runtime`).

``UpdateEndpoint`` runs a blue/green deployment (the default, and ``BlueGreenUpdatePolicy``):

1. the green fleet (the new config's variants) is started: ``EndpointStatus`` Updating,
   ``PendingDeploymentSummary`` names the new config, variant status ``Creating``;
2. traffic shifts: ALL_AT_ONCE moves 100 %; CANARY moves the canary share, bakes
   ``WaitIntervalInSeconds``, then moves the rest; LINEAR moves one step, bakes, and repeats;
   ALL_AT_ONCE bakes ``WaitIntervalInSeconds`` after its single step;
3. with all traffic on green, a final bake of ``TerminationWaitInSeconds``;
4. blue is stopped; ``EndpointConfigName`` becomes the new config.

During every step and bake the ``AutoRollbackConfiguration`` alarms are read from CloudWatch; an alarm in
ALARM (or the green fleet failing to start, or ``MaximumExecutionTimeoutInSeconds`` passing) sends 100 % of
the traffic back to blue and stops green. The endpoint then reads as real SageMaker's does after a
rollback: ``InService`` on the OLD ``EndpointConfigName``, ``FailureReason`` set, ``LastDeploymentConfig``
the rolled-back update's config, no ``PendingDeploymentSummary`` (see ``docs/devstack-hosting.md``).

An injected update fault (``fail_updates``, :mod:`devstack.sagemaker.faults`) ends the deployment once the
first traffic step is active: ``Failed`` stops both fleets (a Failed endpoint answers no request and accepts
only ``DeleteEndpoint``); ``UpdateRollbackFailed`` keeps both fleets serving with traffic split as the step
left it, until an update or a delete. Either way ``EndpointConfigName`` stays the old config,
``FailureReason`` is set and no deployment is pending.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devstack.sagemaker.common import now
from devstack.sagemaker.errors import validation_error
from devstack.sagemaker.faults import UpdateFault
from devstack.sagemaker.serving import (
    DEFAULT_STARTUP_TIMEOUT,
    INVOCATION_TIMEOUT,
    ModelWorker,
    WorkerStartError,
    instance_id,
)

if TYPE_CHECKING:
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

CONFIGS = "endpoint-configs"
ENDPOINTS = "endpoints"
LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"


class DeploymentCancelledError(Exception):
    """The endpoint was deleted or the service stopped while a deployment ran."""


@dataclass
class Fleet:
    """The serving capacity of one production variant of one endpoint config.

    :param endpoint: the endpoint name.
    :param config_name: the endpoint config the variant comes from.
    :param variant: the ``ProductionVariant`` (with effective weight and instance count).
    :param capture: the ``DataCaptureConfig`` that applies to requests this fleet serves.
    """

    endpoint: str
    config_name: str
    variant: dict[str, Any]
    capture: dict[str, Any] | None
    worker: ModelWorker | None = None
    image: str = ""
    _inflight: int = field(default=0, repr=False)
    _draining: bool = field(default=False, repr=False)
    _idle: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def name(self) -> str:
        return self.variant["VariantName"]

    def enter(self) -> bool:
        """Count one request in; False once the fleet drains (its traffic has moved elsewhere)."""
        with self._idle:
            if self._draining:
                return False
            self._inflight += 1
            return True

    def leave(self) -> None:
        """Count one request out."""
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()

    def drain(self, timeout: float) -> None:
        """Refuse new requests and wait (at most ``timeout`` s) for those in flight, as a load balancer drains."""
        with self._idle:
            self._draining = True
            self._idle.wait_for(lambda: self._inflight <= 0, timeout=timeout)

    @property
    def weight(self) -> float:
        return float(self.variant.get("InitialVariantWeight", 1.0))

    @property
    def instance_count(self) -> int:
        return int(self.variant.get("InitialInstanceCount", 1))


@dataclass
class EndpointRuntime:
    """In-memory serving state of one endpoint: its fleets and the traffic share of each."""

    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    routes: list[tuple[Fleet, float]] = field(default_factory=list)
    deploying_config: str | None = None
    warming: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def set_routes(self, routes: list[tuple[Fleet, float]]) -> None:
        with self.lock:
            self.routes = routes

    def choose(self, target_variant: str | None, rng: random.Random | None = None) -> Fleet | None:
        """Pick the fleet for one request: by weight, or among ``target_variant``'s fleets."""
        with self.lock:
            routes = list(self.routes)
        if target_variant is not None:
            named = [(f, w) for f, w in routes if f.name == target_variant]
            if not named:
                return None
            weighted = [(f, w) for f, w in named if w > 0] or [(f, 1.0) for f, _ in named]
        else:
            weighted = [(f, w) for f, w in routes if w > 0]
            if not weighted:
                return None
        total = sum(w for _, w in weighted)
        point = (rng or random).random() * total
        for fleet, weight in weighted:
            point -= weight
            if point < 0:
                return fleet
        return weighted[-1][0]

    def variant_names(self) -> set[str]:
        with self.lock:
            return {f.name for f, _ in self.routes}


def traffic_shares(blue: list[Fleet], green: list[Fleet], green_share: float) -> list[tuple[Fleet, float]]:
    """Route ``green_share`` of the traffic to green and the rest to blue, by variant weight in each."""
    routes: list[tuple[Fleet, float]] = []
    for fleets, share in ((blue, 1.0 - green_share), (green, green_share)):
        total = sum(f.weight for f in fleets)
        for fleet in fleets:
            weight = share * (fleet.weight / total if total > 0 else 1.0 / len(fleets))
            routes.append((fleet, weight))
    return routes


def deployment_steps(policy: dict[str, Any], green_instances: int) -> list[tuple[float, int, str]]:
    """Return the traffic steps of a blue/green policy: (green share, bake seconds after it, label).

    :param policy: a ``BlueGreenUpdatePolicy``.
    :param green_instances: the new fleet's total instance count.
    :raises SageMakerError: when the sizes break the documented limits.
    """
    routing = policy["TrafficRoutingConfiguration"]
    kind = routing["Type"]
    wait = int(routing.get("WaitIntervalInSeconds", 0))
    total = max(green_instances, 1)

    def fraction(size: dict[str, Any] | None, member: str) -> float:
        if size is None:
            raise validation_error(f"{member} must be specified when the traffic routing type is {kind}.")
        if size["Type"] == "INSTANCE_COUNT":
            return size["Value"] / total
        return size["Value"] / 100.0

    if kind == "ALL_AT_ONCE":
        return [(1.0, wait, "full")]
    if kind == "CANARY":
        share = fraction(routing.get("CanarySize"), "CanarySize")
        if share > 0.5:
            raise validation_error(
                "CanarySize must be less than or equal to 50% of the variant's total instance count "
                f"({routing['CanarySize']['Value']} {routing['CanarySize']['Type']} of {total} instance(s))."
            )
        return [(share, wait, "canary"), (1.0, 0, "full")]
    step = fraction(routing.get("LinearStepSize"), "LinearStepSize")
    if not 0.1 - 1e-9 <= step <= 0.5 + 1e-9:
        raise validation_error(
            "LinearStepSize must be 10-50% of the variant's total instance count "
            f"({routing['LinearStepSize']['Value']} {routing['LinearStepSize']['Type']} of {total} instance(s))."
        )
    count = math.ceil(1.0 / step - 1e-9)
    steps = [(min(1.0, step * (i + 1)), wait, "linear") for i in range(count - 1)]
    steps.append((1.0, 0, "full"))
    return steps


def _instances_for(share: float, total: int) -> int:
    return max(1, round(share * total)) if share > 0 else 0


class DeploymentEngine:
    """The endpoints' serving state (their fleets and routes) and the threads that create, update and
    restart them; the hosting actions (:class:`devstack.sagemaker.hosting.Hosting`) start its work.

    :param service: the owning service.
    :param store: where it writes the endpoints' state (the hosting actions' event-sending view of the
        service's store); the service's store when not given.
    """

    def __init__(self, service: ServiceApi, store: Any = None) -> None:
        self.service = service
        self.store = service.store if store is None else store
        self.runtimes: dict[str, EndpointRuntime] = {}
        self.lock = threading.Lock()
        #: seconds between two reads of the rollback alarms during a deployment
        self.alarm_poll_seconds = 1.0
        #: seconds a traffic step stays ActivatingTraffic before its bake starts
        self.activation_seconds = 1.0
        self._stopping = False

    def track(self, runtime: EndpointRuntime) -> None:
        """Keep ``runtime`` as its endpoint's serving state."""
        with self.lock:
            self.runtimes[runtime.name] = runtime

    def forget(self, name: str, runtime: EndpointRuntime | None) -> None:
        """Drop endpoint ``name``'s serving state if it is still ``runtime`` (a deleted endpoint)."""
        with self.lock:
            if self.runtimes.get(name) is runtime:
                self.runtimes.pop(name, None)

    def runtime(self, name: str) -> EndpointRuntime | None:
        """Return the serving state of an endpoint, or None."""
        with self.lock:
            return self.runtimes.get(name)

    def _image_of(self, model_name: str) -> str:
        record = self.store.get("models", model_name)
        if record is None:
            return ""
        desc = record["desc"]
        container = desc.get("PrimaryContainer") or (desc.get("Containers") or [{}])[0]
        return container.get("Image", "")

    def _variant_summary(
        self,
        variant: dict[str, Any],
        *,
        current_weight: float | None,
        current_count: int | None,
        statuses: list[dict[str, Any]] | None = None,
        pending: bool = False,
    ) -> dict[str, Any]:
        summary: dict[str, Any] = {"VariantName": variant["VariantName"]}
        image = self._image_of(variant["ModelName"])
        if image:
            summary["DeployedImages"] = [{"SpecifiedImage": image}]
        desired_weight = float(variant.get("InitialVariantWeight", 1.0))
        summary["DesiredWeight"] = desired_weight
        if current_weight is not None:
            summary["CurrentWeight"] = current_weight
        if variant.get("ServerlessConfig"):
            summary["DesiredServerlessConfig"] = variant["ServerlessConfig"]
            if current_count is not None:
                summary["CurrentServerlessConfig"] = variant["ServerlessConfig"]
        else:
            summary["DesiredInstanceCount"] = int(variant.get("InitialInstanceCount", 1))
            if current_count is not None:
                summary["CurrentInstanceCount"] = current_count
        if pending and variant.get("InstanceType"):
            summary["InstanceType"] = variant["InstanceType"]
        if statuses:
            summary["VariantStatus"] = statuses
        return summary

    @staticmethod
    def _capture_summary(capture: dict[str, Any] | None) -> dict[str, Any] | None:
        if not capture:
            return None
        enabled = capture.get("EnableCapture", True) is not False
        return {
            "EnableCapture": enabled,
            "CaptureStatus": "Started" if enabled else "Stopped",
            "CurrentSamplingPercentage": int(capture["InitialSamplingPercentage"]),
            "DestinationS3Uri": capture["DestinationS3Uri"],
            "KmsKeyId": capture.get("KmsKeyId", ""),
        }

    def update_desc(self, name: str, **members: Any) -> None:
        """Set (or, with value None, remove) top-level members of an endpoint's description."""

        def change(record: dict[str, Any]) -> None:
            desc = record["desc"]
            for key, value in members.items():
                if value is None:
                    desc.pop(key, None)
                else:
                    desc[key] = value
            desc["LastModifiedTime"] = now()

        try:
            self.store.update(ENDPOINTS, name, change)
        except KeyError:
            raise DeploymentCancelledError from None

    @staticmethod
    def launch_message(variants: list[dict[str, Any]]) -> str:
        total = sum(int(v.get("InitialInstanceCount", 1)) for v in variants)
        return f"Launching {total} instance(s)."

    def _start_fleets(
        self, runtime: EndpointRuntime, config_name: str, variants: list[dict[str, Any]], capture: dict[str, Any] | None
    ) -> list[Fleet]:
        fleets: list[Fleet] = []
        try:
            for variant in variants:
                if runtime.cancelled.is_set():
                    raise DeploymentCancelledError
                fleet = Fleet(runtime.name, config_name, variant, capture)
                sandbox = self.service.sandbox("endpoints", runtime.name) / config_name / variant["VariantName"]
                timeout = float(variant.get("ContainerStartupHealthCheckTimeoutInSeconds") or DEFAULT_STARTUP_TIMEOUT)
                worker = ModelWorker(
                    self.service,
                    variant["ModelName"],
                    sandbox,
                    LOG_GROUP_PREFIX + runtime.name,
                    f"{variant['VariantName']}/{instance_id()}",
                    startup_timeout=timeout,
                )
                fleet.worker = worker
                fleets.append(fleet)
                try:
                    worker.start()
                except WorkerStartError as exc:
                    raise WorkerStartError(f"{exc.reason} (production variant {variant['VariantName']})") from exc
                fleet.image = worker.image or ""
        except BaseException:
            self.stop_fleets(fleets)
            raise
        return fleets

    @staticmethod
    def stop_fleets(fleets: list[Fleet]) -> None:
        # requests already routed to a fleet finish before its model server stops (connection draining)
        for fleet in fleets:
            fleet.drain(INVOCATION_TIMEOUT)
        for fleet in fleets:
            if fleet.worker is not None:
                try:
                    fleet.worker.stop()
                except Exception:
                    log.exception("Cannot stop the model worker of variant %s", fleet.name)

    def _in_service_summaries(self, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            self._variant_summary(
                v,
                current_weight=float(v.get("InitialVariantWeight", 1.0)),
                current_count=int(v.get("InitialInstanceCount", 1)),
            )
            for v in variants
        ]

    def create(self, runtime: EndpointRuntime, config: dict[str, Any], variants: list[dict[str, Any]]) -> None:
        name = runtime.name
        capture = config.get("DataCaptureConfig")
        try:
            fleets = self._start_fleets(runtime, config["EndpointConfigName"], variants, capture)
        except WorkerStartError as exc:
            log.warning("Endpoint %s failed: %s", name, exc.reason)
            self.safe_update(name, EndpointStatus="Failed", FailureReason=exc.reason, PendingDeploymentSummary=None)
            return
        except DeploymentCancelledError:
            return
        except Exception as exc:
            log.exception("Creating endpoint %s failed inside the devstack", name)
            self.safe_update(
                name,
                EndpointStatus="Failed",
                FailureReason=f"InternalServerError: {type(exc).__name__}: {exc}"[:1024],
                PendingDeploymentSummary=None,
            )
            return
        if runtime.cancelled.is_set():
            self.stop_fleets(fleets)
            return
        runtime.set_routes(traffic_shares([], fleets, 1.0))
        self.safe_update(
            name,
            EndpointStatus="InService",
            ProductionVariants=self._in_service_summaries(variants),
            DataCaptureConfig=self._capture_summary(capture),
            PendingDeploymentSummary=None,
        )
        log.info("Endpoint %s is InService", name)

    def safe_update(self, name: str, **members: Any) -> None:
        try:
            self.update_desc(name, **members)
        except DeploymentCancelledError:
            log.info("Endpoint %s was deleted meanwhile", name)

    def alarm_names(self, deployment: dict[str, Any] | None) -> list[str]:
        if not deployment:
            return []
        alarms = (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms") or []
        return [a["AlarmName"] for a in alarms]

    def _alarms_in_alarm(self, names: list[str]) -> list[str]:
        if not names:
            return []
        try:
            alarms = self.service.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
        except Exception:
            log.warning("Cannot read the auto-rollback alarms %s from CloudWatch", names)
            return []
        return sorted(a["AlarmName"] for a in alarms if a.get("StateValue") == "ALARM")

    def set_pending(
        self,
        name: str,
        config_name: str,
        variants: list[dict[str, Any]],
        status: str,
        message: str,
        current_share: float | None = None,
    ) -> None:
        started = now()
        statuses = [{"Status": status, "StatusMessage": message, "StartTime": started}]
        summaries = []
        for variant in variants:
            weight = float(variant.get("InitialVariantWeight", 1.0))
            count = int(variant.get("InitialInstanceCount", 1))
            summaries.append(
                self._variant_summary(
                    variant,
                    current_weight=None if current_share is None else weight * current_share,
                    current_count=None if current_share is None else count,
                    statuses=statuses,
                    pending=True,
                )
            )

        def change(rec: dict[str, Any]) -> None:
            d = rec["desc"]
            pending = d.get("PendingDeploymentSummary")
            start = pending["StartTime"] if pending and pending.get("EndpointConfigName") == config_name else started
            d["PendingDeploymentSummary"] = {
                "EndpointConfigName": config_name,
                "ProductionVariants": summaries,
                "StartTime": start,
            }
            names = {v["VariantName"] for v in variants}
            for summary in d.get("ProductionVariants", []):
                if summary["VariantName"] in names:
                    summary["VariantStatus"] = statuses
            d["LastModifiedTime"] = now()

        try:
            self.store.update(ENDPOINTS, name, change)
        except KeyError:
            raise DeploymentCancelledError from None

    def _bake(self, runtime: EndpointRuntime, plan: DeploymentPlan, seconds: float) -> str | None:
        """Wait ``seconds`` while watching the alarms and the deadline; return a rollback reason or None."""
        deadline = time.monotonic() + seconds
        while True:
            if runtime.cancelled.is_set() or self._stopping:
                raise DeploymentCancelledError
            alarming = self._alarms_in_alarm(self.alarm_names(plan.deployment))
            if alarming:
                return (
                    f"Endpoint update was rolled back because the CloudWatch alarm(s) {', '.join(alarming)} "
                    f"went into ALARM state while deploying endpoint configuration {plan.green_config}."
                )
            if plan.timeout is not None and time.monotonic() - plan.started >= plan.timeout:
                return (
                    f"Endpoint update was rolled back because it did not complete within "
                    f"MaximumExecutionTimeoutInSeconds ({plan.timeout} seconds)."
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(self.alarm_poll_seconds, remaining))

    def update(self, runtime: EndpointRuntime, plan: DeploymentPlan) -> None:
        name = runtime.name
        plan.started = time.monotonic()
        with runtime.lock:
            blue = [f for f, _ in runtime.routes]
        total = sum(int(v.get("InitialInstanceCount", 1)) for v in plan.variants)
        green: list[Fleet] = []
        try:
            self.set_pending(name, plan.green_config, plan.variants, "Creating", self.launch_message(plan.variants))
            try:
                green = self._start_fleets(runtime, plan.green_config, plan.variants, plan.capture)
            except WorkerStartError as exc:
                self._rollback(runtime, blue, [], plan, exc.reason)
                return
            reason = self._bake(runtime, plan, 0)
            if reason:
                self._rollback(runtime, blue, green, plan, reason)
                return
            runtime.deploying_config = plan.green_config
            for share, wait, label in plan.steps:
                instances = _instances_for(share, total)
                if label == "full":
                    message = f"Activating traffic on full capacity of {total} instance(s)."
                elif label == "canary":
                    message = f"Activating traffic on canary capacity of {instances} instance(s)."
                else:
                    message = f"Activating traffic on {instances} of {total} instance(s)."
                self.set_pending(name, plan.green_config, plan.variants, "ActivatingTraffic", message, share)
                runtime.set_routes(traffic_shares(blue, green, share))
                log.info("Endpoint %s: %.0f%% of traffic on %s", name, share * 100, plan.green_config)
                if plan.fault is not None:
                    self._end_failed(runtime, blue, green, plan, plan.fault)
                    return
                reason = self._bake(runtime, plan, self.activation_seconds)
                if reason:
                    self._rollback(runtime, blue, green, plan, reason)
                    return
                if wait > 0 or label != "full":
                    capacity = (
                        "canary capacity"
                        if label == "canary"
                        else ("full capacity" if label == "full" else f"{instances} of {total}")
                    )
                    self.set_pending(
                        name,
                        plan.green_config,
                        plan.variants,
                        "Baking",
                        f"Baking for {wait} seconds (WaitIntervalInSeconds) with traffic enabled on {capacity} of "
                        f"{instances} instance(s).",
                        share,
                    )
                reason = self._bake(runtime, plan, wait)
                if reason:
                    self._rollback(runtime, blue, green, plan, reason)
                    return
            self.set_pending(
                name,
                plan.green_config,
                plan.variants,
                "Baking",
                f"Baking for {plan.final_wait} seconds (TerminationWaitInSeconds) with traffic enabled on full "
                f"capacity of {total} instance(s).",
                1.0,
            )
            reason = self._bake(runtime, plan, plan.final_wait)
            if reason:
                self._rollback(runtime, blue, green, plan, reason)
                return
            self._succeed(runtime, blue, green, plan)
        except DeploymentCancelledError:
            if not runtime.cancelled.is_set():
                # the service is stopping: keep blue serving until the process ends
                runtime.set_routes(traffic_shares([], blue, 1.0) if blue else [])
            self.stop_fleets(green)
        except Exception as exc:
            log.exception("Updating endpoint %s failed inside the devstack", name)
            self._rollback(runtime, blue, green, plan, f"InternalServerError: {type(exc).__name__}: {exc}"[:1024])
        finally:
            runtime.deploying_config = None

    def _rollback(
        self, runtime: EndpointRuntime, blue: list[Fleet], green: list[Fleet], plan: DeploymentPlan, reason: str
    ) -> None:
        log.warning("Endpoint %s: rolling back to the previous configuration: %s", runtime.name, reason)
        runtime.set_routes(traffic_shares([], blue, 1.0) if blue else [])
        self.stop_fleets(green)

        self._end_unfinished(runtime, plan, "InService", reason)

    def _end_failed(
        self, runtime: EndpointRuntime, blue: list[Fleet], green: list[Fleet], plan: DeploymentPlan, fault: UpdateFault
    ) -> None:
        """End the deployment as an injected ``Failed`` or ``UpdateRollbackFailed`` (see the module docstring)."""
        log.warning("Endpoint %s: the update to %s ends %s (injected)", runtime.name, plan.green_config, fault.status)
        if fault.status == "Failed":
            runtime.set_routes([])
            self.stop_fleets(green + blue)

        self._end_unfinished(runtime, plan, fault.status, fault.reason)

    def _end_unfinished(self, runtime: EndpointRuntime, plan: DeploymentPlan, status: str, reason: str) -> None:
        """Record a deployment that did not complete: the endpoint's status and reason, no pending deployment."""

        def change(rec: dict[str, Any]) -> None:
            d = rec["desc"]
            d["EndpointStatus"] = status
            d["FailureReason"] = reason[:1024]
            d.pop("PendingDeploymentSummary", None)
            if plan.deployment:
                d["LastDeploymentConfig"] = plan.deployment
            for summary in d.get("ProductionVariants", []):
                summary.pop("VariantStatus", None)
            d["LastModifiedTime"] = now()

        with contextlib.suppress(KeyError):
            self.store.update(ENDPOINTS, runtime.name, change)

    def _succeed(self, runtime: EndpointRuntime, blue: list[Fleet], green: list[Fleet], plan: DeploymentPlan) -> None:
        runtime.set_routes(traffic_shares([], green, 1.0))
        self.set_pending(
            runtime.name,
            plan.green_config,
            plan.variants,
            "Deleting",
            f"Terminating {sum(f.instance_count for f in blue)} instance(s).",
            1.0,
        )
        self.stop_fleets(blue)

        def change(rec: dict[str, Any]) -> None:
            d = rec["desc"]
            d["EndpointStatus"] = "InService"
            d["EndpointConfigName"] = plan.green_config
            d["ProductionVariants"] = self._in_service_summaries(plan.variants)
            capture = self._capture_summary(plan.capture)
            if capture:
                d["DataCaptureConfig"] = capture
            else:
                d.pop("DataCaptureConfig", None)
            d.pop("FailureReason", None)
            d.pop("PendingDeploymentSummary", None)
            if plan.deployment:
                d["LastDeploymentConfig"] = plan.deployment
            d["LastModifiedTime"] = now()

        try:
            self.store.update(ENDPOINTS, runtime.name, change)
        except KeyError:
            return
        log.info("Endpoint %s is InService on %s", runtime.name, plan.green_config)

    def warm(self, runtime: EndpointRuntime) -> None:
        record = self.store.get(ENDPOINTS, runtime.name)
        if record is None:
            return
        desc = record["desc"]
        config = self.store.get(CONFIGS, desc.get("EndpointConfigName", ""))
        try:
            if config is None:
                raise WorkerStartError(
                    f"ClientError: The endpoint configuration {desc.get('EndpointConfigName')} was deleted; the "
                    "devstack cannot restart this endpoint's model containers."
                )
            weights = {v["VariantName"]: v for v in desc.get("ProductionVariants", [])}
            variants = []
            for variant in config["desc"]["ProductionVariants"]:
                current = weights.get(variant["VariantName"], {})
                variant = dict(variant)
                if "CurrentWeight" in current:
                    variant["InitialVariantWeight"] = current["CurrentWeight"]
                variants.append(variant)
            fleets = self._start_fleets(
                runtime, config["desc"]["EndpointConfigName"], variants, config["desc"].get("DataCaptureConfig")
            )
            runtime.set_routes(traffic_shares([], fleets, 1.0))
        except (WorkerStartError, DeploymentCancelledError) as exc:
            log.warning("Cannot restart endpoint %s: %s", runtime.name, exc)
            self.safe_update(runtime.name, EndpointStatus="Failed", FailureReason=str(exc)[:1024])
        finally:
            runtime.warming = False

    def shutdown(self) -> None:
        """Stop every deployment and model worker."""
        self._stopping = True
        with self.lock:
            runtimes = list(self.runtimes.values())
        for runtime in runtimes:
            if runtime.thread is not None:
                runtime.thread.join(timeout=15)
            with runtime.lock:
                fleets = [f for f, _ in runtime.routes]
                runtime.routes = []
            self.stop_fleets(fleets)


@dataclass
class DeploymentPlan:
    """One UpdateEndpoint's deployment: the green config and variants, the traffic steps and waits."""

    green_config: str
    variants: list[dict[str, Any]]
    capture: dict[str, Any] | None
    deployment: dict[str, Any] | None
    steps: list[tuple[float, int, str]]
    final_wait: int
    timeout: int | None
    started: float = 0.0
    fault: UpdateFault | None = None


__all__ = [
    "CONFIGS",
    "ENDPOINTS",
    "DeploymentCancelledError",
    "DeploymentEngine",
    "DeploymentPlan",
    "EndpointRuntime",
    "Fleet",
    "deployment_steps",
]
