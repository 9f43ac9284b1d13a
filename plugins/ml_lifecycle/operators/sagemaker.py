"""SageMaker job operators that re-attach to their run's job instead of starting duplicates.

They subclass the Amazon provider's ``SageMakerProcessingOperator`` / ``SageMakerTrainingOperator`` /
``SageMakerTuningOperator`` (same hook, config pre-processing, trigger and template fields) and change three
things:

1. **The request comes from the builders.** The operator renders its templated inputs, derives the run's
   :class:`~ml_lifecycle.naming.RunPlan` and builds the exact ``Create*`` request
   (:mod:`ml_lifecycle.builders`); the rendered ``config`` field shows it in the UI.
2. **Retries re-attach.** Job names are deterministic per run (``<prefix>-<kind>-<date>-<run hash>``). Before
   creating anything the operator looks for this run's jobs (the base name and the ``-r<n>`` names of earlier
   tries). If the newest one is ``InProgress``/``Stopping`` it waits for it again; if it is ``Completed`` it
   returns its result; only if it ``Failed``/``Stopped`` (or none exists) is a new job created, named with the
   try number. A worker killed mid-job therefore never leaves an orphaned duplicate behind, and two
   executions of the task racing to create the same job share it (SageMaker's ``ResourceInUse`` answer to
   the second ``Create*`` means the job exists: it is joined, not an error).
3. **Bounded, deferrable waits and clear failures.** Waiting happens in the triggerer (``SageMakerTrigger``)
   with ``check_interval`` x ``max_attempts`` from config and a matching deferral timeout; a failed job
   fails the task with SageMaker's ``FailureReason``; a wait that gives up says the job is still running and
   that a retry re-attaches.

Each returns a small JSON dict (job name/ARN, output URIs, model artefact, metrics), never the full
describe response.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerProcessingOperator,
    SageMakerTrainingOperator,
    SageMakerTuningOperator,
)
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from airflow.sdk import BaseOperator

from ml_lifecycle.links import (
    SageMakerProcessingJobLink,
    SageMakerTrainingJobLink,
    SageMakerTuningJobLink,
    persist_link,
)
from ml_lifecycle.operators.base import (
    JOB_COMPLETED,
    JOB_FAILED,
    aws_connection,
    describe_or_none,
    failure_reason,
    is_in_use,
)
from ml_lifecycle.operators.jobs import (
    cache_job_key,
    cache_note_job,
    cache_remember,
    cache_reuse,
    find_attempt,
    s3_client,
    try_number,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ml_lifecycle.builders import TrainingInputs
    from ml_lifecycle.config import Config
    from ml_lifecycle.naming import RunPlan

#: how far past the current try number earlier jobs of the run are looked for
_MAX_EXTRA_TRIES = 20


def _json_or_value(value: Any) -> Any:
    """Decode a templated JSON string (``{{ params.x | tojson }}``); other values pass through."""
    if isinstance(value, str):
        text = value.strip()
        if not text or text == "None":
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value
    return value


def _optional_int(name: str, value: Any) -> int | None:
    value = _json_or_value(value)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AirflowException(f"{name} must be an integer, got {value!r}") from None


def _metric_definitions() -> list[dict[str, str]]:
    from ml_lifecycle.builders import load_metric_definitions
    from ml_lifecycle.config import include_dir

    return load_metric_definitions(include_dir() / "code" / "training" / "metric_definitions.json")


class _ReattachingJobMixin:
    """Shared flow of the job operators; concrete classes set the ``_job_*`` class attributes."""

    #: naming kind (``RunPlan.job_name``), trigger job type, request name key, describe status key
    _job_kind: ClassVar[str]
    _job_type: ClassVar[str]
    _name_key: ClassVar[str]
    _status_key: ClassVar[str]
    _arn_key: ClassVar[str]
    _link: ClassVar[type]

    #: after execution, store the request actually sent as the rendered ``config``
    overwrite_rtif_after_execution = True

    # ------------------------------------------------------------------------------- hooks for subclasses

    def build_request(self, cfg: Config, plan: RunPlan, context: Context, try_number: int) -> dict[str, Any]:
        raise NotImplementedError

    def summarize(self, description: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _describe(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def _create(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ the flow

    def _plan(self, context: Context) -> tuple[Config, RunPlan]:
        from ml_lifecycle.config import load_config
        from ml_lifecycle.naming import RunPlan

        cfg = load_config()
        return cfg, RunPlan.from_context(context, cfg)

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]
        if not self.config:  # type: ignore[attr-defined]
            cfg, plan = self._plan(context)
            # the first try's request, so "Rendered Template" shows what will be sent
            self.config = self.build_request(cfg, plan, context, 1)

    def describe_or_none(self, name: str) -> dict[str, Any] | None:
        return describe_or_none(self._describe, name=name)

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.cache import CacheError, force_requested

        cfg, plan = self._plan(context)
        try:
            force = force_requested(context.get("params"))
        except CacheError as exc:
            raise AirflowException(str(exc)) from None
        attempt = find_attempt(
            self.describe_or_none,
            lambda number: plan.job_name(self._job_kind, number),
            self._status_key,
            try_number(context),
            scan_past=_MAX_EXTRA_TRIES,
        )
        name, description = attempt.name, attempt.description
        if description is not None:
            self.log.info(  # type: ignore[attr-defined]
                "Re-attaching to %s job %s (status %s, created by try %d) instead of starting a new one",
                self._job_kind,
                name,
                description[self._status_key],
                attempt.number,
            )
            # the request as that try sent it, for the rendered "config" field
            self.config = self.build_request(cfg, plan, context, attempt.number)
        else:
            cache_key = self._cache_key(cfg, plan, context)
            if force:
                self.log.info("Step cache bypassed: the run's force param is true")  # type: ignore[attr-defined]
            elif cache_key is not None and (reused := self._reuse(context, cfg, plan, cache_key)) is not None:
                return reused
            if attempt.previous is not None:
                self.log.warning(  # type: ignore[attr-defined]
                    "Previous %s job %s ended %s (%s); starting %s",
                    self._job_kind,
                    attempt.previous[0],
                    attempt.previous[1][self._status_key],
                    failure_reason(attempt.previous[1]),
                    name,
                )
            self.config = self.build_request(cfg, plan, context, attempt.number)
            self.preprocess_config()  # type: ignore[attr-defined]
            name = self.config[self._name_key]
            if cache_key is not None:
                self._note_key(cfg, plan, name, cache_key)
            self.log.info("Creating SageMaker %s job %s", self._job_kind, name)  # type: ignore[attr-defined]
            self._create_or_join(name)
            description = self._describe(name)
        self._persist_link(context, name)
        return self._finish_or_defer(context, name, description)

    # ------------------------------------------------------------------------------------------ step cache

    def cache_datasets(self, client: Any) -> dict[str, str] | None:
        """Input name -> content digest of the datasets the job reads by a URI that does not name their content.

        ``None`` makes the step uncacheable (a dataset without a digest). Job outputs and published code are
        named by their producer or content and are part of the request; most steps have no such dataset.

        :param client: S3 client
        """
        return {}

    def cache_outputs(self, result: dict[str, Any]) -> list[str]:
        """The S3 outputs of a result that a reuse needs (each checked before reusing)."""
        raise NotImplementedError

    def _cache_key(self, cfg: Config, plan: RunPlan, context: Context) -> str | None:
        """The step's cache key (:func:`ml_lifecycle.cache.cache_key`), or ``None`` when it cannot be cached."""
        from ml_lifecycle.cache import cache_key

        try:
            datasets = self.cache_datasets(s3_client(self))  # type: ignore[arg-type]
            if datasets is None:
                self.log.info("Step cache: %s reads a dataset without a content digest; not cached", self._job_kind)  # type: ignore[attr-defined]
                return None
            return cache_key(
                dag_id=plan.dag_id,
                step=self._job_kind,
                window_start=plan.window.start.isoformat(),
                window_end=plan.window.end.isoformat(),
                request=self.build_request(cfg, plan, context, 1),
                datasets=datasets,
            )
        except Exception as exc:  # the cache is an optimisation: the step runs without it
            self.log.warning("Step cache unavailable for %s (%s); running the step", self._job_kind, exc)  # type: ignore[attr-defined]
            return None

    def _reuse(self, context: Context, cfg: Config, plan: RunPlan, key: str) -> dict[str, Any] | None:
        """The result of a completed step with ``key`` whose outputs exist, marked as reused; else ``None``."""
        try:
            found = cache_reuse(self, s3_client(self), cfg, dag_id=plan.dag_id, step=self._job_kind, key=key)  # type: ignore[arg-type]
        except Exception as exc:
            self.log.warning("Step cache unavailable for %s (%s); running the step", self._job_kind, exc)  # type: ignore[attr-defined]
            return None
        if found is None:
            return None
        record, uri = found
        self.config = self.build_request(cfg, plan, context, 1)
        self._persist_link(context, record.job_name)
        return {
            **record.result,
            "cache": {
                "reused": True,
                "key": key,
                "step": self._job_kind,
                "source_run_id": record.run_id,
                "source_job_name": record.job_name,
                "record_uri": uri,
            },
        }

    def _note_key(self, cfg: Config, plan: RunPlan, name: str, key: str) -> None:
        try:
            cache_note_job(s3_client(self), cfg, dag_id=plan.dag_id, step=self._job_kind, job_name=name, key=key)  # type: ignore[arg-type]
        except Exception as exc:  # the job runs anyway; only its record is lost
            self.log.warning("Step cache: could not note the key of %s (%s); it will not be recorded", name, exc)  # type: ignore[attr-defined]

    def _completed(self, context: Context, description: dict[str, Any]) -> dict[str, Any]:
        """The completed job's result, recorded in the step cache under the key noted when it was created."""
        result = self.summarize(description)
        record = cache_key = None
        cfg, plan = self._plan(context)
        name = description[self._name_key]
        try:
            cache_key = cache_job_key(s3_client(self), cfg, dag_id=plan.dag_id, step=self._job_kind, job_name=name)  # type: ignore[arg-type]
        except Exception as exc:
            self.log.warning("Step cache: could not read the key of %s (%s); not recording it", name, exc)  # type: ignore[attr-defined]
        if cache_key is None:
            self.log.info("Step cache: no key noted for %s job %s; not recording it", self._job_kind, name)  # type: ignore[attr-defined]
        else:
            record = cache_remember(
                self,
                s3_client(self),  # type: ignore[arg-type]
                cfg,
                dag_id=plan.dag_id,
                run_id=plan.run_id,
                step=self._job_kind,
                key=cache_key,
                job_name=description[self._name_key],
                result=result,
                outputs=self.cache_outputs(result),
            )
        return {**result, "cache": {"reused": False, "key": cache_key, "step": self._job_kind, "record_uri": record}}

    def _create_or_join(self, name: str) -> None:
        """Create the job; if another execution of this task created it a moment ago, join that one.

        Two executions of one task can overlap (a worker presumed dead while it still runs, and the retry
        Airflow started meanwhile). Both find no job, both create the same deterministic name, and
        SageMaker refuses the second with ``ResourceInUse``: the job this run wanted exists, so wait for it.
        """
        try:
            self._create()
        except Exception as exc:
            if not is_in_use(exc):
                raise
            self.log.warning(  # type: ignore[attr-defined]
                "SageMaker %s job %s was created meanwhile by another execution of this task; re-attaching to it",
                self._job_kind,
                name,
            )

    def _restore_request(self, context: Context, name: str) -> None:
        """After a deferral the operator is new: rebuild the request that created ``name`` (for the UI)."""
        try:
            cfg, plan = self._plan(context)
            for attempt in range(1, try_number(context) + 1):
                if plan.job_name(self._job_kind, attempt) == name:
                    self.config = self.build_request(cfg, plan, context, attempt)
                    return
        except Exception:  # the rendered request is a convenience; never fail a finished job over it
            self.log.debug("Could not rebuild the request of %s", name, exc_info=True)  # type: ignore[attr-defined]

    def _persist_link(self, context: Context, name: str) -> None:
        persist_link(self._link, self, context, job_name=name)  # type: ignore[arg-type]

    def _raise_failed(self, name: str, description: dict[str, Any]) -> NoReturn:
        raise AirflowException(
            f"SageMaker {self._job_kind} job {name} {description[self._status_key]}: {failure_reason(description)}"
        )

    def _finish_or_defer(self, context: Context, name: str, description: dict[str, Any]) -> dict[str, Any]:
        status = description[self._status_key]
        if status == JOB_COMPLETED:
            self.log.info("SageMaker %s job %s completed", self._job_kind, name)  # type: ignore[attr-defined]
            return self._completed(context, description)
        if status in JOB_FAILED:
            self._raise_failed(name, description)
        self.defer(  # type: ignore[attr-defined]
            trigger=SageMakerTrigger(
                job_name=name,
                job_type=self._job_type,
                waiter_delay=self.check_interval,  # type: ignore[attr-defined]
                waiter_max_attempts=self.max_attempts,  # type: ignore[attr-defined]
                **aws_connection(self),  # type: ignore[arg-type]
            ),
            method_name="execute_complete",
            timeout=datetime.timedelta(seconds=self.max_ingestion_time)  # type: ignore[attr-defined]
            if self.max_ingestion_time  # type: ignore[attr-defined]
            else None,
        )
        raise AssertionError("defer() returns only by raising")  # pragma: no cover

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        event = validate_execute_complete_event(event)
        name = event.get("job_name")
        if not name:
            raise AirflowException(f"trigger event without a job name: {event}")
        self._persist_link(context, name)
        self._restore_request(context, name)
        description = self._describe(name)
        status = description[self._status_key]
        if status == JOB_COMPLETED:
            return self._completed(context, description)
        if status in JOB_FAILED:
            self._raise_failed(name, description)
        waited = self.check_interval * self.max_attempts  # type: ignore[attr-defined]
        raise AirflowException(
            f"Stopped waiting for SageMaker {self._job_kind} job {name} after about {waited} s; it is still "
            f"{status} ({event.get('message', 'no message')}). A retry of this task re-attaches to it."
        )


# ------------------------------------------------------------------------------------------------ processing


class _ProcessingJobOperator(_ReattachingJobMixin, SageMakerProcessingOperator):
    _job_type = "Processing"
    _name_key = "ProcessingJobName"
    _status_key = "ProcessingJobStatus"
    _arn_key = "ProcessingJobArn"
    _link = SageMakerProcessingJobLink
    operator_extra_links = (SageMakerProcessingJobLink(),)

    def __init__(self, *, config: dict | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("deferrable", True)
        super().__init__(config=config or {}, action_if_job_exists="fail", **kwargs)

    def _describe(self, name: str) -> dict[str, Any]:
        return self.hook.describe_processing_job(name)

    def _create(self) -> None:
        self.hook.create_processing_job(self.config, wait_for_completion=False)

    def summarize(self, description: dict[str, Any]) -> dict[str, Any]:
        outputs = description.get("ProcessingOutputConfig", {}).get("Outputs", [])
        return {
            "job_name": description["ProcessingJobName"],
            "job_arn": description["ProcessingJobArn"],
            "status": description["ProcessingJobStatus"],
            "outputs": {o["OutputName"]: o["S3Output"]["S3Uri"] for o in outputs if "S3Output" in o},
        }

    def cache_outputs(self, result: dict[str, Any]) -> list[str]:
        return sorted(result["outputs"].values())


class PreprocessJobOperator(_ProcessingJobOperator):
    """Split the interval's dataset and fit the preprocessor in a SageMaker Processing job.

    XCom: ``{"job_name", "job_arn", "status", "outputs": {"train", "validation", "test", "baseline",
    "preprocessor"}}`` (S3 prefixes).

    :param dataset_uri: S3 prefix of the extracted Parquet dataset (templated)
    :param code_uri: S3 prefix of the published ``include/code/preprocessing`` files (templated)
    """

    _job_kind = "preprocess"
    template_fields: Sequence[str] = (*SageMakerProcessingOperator.template_fields, "dataset_uri", "code_uri")

    def __init__(self, *, dataset_uri: str, code_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset_uri = dataset_uri
        self.code_uri = code_uri

    def build_request(self, cfg: Config, plan: RunPlan, context: Context, try_number: int) -> dict[str, Any]:
        from ml_lifecycle.builders import preprocess_request

        return preprocess_request(
            cfg, plan, dataset_uri=self.dataset_uri, code_uri=self.code_uri, try_number=try_number
        )

    def cache_datasets(self, client: Any) -> dict[str, str] | None:
        """The extracted dataset's content digest, from its manifest (the prefix is shared by every run of
        the interval and overwritten by each extraction, so its URI says nothing of its content)."""
        from ml_lifecycle.cache import dataset_digest
        from ml_lifecycle.data.manifest import read_manifest

        digest = dataset_digest(read_manifest(client, self.dataset_uri))
        return None if digest is None else {"dataset": digest}


class EvaluationJobOperator(_ProcessingJobOperator):
    """Score the test split with the trained model in a SageMaker Processing job.

    XCom: ``{"job_name", "job_arn", "status", "outputs": {"evaluation", "baseline"}, "evaluation_uri",
    "baseline_uri"}`` where ``evaluation_uri`` is the ``evaluation.json`` report beside the plots and
    ``baseline_uri`` the S3 prefix of the Model Monitor baseline dataset (``baseline.csv``: output columns,
    then input columns).

    :param model_uri: ``model.tar.gz`` of the chosen training job (templated)
    :param test_uri: S3 prefix of the test split (templated)
    :param code_uri: S3 prefix of the published ``include/code/evaluation`` files (templated)
    """

    _job_kind = "evaluate"
    template_fields: Sequence[str] = (
        *SageMakerProcessingOperator.template_fields,
        "model_uri",
        "test_uri",
        "code_uri",
    )

    def __init__(self, *, model_uri: str, test_uri: str, code_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_uri = model_uri
        self.test_uri = test_uri
        self.code_uri = code_uri

    def build_request(self, cfg: Config, plan: RunPlan, context: Context, try_number: int) -> dict[str, Any]:
        from ml_lifecycle.builders import evaluate_request

        return evaluate_request(
            cfg, plan, model_uri=self.model_uri, test_uri=self.test_uri, code_uri=self.code_uri, try_number=try_number
        )

    def summarize(self, description: dict[str, Any]) -> dict[str, Any]:
        result = super().summarize(description)
        result["evaluation_uri"] = result["outputs"]["evaluation"].rstrip("/") + "/evaluation.json"
        baseline = result["outputs"].get("baseline")
        result["baseline_uri"] = baseline.rstrip("/") + "/" if baseline else None
        return result

    def cache_outputs(self, result: dict[str, Any]) -> list[str]:
        return sorted({*result["outputs"].values(), result["evaluation_uri"]})


# -------------------------------------------------------------------------------------------------- training


def _training_summary(description: dict[str, Any]) -> dict[str, Any]:
    hyperparameters = {}
    for key, value in (description.get("HyperParameters") or {}).items():
        if key.startswith(("sagemaker_", "_")):
            continue
        hyperparameters[key] = _json_or_value(value)
    metrics = {m["MetricName"]: m["Value"] for m in description.get("FinalMetricDataList") or []}
    return {
        "job_name": description["TrainingJobName"],
        "job_arn": description["TrainingJobArn"],
        "status": description["TrainingJobStatus"],
        "model_uri": description["ModelArtifacts"]["S3ModelArtifacts"],
        "metrics": metrics,
        "hyperparameters": hyperparameters,
        "billable_seconds": description.get("BillableTimeInSeconds"),
    }


class _TrainingInputsMixin:
    """Inputs shared by training and tuning."""

    def _init_inputs(
        self,
        *,
        splits: dict[str, str],
        sourcedir_uri: str,
        hyperparameter_overrides: dict[str, Any] | str | None,
        instance_type: str | None,
    ) -> None:
        self.splits = splits
        self.sourcedir_uri = sourcedir_uri
        self.hyperparameter_overrides = hyperparameter_overrides
        self.instance_type = instance_type

    def _training_inputs(self) -> TrainingInputs:
        """The rendered inputs, checked, as the training and tuning request builders take them."""
        from ml_lifecycle.builders import TrainingInputs

        overrides = _json_or_value(self.hyperparameter_overrides)
        if overrides is not None and not isinstance(overrides, dict):
            raise AirflowException(f"hyperparameter_overrides must be a JSON object, got {overrides!r}")
        _check_overrides(overrides or {})
        instance_type = _json_or_value(self.instance_type) or None
        return TrainingInputs(
            splits=dict(self.splits),
            sourcedir_uri=self.sourcedir_uri,
            metric_definitions=_metric_definitions(),
            hyperparameter_overrides=overrides or {},
            instance_type=instance_type,
        )


def _check_overrides(overrides: dict[str, Any]) -> None:
    """Refuse overrides that break the hyperparameter schema of ``sagemaker.algorithm``, before any request.

    :raises AirflowFailException: naming the hyperparameter and its rule (a retry cannot help)
    """
    from ml_lifecycle.config import load_config
    from ml_lifecycle.hyperparameters import HyperparameterError, check_hyperparameters

    algorithm = load_config().sagemaker.algorithm
    try:
        check_hyperparameters(overrides, algorithm, source="params.hyperparameters")
    except HyperparameterError as exc:
        raise AirflowFailException(f"{exc} (algorithm {algorithm})") from None


_TRAINING_INPUT_FIELDS = ("splits", "sourcedir_uri", "hyperparameter_overrides", "instance_type")


class TrainingJobOperator(_TrainingInputsMixin, _ReattachingJobMixin, SageMakerTrainingOperator):
    """Train the model (script mode) in a SageMaker training job.

    XCom: ``{"job_name", "job_arn", "status", "model_uri", "metrics": {name: value}, "hyperparameters",
    "billable_seconds"}``.

    :param splits: ``{"train", "validation", "preprocessor"}`` -> S3 prefix (values templated)
    :param sourcedir_uri: the published ``sourcedir.tar.gz`` of ``include/code/training`` (templated)
    :param hyperparameter_overrides: dict or JSON object string overriding the configured hyperparameters
        (templated, e.g. ``{{ params.hyperparameters | tojson }}``)
    :param instance_type: instance type for this run, else the configured one (templated)
    """

    _job_kind = "train"
    _job_type = "Training"
    _name_key = "TrainingJobName"
    _status_key = "TrainingJobStatus"
    _arn_key = "TrainingJobArn"
    _link = SageMakerTrainingJobLink
    operator_extra_links = (SageMakerTrainingJobLink(),)
    template_fields: Sequence[str] = (*SageMakerTrainingOperator.template_fields, *_TRAINING_INPUT_FIELDS)

    def __init__(
        self,
        *,
        splits: dict[str, str],
        sourcedir_uri: str,
        hyperparameter_overrides: dict[str, Any] | str | None = None,
        instance_type: str | None = None,
        config: dict | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("deferrable", True)
        kwargs.setdefault("print_log", False)
        super().__init__(config=config or {}, action_if_job_exists="fail", **kwargs)
        self._init_inputs(
            splits=splits,
            sourcedir_uri=sourcedir_uri,
            hyperparameter_overrides=hyperparameter_overrides,
            instance_type=instance_type,
        )

    def build_request(self, cfg: Config, plan: RunPlan, context: Context, try_number: int) -> dict[str, Any]:
        from ml_lifecycle.builders import training_request

        return training_request(cfg, plan, self._training_inputs(), try_number=try_number)

    def _describe(self, name: str) -> dict[str, Any]:
        return self.hook.describe_training_job(name)

    def _create(self) -> None:
        self.hook.create_training_job(self.config, wait_for_completion=False, print_log=False)

    def summarize(self, description: dict[str, Any]) -> dict[str, Any]:
        return _training_summary(description)

    def cache_outputs(self, result: dict[str, Any]) -> list[str]:
        return [result["model_uri"]]


class TuningJobOperator(_TrainingInputsMixin, _ReattachingJobMixin, SageMakerTuningOperator):
    """Search hyperparameters in a SageMaker tuning job; its best training job's model is the result.

    XCom: ``{"job_name", "job_arn", "status", "best_training_job", "model_uri", "objective": {"name",
    "value"}, "tuned_hyperparameters", "metrics", "training_jobs": {status: count}}``.

    :param max_jobs: total training jobs of the search (templated; default from config)
    :param max_parallel_jobs: training jobs at once (templated; default from config)
    :param max_attempts: trigger polls before giving up (the provider's tuning operator has no such bound)

    Other parameters as :class:`TrainingJobOperator`.
    """

    _job_kind = "tune"
    _job_type = "Tuning"
    _name_key = "HyperParameterTuningJobName"
    _status_key = "HyperParameterTuningJobStatus"
    _arn_key = "HyperParameterTuningJobArn"
    _link = SageMakerTuningJobLink
    operator_extra_links = (SageMakerTuningJobLink(),)
    template_fields: Sequence[str] = (
        *SageMakerTuningOperator.template_fields,
        *_TRAINING_INPUT_FIELDS,
        "max_jobs",
        "max_parallel_jobs",
    )

    def __init__(
        self,
        *,
        splits: dict[str, str],
        sourcedir_uri: str,
        hyperparameter_overrides: dict[str, Any] | str | None = None,
        instance_type: str | None = None,
        max_jobs: int | str | None = None,
        max_parallel_jobs: int | str | None = None,
        max_attempts: int = 60,
        config: dict | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("deferrable", True)
        super().__init__(config=config or {}, **kwargs)
        self.max_attempts = max_attempts
        self.max_jobs = max_jobs
        self.max_parallel_jobs = max_parallel_jobs
        self._init_inputs(
            splits=splits,
            sourcedir_uri=sourcedir_uri,
            hyperparameter_overrides=hyperparameter_overrides,
            instance_type=instance_type,
        )

    def build_request(self, cfg: Config, plan: RunPlan, context: Context, try_number: int) -> dict[str, Any]:
        from ml_lifecycle.builders import tuning_request

        return tuning_request(
            cfg,
            plan,
            self._training_inputs(),
            try_number=try_number,
            max_jobs=_optional_int("max_jobs", self.max_jobs),
            max_parallel_jobs=_optional_int("max_parallel_jobs", self.max_parallel_jobs),
        )

    def _describe(self, name: str) -> dict[str, Any]:
        return self.hook.describe_tuning_job(name)

    def _raise_failed(self, name: str, description: dict[str, Any]) -> NoReturn:
        """Fail naming the tuning job's reason and, as that reason only says that no training job succeeded,
        the first failed training job's own reason (the search's training jobs fail alike, mostly)."""
        reason = failure_reason(description)
        if (child := self._first_failed_training_job(name)) is not None:
            reason = f"{reason} First failed training job {child[0]}: {child[1]}"
        raise AirflowException(f"SageMaker tune job {name} {description[self._status_key]}: {reason}")

    def _first_failed_training_job(self, name: str) -> tuple[str, str] | None:
        """``(name, reason)`` of the tuning job's earliest failed training job, ``None`` if none is listed."""
        try:
            summaries = self.hook.conn.list_training_jobs_for_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=name,
                StatusEquals="Failed",
                SortBy="CreationTime",
                SortOrder="Ascending",
                MaxResults=1,
            ).get("TrainingJobSummaries", [])
        except Exception:  # the tuning job's own reason is still reported
            self.log.warning("Could not list the failed training jobs of %s", name, exc_info=True)
            return None
        if not summaries:
            return None
        return summaries[0]["TrainingJobName"], failure_reason(summaries[0])

    def _create(self) -> None:
        self.hook.create_tuning_job(self.config, wait_for_completion=False)

    def summarize(self, description: dict[str, Any]) -> dict[str, Any]:
        name = description["HyperParameterTuningJobName"]
        best = description.get("BestTrainingJob")
        if not best:
            raise AirflowException(f"SageMaker tuning job {name} completed without a best training job")
        training = _training_summary(self.hook.describe_training_job(best["TrainingJobName"]))
        objective = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        self.log.info(
            "Tuning job %s: best training job %s, %s = %s",
            name,
            best["TrainingJobName"],
            objective.get("MetricName"),
            objective.get("Value"),
        )
        return {
            "job_name": name,
            "job_arn": description["HyperParameterTuningJobArn"],
            "status": description["HyperParameterTuningJobStatus"],
            "best_training_job": best["TrainingJobName"],
            "model_uri": training["model_uri"],
            "objective": {"name": objective.get("MetricName"), "value": objective.get("Value")},
            "tuned_hyperparameters": {k: _json_or_value(v) for k, v in best.get("TunedHyperParameters", {}).items()},
            "metrics": training["metrics"],
            "hyperparameters": training["hyperparameters"],
            "training_jobs": description.get("TrainingJobStatusCounters", {}),
        }

    def cache_outputs(self, result: dict[str, Any]) -> list[str]:
        return [result["model_uri"]]


# ------------------------------------------------------------------------------------------- run planning


class PrepareRunOperator(BaseOperator):
    """Compute the run's plan (window, names, S3 locations) and publish the container code.

    The code under ``include/code/<component>/`` is packaged deterministically and uploaded once per
    content hash (:mod:`ml_lifecycle.code_package`). XCom: the plan (:meth:`RunPlan.as_dict`) plus
    ``"code": {component: {"digest", "sourcedir_uri", "src_uri", ...}}`` and, for the DAG's wiring
    (``plan.output["window_start"]``; the operator pushes each key as its own XCom), the flat keys
    ``window_start``, ``window_end``, ``validation_report_uri``, ``evaluation_report_uri``, ``validate_job_name`` and
    ``<component>_src_uri`` / ``<component>_sourcedir_uri`` / ``<component>_digest``.

    :param aws_conn_id: Airflow connection for AWS (S3)
    :param components: the ``include/code`` folders to publish
    """

    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        components: Sequence[str] = ("preprocessing", "training", "evaluation", "inference"),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.components = tuple(components)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from ml_lifecycle.code_package import publish_code
        from ml_lifecycle.config import include_dir, load_config
        from ml_lifecycle.naming import RunPlan

        cfg = load_config()
        plan = RunPlan.from_context(context, cfg)
        self.log.info(
            "Run %s trains on %s .. %s (%d days); job names end in %s",
            plan.run_id,
            plan.window.start.isoformat(),
            plan.window.end.isoformat(),
            plan.window.days,
            plan.run_hash,
        )
        s3 = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        code = publish_code(
            s3,
            include_dir() / "code",
            self.components,
            bucket=cfg.storage.bucket,
            prefix=cfg.storage.prefixes.code,
            kms_key_id=cfg.storage.kms_key_id,
        )
        wiring = {
            "window_start": plan.window.start.isoformat(),
            "window_end": plan.window.end.isoformat(),
            "validation_report_uri": plan.report_uri("validation") + "/",
            "evaluation_report_uri": plan.report_uri("evaluation") + "/",
            "validate_job_name": plan.job_name("validate"),
        }
        for component, published in code.items():
            for key in ("src_uri", "sourcedir_uri", "digest"):
                wiring[f"{component}_{key}"] = published[key]
        return {**plan.as_dict(), "code": code, **wiring}
