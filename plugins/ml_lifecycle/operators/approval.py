"""Model package approval in the SageMaker Model Registry, and picking the version to deploy.

``ModelPackageApprovalOperator`` approves or rejects one version (a given ARN, or the newest
``PendingManualApproval`` version of the group) with a reason in ``ApprovalDescription``. It is idempotent:
a version already in the requested status is left alone and reported as unchanged.

``ResolveModelPackageOperator`` answers "which version do we use?": an explicit ARN (which must be
Approved), else the approval that triggered the run (an approved-model asset event, or a SageMaker approval
event read from the approval queue; see :mod:`ml_lifecycle.approval_events`), else (``fallback``) the newest
Approved version that never rolled back (``deploy_model``) or the champion (``batch_score``); see
:mod:`ml_lifecycle.operators.champion`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from ml_lifecycle.links import SageMakerModelPackageLink, persist_package_link
from ml_lifecycle.operators.base import SageMakerOperatorBase, is_not_found

if TYPE_CHECKING:
    from airflow.sdk import Context

DECISIONS = {"approve": "Approved", "approved": "Approved", "reject": "Rejected", "rejected": "Rejected"}
LATEST = ("", "latest", "none")
APPROVAL_DESCRIPTION_MAX = 1024


def latest_package(client: Any, group: str, status: str) -> dict[str, Any] | None:
    """The newest version of ``group`` in approval ``status`` (summary), or ``None``."""
    try:
        page = client.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus=status,
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    summaries = page.get("ModelPackageSummaryList") or []
    return summaries[0] if summaries else None


def package_summary(package: dict[str, Any]) -> dict[str, Any]:
    """Small JSON summary of a ``DescribeModelPackage`` response."""
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    props = package.get("CustomerMetadataProperties") or {}
    return {
        "model_package_arn": package["ModelPackageArn"],
        "model_package_group": package.get("ModelPackageGroupName"),
        "version": package.get("ModelPackageVersion"),
        "approval_status": package.get("ModelApprovalStatus"),
        "model_uri": containers[0].get("ModelDataUrl"),
        "image": containers[0].get("Image"),
        "dag_id": props.get("dag_id"),
        "dag_run_id": props.get("dag_run_id"),
        "window_start": props.get("window_start"),
        "window_end": props.get("window_end"),
    }


class _RegistryOperator(SageMakerOperatorBase):
    """An operator on one model package version (``model_package_arn``) of a group (``model_package_group``,
    default ``sagemaker.model_package_group``)."""

    operator_extra_links = (SageMakerModelPackageLink(),)

    def __init__(
        self, *, model_package_arn: str | None = None, model_package_group: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.model_package_arn = model_package_arn
        self.model_package_group = model_package_group

    def _group(self) -> str:
        if self.model_package_group:
            return self.model_package_group
        from ml_lifecycle.config import load_config

        return load_config().sagemaker.model_package_group

    def _describe(self, arn: str) -> dict[str, Any]:
        try:
            return self.hook.conn.describe_model_package(ModelPackageName=arn)
        except Exception as exc:
            if is_not_found(exc):
                raise AirflowFailException(f"model package {arn} does not exist: {exc}") from exc
            raise

    def _link(self, context: Context, package: dict[str, Any]) -> None:
        persist_package_link(self, context, package)


class ModelPackageApprovalOperator(_RegistryOperator):
    """Approve or reject a model package version, with the reason recorded in the registry.

    XCom: ``{"model_package_arn", "model_package_group", "version", "approval_status", "previous_status",
    "changed", "reason", "model_uri", ...}``.

    :param decision: ``approve`` or ``reject`` (templated)
    :param reason: why; stored as ``ApprovalDescription`` (templated, required)
    :param model_package_arn: the version; empty or ``latest`` = newest ``PendingManualApproval`` (templated)
    :param model_package_group: the group (default ``sagemaker.model_package_group``)
    """

    template_fields: Sequence[str] = aws_template_fields("decision", "reason", "model_package_arn")

    def __init__(self, *, decision: str, reason: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision = decision
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        status = DECISIONS.get(str(self.decision).strip().lower())
        if status is None:
            raise AirflowFailException(f"decision must be 'approve' or 'reject', got {self.decision!r}")
        reason = (self.reason or "").strip()
        if not reason:
            raise AirflowFailException("a reason is required to approve or reject a model package")
        arn = (self.model_package_arn or "").strip()
        if arn.lower() in LATEST:
            group = self._group()
            summary = latest_package(self.hook.conn, group, "PendingManualApproval")
            if summary is None:
                raise AirflowFailException(f"no version of model package group {group} awaits manual approval")
            arn = summary["ModelPackageArn"]
            self.log.info("Newest version awaiting approval in %s: %s", group, arn)
        package = self._describe(arn)
        self._link(context, package)
        previous = package.get("ModelApprovalStatus")
        if previous == status:
            self.log.info("%s is already %s; nothing to change", arn, status)
            return {**package_summary(package), "previous_status": previous, "changed": False, "reason": reason}
        self.log.info("Setting %s from %s to %s: %s", arn, previous, status, reason)
        self.hook.conn.update_model_package(
            ModelPackageArn=arn,
            ModelApprovalStatus=status,
            ApprovalDescription=reason[:APPROVAL_DESCRIPTION_MAX],
        )
        package = self._describe(arn)
        return {**package_summary(package), "previous_status": previous, "changed": True, "reason": reason}


def _check_param_arn(arn: str, group: str | None) -> None:
    """Refuse a model package ARN from the run outside the group, the environment's region and account.

    :param arn: the ARN given to the run
    :param group: the operator's group (default ``sagemaker.model_package_group``)
    :raises AirflowFailException: naming the part of the ARN that differs
    """
    from ml_lifecycle.config import load_config
    from ml_lifecycle.strict_input import InputError, check_model_package_arn

    try:
        check_model_package_arn(arn, load_config(), group=group)
    except InputError as exc:
        raise AirflowFailException(str(exc)) from None


#: what ``ResolveModelPackageOperator`` falls back to when neither the run nor an asset event names a package
FALLBACKS = ("latest_deployable", "champion")


class ResolveModelPackageOperator(_RegistryOperator):
    """Pick the Approved model package version a deployment or a scoring run uses.

    Order: ``model_package_arn`` if given (must be Approved; any version, a rolled-back one included); else the
    newest approval among the asset events that triggered this run
    (:func:`ml_lifecycle.approval_events.triggering_approval`: an approved-model asset event or a SageMaker
    approval event; the run is skipped when that version was deployed before: it is the champion, a former
    champion or rolled back); else ``fallback``:

    - ``latest_deployable`` (``deploy_model``): the newest Approved version that never rolled back;
    - ``champion`` (``batch_score``): the champion, else (nothing deployed yet) the newest Approved version that
      never rolled back (:func:`ml_lifecycle.operators.champion.current_model`).

    XCom: :func:`package_summary` plus ``"source": "param" | "asset_event" | "approval_event" |
    "latest_approved" | "champion"``, ``"lifecycle"`` (the package's ``ModelLifeCycle``, ``{}`` when never set)
    and ``"baseline_dataset_uri"`` (the training run's Model Monitor baseline dataset, when known).

    With ``endpoint_name`` (a deployment) the XCom also has ``"already_serving"``: whether that endpoint is
    InService with this version's model on all its variants, in which case the log says the run changes
    nothing (an approval delivered twice; the deployment tasks then each find their work done).

    :param model_package_arn: explicit version (templated; empty/``latest`` = not given)
    :param model_package_group: the group (default ``sagemaker.model_package_group``)
    :param endpoint_name: the endpoint the run deploys to, to tell whether it already serves the version
    :param fallback: ``latest_deployable`` or ``champion`` (see above)
    """

    template_fields: Sequence[str] = aws_template_fields("model_package_arn", "endpoint_name")

    def __init__(self, *, endpoint_name: str | None = None, fallback: str = "latest_deployable", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
        self.endpoint_name = endpoint_name
        self.fallback = fallback

    def _skip_if_deployed_before(self, arn: str, package: dict[str, Any]) -> None:
        """Skip the run when the event names a version that has a ``ModelLifeCycle``: the champion (nothing to
        deploy), a former champion or a version that rolled back. Such an event is not a new approval (SageMaker
        sends a state-change event for every update of an Approved version, the champion's own marking included,
        and may send one more than once); deploying those versions again takes a person and their ARN."""
        from ml_lifecycle.operators.champion import is_champion, is_rolled_back, lifecycle

        stage, status = lifecycle(package)
        if stage is None:
            return
        description = (package.get("ModelLifeCycle") or {}).get("StageDescription") or ""
        if is_champion(package):
            why = "is already the champion"
        elif is_rolled_back(package):
            why = "rolled back"
        else:
            why = f"is {stage}/{status}"
        raise AirflowSkipException(
            f"model package {arn} named by the triggering event {why} ({description or 'no description'}); "
            "nothing is deployed automatically. Trigger deploy_model with its ARN to deploy it anyway."
        )

    def _fallback(self) -> tuple[str, str]:
        """``(arn, source)`` of the fallback; fails the task when the group has nothing to use."""
        from ml_lifecycle.operators.champion import current_model, latest_deployable

        group = self._group()
        if self.fallback == "champion":
            current = current_model(self.hook.conn, group)
            if current is None:
                raise AirflowFailException(
                    f"model package group {group} has no champion and no Approved version that never rolled back"
                )
            return current.arn, current.source
        summary = latest_deployable(self.hook.conn, group)
        if summary is None:
            raise AirflowFailException(
                f"model package group {group} has no Approved version that never rolled back to deploy "
                "(a rolled-back version is deployed only when named by its ARN)"
            )
        return summary["ModelPackageArn"], "latest_approved"

    def _already_serving(self, package: dict[str, Any]) -> bool:
        """Whether ``endpoint_name`` is InService with ``package``'s model on every variant."""
        from ml_lifecycle.builders.endpoint import BuilderError, model_name
        from ml_lifecycle.config import load_config
        from ml_lifecycle.operators.base import describe_or_none

        endpoint = describe_or_none(self.hook.conn.describe_endpoint, EndpointName=self.endpoint_name)
        if endpoint is None or endpoint.get("EndpointStatus") != "InService":
            return False
        config = self.hook.conn.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        try:
            wanted = model_name(load_config(), package)
        except BuilderError:
            return False
        return {v.get("ModelName") for v in config.get("ProductionVariants") or []} == {wanted}

    def _from_asset_events(self, context: Context) -> tuple[str, str]:
        """The triggering approval's ARN and source (``asset_event`` / ``approval_event``); ``""`` when none."""
        from ml_lifecycle.approval_events import FROM_ASSET, triggering_approval

        try:
            events = context.get("triggering_asset_events") or {}
        except Exception:  # the context proxy can be absent outside asset-triggered runs
            return "", FROM_ASSET
        approval = triggering_approval(events, self._group(), self.log)
        return (approval.model_package_arn, approval.source) if approval else ("", FROM_ASSET)

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.operators.monitor import baseline_dataset_uri

        arn = (self.model_package_arn or "").strip()
        source = "param"
        if arn and arn.lower() not in LATEST:
            _check_param_arn(arn, self.model_package_group)
        if arn.lower() in LATEST:
            arn, source = self._from_asset_events(context)
        if not arn:
            arn, source = self._fallback()
        package = self._describe(arn)
        self._link(context, package)
        if package.get("ModelApprovalStatus") != "Approved":
            raise AirflowFailException(
                f"model package {arn} is {package.get('ModelApprovalStatus')}, not Approved; approve it first"
            )
        if source in ("asset_event", "approval_event"):  # approval_events.FROM_ASSET, FROM_SAGEMAKER
            self._skip_if_deployed_before(arn, package)
        from ml_lifecycle.config import load_config

        summary = {**package_summary(package), "source": source, "lifecycle": package.get("ModelLifeCycle") or {}}
        summary["baseline_dataset_uri"] = baseline_dataset_uri(load_config(), package)
        self.log.info("Using %s (version %s, from %s)", arn, summary["version"], source)
        if self.endpoint_name:
            summary["already_serving"] = self._already_serving(package)
            if summary["already_serving"]:
                self.log.info(
                    "Endpoint %s already serves %s (version %s) on all its traffic: this run deploys nothing "
                    "new, each of its tasks finds its work done",
                    self.endpoint_name,
                    arn,
                    summary["version"],
                )
        return summary
