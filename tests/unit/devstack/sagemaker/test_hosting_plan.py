"""Blue/green traffic plans and weighted routing."""

from __future__ import annotations

import collections
import random
from typing import Any

import pytest

from devstack.sagemaker.deployments import EndpointRuntime, Fleet, deployment_steps, traffic_shares
from devstack.sagemaker.errors import SageMakerError


def policy(routing: dict[str, Any]) -> dict[str, Any]:
    return {"TrafficRoutingConfiguration": {"WaitIntervalInSeconds": 30, **routing}}


@pytest.mark.parametrize(
    ("routing", "instances", "expected"),
    [
        pytest.param({"Type": "ALL_AT_ONCE"}, 2, [(1.0, 30, "full")], id="all-at-once"),
        pytest.param(
            {"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}},
            4,
            [(0.25, 30, "canary"), (1.0, 0, "full")],
            id="canary-instances",
        ),
        pytest.param(
            {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}},
            1,
            [(0.1, 30, "canary"), (1.0, 0, "full")],
            id="canary-percent",
        ),
        pytest.param(
            {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}},
            4,
            [(0.25, 30, "linear"), (0.5, 30, "linear"), (0.75, 30, "linear"), (1.0, 0, "full")],
            id="linear-quarters",
        ),
        pytest.param(
            {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 40}},
            4,
            [(0.4, 30, "linear"), (0.8, 30, "linear"), (1.0, 0, "full")],
            id="linear-uneven",
        ),
    ],
)
def test_steps(routing: dict[str, Any], instances: int, expected: list[tuple[float, int, str]]) -> None:
    steps = deployment_steps(policy(routing), instances)
    assert [(pytest.approx(s), w, label) for s, w, label in steps] == expected


@pytest.mark.parametrize(
    "routing",
    [
        pytest.param({"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}, id="canary-all-of-one"),
        pytest.param({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 60}}, id="linear-60"),
        pytest.param({"Type": "LINEAR"}, id="linear-without-step"),
    ],
)
def test_invalid_steps(routing: dict[str, Any]) -> None:
    with pytest.raises(SageMakerError):
        deployment_steps(policy(routing), 1)


def _fleet(config: str, variant: str, weight: float = 1.0) -> Fleet:
    return Fleet("ep", config, {"VariantName": variant, "InitialVariantWeight": weight}, None)


def test_shares_split_between_blue_and_green_by_weight() -> None:
    blue = [_fleet("blue", "A", 3.0), _fleet("blue", "B", 1.0)]
    green = [_fleet("green", "A")]
    routes = traffic_shares(blue, green, 0.2)
    assert [(f.config_name, f.name, pytest.approx(w)) for f, w in routes] == [
        ("blue", "A", 0.6),
        ("blue", "B", 0.2),
        ("green", "A", 0.2),
    ]


def test_choose_follows_weights_and_target_variant() -> None:
    runtime = EndpointRuntime("ep")
    a, b = _fleet("c", "A"), _fleet("c", "B")
    runtime.set_routes([(a, 0.9), (b, 0.0)])
    rng = random.Random(1)
    picks = collections.Counter(runtime.choose(None, rng).name for _ in range(200))
    assert picks == {"A": 200}
    assert runtime.choose("B", rng) is b
    assert runtime.choose("C", rng) is None
