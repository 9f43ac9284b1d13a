"""The champion: the model package whose model serves 100 % of the endpoint, recorded in the model registry.

The registry records it with SageMaker's ``ModelLifeCycle`` (``Stage``, ``StageStatus``, ``StageDescription``) on
the model package version, so anyone with the AWS CLI reads it (``aws sagemaker list-model-packages
--model-package-group-name <group>`` shows ``ModelLifeCycle`` in every summary). The values, all valid SageMaker
``EntityName`` strings (``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``):

===========================  ==============  ===============  ==================================================
what                         ``Stage``       ``StageStatus``  set when
===========================  ==============  ===============  ==================================================
the champion                 ``Production``  ``Deployed``     a deployment ends with its model at 100 %
a former champion            ``Archived``    ``Retired``      another package became the champion
a package that rolled back   ``Archived``    ``RolledBack``   its deployment was rolled back (guarded or stepwise)
===========================  ==============  ===============  ==================================================

At most one package of a group is in ``Production``. A package without ``ModelLifeCycle`` was never deployed.

Who reads it, through :func:`current_model` and :func:`latest_deployable` only:

- the quality gate's baseline, ``batch_score``'s model and the backfill check use :func:`current_model`: the
  champion, else (nothing deployed yet) the newest Approved package that never rolled back;
- ``deploy_model``'s ``latest`` uses :func:`latest_deployable` when no approval event names a package: the newest
  Approved package that never rolled back. A rolled-back package is deployed again only when named by its ARN.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ml_lifecycle.operators.base import is_not_found

STAGE_PRODUCTION = "Production"
STAGE_ARCHIVED = "Archived"
STATUS_DEPLOYED = "Deployed"
STATUS_RETIRED = "Retired"
STATUS_ROLLED_BACK = "RolledBack"

#: ``(Stage, StageStatus)`` of each lifecycle state this package sets
CHAMPION = (STAGE_PRODUCTION, STATUS_DEPLOYED)
RETIRED = (STAGE_ARCHIVED, STATUS_RETIRED)
ROLLED_BACK = (STAGE_ARCHIVED, STATUS_ROLLED_BACK)

#: SageMaker's limit on ``StageDescription``
STAGE_DESCRIPTION_MAX = 1024
#: how many versions a lookup lists per page
PAGE = 100

SOURCE_CHAMPION = "champion"
SOURCE_LATEST_APPROVED = "latest_approved"


def lifecycle(package: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """``(Stage, StageStatus)`` of a package description or summary (``(None, None)`` when never set)."""
    stage = (package or {}).get("ModelLifeCycle") or {}
    return stage.get("Stage"), stage.get("StageStatus")


def is_champion(package: dict[str, Any] | None) -> bool:
    return lifecycle(package) == CHAMPION


def is_rolled_back(package: dict[str, Any] | None) -> bool:
    return lifecycle(package)[1] == STATUS_ROLLED_BACK


def list_versions(client: Any, group: str, *, status: str | None = None) -> list[dict[str, Any]]:
    """Every version summary of ``group`` (optionally only those in approval ``status``), newest first;
    ``[]`` when the group does not exist."""
    kwargs: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": PAGE,
    }
    if status:
        kwargs["ModelApprovalStatus"] = status
    summaries: list[dict[str, Any]] = []
    try:
        while True:
            page = client.list_model_packages(**kwargs)
            summaries.extend(page.get("ModelPackageSummaryList") or [])
            token = page.get("NextToken")
            if not token:
                return summaries
            kwargs["NextToken"] = token
    except Exception as exc:
        if is_not_found(exc):
            return []
        raise


def find_champion(client: Any, group: str) -> dict[str, Any] | None:
    """The champion's summary, or ``None`` when no package of ``group`` is ``Production``/``Deployed``.

    Should a crash between marking the new champion and retiring the old one leave two, the one marked last
    (``LastModifiedTime``) is the champion; the next deployment's marking retires the other.
    """
    champions = [s for s in list_versions(client, group) if is_champion(s)]
    if len(champions) <= 1:
        return champions[0] if champions else None

    def modified(summary: dict[str, Any]) -> Any:
        described = client.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        return described.get("LastModifiedTime") or described.get("CreationTime")

    return max(champions, key=modified)


def latest_deployable(
    client: Any, group: str, *, exclude: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any] | None:
    """The newest Approved version of ``group`` that never rolled back (summary), skipping ARNs in ``exclude``."""
    for summary in list_versions(client, group, status="Approved"):
        if summary["ModelPackageArn"] in exclude or is_rolled_back(summary):
            continue
        return summary
    return None


@dataclass(frozen=True)
class CurrentModel:
    """The model the platform treats as current, and where it came from."""

    summary: dict[str, Any]
    #: :data:`SOURCE_CHAMPION` or :data:`SOURCE_LATEST_APPROVED` (nothing deployed yet)
    source: str

    @property
    def arn(self) -> str:
        return self.summary["ModelPackageArn"]


def current_model(client: Any, group: str, *, exclude: frozenset[str] | set[str] = frozenset()) -> CurrentModel | None:
    """The champion; when there is none (or it is excluded), the newest Approved version that never rolled back.

    :param exclude: ARNs never returned (the gate excludes its own run's package)
    """
    champion = find_champion(client, group)
    if champion is not None and champion["ModelPackageArn"] not in exclude:
        return CurrentModel(champion, SOURCE_CHAMPION)
    latest = latest_deployable(client, group, exclude=exclude)
    return CurrentModel(latest, SOURCE_LATEST_APPROVED) if latest is not None else None


# ---------------------------------------------------------------------------------------------------- marking


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def stage_description(text: str) -> str:
    """``text`` as SageMaker takes a ``StageDescription`` (pattern ``.{0,1024}``: one line, at most 1024 characters);
    a multi-line reason (a model server's stderr) becomes one line."""
    return " ".join(text.split())[:STAGE_DESCRIPTION_MAX]


def _set(
    client: Any, arn: str, state: tuple[str, str], description: str, metadata: dict[str, str] | None = None
) -> None:
    stage, status = state
    extra = {"CustomerMetadataProperties": metadata} if metadata else {}
    client.update_model_package(
        ModelPackageArn=arn,
        ModelLifeCycle={
            "Stage": stage,
            "StageStatus": status,
            "StageDescription": stage_description(description),
        },
        **extra,
    )


def mark_champion(
    client: Any,
    arn: str,
    *,
    endpoint: str,
    at: str | None = None,
    metadata: Callable[[dict[str, Any]], dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Record ``arn`` as the champion serving ``endpoint`` and retire every other champion of its group.

    Idempotent: a package that is already the champion keeps its description (and the time it became champion).

    :param metadata: ``CustomerMetadataProperties`` added to the new champion in the same update, from its
        description (where its monitoring reports go)

    :returns: ``{"champion": arn, "version", "retired": [arns], "changed": bool}``
    """
    at = at or _now()
    package = client.describe_model_package(ModelPackageName=arn)
    group = package.get("ModelPackageGroupName")
    version = package.get("ModelPackageVersion")
    changed = not is_champion(package)
    if changed:
        extra = metadata(package) if metadata else None
        _set(client, arn, CHAMPION, f"Serves 100% of endpoint {endpoint} since {at}", extra)
    retired = []
    for summary in list_versions(client, group) if group else []:
        other = summary["ModelPackageArn"]
        if other != arn and is_champion(summary):
            _set(client, other, RETIRED, f"Retired {at}: version {version} serves endpoint {endpoint}")
            retired.append(other)
    return {"champion": arn, "version": version, "retired": retired, "changed": changed}


def mark_rolled_back(client: Any, arn: str, *, endpoint: str, reason: str, at: str | None = None) -> bool:
    """Record that the deployment of ``arn`` to ``endpoint`` rolled back, so no automatic choice picks it again.

    The champion is left as it is (it kept serving). A champion is never marked: a re-deployment of the serving
    model that "rolls back" still serves it. Returns whether the package was marked.
    """
    at = at or _now()
    package = client.describe_model_package(ModelPackageName=arn)
    if is_champion(package):
        return False
    _set(client, arn, ROLLED_BACK, f"Rolled back from endpoint {endpoint} at {at}: {reason}")
    return True
