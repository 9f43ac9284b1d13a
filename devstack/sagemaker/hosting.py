"""Hosting: the endpoint config and endpoint actions (CreateEndpointConfig, DescribeEndpointConfig,
ListEndpointConfigs, DeleteEndpointConfig, CreateEndpoint, DescribeEndpoint, ListEndpoints, DeleteEndpoint,
UpdateEndpoint, UpdateEndpointWeightsAndCapacities). Models (CreateModel, ...) belong to
:mod:`devstack.sagemaker.registry`.

The actions check the request and the endpoint's state and record it; the work they start (model workers,
blue/green deployments with guardrails and rollback) is :mod:`devstack.sagemaker.deployments`' engine.

Application Auto Scaling is enforced as SageMaker enforces it ("Update endpoints that use auto scaling" and
"Delete endpoints configured for auto scaling" in the SageMaker developer guide): ``UpdateEndpoint`` is
refused (``ValidationException``) when the new config removes a variant that is registered as a scalable
target, or changes such a variant's instance type; changing its model is allowed. ``DeleteEndpoint``
deregisters the endpoint's scalable targets (and deletes their scaling policies), as Application Auto
Scaling does on AWS. The targets are read from the local AWS endpoint (moto).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from devstack.sagemaker import capture as capturemod
from devstack.sagemaker.alarms import unsupported as unsupported_alarm
from devstack.sagemaker.common import Listing, descriptions, echoed_members, now, pick, require
from devstack.sagemaker.deployments import (
    CONFIGS,
    ENDPOINTS,
    DeploymentEngine,
    DeploymentPlan,
    EndpointRuntime,
    Fleet,
    deployment_steps,
    traffic_shares,
)
from devstack.sagemaker.endpoint_events import EndpointEventsStore
from devstack.sagemaker.errors import SageMakerError, validation_error

if TYPE_CHECKING:
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

IN_PROGRESS = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}

RESTART_CREATE_FAILURE = (
    "InternalServerError: The devstack SageMaker service stopped while the endpoint was being created."
)
RESTART_UPDATE_FAILURE = (
    "InternalServerError: The devstack SageMaker service stopped during the update; the endpoint stays on "
    "its previous endpoint configuration."
)


CONFIG_LISTING = Listing(
    "EndpointConfigs", "EndpointConfigName", ("EndpointConfigName", "EndpointConfigArn", "CreationTime")
)
ENDPOINT_LISTING = Listing(
    "Endpoints",
    "EndpointName",
    ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus"),
    status_key="EndpointStatus",
)


class Hosting:
    """The hosting actions; the endpoints' serving state and deployment threads are :attr:`engine`'s.

    :param service: the owning service.
    """

    def runtime(self, name: str) -> EndpointRuntime | None:
        """Return the serving state of an endpoint, or None."""
        return self.engine.runtime(name)

    def __init__(self, service: ServiceApi) -> None:
        self.service = service
        #: endpoint writes go through it, so each deployment state change sends its event
        self.store = EndpointEventsStore(service)
        #: the endpoints' serving state and the deployment threads
        self.engine = DeploymentEngine(service, self.store)
        #: seconds an UpdateEndpointWeightsAndCapacities call keeps the endpoint Updating
        self.scale_seconds = 0.5
        self._config_echo = echoed_members(service, "CreateEndpointConfig", "DescribeEndpointConfig")

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
        self.service.on_shutdown(self.engine.shutdown)

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
        missing = validation_error(f'Could not find endpoint configuration "{self._config_arn(name)}".')
        return require(self.store.get(CONFIGS, name), missing)["desc"]

    def describe_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle DescribeEndpointConfig."""
        return self._config(params["EndpointConfigName"])

    def list_endpoint_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListEndpointConfigs (default order: newest first)."""
        return CONFIG_LISTING.answer(descriptions(self.store, CONFIGS), params)

    def delete_endpoint_config(self, params: dict[str, Any]) -> None:
        """Handle DeleteEndpointConfig (an endpoint using it keeps serving, as on AWS)."""
        name = params["EndpointConfigName"]
        if not self.store.delete(CONFIGS, name):
            raise validation_error(f'Could not find endpoint configuration "{self._config_arn(name)}".')
        self.service.delete_tags_of(self._config_arn(name))

    # -- endpoints: read -------------------------------------------------------------------------

    def _record(self, name: str) -> dict[str, Any]:
        return require(
            self.store.get(ENDPOINTS, name), validation_error(f'Could not find endpoint "{self._endpoint_arn(name)}".')
        )

    def describe_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle DescribeEndpoint."""
        return self._record(params["EndpointName"])["desc"]

    def list_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListEndpoints (default order: newest first)."""
        return ENDPOINT_LISTING.answer(descriptions(self.store, ENDPOINTS), params)

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
            self.engine.track(runtime)
        self.service.set_tags(arn, params.get("Tags"))
        self.engine.set_pending(
            name, config["EndpointConfigName"], variants, "Creating", self.engine.launch_message(variants)
        )
        runtime.thread = threading.Thread(
            target=self.engine.create, args=(runtime, config, variants), name=f"endpoint-{name}", daemon=True
        )
        runtime.thread.start()
        return {"EndpointArn": arn}

    def delete_endpoint(self, params: dict[str, Any]) -> None:
        """Handle DeleteEndpoint: stops the model workers, then forgets the endpoint."""
        name = params["EndpointName"]
        arn = self._endpoint_arn(name)
        with self.store.lock:
            status = self._record(name)["desc"]["EndpointStatus"]
            if status in IN_PROGRESS:
                raise validation_error(f'Cannot update in-progress endpoint "{arn}".')
            self.engine.update_desc(name, EndpointStatus="Deleting")
        runtime = self.engine.runtime(name)
        if runtime is not None:
            runtime.cancelled.set()
        threading.Thread(target=self._delete, args=(name, runtime), name=f"delete-{name}", daemon=True).start()

    def _delete(self, name: str, runtime: EndpointRuntime | None) -> None:
        if runtime is not None:
            with runtime.lock:
                fleets = [f for f, _ in runtime.routes]
                runtime.routes = []
            self.engine.stop_fleets(fleets)
        self.engine.forget(name, runtime)
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
        runtime = self.engine.runtime(name)
        if runtime is not None:
            with runtime.lock:
                for fleet, _ in runtime.routes:
                    if fleet.name in weights:
                        fleet.variant["InitialVariantWeight"] = weights[fleet.name]
                fleets = [f for f, _ in runtime.routes]
                runtime.routes = traffic_shares([], fleets, 1.0)

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
        runtime = self.engine.runtime(name)
        if runtime is None:
            runtime = EndpointRuntime(name)
            self.engine.track(runtime)
        plan = DeploymentPlan(
            green_config=green["EndpointConfigName"],
            variants=variants,
            capture=capture,
            deployment=deployment,
            steps=steps,
            final_wait=final_wait,
            timeout=timeout,
            fault=fault,
        )
        runtime.thread = threading.Thread(
            target=self.engine.update, args=(runtime, plan), name=f"update-{name}", daemon=True
        )
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
        runtime = self.engine.runtime(name)
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

    def _check_alarms_exist(self, deployment: dict[str, Any] | None) -> None:
        names = self.engine.alarm_names(deployment)
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
                self.engine.safe_update(
                    name, EndpointStatus="Failed", FailureReason=RESTART_CREATE_FAILURE, PendingDeploymentSummary=None
                )
                continue
            if status in ("Updating", "RollingBack", "SystemUpdating"):
                self.engine.safe_update(
                    name,
                    EndpointStatus="InService",
                    FailureReason=RESTART_UPDATE_FAILURE,
                    PendingDeploymentSummary=None,
                )
                status = "InService"
            if status == "InService":
                runtime = EndpointRuntime(name, warming=True)
                self.engine.track(runtime)
                threading.Thread(target=self.engine.warm, args=(runtime,), name=f"warm-{name}", daemon=True).start()


__all__ = ["CONFIGS", "ENDPOINTS", "EndpointRuntime", "Fleet", "Hosting", "capturemod", "deployment_steps"]
