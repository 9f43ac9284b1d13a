"""Hyperparameter tuning jobs: Create/Describe/List/Stop and ListTrainingJobsForHyperParameterTuningJob.

A tuning job runs real training jobs (see :mod:`devstack.sagemaker.training`), at most
``MaxParallelTrainingJobs`` at a time, over the configurations of :mod:`devstack.sagemaker.search`, reads
each child's objective metric from its ``FinalMetricDataList`` and keeps the best child.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from devstack.sagemaker import search
from devstack.sagemaker.common import (
    Listing,
    descriptions,
    now,
    page_response,
    pick,
    require,
    sort_records,
    stop_wanted,
)
from devstack.sagemaker.errors import SageMakerError, resource_in_use, resource_not_found, validation_error
from devstack.sagemaker.jobs import RESTART_FAILURE
from devstack.sagemaker.training import KIND as TRAINING_KIND
from devstack.sagemaker.validation import validate_request

if TYPE_CHECKING:
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

KIND = "tuning-jobs"
POLL_SECONDS = 0.2

#: TrainingJobDefinition members copied into each child's CreateTrainingJob request.
_CHILD_MEMBERS = (
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "VpcConfig",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "CheckpointConfig",
    "Environment",
    "RetryStrategy",
)


_SUMMARY_FIELDS = (
    "HyperParameterTuningJobName",
    "HyperParameterTuningJobArn",
    "HyperParameterTuningJobStatus",
    "CreationTime",
    "HyperParameterTuningEndTime",
    "LastModifiedTime",
    "TrainingJobStatusCounters",
    "ObjectiveStatusCounters",
)


def _summary(desc: dict[str, Any]) -> dict[str, Any]:
    config = desc["HyperParameterTuningJobConfig"]
    return {**pick(desc, _SUMMARY_FIELDS), "Strategy": config["Strategy"], "ResourceLimits": config["ResourceLimits"]}


LISTING = Listing(
    "HyperParameterTuningJobSummaries",
    "HyperParameterTuningJobName",
    _summary,
    status_key="HyperParameterTuningJobStatus",
    default_by="Name",
    default_order="Ascending",
)


class TuningJobs:
    """The tuning-job actions and their workers.

    :param service: the owning service.
    """

    def __init__(self, service: ServiceApi) -> None:
        self.service = service
        self._threads: dict[str, threading.Thread] = {}
        self._stops: dict[str, threading.Event] = {}
        self._shutting_down = threading.Event()

    def register(self) -> None:
        """Register the actions with the service."""
        self.service.register_action("CreateHyperParameterTuningJob", self.create_tuning_job)
        self.service.register_action("DescribeHyperParameterTuningJob", self.describe_tuning_job)
        self.service.register_action("ListHyperParameterTuningJobs", self.list_tuning_jobs)
        self.service.register_action("StopHyperParameterTuningJob", self.stop_tuning_job)
        self.service.register_action(
            "ListTrainingJobsForHyperParameterTuningJob", self.list_training_jobs_for_tuning_job
        )

    # -- create ----------------------------------------------------------------------------------

    def _definition(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("TrainingJobDefinition"):
            return params["TrainingJobDefinition"]
        definitions = params.get("TrainingJobDefinitions") or []
        if len(definitions) == 1:
            return definitions[0]
        if not definitions:
            raise validation_error("Either TrainingJobDefinition or TrainingJobDefinitions must be provided.")
        raise validation_error(
            "The devstack runs tuning jobs with a single training job definition; "
            f"got {len(definitions)} TrainingJobDefinitions."
        )

    def _plan(self, name: str, config: dict[str, Any], definition: dict[str, Any]) -> list[dict[str, str]]:
        strategy = config["Strategy"]
        ranges_spec = config.get("ParameterRanges") or definition.get("HyperParameterRanges")
        try:
            ranges = search.parse_ranges(ranges_spec)
            limits = config["ResourceLimits"]
            if strategy == "Grid":
                size = search.grid_size(ranges)
                if size == 0:
                    raise search.RangeError("Grid search needs at least one categorical parameter range.")
                wanted = limits.get("MaxNumberOfTrainingJobs")
                if wanted is not None and wanted != size:
                    raise search.RangeError(
                        f"MaxNumberOfTrainingJobs ({wanted}) must equal the number of grid combinations ({size})."
                    )
                return search.grid_configurations(ranges)
        except search.RangeError as exc:
            raise validation_error(str(exc)) from exc
        count = limits.get("MaxNumberOfTrainingJobs")
        if count is None:
            raise validation_error(f"MaxNumberOfTrainingJobs is required for the {strategy} strategy.")
        if strategy == "Hyperband" and config.get("TrainingJobEarlyStoppingType", "Off") != "Off":
            raise validation_error("TrainingJobEarlyStoppingType must be Off for the Hyperband strategy.")
        return search.random_configurations(ranges, count, search.seed_for(name))

    def _objective(self, config: dict[str, Any], definition: dict[str, Any]) -> dict[str, str]:
        objective = config.get("HyperParameterTuningJobObjective") or definition.get("TuningObjective")
        if not objective:
            raise validation_error("HyperParameterTuningJobObjective is required.")
        names = [m["Name"] for m in definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])]
        if objective["MetricName"] not in names:
            raise validation_error(
                f"The objective metric {objective['MetricName']} is not defined in "
                f"AlgorithmSpecification.MetricDefinitions ({names})."
            )
        return objective

    def create_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle CreateHyperParameterTuningJob."""
        name = params["HyperParameterTuningJobName"]
        arn = self.service.arn("hyper-parameter-tuning-job", name.lower())
        config = params["HyperParameterTuningJobConfig"]
        definition = self._definition(params)
        objective = self._objective(config, definition)
        plan = self._plan(name, config, definition)
        if params.get("WarmStartConfig"):
            raise validation_error("The devstack does not support WarmStartConfig.")
        probe = self._child_request(name, definition, objective, plan[0], 1) if plan else None
        if probe is not None:
            validate_request(self.service.operation("CreateTrainingJob").input_shape, probe)
            self.service.training.check_channels(probe)
        created = now()
        desc: dict[str, Any] = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": arn,
            "HyperParameterTuningJobConfig": config,
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": created,
            "LastModifiedTime": created,
            "TrainingJobStatusCounters": _zero_training_counters(),
            "ObjectiveStatusCounters": {"Succeeded": 0, "Pending": 0, "Failed": 0},
        }
        if params.get("TrainingJobDefinition"):
            desc["TrainingJobDefinition"] = params["TrainingJobDefinition"]
        if params.get("TrainingJobDefinitions"):
            desc["TrainingJobDefinitions"] = params["TrainingJobDefinitions"]
        if params.get("Autotune"):
            desc["Autotune"] = params["Autotune"]
        record = {"desc": desc, "plan": plan, "objective": objective, "children": []}
        if not self.service.store.insert_new(KIND, name, record):
            raise resource_in_use(
                f"A hyperparameter tuning job with the name, {name}, already exists. Choose a different name."
            )
        self.service.set_tags(arn, params.get("Tags"))
        stop = self._stops[name] = threading.Event()
        thread = threading.Thread(target=self._run, args=(name, stop), name=f"tune-{name}", daemon=True)
        self._threads[name] = thread
        thread.start()
        return {"HyperParameterTuningJobArn": arn}

    def _child_request(
        self,
        name: str,
        definition: dict[str, Any],
        objective: dict[str, str],
        tuned: dict[str, str],
        index: int,
    ) -> dict[str, Any]:
        spec = definition["AlgorithmSpecification"]
        algorithm = pick(spec, ["TrainingImage", "AlgorithmName", "TrainingInputMode", "MetricDefinitions"])
        request: dict[str, Any] = pick(definition, _CHILD_MEMBERS)
        request.update(
            {
                "TrainingJobName": search.child_job_name(name, index),
                "AlgorithmSpecification": algorithm,
                "HyperParameters": {
                    **definition.get("StaticHyperParameters", {}),
                    **tuned,
                    "_tuning_objective_metric": objective["MetricName"],
                },
            }
        )
        return request

    # -- describe / list -------------------------------------------------------------------------

    def _record(self, name: str) -> dict[str, Any]:
        missing = resource_not_found(f"Amazon SageMaker can't find a tuning job called {name}. Type another name.")
        return require(self.service.store.get(KIND, name), missing)

    def describe_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle DescribeHyperParameterTuningJob (unknown names: ResourceNotFound)."""
        return self._record(params["HyperParameterTuningJobName"])["desc"]

    def list_tuning_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListHyperParameterTuningJobs."""
        return LISTING.answer(descriptions(self.service.store, KIND), params)

    def list_training_jobs_for_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListTrainingJobsForHyperParameterTuningJob."""
        record = self._record(params["HyperParameterTuningJobName"])
        summaries = self._summaries(record)
        if params.get("StatusEquals"):
            summaries = [s for s in summaries if s["TrainingJobStatus"] == params["StatusEquals"]]
        by = params.get("SortBy") or "Name"
        if by == "FinalObjectiveMetricValue":
            summaries = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
        keys = {
            "Name": lambda s: s["TrainingJobName"],
            "CreationTime": lambda s: s["CreationTime"],
            "Status": lambda s: s["TrainingJobStatus"],
            "FinalObjectiveMetricValue": lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
        }
        summaries = sort_records(summaries, params, keys, "Name", "Ascending")
        return page_response(summaries, params, "TrainingJobSummaries")

    def _summaries(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        name = record["desc"]["HyperParameterTuningJobName"]
        objective = record["objective"]
        out = []
        for child in record["children"]:
            training = self.service.store.get(TRAINING_KIND, child["name"])
            if training is None:
                continue
            out.append(_summary(name, training["desc"], child["tuned"], objective))
        return out

    # -- stop ------------------------------------------------------------------------------------

    def stop_tuning_job(self, params: dict[str, Any]) -> None:
        """Handle StopHyperParameterTuningJob: stops launching and stops the running children."""
        name = params["HyperParameterTuningJobName"]
        with self.service.store.lock:
            if not stop_wanted(self._record(name)["desc"]["HyperParameterTuningJobStatus"], "tuning"):
                return
            self._update(name, HyperParameterTuningJobStatus="Stopping")
        stop = self._stops.get(name)
        if stop is not None:
            stop.set()

    # -- state -----------------------------------------------------------------------------------

    def _update(self, name: str, **members: Any) -> None:
        def change(record: dict[str, Any]) -> None:
            record["desc"].update(members)
            record["desc"]["LastModifiedTime"] = now()

        self.service.store.update(KIND, name, change)

    def recover(self) -> None:
        """Fail tuning jobs that were running when the service stopped."""
        for record in self.service.store.values(KIND):
            desc = record["desc"]
            if desc["HyperParameterTuningJobStatus"] in ("InProgress", "Stopping"):
                self._refresh(desc["HyperParameterTuningJobName"])
                self._update(
                    desc["HyperParameterTuningJobName"],
                    HyperParameterTuningJobStatus="Failed",
                    HyperParameterTuningEndTime=now(),
                    FailureReason=RESTART_FAILURE,
                )

    def shutdown(self) -> None:
        """Stop every running tuning job (they end Failed: the service stopped)."""
        self._shutting_down.set()
        for stop in self._stops.values():
            stop.set()
        for thread in list(self._threads.values()):
            thread.join(timeout=30)

    # -- worker ----------------------------------------------------------------------------------

    def _refresh(self, name: str) -> dict[str, Any]:
        """Recompute counters and the best job from the children; return the updated record."""
        record = self.service.store.get(KIND, name)
        assert record is not None
        summaries = self._summaries(record)
        counters = _zero_training_counters()
        objective_counters = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        for summary in summaries:
            status = summary["TrainingJobStatus"]
            if status in ("InProgress", "Stopping"):
                counters["InProgress"] += 1
            elif status == "Completed":
                counters["Completed"] += 1
            elif status == "Stopped":
                counters["Stopped"] += 1
            elif summary.get("FailureReason", "").startswith("InternalServerError"):
                counters["RetryableError"] += 1
            else:
                counters["NonRetryableError"] += 1
            objective_counters[summary["ObjectiveStatus"]] += 1
        scored = [s for s in summaries if s["ObjectiveStatus"] == "Succeeded"]
        members: dict[str, Any] = {
            "TrainingJobStatusCounters": counters,
            "ObjectiveStatusCounters": objective_counters,
        }
        if scored:
            maximize = record["objective"]["Type"] == "Maximize"

            def score(summary: dict[str, Any]) -> float:
                value = summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
                return -value if maximize else value

            members["BestTrainingJob"] = min(scored, key=lambda s: (score(s), s["CreationTime"]))
        if any(record["desc"].get(key) != value for key, value in members.items()):
            self._update(name, **members)
            record["desc"].update(members)
        return record

    def _run(self, name: str, stop: threading.Event) -> None:
        try:
            self._search(name, stop)
        except Exception as exc:
            log.exception("Tuning job %s failed inside the devstack", name)
            self._update(
                name,
                HyperParameterTuningJobStatus="Failed",
                HyperParameterTuningEndTime=now(),
                FailureReason=f"InternalServerError: {type(exc).__name__}: {exc}"[:1024],
            )
        finally:
            self._threads.pop(name, None)
            self._stops.pop(name, None)

    def _search(self, name: str, stop: threading.Event) -> None:
        record = self.service.store.get(KIND, name)
        assert record is not None
        desc = record["desc"]
        config = desc["HyperParameterTuningJobConfig"]
        definition = desc.get("TrainingJobDefinition") or desc["TrainingJobDefinitions"][0]
        objective = record["objective"]
        plan: list[dict[str, str]] = record["plan"]
        limits = config["ResourceLimits"]
        parallel = limits["MaxParallelTrainingJobs"]
        max_runtime = limits.get("MaxRuntimeInSeconds")
        target = (config.get("TuningJobCompletionCriteria") or {}).get("TargetObjectiveMetricValue")
        started = time.monotonic()
        launched = len(record["children"])
        reason_done: str | None = None
        while True:
            record = self._refresh(name)
            counters = record["desc"]["TrainingJobStatusCounters"]
            running = counters["InProgress"]
            best = record["desc"].get("BestTrainingJob")
            if reason_done is None:
                if stop.is_set():
                    reason_done = "stopped"
                elif max_runtime and time.monotonic() - started > max_runtime:
                    reason_done = "max-runtime"
                elif target is not None and best and _reached(best, objective, target):
                    reason_done = "target"
                if reason_done in ("stopped", "max-runtime"):
                    for child in record["children"]:
                        with contextlib.suppress(SageMakerError):
                            self.service.training.stop(child["name"])
            if reason_done is None and launched < len(plan) and running < parallel:
                index = launched + 1
                tuned = plan[launched]
                request = self._child_request(name, definition, objective, tuned, index)
                arn = self.service.arn("hyper-parameter-tuning-job", name.lower())
                # "Tags that you specify for the tuning job are also added to all training jobs that the tuning
                # job launches" (CreateHyperParameterTuningJob, Tags)
                if tags := self.service.tags_for(arn):
                    request["Tags"] = tags

                def add_child(rec: dict[str, Any], child: str = request["TrainingJobName"], hp: Any = tuned) -> None:
                    rec["children"].append({"name": child, "tuned": hp})

                self.service.store.update(KIND, name, add_child)
                try:
                    self.service.training.create(request, tuning_job_arn=arn)
                except SageMakerError as exc:
                    self.service.store.update(KIND, name, lambda rec: rec["children"].pop())
                    raise RuntimeError(f"cannot create training job {request['TrainingJobName']}: {exc}") from exc
                launched += 1
                continue
            if running == 0 and (reason_done is not None or launched >= len(plan)):
                break
            time.sleep(POLL_SECONDS)
        self._complete(name, reason_done)

    def _complete(self, name: str, reason_done: str | None) -> None:
        record = self._refresh(name)
        desc = record["desc"]
        end = now()
        members: dict[str, Any] = {
            "HyperParameterTuningEndTime": end,
            "ConsumedResources": {"RuntimeInSeconds": max(1, round(end - desc["CreationTime"]))},
        }
        if self._shutting_down.is_set() and reason_done == "stopped":
            members.update(HyperParameterTuningJobStatus="Failed", FailureReason=RESTART_FAILURE)
        elif reason_done == "stopped":
            members["HyperParameterTuningJobStatus"] = "Stopped"
        elif desc["TrainingJobStatusCounters"]["Completed"] > 0:
            members["HyperParameterTuningJobStatus"] = "Completed"
        else:
            attempts = len(record["children"])
            members.update(
                HyperParameterTuningJobStatus="Failed",
                FailureReason=(
                    f"No training job succeeded after {attempts} attempts. Please take a look at the training "
                    "job failures to get more details."
                ),
            )
        self._update(name, **members)


def _zero_training_counters() -> dict[str, int]:
    return {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}


def _reached(best: dict[str, Any], objective: dict[str, str], target: float) -> bool:
    value = best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    return value >= target if objective["Type"] == "Maximize" else value <= target


def _summary(
    tuning_name: str, training: dict[str, Any], tuned: dict[str, str], objective: dict[str, str]
) -> dict[str, Any]:
    summary = pick(
        training,
        [
            "TrainingJobName",
            "TrainingJobArn",
            "CreationTime",
            "TrainingStartTime",
            "TrainingEndTime",
            "TrainingJobStatus",
            "FailureReason",
        ],
    )
    summary["TuningJobName"] = tuning_name
    summary["TunedHyperParameters"] = tuned
    value = next(
        (m["Value"] for m in training.get("FinalMetricDataList", []) if m["MetricName"] == objective["MetricName"]),
        None,
    )
    status = training["TrainingJobStatus"]
    if value is not None and status == "Completed":
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": objective["Type"],
            "MetricName": objective["MetricName"],
            "Value": value,
        }
        summary["ObjectiveStatus"] = "Succeeded"
    elif status in ("InProgress", "Stopping"):
        summary["ObjectiveStatus"] = "Pending"
    else:
        summary["ObjectiveStatus"] = "Failed"
    return summary
