"""The champion: one lookup for gate, scoring and deployment, and its marking in the registry."""

from __future__ import annotations

import re

import botocore.session
import pytest

from ml_lifecycle.operators import champion as ch
from tests.unit.operators.registry_fakes import FakeRegistry

GROUP = "fraud-detector"
ENTITY_NAME = botocore.session.get_session().get_service_model("sagemaker").shape_for("EntityName")


def _registry(*statuses: str) -> tuple[FakeRegistry, list[str]]:
    registry = FakeRegistry()
    arns = [registry.add(GROUP, status, {"dag_run_id": f"run{i}"}) for i, status in enumerate(statuses, 1)]
    return registry, arns


def test_the_lifecycle_values_are_valid_sagemaker_entity_names():
    pattern = re.compile(ENTITY_NAME.metadata["pattern"])
    for value in {*ch.CHAMPION, *ch.RETIRED, *ch.ROLLED_BACK}:
        assert pattern.fullmatch(value) and len(value) <= ENTITY_NAME.metadata["max"], value


def test_no_group_and_no_versions_mean_no_current_model():
    assert ch.current_model(FakeRegistry(), GROUP) is None
    registry, _ = _registry("PendingManualApproval", "Rejected")
    assert ch.find_champion(registry, GROUP) is None and ch.current_model(registry, GROUP) is None


def test_before_any_deployment_the_current_model_is_the_newest_approved_that_never_rolled_back():
    registry, (v1, v2, v3, _v4) = _registry("Approved", "Approved", "Approved", "PendingManualApproval")
    registry.set_lifecycle(v3, *ch.ROLLED_BACK)
    current = ch.current_model(registry, GROUP)
    assert (current.arn, current.source) == (v2, ch.SOURCE_LATEST_APPROVED)
    assert ch.latest_deployable(registry, GROUP)["ModelPackageArn"] == v2
    assert ch.latest_deployable(registry, GROUP, exclude={v2})["ModelPackageArn"] == v1


def test_the_champion_wins_over_newer_approved_versions():
    registry, (v1, _v2, v3) = _registry("Approved", "Approved", "Approved")
    registry.set_lifecycle(v1, *ch.CHAMPION)
    current = ch.current_model(registry, GROUP)
    assert (current.arn, current.source) == (v1, ch.SOURCE_CHAMPION)
    assert ch.latest_deployable(registry, GROUP)["ModelPackageArn"] == v3, "deploy's latest is not the champion"
    excluded = ch.current_model(registry, GROUP, exclude={v1})
    assert (excluded.arn, excluded.source) == (v3, ch.SOURCE_LATEST_APPROVED)


def test_two_champions_after_an_interrupted_marking_resolve_to_the_last_marked():
    registry, (v1, v2) = _registry("Approved", "Approved")
    registry.set_lifecycle(v2, *ch.CHAMPION)
    registry.set_lifecycle(v1, *ch.CHAMPION)  # marked later (say a redeployment of v1 by ARN)
    assert ch.find_champion(registry, GROUP)["ModelPackageArn"] == v1


def test_marking_a_champion_retires_the_previous_one_and_is_idempotent():
    registry, (v1, v2) = _registry("Approved", "Approved")
    first = ch.mark_champion(registry, v1, endpoint="fraud-ep", at="2026-03-01T00:00:00+00:00")
    assert first == {"champion": v1, "version": 1, "retired": [], "changed": True}
    second = ch.mark_champion(registry, v2, endpoint="fraud-ep", at="2026-03-02T00:00:00+00:00")
    assert second == {"champion": v2, "version": 2, "retired": [v1], "changed": True}
    life = {arn: registry.describe_model_package(ModelPackageName=arn)["ModelLifeCycle"] for arn in (v1, v2)}
    assert life[v2] == {
        "Stage": "Production",
        "StageStatus": "Deployed",
        "StageDescription": "Serves 100% of endpoint fraud-ep since 2026-03-02T00:00:00+00:00",
    }
    assert (life[v1]["Stage"], life[v1]["StageStatus"]) == ("Archived", "Retired")
    assert "version 2" in life[v1]["StageDescription"]
    calls = len(registry.update_calls)
    again = ch.mark_champion(registry, v2, endpoint="fraud-ep")
    assert again["changed"] is False and again["retired"] == [] and len(registry.update_calls) == calls


def test_the_new_champion_gets_its_metadata_in_the_same_update():
    registry, (v1, v2) = _registry("Approved", "Approved")

    def reports(package):
        return {"monitoring_reports": f"s3://b/monitoring/fraud-ep/models/{package['ModelPackageVersion']}/"}

    ch.mark_champion(registry, v1, endpoint="fraud-ep", metadata=reports)
    calls = len(registry.update_calls)
    ch.mark_champion(registry, v2, endpoint="fraud-ep", metadata=reports)
    # one update for the new champion (stage and metadata together), one to retire v1
    assert len(registry.update_calls) == calls + 2
    props = registry.describe_model_package(ModelPackageName=v2)["CustomerMetadataProperties"]
    assert props["monitoring_reports"] == "s3://b/monitoring/fraud-ep/models/2/"
    retired = registry.describe_model_package(ModelPackageName=v1)["CustomerMetadataProperties"]
    assert retired["monitoring_reports"] == "s3://b/monitoring/fraud-ep/models/1/", "a retired version keeps its own"


def test_a_rollback_marks_the_package_and_leaves_the_champion():
    registry, (v1, v2) = _registry("Approved", "Approved")
    ch.mark_champion(registry, v1, endpoint="fraud-ep")
    assert ch.mark_rolled_back(registry, v2, endpoint="fraud-ep", reason="alarm fraud-ep-AllTraffic-5xx-rate") is True
    marked = registry.describe_model_package(ModelPackageName=v2)
    assert (marked["ModelLifeCycle"]["Stage"], marked["ModelLifeCycle"]["StageStatus"]) == ("Archived", "RolledBack")
    assert "5xx-rate" in marked["ModelLifeCycle"]["StageDescription"]
    assert marked["ModelApprovalStatus"] == "Approved", "the approval stays; only automatic choices skip it"
    assert ch.find_champion(registry, GROUP)["ModelPackageArn"] == v1
    assert ch.latest_deployable(registry, GROUP)["ModelPackageArn"] == v1
    # the serving model is never marked RolledBack (a re-deployment of it that rolls back still serves it)
    assert ch.mark_rolled_back(registry, v1, endpoint="fraud-ep", reason="x") is False
    assert ch.is_champion(registry.describe_model_package(ModelPackageName=v1))


def test_a_long_multi_line_reason_fits_sagemakers_stage_description():
    """``StageDescription`` must match ``.{0,1024}``: one line (a model server's stderr has many)."""
    pattern = re.compile(
        botocore.session.get_session()
        .get_service_model("sagemaker")
        .shape_for("ModelLifeCycle")
        .members["StageDescription"]
        .metadata["pattern"]
    )
    registry, (v1,) = _registry("Approved")
    reason = "ClientError: the model server exited before it was ready:\n  [bt] (5) libxgboost.so\r\n" + "x" * 5000
    ch.mark_rolled_back(registry, v1, endpoint="fraud-ep", reason=reason)
    description = registry.describe_model_package(ModelPackageName=v1)["ModelLifeCycle"]["StageDescription"]
    assert len(description) == ch.STAGE_DESCRIPTION_MAX and pattern.fullmatch(description)
    assert "ready: [bt] (5) libxgboost.so x" in description


class PagedRegistry(FakeRegistry):
    """Lists two versions a page, as SageMaker pages long lists."""

    def list_model_packages(self, **request):
        everything = super().list_model_packages(**{**request, "MaxResults": 1000, "NextToken": None})
        items = everything["ModelPackageSummaryList"]
        start = int(request.get("NextToken") or 0)
        page = {"ModelPackageSummaryList": items[start : start + 2]}
        if start + 2 < len(items):
            page["NextToken"] = str(start + 2)
        return page


@pytest.mark.parametrize("champion_index", [pytest.param(0, id="oldest"), pytest.param(4, id="newest")])
def test_the_champion_is_found_on_any_page(champion_index):
    registry = PagedRegistry()
    arns = [registry.add(GROUP, "Approved", {}) for _ in range(5)]
    registry.set_lifecycle(arns[champion_index], *ch.CHAMPION)
    assert ch.find_champion(registry, GROUP)["ModelPackageArn"] == arns[champion_index]
    assert len(ch.list_versions(registry, GROUP)) == 5
