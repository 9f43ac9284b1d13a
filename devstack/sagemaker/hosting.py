"""Hosting: endpoint configs, endpoints, weight/capacity updates and blue/green deployments with guardrails.

Actions: CreateEndpointConfig, DescribeEndpointConfig, ListEndpointConfigs, DeleteEndpointConfig,
CreateEndpoint, DescribeEndpoint, ListEndpoints, DeleteEndpoint, UpdateEndpoint,
UpdateEndpointWeightsAndCapacities. Models (CreateModel, ...) belong to :mod:`devstack.sagemaker.registry`.

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

Application Auto Scaling is enforced as SageMaker enforces it ("Update endpoints that use auto scaling" and
"Delete endpoints configured for auto scaling" in the SageMaker developer guide): ``UpdateEndpoint`` is
refused (``ValidationException``) when the new config removes a variant that is registered as a scalable
target, or changes such a variant's instance type; changing its model is allowed. ``DeleteEndpoint``
deregisters the endpoint's scalable targets (and deletes their scaling policies), as Application Auto
Scaling does on AWS. The targets are read from the local AWS endpoint (moto).

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

from devstack.sagemaker import capture as capturemod
from devstack.sagemaker.alarms import unsupported as unsupported_alarm
from devstack.sagemaker.common import filter_records, now, paginate, pick, sort_records
from devstack.sagemaker.errors import SageMakerError, validation_error
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
IN_PROGRESS = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}

RESTART_CREATE_FAILURE = (
    "InternalServerError: The devstack SageMaker service stopped while the endpoint was being created."
)
RESTART_UPDATE_FAILURE = (
    "InternalServerError: The devstack SageMaker service stopped during the update; the endpoint stays on "
    "its previous endpoint configuration."
)


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


def _shares(blue: list[Fleet], green: list[Fleet], green_share: float) -> list[tuple[Fleet, float]]:
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


class Hosting:
    """The hosting actions, the endpoints' serving state and their deployment threads.

    :param service: the owning service.
    """

    def __init__(self, service: ServiceApi) -> None:
        self.service = service
        self.store = service.store
        self.runtimes: dict[str, EndpointRuntime] = {}
        self._lock = threading.Lock()
        #: seconds between two reads of the rollback alarms during a deployment
        self.alarm_poll_seconds = 1.0
        #: seconds a traffic step stays ActivatingTraffic before its bake starts
        self.activation_seconds = 1.0
        #: seconds an UpdateEndpointWeightsAndCapacities call keeps the endpoint Updating
        self.scale_seconds = 0.5
        self._stopping = False
        create = service.operation("CreateEndpointConfig")
        describe = service.operation("DescribeEndpointConfig")
        self._config_echo = [m for m in create.input_shape.members if m in describe.output_shape.members]

    def register(self) -> None:
        """Register the actions with the service."""
        for action, handler in (
            ("CreateEndpointConfig", self.create_endpoint_config),
            ("DescribeEndpointConfig", self.describe_endpoint_config),
            ("ListEndpointConfigs", self.list_endpoint_configs),
            ("DeleteEndpointConfig", self.delete_endpoint_config),
            ("CreateEndpoint", self.create_endpoint),
            ("DescribeEndpoint", self.describe_endpoint),
            ("ListEndpoints", self.list_endpoints),
            ("DeleteEndpoint", self.delete_endpoint),
            ("UpdateEndpoint", self.update_endpoint),
            ("UpdateEndpointWeightsAndCapacities", self.update_endpoint_weights_and_capacities),
        ):
            self.service.register_action(action, handler)
        self.service.on_shutdown(self.shutdown)

    # -- endpoint configs ------------------------------------------------------------------------

    def _config_arn(self, name: str) -> str:
        return self.service.arn("endpoint-config", name)

    def _endpoint_arn(self, name: str) -> str:
        return self.service.arn("endpoint", name)

    def create_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle CreateEndpointConfig."""
        name = params["EndpointConfigName"]
        arn = self._config_arn(name)
        names = [v["VariantName"] for v in params["ProductionVariants"]]
        if len(names) != len(set(names)):
            raise validation_error("VariantName values must be unique within an endpoint configuration.")
        for variant in params["ProductionVariants"]:
            if not variant.get("ModelName"):
                raise validation_error(f"Variant {variant['VariantName']} must name a model (ModelName).")
            if not variant.get("InstanceType") and not variant.get("ServerlessConfig"):
                raise validation_error(f"Variant {variant['VariantName']} needs an InstanceType or a ServerlessConfig.")
            if not self.store.exists("models", variant["ModelName"]):
                raise validation_error(f'Could not find model "{self.service.arn("model", variant["ModelName"])}".')
        capture = params.get("DataCaptureConfig")
        if capture is not None and not capture["DestinationS3Uri"].startswith("s3://"):
            raise validation_error("DataCaptureConfig.DestinationS3Uri must be an s3:// URI.")
        desc = pick(params, self._config_echo)
        desc.update({"EndpointConfigName": name, "EndpointConfigArn": arn, "CreationTime": now()})
        if not self.store.insert_new(CONFIGS, name, {"desc": desc}):
            raise validation_error(f'Cannot create already existing endpoint configuration "{arn}".')
        self.service.set_tags(arn, params.get("Tags"))
        return {"EndpointConfigArn": arn}

    def _config(self, name: str) -> dict[str, Any]:
        record = self.store.get(CONFIGS, name)
        if record is None:
            raise validation_error(f'Could not find endpoint configuration "{self._config_arn(name)}".')
        return record["desc"]

    def describe_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle DescribeEndpointConfig."""
        return self._config(params["EndpointConfigName"])

    def list_endpoint_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListEndpointConfigs (default order: newest first)."""
        descs = [r["desc"] for r in self.store.values(CONFIGS)]
        descs = filter_records(descs, params, name_key="EndpointConfigName")
        descs = sort_records(
            descs,
            params,
            {"Name": lambda d: d["EndpointConfigName"], "CreationTime": lambda d: d["CreationTime"]},
            "CreationTime",
            "Descending",
        )
        page, token = paginate(descs, params)
        out: dict[str, Any] = {
            "EndpointConfigs": [pick(d, ["EndpointConfigName", "EndpointConfigArn", "CreationTime"]) for d in page]
        }
        if token:
            out["NextToken"] = token
        return out

    def delete_endpoint_config(self, params: dict[str, Any]) -> None:
        """Handle DeleteEndpointConfig (an endpoint using it keeps serving, as on AWS)."""
        name = params["EndpointConfigName"]
        if not self.store.delete(CONFIGS, name):
            raise validation_error(f'Could not find endpoint configuration "{self._config_arn(name)}".')
        self.service.delete_tags_of(self._config_arn(name))

    # -- endpoints: read -------------------------------------------------------------------------

    def _record(self, name: str) -> dict[str, Any]:
        record = self.store.get(ENDPOINTS, name)
        if record is None:
            raise validation_error(f'Could not find endpoint "{self._endpoint_arn(name)}".')
        return record

    def describe_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle DescribeEndpoint."""
        return self._record(params["EndpointName"])["desc"]

    def list_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListEndpoints (default order: newest first)."""
        descs = [r["desc"] for r in self.store.values(ENDPOINTS)]
        descs = filter_records(descs, params, name_key="EndpointName", status_key="EndpointStatus")
        descs = sort_records(
            descs,
            params,
            {
                "Name": lambda d: d["EndpointName"],
                "CreationTime": lambda d: d["CreationTime"],
                "Status": lambda d: d["EndpointStatus"],
            },
            "CreationTime",
            "Descending",
        )
        page, token = paginate(descs, params)
        fields = ["EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus"]
        out: dict[str, Any] = {"Endpoints": [pick(d, fields) for d in page]}
        if token:
            out["NextToken"] = token
        return out

    def runtime(self, name: str) -> EndpointRuntime | None:
        """Return the serving state of an endpoint, or None."""
        with self._lock:
            return self.runtimes.get(name)

    # -- endpoints: summaries --------------------------------------------------------------------

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

    def _update_desc(self, name: str, **members: Any) -> None:
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

    # -- endpoints: create / delete --------------------------------------------------------------

    def create_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle CreateEndpoint: starts the variants' model workers in the background."""
        name = params["EndpointName"]
        arn = self._endpoint_arn(name)
        config = self._config(params["EndpointConfigName"])
        created = now()
        variants = [dict(v) for v in config["ProductionVariants"]]
        desc: dict[str, Any] = {
            "EndpointName": name,
            "EndpointArn": arn,
            "EndpointConfigName": config["EndpointConfigName"],
            "EndpointStatus": "Creating",
            "CreationTime": created,
            "LastModifiedTime": created,
        }
        record: dict[str, Any] = {"desc": desc}
        if params.get("DeploymentConfig"):
            record["deployment_config"] = params["DeploymentConfig"]
        with self.store.lock:
            if not self.store.insert_new(ENDPOINTS, name, record):
                raise validation_error(f'Cannot create already existing endpoint "{arn}".')
            runtime = EndpointRuntime(name)
            with self._lock:
                self.runtimes[name] = runtime
        self.service.set_tags(arn, params.get("Tags"))
        self._set_pending(name, config["EndpointConfigName"], variants, "Creating", self._launch_message(variants))
        runtime.thread = threading.Thread(
            target=self._create, args=(runtime, config, variants), name=f"endpoint-{name}", daemon=True
        )
        runtime.thread.start()
        return {"EndpointArn": arn}

    @staticmethod
    def _launch_message(variants: list[dict[str, Any]]) -> str:
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
            self._stop_fleets(fleets)
            raise
        return fleets

    @staticmethod
    def _stop_fleets(fleets: list[Fleet]) -> None:
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

    def _create(self, runtime: EndpointRuntime, config: dict[str, Any], variants: list[dict[str, Any]]) -> None:
        name = runtime.name
        capture = config.get("DataCaptureConfig")
        try:
            fleets = self._start_fleets(runtime, config["EndpointConfigName"], variants, capture)
        except WorkerStartError as exc:
            log.warning("Endpoint %s failed: %s", name, exc.reason)
            self._safe_update(name, EndpointStatus="Failed", FailureReason=exc.reason, PendingDeploymentSummary=None)
            return
        except DeploymentCancelledError:
            return
        except Exception as exc:
            log.exception("Creating endpoint %s failed inside the devstack", name)
            self._safe_update(
                name,
                EndpointStatus="Failed",
                FailureReason=f"InternalServerError: {type(exc).__name__}: {exc}"[:1024],
                PendingDeploymentSummary=None,
            )
            return
        if runtime.cancelled.is_set():
            self._stop_fleets(fleets)
            return
        runtime.set_routes(_shares([], fleets, 1.0))
        self._safe_update(
            name,
            EndpointStatus="InService",
            ProductionVariants=self._in_service_summaries(variants),
            DataCaptureConfig=self._capture_summary(capture),
            PendingDeploymentSummary=None,
        )
        log.info("Endpoint %s is InService", name)

    def _safe_update(self, name: str, **members: Any) -> None:
        try:
            self._update_desc(name, **members)
        except DeploymentCancelledError:
            log.info("Endpoint %s was deleted meanwhile", name)

    def delete_endpoint(self, params: dict[str, Any]) -> None:
        """Handle DeleteEndpoint: stops the model workers, then forgets the endpoint."""
        name = params["EndpointName"]
        arn = self._endpoint_arn(name)
        with self.store.lock:
            status = self._record(name)["desc"]["EndpointStatus"]
            if status in IN_PROGRESS:
                raise validation_error(f'Cannot update in-progress endpoint "{arn}".')
            self._update_desc(name, EndpointStatus="Deleting")
        runtime = self.runtime(name)
        if runtime is not None:
            runtime.cancelled.set()
        threading.Thread(target=self._delete, args=(name, runtime), name=f"delete-{name}", daemon=True).start()

    def _delete(self, name: str, runtime: EndpointRuntime | None) -> None:
        if runtime is not None:
            with runtime.lock:
                fleets = [f for f, _ in runtime.routes]
                runtime.routes = []
            self._stop_fleets(fleets)
        with self._lock:
            if self.runtimes.get(name) is runtime:
                self.runtimes.pop(name, None)
        self._deregister_scalable_targets(name)  # before the name is free for a new endpoint
        self.store.delete(ENDPOINTS, name)
        self.service.delete_tags_of(self._endpoint_arn(name))

    # -- weights and capacities ------------------------------------------------------------------

    def update_endpoint_weights_and_capacities(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle UpdateEndpointWeightsAndCapacities: Updating, then InService with the new weights."""
        name = params["EndpointName"]
        arn = self._endpoint_arn(name)
        wanted = params["DesiredWeightsAndCapacities"]
        with self.store.lock:
            record = self._record(name)
            desc = record["desc"]
            if desc["EndpointStatus"] != "InService":
                raise validation_error(f'Cannot update in-progress endpoint "{arn}".')
            known = {v["VariantName"] for v in desc.get("ProductionVariants", [])}
            unknown = [w["VariantName"] for w in wanted if w["VariantName"] not in known]
            if unknown:
                raise validation_error(
                    f'The variant name(s) "[{", ".join(unknown)}]" is/are not present in the endpoint "{arn}".'
                )
            for item in wanted:
                if item.get("DesiredWeight") is None and item.get("DesiredInstanceCount") is None:
                    raise validation_error(
                        f"Variant {item['VariantName']}: give DesiredWeight and/or DesiredInstanceCount."
                    )
            by_name = {w["VariantName"]: w for w in wanted}

            def change(rec: dict[str, Any]) -> None:
                d = rec["desc"]
                d["EndpointStatus"] = "Updating"
                d["LastModifiedTime"] = now()
                for summary in d.get("ProductionVariants", []):
                    item = by_name.get(summary["VariantName"])
                    if item is None:
                        continue
                    if item.get("DesiredWeight") is not None:
                        summary["DesiredWeight"] = float(item["DesiredWeight"])
                    if item.get("DesiredInstanceCount") is not None and "DesiredInstanceCount" in summary:
                        summary["DesiredInstanceCount"] = int(item["DesiredInstanceCount"])

            self.store.update(ENDPOINTS, name, change)
        threading.Thread(target=self._scale, args=(name,), name=f"scale-{name}", daemon=True).start()
        return {"EndpointArn": arn}

    def _scale(self, name: str) -> None:
        time.sleep(self.scale_seconds)
        weights: dict[str, float] = {}

        def change(rec: dict[str, Any]) -> None:
            d = rec["desc"]
            for summary in d.get("ProductionVariants", []):
                summary["CurrentWeight"] = summary.get("DesiredWeight", summary.get("CurrentWeight", 1.0))
                if "DesiredInstanceCount" in summary:
                    summary["CurrentInstanceCount"] = summary["DesiredInstanceCount"]
                weights[summary["VariantName"]] = summary["CurrentWeight"]
            d["EndpointStatus"] = "InService"
            d["LastModifiedTime"] = now()

        try:
            self.store.update(ENDPOINTS, name, change)
        except KeyError:
            return
        runtime = self.runtime(name)
        if runtime is not None:
            with runtime.lock:
                for fleet, _ in runtime.routes:
                    if fleet.name in weights:
                        fleet.variant["InitialVariantWeight"] = weights[fleet.name]
                fleets = [f for f, _ in runtime.routes]
                runtime.routes = _shares([], fleets, 1.0)

    # -- update (blue/green) ---------------------------------------------------------------------

    def update_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle UpdateEndpoint: a blue/green deployment with optional canary/linear shifting and rollback."""
        name = params["EndpointName"]
        arn = self._endpoint_arn(name)
        self._check_alarms_exist(params.get("DeploymentConfig"))
        targets = self._read_scalable_targets(name)
        with self.store.lock:
            record = self._record(name)
            desc = record["desc"]
            status = desc["EndpointStatus"]
            if status in IN_PROGRESS:
                raise validation_error(f'Cannot update in-progress endpoint "{arn}".')
            if status == "Failed":
                raise validation_error(f'Cannot update failed endpoint "{arn}"; a Failed endpoint can only be deleted.')
            green = self._config(params["EndpointConfigName"])
            self._check_scaled_variants(name, desc, green, targets)
            deployment = params.get("DeploymentConfig")
            if deployment is None and params.get("RetainDeploymentConfig"):
                deployment = record.get("deployment_config")
            variants = self._effective_variants(desc, green, params)
            capture = self._effective_capture(name, desc, green, params)
            steps, final_wait, timeout = self._plan(deployment, variants, desc)
            fault = self.service.faults.take_update_fault(name)

            def change(rec: dict[str, Any]) -> None:
                rec["desc"]["EndpointStatus"] = "Updating"
                rec["desc"]["LastModifiedTime"] = now()
                if params.get("DeploymentConfig"):
                    rec["deployment_config"] = params["DeploymentConfig"]

            self.store.update(ENDPOINTS, name, change)
        runtime = self.runtime(name)
        if runtime is None:
            runtime = EndpointRuntime(name)
            with self._lock:
                self.runtimes[name] = runtime
        plan = _Plan(
            green_config=green["EndpointConfigName"],
            variants=variants,
            capture=capture,
            deployment=deployment,
            steps=steps,
            final_wait=final_wait,
            timeout=timeout,
            fault=fault,
        )
        runtime.thread = threading.Thread(target=self._update, args=(runtime, plan), name=f"update-{name}", daemon=True)
        runtime.thread.start()
        return {"EndpointArn": arn}

    def _effective_variants(
        self, desc: dict[str, Any], green: dict[str, Any], params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        variants = [dict(v) for v in green["ProductionVariants"]]
        if not params.get("RetainAllVariantProperties"):
            return variants
        excluded = {e["VariantPropertyType"] for e in params.get("ExcludeRetainedVariantProperties") or []}
        current = {v["VariantName"]: v for v in desc.get("ProductionVariants", [])}
        for variant in variants:
            old = current.get(variant["VariantName"])
            if old is None:
                continue
            if "DesiredWeight" not in excluded and "CurrentWeight" in old:
                variant["InitialVariantWeight"] = old["CurrentWeight"]
            if "DesiredInstanceCount" not in excluded and "CurrentInstanceCount" in old:
                variant["InitialInstanceCount"] = old["CurrentInstanceCount"]
        return variants

    def _effective_capture(
        self, name: str, desc: dict[str, Any], green: dict[str, Any], params: dict[str, Any]
    ) -> dict[str, Any] | None:
        capture = green.get("DataCaptureConfig")
        if not params.get("RetainAllVariantProperties"):
            return capture
        excluded = {e["VariantPropertyType"] for e in params.get("ExcludeRetainedVariantProperties") or []}
        if "DataCaptureConfig" in excluded:
            return capture
        blue_config = self.store.get(CONFIGS, desc.get("EndpointConfigName", ""))
        if blue_config is not None:
            return blue_config["desc"].get("DataCaptureConfig")
        runtime = self.runtime(name)
        if runtime is not None:
            with runtime.lock:
                for fleet, _ in runtime.routes:
                    return fleet.capture
        return capture

    def _plan(
        self, deployment: dict[str, Any] | None, variants: list[dict[str, Any]], desc: dict[str, Any]
    ) -> tuple[list[tuple[float, int, str]], int, int | None]:
        if not deployment or not (deployment.get("BlueGreenUpdatePolicy") or deployment.get("RollingUpdatePolicy")):
            return [(1.0, 0, "full")], 0, None
        if deployment.get("BlueGreenUpdatePolicy") and deployment.get("RollingUpdatePolicy"):
            raise validation_error("Specify either BlueGreenUpdatePolicy or RollingUpdatePolicy, not both.")
        if deployment.get("RollingUpdatePolicy"):
            raise validation_error(
                "The devstack does not emulate RollingUpdatePolicy deployments; use BlueGreenUpdatePolicy "
                "(ALL_AT_ONCE, CANARY or LINEAR)."
            )
        policy = deployment["BlueGreenUpdatePolicy"]
        kind = policy["TrafficRoutingConfiguration"]["Type"]
        if kind in ("CANARY", "LINEAR"):
            current = {v["VariantName"] for v in desc.get("ProductionVariants", [])}
            new = {v["VariantName"] for v in variants}
            if current and current != new:
                raise validation_error(
                    f"{kind} traffic shifting needs the new endpoint configuration to keep the same variant "
                    f"names ({', '.join(sorted(current))}); it has {', '.join(sorted(new))}."
                )
        total = sum(int(v.get("InitialInstanceCount", 1)) for v in variants)
        steps = deployment_steps(policy, total)
        final_wait = int(policy.get("TerminationWaitInSeconds", 0))
        timeout = policy.get("MaximumExecutionTimeoutInSeconds")
        waits = sum(step[1] for step in steps) + final_wait
        if timeout is not None and waits >= timeout:
            raise validation_error(
                f"MaximumExecutionTimeoutInSeconds ({timeout}) must be greater than the total waiting time of "
                f"the deployment ({waits} seconds of WaitIntervalInSeconds and TerminationWaitInSeconds)."
            )
        return steps, final_wait, timeout

    # -- application auto scaling ---------------------------------------------------------------

    def _scalable_targets(self, name: str) -> list[dict[str, Any]]:
        """The endpoint's variants registered with Application Auto Scaling (``ScalableTargets`` entries)."""
        prefix = f"endpoint/{name}/variant/"
        client = self.service.client("application-autoscaling")
        pages = client.get_paginator("describe_scalable_targets").paginate(ServiceNamespace="sagemaker")
        return [t for page in pages for t in page.get("ScalableTargets", []) if t["ResourceId"].startswith(prefix)]

    def _read_scalable_targets(self, name: str) -> list[dict[str, Any]]:
        try:
            return self._scalable_targets(name)
        except Exception as exc:
            raise SageMakerError(
                "InternalFailure",
                f"Cannot read the endpoint's scalable targets from Application Auto Scaling: {exc}",
                500,
            ) from exc

    def _check_scaled_variants(
        self, name: str, desc: dict[str, Any], green: dict[str, Any], targets: list[dict[str, Any]]
    ) -> None:
        """Refuse an update that removes a variant registered for auto scaling or changes its instance type."""
        scaled = {t["ResourceId"].rsplit("/", 1)[-1] for t in targets}
        if not scaled:
            return
        blue_config = self.store.get(CONFIGS, desc.get("EndpointConfigName", ""))
        blue = {v["VariantName"]: v for v in (blue_config["desc"]["ProductionVariants"] if blue_config else [])}
        new = {v["VariantName"]: v for v in green["ProductionVariants"]}
        current = [v["VariantName"] for v in desc.get("ProductionVariants", [])]
        removed = sorted(v for v in current if v in scaled and v not in new)
        retyped = sorted(
            v
            for v in current
            if v in scaled and v in new and v in blue and new[v].get("InstanceType") != blue[v].get("InstanceType")
        )
        problems = []
        if removed:
            problems.append(f"removes the variant(s) {', '.join(removed)}")
        if retyped:
            problems.append(f"changes the instance type of the variant(s) {', '.join(retyped)}")
        if problems:
            raise validation_error(
                f'The update of endpoint "{self._endpoint_arn(name)}" {" and ".join(problems)}, which are registered '
                "with Application Auto Scaling. Deregister them (DeregisterScalableTarget) before the update and "
                "register them again afterwards."
            )

    def _deregister_scalable_targets(self, name: str) -> None:
        """What Application Auto Scaling does when an endpoint is deleted: deregister its variants."""
        try:
            client = self.service.client("application-autoscaling")
            for target in self._scalable_targets(name):
                where = {k: target[k] for k in ("ServiceNamespace", "ResourceId", "ScalableDimension")}
                for policy in client.describe_scaling_policies(**where).get("ScalingPolicies", []):
                    client.delete_scaling_policy(PolicyName=policy["PolicyName"], **where)
                client.deregister_scalable_target(**where)
                log.info("Deregistered scalable target %s of deleted endpoint %s", target["ResourceId"], name)
        except Exception:
            log.warning("Cannot deregister the scalable targets of deleted endpoint %s", name, exc_info=True)

    def _alarm_names(self, deployment: dict[str, Any] | None) -> list[str]:
        if not deployment:
            return []
        alarms = (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms") or []
        return [a["AlarmName"] for a in alarms]

    def _check_alarms_exist(self, deployment: dict[str, Any] | None) -> None:
        names = self._alarm_names(deployment)
        if not names:
            return
        try:
            found = self.service.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
        except Exception as exc:
            raise SageMakerError(
                "InternalFailure", f"Cannot read the auto-rollback alarms from CloudWatch: {exc}", 500
            ) from exc
        missing = sorted(set(names) - {a["AlarmName"] for a in found})
        if missing:
            raise validation_error(
                f"The CloudWatch alarm(s) {', '.join(missing)} in AutoRollbackConfiguration do not exist."
            )
        # a rollback alarm the devstack cannot evaluate would never fire: refuse it rather than deploy unguarded
        blind = [f"{a['AlarmName']} ({why})" for a in found if (why := unsupported_alarm(a)) is not None]
        if blind:
            raise validation_error(
                "The devstack cannot evaluate the auto-rollback alarm(s) " + "; ".join(blind) + " (see "
                "docs/devstack-hosting.md); AWS would accept them."
            )

    def _alarms_in_alarm(self, names: list[str]) -> list[str]:
        if not names:
            return []
        try:
            alarms = self.service.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
        except Exception:
            log.warning("Cannot read the auto-rollback alarms %s from CloudWatch", names)
            return []
        return sorted(a["AlarmName"] for a in alarms if a.get("StateValue") == "ALARM")

    def _set_pending(
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

    def _bake(self, runtime: EndpointRuntime, plan: _Plan, seconds: float) -> str | None:
        """Wait ``seconds`` while watching the alarms and the deadline; return a rollback reason or None."""
        deadline = time.monotonic() + seconds
        while True:
            if runtime.cancelled.is_set() or self._stopping:
                raise DeploymentCancelledError
            alarming = self._alarms_in_alarm(self._alarm_names(plan.deployment))
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

    def _update(self, runtime: EndpointRuntime, plan: _Plan) -> None:
        name = runtime.name
        plan.started = time.monotonic()
        with runtime.lock:
            blue = [f for f, _ in runtime.routes]
        total = sum(int(v.get("InitialInstanceCount", 1)) for v in plan.variants)
        green: list[Fleet] = []
        try:
            self._set_pending(name, plan.green_config, plan.variants, "Creating", self._launch_message(plan.variants))
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
                self._set_pending(name, plan.green_config, plan.variants, "ActivatingTraffic", message, share)
                runtime.set_routes(_shares(blue, green, share))
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
                    self._set_pending(
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
            self._set_pending(
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
                runtime.set_routes(_shares([], blue, 1.0) if blue else [])
            self._stop_fleets(green)
        except Exception as exc:
            log.exception("Updating endpoint %s failed inside the devstack", name)
            self._rollback(runtime, blue, green, plan, f"InternalServerError: {type(exc).__name__}: {exc}"[:1024])
        finally:
            runtime.deploying_config = None

    def _rollback(
        self, runtime: EndpointRuntime, blue: list[Fleet], green: list[Fleet], plan: _Plan, reason: str
    ) -> None:
        log.warning("Endpoint %s: rolling back to the previous configuration: %s", runtime.name, reason)
        runtime.set_routes(_shares([], blue, 1.0) if blue else [])
        self._stop_fleets(green)

        def change(rec: dict[str, Any]) -> None:
            d = rec["desc"]
            d["EndpointStatus"] = "InService"
            d["FailureReason"] = reason[:1024]
            d.pop("PendingDeploymentSummary", None)
            if plan.deployment:
                d["LastDeploymentConfig"] = plan.deployment
            for summary in d.get("ProductionVariants", []):
                summary.pop("VariantStatus", None)
            d["LastModifiedTime"] = now()

        with contextlib.suppress(KeyError):
            self.store.update(ENDPOINTS, runtime.name, change)

    def _end_failed(
        self, runtime: EndpointRuntime, blue: list[Fleet], green: list[Fleet], plan: _Plan, fault: UpdateFault
    ) -> None:
        """End the deployment as an injected ``Failed`` or ``UpdateRollbackFailed`` (see the module docstring)."""
        log.warning("Endpoint %s: the update to %s ends %s (injected)", runtime.name, plan.green_config, fault.status)
        if fault.status == "Failed":
            runtime.set_routes([])
            self._stop_fleets(green + blue)

        def change(rec: dict[str, Any]) -> None:
            d = rec["desc"]
            d["EndpointStatus"] = fault.status
            d["FailureReason"] = fault.reason[:1024]
            d.pop("PendingDeploymentSummary", None)
            if plan.deployment:
                d["LastDeploymentConfig"] = plan.deployment
            for summary in d.get("ProductionVariants", []):
                summary.pop("VariantStatus", None)
            d["LastModifiedTime"] = now()

        with contextlib.suppress(KeyError):
            self.store.update(ENDPOINTS, runtime.name, change)

    def _succeed(self, runtime: EndpointRuntime, blue: list[Fleet], green: list[Fleet], plan: _Plan) -> None:
        runtime.set_routes(_shares([], green, 1.0))
        self._set_pending(
            runtime.name,
            plan.green_config,
            plan.variants,
            "Deleting",
            f"Terminating {sum(f.instance_count for f in blue)} instance(s).",
            1.0,
        )
        self._stop_fleets(blue)

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

    # -- lifecycle -------------------------------------------------------------------------------

    def recover(self) -> None:
        """Settle endpoints a previous service process left mid-operation and restart the serving ones."""
        for record in self.store.values(ENDPOINTS):
            desc = record["desc"]
            name = desc["EndpointName"]
            status = desc["EndpointStatus"]
            if status == "Deleting":
                self.store.delete(ENDPOINTS, name)
                continue
            if status == "Creating":
                self._safe_update(
                    name, EndpointStatus="Failed", FailureReason=RESTART_CREATE_FAILURE, PendingDeploymentSummary=None
                )
                continue
            if status in ("Updating", "RollingBack", "SystemUpdating"):
                self._safe_update(
                    name,
                    EndpointStatus="InService",
                    FailureReason=RESTART_UPDATE_FAILURE,
                    PendingDeploymentSummary=None,
                )
                status = "InService"
            if status == "InService":
                runtime = EndpointRuntime(name, warming=True)
                with self._lock:
                    self.runtimes[name] = runtime
                threading.Thread(target=self._warm, args=(runtime,), name=f"warm-{name}", daemon=True).start()

    def _warm(self, runtime: EndpointRuntime) -> None:
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
            runtime.set_routes(_shares([], fleets, 1.0))
        except (WorkerStartError, DeploymentCancelledError) as exc:
            log.warning("Cannot restart endpoint %s: %s", runtime.name, exc)
            self._safe_update(runtime.name, EndpointStatus="Failed", FailureReason=str(exc)[:1024])
        finally:
            runtime.warming = False

    def shutdown(self) -> None:
        """Stop every deployment and model worker."""
        self._stopping = True
        with self._lock:
            runtimes = list(self.runtimes.values())
        for runtime in runtimes:
            if runtime.thread is not None:
                runtime.thread.join(timeout=15)
            with runtime.lock:
                fleets = [f for f, _ in runtime.routes]
                runtime.routes = []
            self._stop_fleets(fleets)


@dataclass
class _Plan:
    green_config: str
    variants: list[dict[str, Any]]
    capture: dict[str, Any] | None
    deployment: dict[str, Any] | None
    steps: list[tuple[float, int, str]]
    final_wait: int
    timeout: int | None
    started: float = 0.0
    fault: UpdateFault | None = None


__all__ = ["CONFIGS", "ENDPOINTS", "EndpointRuntime", "Fleet", "Hosting", "capturemod", "deployment_steps"]
