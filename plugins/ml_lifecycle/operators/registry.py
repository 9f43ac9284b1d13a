"""Register the run's model in the SageMaker Model Registry and publish approvals.

``ModelRegistrationOperator`` (a ``SageMakerRegisterModelVersionOperator``) registers one model package
version per run:

- only when the quality gate passed; otherwise it **skips itself** with the gate's reason and evidence URI,
  so a rejected model shows as a skipped ``register`` task, not a failure;
- idempotently: it first looks for a version of the group whose ``CustomerMetadataProperties.dag_run_id``
  is this run (and sends a run-derived ``ClientToken``), so a retry never registers a second version;
- with the inference image, ``model.tar.gz``, ``ModelMetrics`` pointing at ``evaluation.json`` (model
  quality) and at the evaluation's ``analysis.json`` (``Bias.PreTrainingReport``: Clarify's pre-training bias
  metrics of the training data by ``monitoring.bias.facet``, when it was written), and the
  lineage in ``CustomerMetadataProperties`` (git commit, window, dataset and manifest URIs, validation
  result, gate report, Model Monitor baseline dataset (``baseline_uri``), DAG run id, training job, code
  digest, metrics);
- with approval per environment (``training.approval``: ``auto`` -> ``Approved``, ``manual`` ->
  ``PendingManualApproval``), overridable per run;
- never auto-approved over a newer current model: a model trained on a window that ends before the window of
  the champion (else, before any deployment, of the newest Approved version that never rolled back; see
  :mod:`ml_lifecycle.operators.champion`), a backfill, is registered ``PendingManualApproval`` even under ``auto``, with
  the reason in its ``ApprovalDescription``, so it is not published;
- never auto-approved while monitoring holds the endpoint for bias (:mod:`ml_lifecycle.bias_hold`: an S3
  marker written on a bias breach): the version is registered ``PendingManualApproval`` with the breach in its
  ``ApprovalDescription``, and a person's approval in the ``approve`` task clears the hold.

``PublishApprovedModelOperator`` then, for an Approved version, writes the pointer
``s3://<bucket>/<models>/<group>/approved.json`` and emits the approved-model asset (its outlet), which the
deployment DAG is scheduled on. A version that is not Approved (awaiting manual approval, or rejected) is not
published: it skips itself, so no asset event is emitted. In ``train_model`` the approval task between the
two (:mod:`ml_lifecycle.operators.human_approval`) asks a person when approval is manual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerRegisterModelVersionOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.amazon.aws.utils.sagemaker import ApprovalStatus
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from ml_lifecycle.build_info import build_info
from ml_lifecycle.links import SageMakerModelPackageLink, persist_package_link
from ml_lifecycle.operators.base import is_not_found

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ml_lifecycle.config import Config
    from ml_lifecycle.naming import RunPlan

APPROVAL_MODES = ("config", "auto", "manual")
#: how many recent versions of the group are searched for this run's registration
REGISTRY_LOOKBACK = 100
#: the evaluation job's pre-training bias report, beside its evaluation.json (ModelMetrics.Bias.PreTrainingReport)
BIAS_REPORT_FILE = "analysis.json"


def git_commit() -> str:
    """The running code's commit (see :func:`ml_lifecycle.build_info.build_info`)."""
    return build_info().git_commit


def git_dirty() -> str:
    """Whether the running code differs from that commit: ``true``, ``false`` or ``unknown``."""
    dirty = build_info().git_dirty
    return "unknown" if dirty is None else str(dirty).lower()


def approval_status(cfg: Config, mode: str | None) -> str:
    """``Approved`` or ``PendingManualApproval`` for a model that passed the gate.

    :param mode: ``auto``, ``manual`` or ``config``/empty (use ``training.approval``)
    """
    mode = (mode or "config").strip().lower()
    if mode not in APPROVAL_MODES:
        raise AirflowFailException(f"approval must be one of {', '.join(APPROVAL_MODES)}, got {mode!r}")
    effective = cfg.training.approval if mode == "config" else mode
    return ApprovalStatus.APPROVED.value if effective == "auto" else ApprovalStatus.PENDING_MANUAL_APPROVAL.value


def _package_summary(package: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """:func:`~ml_lifecycle.operators.approval.package_summary` with the registration's own lineage."""
    from ml_lifecycle.cache import reused_from_metadata
    from ml_lifecycle.operators.approval import package_summary
    from ml_lifecycle.operators.gate import package_metrics

    summary = package_summary(package)
    props = package.get("CustomerMetadataProperties") or {}
    return {
        **{k: summary[k] for k in ("model_package_arn", "model_package_group", "version", "approval_status")},
        "model_uri": summary["model_uri"],
        "metrics": package_metrics(props),
        "evaluation_uri": props.get("evaluation_uri"),
        "gate_uri": props.get("gate_uri"),
        "baseline_uri": props.get("baseline_uri"),
        **{k: summary[k] for k in ("window_start", "window_end", "dag_run_id")},
        "reused_steps": reused_from_metadata(props),
        **extra,
    }


class ModelRegistrationOperator(SageMakerRegisterModelVersionOperator):
    """Register this run's model version (once per run, only after a passing gate).

    XCom: ``{"model_package_arn", "model_package_group", "version", "approval_status", "model_uri",
    "metrics", "evaluation_uri", "gate_uri", "baseline_uri", "window_start", "window_end", "dag_run_id",
    "reused_steps", "already_registered", "approval_hold"}``; ``approval_hold`` is why an ``auto`` approval was
    held back (a backfilled window older than the champion's), else ``None``; ``reused_steps`` maps each step
    the step cache reused to ``"<job> from run <run id>"`` (also in the package's ``CustomerMetadataProperties``
    as ``reused:<step>``).

    :param model_uri: ``model.tar.gz`` of the chosen training job (templated)
    :param dataset_uri: the extracted dataset (templated)
    :param manifest_uri: the dataset's manifest (templated)
    :param validation_result_uri: the data validation result (templated)
    :param training_job: the training job (or best tuning child) that produced the model (templated)
    :param code_digest: the content digest of the training code (templated)
    :param baseline_uri: the Model Monitor baseline dataset the evaluation wrote, recorded as the
        ``baseline_uri`` metadata that ``deploy_model`` baselines the endpoint on (templated)
    :param approval: ``config`` (environment default), ``auto`` or ``manual`` (templated)
    :param gate: the quality gate's result, which decides (templated; in a DAG ``gate.output``)
    :param step_results: the results of the run's job steps, a list or a JSON list (templated; ``None`` for a
        step that did not run): the steps the step cache reused are recorded in the lineage
    """

    template_fields: Sequence[str] = (
        *SageMakerRegisterModelVersionOperator.template_fields,
        "dataset_uri",
        "manifest_uri",
        "validation_result_uri",
        "training_job",
        "code_digest",
        "baseline_uri",
        "approval",
        "gate",
        "step_results",
    )
    operator_extra_links = (SageMakerModelPackageLink(),)

    def __init__(
        self,
        *,
        model_uri: str,
        image_uri: str,
        package_group_name: str,
        dataset_uri: str,
        manifest_uri: str | None = None,
        validation_result_uri: str | None = None,
        training_job: str | None = None,
        code_digest: str | None = None,
        baseline_uri: str | None = None,
        approval: str = "config",
        gate: dict[str, Any] | None = None,
        step_results: list[Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_uri=image_uri, model_url=model_uri, package_group_name=package_group_name, **kwargs)
        self.dataset_uri = dataset_uri
        self.manifest_uri = manifest_uri
        self.validation_result_uri = validation_result_uri
        self.training_job = training_job
        self.code_digest = code_digest
        self.baseline_uri = baseline_uri
        self.approval = approval
        self.gate = gate
        self.step_results = step_results

    def find_registered(self, plan: RunPlan, group: str) -> dict[str, Any] | None:
        """This run's model package version, if an earlier try registered it.

        Searches the group's newest :data:`REGISTRY_LOOKBACK` versions (a retry follows its first try closely,
        and ``max_active_runs`` bounds how many runs register in between). No creation-time filter: a run's
        logical date says nothing about when it registered.
        """
        client = self.hook.conn
        kwargs: dict[str, Any] = {
            "ModelPackageGroupName": group,
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 100,
        }
        seen = 0
        try:
            while True:
                page = client.list_model_packages(**kwargs)
                for summary in page.get("ModelPackageSummaryList", []):
                    seen += 1
                    package = client.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
                    props = package.get("CustomerMetadataProperties") or {}
                    if props.get("dag_run_id") == plan.run_id and props.get("dag_id") == plan.dag_id:
                        return package
                token = page.get("NextToken")
                if not token or seen >= REGISTRY_LOOKBACK:
                    return None
                kwargs["NextToken"] = token
        except Exception as exc:
            if is_not_found(exc):
                return None  # the group does not exist yet
            raise

    def ensure_group(self, cfg: Config) -> None:
        """Create the model package group with the configured tags, or tag the one that exists.

        The provider's operator would create the group without tags, and a versioned model package carries no
        tags of its own (CreateModelPackage refuses ``Tags`` with ``ModelPackageGroupName``: the version "uses
        the tags associated with the model group"), so the group's tags are what the registry shows for every
        version. ``AddTags`` keeps the tags of a group made earlier (untagged, or under other tags) current.
        """
        from ml_lifecycle.builders.common import config_tags

        client = self.hook.conn
        tags = config_tags(cfg)
        try:
            arn = client.describe_model_package_group(ModelPackageGroupName=self.package_group_name)[
                "ModelPackageGroupArn"
            ]
        except Exception as exc:
            if not is_not_found(exc):
                raise
            try:
                client.create_model_package_group(
                    ModelPackageGroupName=self.package_group_name,
                    ModelPackageGroupDescription=f"{cfg.tags['project']} models ({cfg.environment})",
                    Tags=tags,
                )
                self.log.info("Created model package group %s", self.package_group_name)
                return
            except Exception as create_exc:
                if "already exists" not in str(create_exc):
                    raise
            arn = client.describe_model_package_group(ModelPackageGroupName=self.package_group_name)[
                "ModelPackageGroupArn"
            ]
        client.add_tags(ResourceArn=arn, Tags=tags)

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.builders import model_package_request
        from ml_lifecycle.cache import CacheError, logged_reused_steps, reused_metadata
        from ml_lifecycle.config import load_config
        from ml_lifecycle.naming import RunPlan

        gate = self.gate
        if not gate:
            raise AirflowFailException("no result from the quality gate (the gate input is empty)")
        if not gate.get("passed"):
            raise AirflowSkipException(
                f"Not registered: the quality gate rejected the model ({gate.get('reason')}). "
                f"Evidence: {gate.get('gate_uri')}"
            )
        cfg = load_config()
        plan = RunPlan.from_context(context, cfg)
        existing = self.find_registered(plan, self.package_group_name)
        if existing is not None:
            self.log.info(
                "Run %s already registered %s (version %s); not registering again",
                plan.run_id,
                existing["ModelPackageArn"],
                existing.get("ModelPackageVersion"),
            )
            persist_package_link(self, context, existing)
            return _package_summary(existing, already_registered=True, approval_hold=None)

        status = approval_status(cfg, self.approval)
        hold = None
        if status == ApprovalStatus.APPROVED.value:
            reasons = [r for r in (self.older_than_current(cfg, plan), self.bias_hold(cfg)) if r]
            hold = " ".join(reasons) or None
            if hold:
                self.log.warning("Not approving automatically: %s", hold)
                status = ApprovalStatus.PENDING_MANUAL_APPROVAL.value
        lineage = {
            "git_commit": git_commit(),
            "git_dirty": git_dirty(),
            "dag_id": plan.dag_id,
            "dag_run_id": plan.run_id,
            "window_start": plan.window.start.isoformat(),
            "window_end": plan.window.end.isoformat(),
            "dataset_uri": self.dataset_uri,
            "manifest_uri": self.manifest_uri,
            "validation_result_uri": self.validation_result_uri,
            "evaluation_uri": gate.get("evaluation_uri"),
            "gate_uri": gate.get("gate_uri"),
            "baseline_uri": self.baseline_uri if str(self.baseline_uri or "").startswith("s3://") else None,
            "training_job": self.training_job,
            "code_digest": self.code_digest,
        }
        try:
            reused = logged_reused_steps(self.step_results, self.log)
        except CacheError as exc:
            raise AirflowFailException(f"step_results: {exc}") from None
        lineage.update(reused_metadata(reused))
        request = model_package_request(
            cfg,
            plan,
            model_uri=self.model_url,
            evaluation_uri=gate["evaluation_uri"],
            approval_status=status,
            lineage=lineage,
            metrics=gate.get("metrics") or {},
            pre_training_bias_uri=self.pre_training_bias_uri(gate["evaluation_uri"]),
        )
        self.model_approval = ApprovalStatus(status)
        self.package_desc = request["ModelPackageDescription"]
        self.extras = request
        self.log.info("Registering %s in %s as %s", self.model_url, self.package_group_name, status)
        self.ensure_group(cfg)
        arn = super().execute(context)
        if hold:  # CreateModelPackage takes no ApprovalDescription
            self.hook.conn.update_model_package(ModelPackageArn=arn, ApprovalDescription=hold[:1024])
        package = self.hook.conn.describe_model_package(ModelPackageName=arn)
        self.log.info("Registered %s (version %s, %s)", arn, package.get("ModelPackageVersion"), status)
        persist_package_link(self, context, package)
        return _package_summary(package, already_registered=False, approval_hold=hold)

    @property
    def s3_client(self) -> Any:
        return self.hook.s3_hook.get_conn()

    def pre_training_bias_uri(self, evaluation_uri: str) -> str | None:
        """The evaluation's ``analysis.json`` beside ``evaluation.json`` when it wrote one, else ``None``."""
        from ml_lifecycle.data.s3 import object_exists

        if not str(evaluation_uri or "").startswith("s3://") or "/" not in evaluation_uri[5:]:
            return None
        uri = evaluation_uri.rsplit("/", 1)[0] + "/" + BIAS_REPORT_FILE
        if object_exists(self.s3_client, uri):
            return uri
        self.log.info("No pre-training bias report at %s; the package gets no ModelMetrics.Bias", uri)
        return None

    def bias_hold(self, cfg: Config) -> str | None:
        """Why the model must not be approved automatically because monitoring found bias on the endpoint
        (``ml_lifecycle.bias_hold``); ``None`` when there is no hold. An unreadable hold holds too."""
        from ml_lifecycle.bias_hold import BiasHoldError, describe, read_hold

        try:
            hold = read_hold(self.s3_client, cfg, cfg.deployment.endpoint_name)
        except BiasHoldError as exc:
            return f"Held for manual approval: the bias hold cannot be read ({exc})."
        return describe(hold) if hold else None

    def older_than_current(self, cfg: Config, plan: RunPlan) -> str | None:
        """Why this run's model must not be approved automatically: its window ends before the current model's
        (the champion's, else the newest Approved version's that never rolled back); ``None`` when it may be."""
        import datetime as dt

        from ml_lifecycle.operators.champion import current_model

        client = self.hook.conn
        current = current_model(client, self.package_group_name)
        if current is None:
            return None
        package = client.describe_model_package(ModelPackageName=current.arn)
        theirs = (package.get("CustomerMetadataProperties") or {}).get("window_end")
        if not theirs:
            return None
        try:
            newer = dt.datetime.fromisoformat(theirs) > plan.window.end
        except (TypeError, ValueError):
            self.log.warning("%s has an unreadable window_end %r; not compared", current.arn, theirs)
            return None
        if not newer:
            return None
        who = "the champion" if current.source == "champion" else "the newest Approved version"
        return (
            f"Held for manual approval: trained on a window ending {plan.window.end.isoformat()}, older than "
            f"{who} {current.arn} (version {package.get('ModelPackageVersion')}, window ending {theirs}). "
            "A backfilled window is never approved automatically over a newer model."
        )


class PublishApprovedModelOperator(AwsBaseOperator[SageMakerHook]):
    """Publish an Approved model version: write ``approved.json`` and emit the approved-model asset.

    Give it the asset as its only outlet. A version that is not Approved skips this task (no asset event). The
    pointer only moves forward: a model trained on an older window than the one already approved (a backfill) is
    registered but does not replace it.

    XCom: the pointer document ``{"model_package_arn", "model_package_group", "version", "model_uri",
    "metrics", "evaluation_uri", "gate_uri", "baseline_uri", "window_start", "window_end", "dag_id",
    "dag_run_id"}``.

    :param pointer_uri: ``s3://.../approved.json`` (templated)
    :param registration: the registration's result, which is published (templated; in a DAG
        ``register.output``)
    """

    aws_hook_class = SageMakerHook
    template_fields: Sequence[str] = aws_template_fields("pointer_uri", "registration")
    operator_extra_links = (SageMakerModelPackageLink(),)

    def __init__(self, *, pointer_uri: str, registration: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pointer_uri = pointer_uri
        self.registration = registration

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.config import load_config
        from ml_lifecycle.data.s3 import get_json_or_none, put_json

        registration = self.registration
        if not registration:
            raise AirflowFailException("no result from the registration (the registration input is empty)")
        cfg = load_config()
        package = self.hook.conn.describe_model_package(ModelPackageName=registration["model_package_arn"])
        status = package.get("ModelApprovalStatus")
        persist_package_link(self, context, package)
        if status != "Approved":
            raise AirflowSkipException(
                f"Model package {registration['model_package_arn']} is {status}, not Approved: the approved-model "
                "asset is not updated by this run"
            )
        s3 = self.hook.s3_hook.get_conn()
        current = get_json_or_none(s3, self.pointer_uri)
        pointer = {
            **{k: v for k, v in _package_summary(package).items() if k != "approval_status"},
            "dag_id": context["dag"].dag_id,
        }
        newer_is_approved = (
            current
            and current.get("model_package_arn") != pointer["model_package_arn"]
            and (current.get("window_end") or "") > (pointer.get("window_end") or "")
        )
        if newer_is_approved:
            raise AirflowSkipException(
                f"{pointer['model_package_arn']} is approved but trained on an older window (ends "
                f"{pointer['window_end']}) than the approved {current.get('model_package_arn')} (ends "
                f"{current.get('window_end')}); the pointer stays"
            )
        put_json(s3, self.pointer_uri, pointer, **cfg.storage.encryption())
        self.log.info("Approved model %s published at %s", pointer["model_package_arn"], self.pointer_uri)
        outlet_events = context.get("outlet_events")
        if outlet_events is not None:
            for outlet in self.outlets or []:
                outlet_events[outlet].extra = {
                    "model_package_arn": pointer["model_package_arn"],
                    "version": pointer["version"],
                    "model_uri": pointer["model_uri"],
                }
        return pointer
