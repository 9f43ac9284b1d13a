"""Checks shared by the deployment faults: the previous model still serves, nothing was duplicated."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

from tests.faults.conftest import ENDPOINT, GROUP, served


def endpoint_configs_of(aws: SimpleNamespace, version: int | str) -> list[str]:
    """Endpoint configs created for version ``version`` of this suite's model package group.

    Names are ``<prefix>-ec-v<version>-...`` whatever the group, so other suites' deployments of their own
    version ``version`` match the name too: only configs with a variant serving this group's model (the
    SageMaker Model the deployment made from the package) count.
    """
    from ml_lifecycle.builders.endpoint import model_name
    from ml_lifecycle.config import load_config

    arn = next(
        p["ModelPackageArn"]
        for page in aws.sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=GROUP)
        for p in page["ModelPackageSummaryList"]
        if str(p["ModelPackageVersion"]) == str(version)
    )
    model = model_name(load_config(), aws.sm.describe_model_package(ModelPackageName=arn))
    pages = aws.sm.get_paginator("list_endpoint_configs").paginate(NameContains=f"-ec-v{version}-")
    names = [c["EndpointConfigName"] for page in pages for c in page["EndpointConfigs"]]
    return [
        name
        for name in names
        if any(
            v["ModelName"] == model
            for v in aws.sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]
        )
    ]


def lifecycles(aws: SimpleNamespace) -> dict[str, tuple[str, str]]:
    """``ARN -> (Stage, StageStatus)`` of this suite's versions that have a ``ModelLifeCycle``, as listed.

    The champion is one per model package group (one endpoint per group, as in production): a module that
    deploys this group's versions to an endpoint of its own (``test_worker_killed_under_scheduler``, the last
    module of the suite) takes the champion over.
    """
    pages = aws.sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=GROUP)
    return {
        p["ModelPackageArn"]: (p["ModelLifeCycle"]["Stage"], p["ModelLifeCycle"]["StageStatus"])
        for page in pages
        for p in page["ModelPackageSummaryList"]
        if p.get("ModelLifeCycle")
    }


def assert_previous_model_serves_everything(
    aws: SimpleNamespace, previous: dict[str, Any], rolled_back: str | None = None
) -> None:
    """The endpoint is InService on the previous config, nothing pending, and answers 100 % as before; the
    registry still names the previous model's package as the one champion, and ``rolled_back`` (the package
    whose deployment rolled back) is marked so that nothing picks it again."""
    from ml_lifecycle.operators.champion import CHAMPION, ROLLED_BACK

    states = lifecycles(aws)
    assert [arn for arn, state in states.items() if state == CHAMPION] == [previous["package_arn"]], states
    if rolled_back is not None:
        assert states.get(rolled_back) == ROLLED_BACK, states
    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert description["EndpointStatus"] == "InService", description
    assert description["EndpointConfigName"] == previous["endpoint_config_name"]
    assert "PendingDeploymentSummary" not in description
    assert [v["CurrentWeight"] for v in description["ProductionVariants"]] == [1.0]
    assert served(aws, 30) == Counter({previous["answer"]: 30}), "the previous model answers every request"
    endpoints = aws.sm.list_endpoints(NameContains=ENDPOINT)["Endpoints"]
    assert [e["EndpointName"] for e in endpoints] == [ENDPOINT], "no second endpoint"
