"""Hyperparameter schemas, one per training algorithm (``sagemaker.algorithm`` in the config names one).

A schema maps each hyperparameter the algorithm's training code accepts to a JSON schema of its value (type
and range). It is applied three times, so a bad value never reaches SageMaker:

- to ``sagemaker.hyperparameters`` and ``sagemaker.tuning.ranges`` when the config is loaded (a bad file
  fails every DAG import, naming the field);
- as the JSON schema of ``train_model``'s ``hyperparameters`` param, so the trigger (REST API, UI form, CLI)
  refuses an unknown name or a bad value before a run exists;
- to the merged hyperparameters (config, then the run's overrides) before the training or tuning request
  is built.

``xgboost`` is the project's own training script (``include/code/training/train.py``, script mode on
SageMaker's XGBoost container): its command-line arguments and the checks it makes, with upper bounds that
keep one training job within reason (``num_round`` at most 10,000, ``max_depth`` at most 30).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

#: algorithm -> hyperparameter -> JSON schema of its value
SCHEMAS: dict[str, dict[str, dict[str, Any]]] = {
    "xgboost": {
        "num_round": {"type": "integer", "minimum": 1, "maximum": 10_000},
        "max_depth": {"type": "integer", "minimum": 0, "maximum": 30},
        "eta": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "subsample": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "colsample_bytree": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "min_child_weight": {"type": "number", "minimum": 0, "maximum": 1_000},
        "scale_pos_weight": {
            "anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 10_000}, {"enum": ["auto"]}]
        },
        "early_stopping_rounds": {"type": "integer", "minimum": 0, "maximum": 10_000},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "threshold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    },
}

ALGORITHMS = tuple(SCHEMAS)


class HyperparameterError(ValueError):
    """A hyperparameter is unknown to the algorithm or breaks its rule; the message names both."""


def _schema_of(algorithm: str) -> dict[str, dict[str, Any]]:
    try:
        return SCHEMAS[algorithm]
    except KeyError:
        raise HyperparameterError(
            f"no hyperparameter schema for algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})"
        ) from None


def param_schema(algorithm: str) -> dict[str, Any]:
    """The JSON schema of a hyperparameter-overrides object for ``algorithm`` (a ``Param``'s keywords).

    :param algorithm: a key of :data:`SCHEMAS`
    """
    properties = copy.deepcopy(_schema_of(algorithm))
    return {"type": "object", "properties": properties, "additionalProperties": False}


def describe_rule(rule: Mapping[str, Any]) -> str:
    """A rule in words, e.g. ``integer, 1 <= value <= 10000``.

    :param rule: the JSON schema of one value
    """
    if "anyOf" in rule:
        return " or ".join(describe_rule(option) for option in rule["anyOf"])
    if "enum" in rule:
        return "one of " + ", ".join(repr(v) for v in rule["enum"])
    low = (
        f"{rule['minimum']} <= "
        if "minimum" in rule
        else f"{rule['exclusiveMinimum']} < "
        if "exclusiveMinimum" in rule
        else ""
    )
    high = (
        f" <= {rule['maximum']}"
        if "maximum" in rule
        else f" < {rule['exclusiveMaximum']}"
        if "exclusiveMaximum" in rule
        else ""
    )
    kind = rule.get("type", "any value")
    return f"{kind}, {low}value{high}" if low or high else str(kind)


def _matches(value: Any, rule: Mapping[str, Any]) -> bool:
    """Whether ``value`` satisfies ``rule`` (the JSON schema keywords :data:`SCHEMAS` uses)."""
    if "anyOf" in rule:
        return any(_matches(value, option) for option in rule["anyOf"])
    if "enum" in rule:
        return any(type(value) is type(choice) and value == choice for choice in rule["enum"])
    kind = rule.get("type")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False  # every typed rule of SCHEMAS is numeric; a boolean is not a number in JSON schema
    if not math.isfinite(value):
        return False
    if kind == "integer" and not float(value).is_integer():
        return False
    checks = (
        ("minimum", lambda bound: value >= bound),
        ("exclusiveMinimum", lambda bound: value > bound),
        ("maximum", lambda bound: value <= bound),
        ("exclusiveMaximum", lambda bound: value < bound),
    )
    return all(check(rule[key]) for key, check in checks if key in rule)


def check_hyperparameters(values: Mapping[str, Any], algorithm: str, *, source: str = "hyperparameters") -> None:
    """Refuse a hyperparameter ``algorithm`` does not know, or a value that breaks its rule.

    :param values: hyperparameter name -> value (JSON types: numbers, strings, booleans)
    :param algorithm: a key of :data:`SCHEMAS`
    :param source: where the values come from, for the message (e.g. ``sagemaker.hyperparameters``)
    :raises HyperparameterError: naming every bad hyperparameter and its rule
    """
    schema = _schema_of(algorithm)
    problems = []
    for name, value in values.items():
        rule = schema.get(name)
        if rule is None:
            problems.append(
                f"{source}.{name}: not a hyperparameter of {algorithm} (accepted: {', '.join(sorted(schema))})"
            )
        elif not _matches(value, rule):
            problems.append(f"{source}.{name}: {value!r} breaks the rule {describe_rule(rule)}")
    if problems:
        raise HyperparameterError("; ".join(problems))


def check_range(name: str, values: list[Any], *, integer: bool, algorithm: str, source: str) -> None:
    """Refuse a tuning range over an unknown hyperparameter, or with a value outside its rule.

    :param name: the hyperparameter
    :param values: the range's ends (integer and continuous ranges) or its values (categorical ranges)
    :param integer: whether the range only yields integers (a continuous range over an integer
        hyperparameter does not)
    :param algorithm: a key of :data:`SCHEMAS`
    :param source: where the range comes from, for the message (e.g. ``sagemaker.tuning.ranges``)
    :raises HyperparameterError: naming the hyperparameter and its rule
    """
    for value in values:
        check_hyperparameters({name: value}, algorithm, source=source)
    rule = _schema_of(algorithm)[name]
    if not integer and rule.get("type") == "integer":
        raise HyperparameterError(
            f"{source}.{name}: a continuous range over an integer hyperparameter ({describe_rule(rule)})"
        )
