"""CloudWatch statistics over the samples of one period, computed as CloudWatch defines them.

A period's samples are what ``PutMetricData`` received: raw values (``Value``, or ``Values`` with
``Counts``) and statistic sets (``StatisticValues``). ``SampleCount``, ``Sum``, ``Average``, ``Minimum``
and ``Maximum`` combine both. The extended statistics need raw values, as on AWS: CloudWatch computes a
percentile only when every statistic set of the period is reducible to raw values (``SampleCount`` 1, or
``Minimum`` equal to ``Maximum``); otherwise the period has no value for that statistic.

Extended statistics supported: percentiles ``pNN`` / ``pNN.NN``; trimmed mean, count and sum and the
winsorized mean as ``tmNN`` / ``tcNN`` / ``tsNN`` / ``wmNN`` (the lowest NN % of the values) or with a
percentage range ``TM(10%:90%)``, ``TC(..)``, ``TS(..)``, ``WM(..)`` (either bound may be omitted);
``IQM`` (``TM(25%:75%)``). Other statistics (percentile rank ``PR``, absolute-value bounds such as
``TM(150:1000)``) are refused with :class:`StatisticError` naming the statistic.

Percentiles use the nearest-rank definition over the exact values; CloudWatch computes them from its
internal histogram with a small relative error (see ``docs/devstack-hosting.md``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

BASIC = ("SampleCount", "Sum", "Average", "Minimum", "Maximum")

_SHORT = re.compile(r"^(p|tm|tc|ts|wm)(\d{1,2}(?:\.\d{1,10})?|100)$")
_RANGE = re.compile(r"^(TM|TC|TS|WM)\((\d{1,3}(?:\.\d+)?%)?:(\d{1,3}(?:\.\d+)?%)?\)$", re.IGNORECASE)


class StatisticError(ValueError):
    """A statistic the devstack's CloudWatch does not compute (or that is malformed)."""


@dataclass(frozen=True)
class Extended:
    """A parsed extended statistic: ``kind`` (p, tm, tc, ts, wm) over the percentile range [low, high]."""

    name: str
    kind: str
    low: float
    high: float

    @property
    def percentile(self) -> float:
        """The percentile of a ``p`` statistic, in percent."""
        return self.high


def parse_statistic(name: str) -> str | Extended:
    """Return a basic statistic's name, or the parsed extended statistic.

    :param name: ``Average``, ``p99``, ``tm90``, ``TM(10%:90%)``, ``IQM`` ...
    :raises StatisticError: for a statistic the devstack does not compute.
    """
    if name in BASIC:
        return name
    if name == "IQM":
        return Extended(name, "tm", 25.0, 75.0)
    short = _SHORT.match(name)
    if short:
        kind, number = short.group(1), float(short.group(2))
        if kind == "p":
            if not 0 <= number <= 100:
                raise StatisticError(f"The percentile in {name!r} must be between 0 and 100.")
            return Extended(name, "p", number, number)
        return Extended(name, kind, 0.0, number)
    ranged = _RANGE.match(name)
    if ranged:
        low = float(ranged.group(2)[:-1]) if ranged.group(2) else 0.0
        high = float(ranged.group(3)[:-1]) if ranged.group(3) else 100.0
        if not 0 <= low < high <= 100:
            raise StatisticError(f"The percentage range of {name!r} must satisfy 0 <= low < high <= 100.")
        return Extended(name, ranged.group(1).lower(), low, high)
    if re.match(r"^(PR|TM|TC|TS|WM)\(", name, re.IGNORECASE):
        raise StatisticError(
            f"The statistic {name!r} is not computed by the devstack's CloudWatch: it supports percentage "
            "bounds such as TM(10%:90%), not absolute values or percentile rank (PR)."
        )
    raise StatisticError(
        f"The statistic {name!r} is not a CloudWatch statistic the devstack computes (use SampleCount, Sum, "
        "Average, Minimum, Maximum, pNN, tmNN, tcNN, tsNN, wmNN, TM(a%:b%), TC, TS, WM or IQM)."
    )


@dataclass
class PeriodSamples:
    """The samples of one metric in one period.

    :param values: raw values with their counts.
    :param sets: statistic sets as (SampleCount, Sum, Minimum, Maximum).
    """

    values: list[tuple[float, float]] = field(default_factory=list)
    sets: list[tuple[float, float, float, float]] = field(default_factory=list)

    def sample_count(self) -> float:
        return sum(c for _, c in self.values) + sum(s[0] for s in self.sets)

    def total(self) -> float:
        return sum(v * c for v, c in self.values) + sum(s[1] for s in self.sets)

    def minimum(self) -> float:
        return min([v for v, _ in self.values] + [s[2] for s in self.sets])

    def maximum(self) -> float:
        return max([v for v, _ in self.values] + [s[3] for s in self.sets])

    def raw(self) -> list[tuple[float, float]] | None:
        """The period's values with counts, or None when a statistic set hides its values."""
        out = list(self.values)
        for count, total, low, high in self.sets:
            if count == 1:
                out.append((total, 1.0))
            elif low == high:
                out.append((low, count))
            else:
                return None
        return out

    def statistic(self, stat: str | Extended) -> float | None:
        """The value of a statistic over the period, or None when CloudWatch would give none."""
        count = self.sample_count()
        if count <= 0:
            return None
        if isinstance(stat, str):
            if stat == "SampleCount":
                return count
            if stat == "Sum":
                return self.total()
            if stat == "Average":
                return self.total() / count
            if stat == "Minimum":
                return self.minimum()
            return self.maximum()
        raw = self.raw()
        if raw is None:
            return None
        return extended(stat, raw)


def _expand(raw: list[tuple[float, float]]) -> list[float]:
    out: list[float] = []
    for value, count in sorted(raw):
        out.extend([value] * max(1, round(count)))
    return out


def extended(stat: Extended, raw: list[tuple[float, float]]) -> float | None:
    """Compute an extended statistic over values with counts (None when no value falls in its range)."""
    values = _expand(raw)
    n = len(values)
    if n == 0:
        return None
    if stat.kind == "p":
        rank = max(1, math.ceil(stat.percentile / 100.0 * n))
        return values[rank - 1]
    start = math.floor(stat.low / 100.0 * n + 1e-9)
    end = math.ceil(stat.high / 100.0 * n - 1e-9)
    inside = values[start:end]
    if stat.kind == "tc":
        return float(len(inside))
    if stat.kind == "ts":
        return float(sum(inside))
    if not inside:
        return None
    if stat.kind == "tm":
        return sum(inside) / len(inside)
    # winsorized mean: values outside the range are clamped to its edges
    low, high = inside[0], inside[-1]
    return sum(min(max(v, low), high) for v in values) / n
