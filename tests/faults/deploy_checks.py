"""Checks shared by the deployment faults: the previous model still serves, nothing was duplicated."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

from tests.faults.conftest import ENDPOINT, served


def endpoint_configs_of(aws: SimpleNamespace, version: int | str) -> list[str]:
    """Endpoint configs created for a model package version (``<prefix>-ec-v<version>-...``)."""
    pages = aws.sm.get_paginator("list_endpoint_configs").paginate(NameContains=f"-ec-v{version}-")
    return [c["EndpointConfigName"] for page in pages for c in page["EndpointConfigs"]]


def assert_previous_model_serves_everything(aws: SimpleNamespace, previous: dict[str, Any]) -> None:
    """The endpoint is InService on the previous config, nothing pending, and answers 100 % as before."""
    description = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert description["EndpointStatus"] == "InService", description
    assert description["EndpointConfigName"] == previous["endpoint_config_name"]
    assert "PendingDeploymentSummary" not in description
    assert [v["CurrentWeight"] for v in description["ProductionVariants"]] == [1.0]
    assert served(aws, 30) == Counter({previous["answer"]: 30}), "the previous model answers every request"
    endpoints = aws.sm.list_endpoints(NameContains=ENDPOINT)["Endpoints"]
    assert [e["EndpointName"] for e in endpoints] == [ENDPOINT], "no second endpoint"
