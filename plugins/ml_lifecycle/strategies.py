"""The deployment strategies: one registry from which the config type, the DAG's param and its branch derive.

A strategy is either a SageMaker blue/green *guardrail* (``guardrail_type`` is the
``TrafficRoutingConfiguration.Type`` that :func:`ml_lifecycle.builders.endpoint.deployment_config` sends, and
:class:`~ml_lifecycle.operators.deploy.GuardedEndpointDeployOperator` runs it), or one that an operator of its
own runs (``stepwise``: :class:`~ml_lifecycle.operators.traffic.StepwiseTrafficShiftOperator`). ``task_id``
is the ``deploy_model`` task the DAG's ``choose_strategy`` branch follows for it.

This module is read at DAG parse time: it imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Strategy:
    """One way to move an endpoint's traffic to a new model."""

    name: str  #: the value of ``deployment.strategy`` and of the DAG's ``strategy`` param
    task_id: str  #: the ``deploy_model`` task that runs it
    summary: str  #: one line for the trigger form
    guardrail_type: str | None = None  #: SageMaker's routing type, for blue/green guardrail strategies


GUARDED_TASK = "deploy_guarded"
STEPWISE_TASK = "deploy_stepwise"

REGISTRY: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("canary", GUARDED_TASK, "a canary share first, then the rest", "CANARY"),
        Strategy("linear", GUARDED_TASK, "equal steps of traffic", "LINEAR"),
        Strategy("all_at_once", GUARDED_TASK, "all traffic at once, behind the alarms", "ALL_AT_ONCE"),
        Strategy("stepwise", STEPWISE_TASK, "weight steps checked between bakes (two variants)"),
    )
}

#: the type of ``deployment.strategy`` (a ``Literal`` of the registry's names)
StrategyName = Literal[tuple(REGISTRY)]  # type: ignore[valid-type]

#: strategy -> SageMaker routing type, for the guardrail strategies
GUARDRAIL_TYPES: dict[str, str] = {s.name: s.guardrail_type for s in REGISTRY.values() if s.guardrail_type}

#: the value of the DAG's ``strategy`` param that means "the environment's ``deployment.strategy``"
FROM_CONFIG = "config"


def deployment_tasks() -> list[str]:
    """The ``deploy_model`` tasks the strategies run, in registry order, each once."""
    return list(dict.fromkeys(s.task_id for s in REGISTRY.values()))


def task_for(strategy: str) -> str:
    """The ``deploy_model`` task that runs ``strategy``.

    :raises ValueError: ``strategy`` is not in the registry
    """
    if strategy not in REGISTRY:
        raise ValueError(f"unknown deployment strategy {strategy!r}; expected one of {', '.join(REGISTRY)}")
    return REGISTRY[strategy].task_id


def param_description(configured: str) -> str:
    """The trigger form's description of the ``strategy`` param."""
    lines = [f"{s.name}: {s.summary}" for s in REGISTRY.values()]
    return f"{FROM_CONFIG}: the environment's ({configured}); " + "; ".join(lines) + "."
