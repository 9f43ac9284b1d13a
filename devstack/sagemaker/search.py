"""Hyperparameter search for tuning jobs: range checks, grid enumeration and seeded random sampling.

- ``Grid``: the Cartesian product of the categorical ranges, in declaration order.
- ``Random`` (and ``Bayesian`` / ``Hyperband``, which the devstack runs as Random): independent samples
  from every range, seeded from the tuning job name so a re-run proposes the same configurations.
- Scaling: ``Linear`` samples uniformly; ``Logarithmic`` uniformly in log space (values > 0);
  ``ReverseLogarithmic`` uniformly in ``log(1 - x)`` (continuous only, 0 <= x < 1); ``Auto`` is Linear.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any


class RangeError(ValueError):
    """A parameter range or search configuration that SageMaker would reject."""


@dataclass(frozen=True)
class ParameterRange:
    """One tunable hyperparameter.

    :param name: the hyperparameter name.
    :param kind: ``Integer``, ``Continuous`` or ``Categorical``.
    :param low: lower bound (numeric ranges).
    :param high: upper bound (numeric ranges).
    :param scaling: ``Auto``, ``Linear``, ``Logarithmic`` or ``ReverseLogarithmic``.
    :param values: the categorical values.
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Auto"
    values: tuple[str, ...] = ()


def _number(raw: str, name: str, field: str, integer: bool) -> float:
    try:
        return float(int(raw)) if integer else float(raw)
    except (TypeError, ValueError) as exc:
        kind = "an integer" if integer else "a number"
        raise RangeError(f"{field} {raw!r} of hyperparameter {name} is not {kind}.") from exc


def parse_ranges(spec: dict[str, Any] | None) -> list[ParameterRange]:
    """Parse ``ParameterRanges`` into :class:`ParameterRange` objects, checking SageMaker's rules.

    :raises RangeError: for bad bounds, scalings or duplicate names.
    """
    spec = spec or {}
    ranges: list[ParameterRange] = []
    for kind, key in (
        ("Integer", "IntegerParameterRanges"),
        ("Continuous", "ContinuousParameterRanges"),
        ("Categorical", "CategoricalParameterRanges"),
    ):
        for item in spec.get(key, []):
            name = item["Name"]
            if kind == "Categorical":
                ranges.append(ParameterRange(name, kind, values=tuple(item["Values"])))
                continue
            integer = kind == "Integer"
            low = _number(item["MinValue"], name, "MinValue", integer)
            high = _number(item["MaxValue"], name, "MaxValue", integer)
            scaling = item.get("ScalingType", "Auto")
            if low > high:
                raise RangeError(f"MinValue must be less than or equal to MaxValue for hyperparameter {name}.")
            if scaling == "Logarithmic" and low <= 0:
                raise RangeError(f"Logarithmic scaling of hyperparameter {name} requires values greater than 0.")
            if scaling == "ReverseLogarithmic":
                if integer:
                    raise RangeError(f"ReverseLogarithmic scaling is not valid for integer hyperparameter {name}.")
                if not (0 <= low and high < 1):
                    raise RangeError(f"ReverseLogarithmic scaling of hyperparameter {name} requires 0 <= value < 1.")
            ranges.append(ParameterRange(name, kind, low, high, scaling))
    names = [r.name for r in ranges]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RangeError(f"Hyperparameters {duplicates} appear in more than one parameter range.")
    if len(ranges) > 30:
        raise RangeError(f"At most 30 parameter ranges are allowed; got {len(ranges)}.")
    return ranges


def grid_size(ranges: list[ParameterRange]) -> int:
    """Return the number of grid combinations.

    :raises RangeError: when a range is not categorical (Grid supports categorical ranges only).
    """
    for item in ranges:
        if item.kind != "Categorical":
            raise RangeError(f"Grid search supports only categorical parameter ranges; {item.name} is {item.kind}.")
    return math.prod(len(r.values) for r in ranges) if ranges else 0


def grid_configurations(ranges: list[ParameterRange]) -> list[dict[str, str]]:
    """Enumerate every grid combination (first range varies slowest)."""
    grid_size(ranges)
    names = [r.name for r in ranges]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(r.values for r in ranges))]


def seed_for(name: str) -> int:
    """Return the random seed of a tuning job: derived from its name only."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def _format_float(value: float) -> str:
    return repr(float(value))


def sample_value(rng: random.Random, item: ParameterRange) -> str:
    """Sample one value of a range, as the string SageMaker passes to the training job."""
    if item.kind == "Categorical":
        return rng.choice(item.values)
    low, high, scaling = item.low, item.high, item.scaling
    if item.kind == "Integer":
        if scaling == "Logarithmic" and low != high:
            value = math.exp(rng.uniform(math.log(low), math.log(high + 1)))
            return str(min(int(high), max(int(low), math.floor(value))))
        return str(rng.randint(int(low), int(high)))
    if low == high:
        return _format_float(low)
    if scaling == "Logarithmic":
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    elif scaling == "ReverseLogarithmic":
        value = 1 - math.exp(rng.uniform(math.log(1 - high), math.log(1 - low)))
    else:
        value = rng.uniform(low, high)
    return _format_float(min(high, max(low, value)))


def random_configurations(ranges: list[ParameterRange], count: int, seed: int) -> list[dict[str, str]]:
    """Draw ``count`` configurations; duplicates are redrawn a few times while the space allows.

    :param ranges: the parsed ranges.
    :param count: how many configurations.
    :param seed: the seed (see :func:`seed_for`).
    """
    rng = random.Random(seed)  # noqa: S311 - search sampling, not cryptography
    out: list[dict[str, str]] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for _ in range(count):
        config: dict[str, str] = {}
        for _attempt in range(20):
            config = {r.name: sample_value(rng, r) for r in ranges}
            key = tuple(sorted(config.items()))
            if key not in seen:
                break
        seen.add(tuple(sorted(config.items())))
        out.append(config)
    return out


def child_job_name(tuning_job_name: str, index: int) -> str:
    """Return the name of the ``index``-th (1-based) training job of a tuning job.

    ``<tuning>-<NNN>-<8 hex>`` as SageMaker names them; the hex part is derived from the tuning job name
    and the index, so a re-created tuning job of the same name gets the same child names.
    """
    digest = hashlib.sha256(f"{tuning_job_name}/{index}".encode()).hexdigest()[:8]
    return f"{tuning_job_name}-{index:03d}-{digest}"
