"""Statistics, suggested constraints and constraint checks in the formats of SageMaker's analyzer.

Pure functions over a :class:`Dataset` (column names and rows of raw values). The file formats are those
of ``statistics.json``, ``constraints.json`` and ``constraint_violations.json`` written by SageMaker
Model Monitor's pre-built container (see ``docs/devstack-hosting.md``):

- types: a value is ``Integral`` (an integer, a bool, or text of one), ``Fractional`` (a real number) or
  ``String``; a column is Integral when every present value is, Fractional when every present value is a
  number, String otherwise (``Unknown`` when it has no value);
- numeric distributions: ten equal-width buckets from min to max and a KLL sketch (``c`` 0.64, ``k`` 2048);
- drift (``baseline_drift_check``): the L-infinity distance between the baseline's and the current CDFs,
  computed from the two KLL sketches for numeric features and from the category frequencies for strings;
  ``Robust`` subtracts ``1.8 * sqrt((n + m) / (n * m))`` (floored at 0), ``Simple`` uses it as is;
  ``ChiSquared`` (strings) is the chi-square goodness-of-fit p-value of the current counts against the
  baseline proportions, a violation when it is below the threshold.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

KLL_K = 2048
KLL_C = 0.64
ROBUST_C = 1.8
BUCKETS = 10
DOMAIN_MAX_VALUES = 20

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|infinity|nan)$", re.IGNORECASE)


@dataclass
class Dataset:
    """Column names and rows of raw values (str, int, float, bool or None)."""

    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def column(self, index: int) -> list[Any]:
        return [row[index] if index < len(row) else None for row in self.rows]


def is_missing(value: Any) -> bool:
    """None, NaN and blank text are missing."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def value_type(value: Any) -> str:
    """``Integral``, ``Fractional`` or ``String`` for one present value."""
    if isinstance(value, bool | int):
        return "Integral"
    if isinstance(value, float):
        return "Fractional"
    text = str(value).strip()
    if _INT.match(text):
        return "Integral"
    if _FLOAT.match(text):
        return "Fractional"
    return "String"


def as_number(value: Any) -> float:
    """The numeric value of an Integral/Fractional value."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return float(value)


def column_type(values: list[Any]) -> str:
    """The inferred type of a column (see the module docstring)."""
    kinds = {value_type(v) for v in values if not is_missing(v)}
    if not kinds:
        return "Unknown"
    if kinds == {"Integral"}:
        return "Integral"
    if kinds <= {"Integral", "Fractional"}:
        return "Fractional"
    return "String"


class KLLSketch:
    """A KLL quantile sketch: compactor levels whose items weigh ``2 ** level``.

    :param k: the top level's capacity.
    :param c: the capacity shrinking factor between levels.
    """

    def __init__(self, k: int = KLL_K, c: float = KLL_C, levels: list[list[float]] | None = None) -> None:
        self.k = k
        self.c = c
        self.levels: list[list[float]] = levels if levels is not None else [[]]
        self._flip = 0

    def _capacity(self, level: int) -> int:
        depth = len(self.levels) - level - 1
        return max(2, math.ceil(self.k * self.c**depth))

    def update(self, value: float) -> None:
        self.levels[0].append(value)
        if len(self.levels[0]) > self._capacity(0):
            self._compress()

    def _compress(self) -> None:
        for level in range(len(self.levels)):
            if len(self.levels[level]) <= self._capacity(level):
                continue
            if level + 1 == len(self.levels):
                self.levels.append([])
            items = sorted(self.levels[level])
            keep = [items.pop()] if len(items) % 2 else []
            self._flip ^= 1
            self.levels[level + 1].extend(items[self._flip :: 2])
            self.levels[level] = keep

    def weighted(self) -> list[tuple[float, int]]:
        return [(item, 2**level) for level, items in enumerate(self.levels) for item in items]

    def cdf(self, x: float) -> float:
        """The fraction of the sketched values that are <= x."""
        pairs = self.weighted()
        total = sum(w for _, w in pairs)
        if total == 0:
            return 0.0
        return sum(w for v, w in pairs if v <= x) / total

    def to_json(self) -> dict[str, Any]:
        return {"parameters": {"c": self.c, "k": float(self.k)}, "data": [list(items) for items in self.levels]}

    @classmethod
    def from_json(cls, sketch: dict[str, Any]) -> KLLSketch:
        params = sketch.get("parameters", {})
        return cls(int(params.get("k", KLL_K)), float(params.get("c", KLL_C)), [list(x) for x in sketch["data"]])


def _buckets(numbers: list[float], low: float, high: float) -> list[dict[str, float]]:
    width = (high - low) / BUCKETS
    counts = [0] * BUCKETS
    for number in numbers:
        index = BUCKETS - 1 if width == 0 or number >= high else int((number - low) / width)
        counts[min(max(index, 0), BUCKETS - 1)] += 1
    if width == 0:
        counts = [0] * (BUCKETS - 1) + [len(numbers)]
    return [
        {"lower_bound": low + width * i, "upper_bound": low + width * (i + 1), "count": float(counts[i])}
        for i in range(BUCKETS)
    ]


def feature_statistics(name: str, values: list[Any], inferred: str | None = None) -> dict[str, Any]:
    """One ``features[]`` entry of ``statistics.json``."""
    kind = inferred or column_type(values)
    present = [v for v in values if not is_missing(v)]
    common = {"num_present": len(present), "num_missing": len(values) - len(present)}
    entry: dict[str, Any] = {"name": name, "inferred_type": kind}
    if kind in ("Integral", "Fractional"):
        numbers = []
        for value in present:
            if value_type(value) in ("Integral", "Fractional"):
                numbers.append(as_number(value))
        sketch = KLLSketch()
        for number in numbers:
            sketch.update(number)
        if numbers:
            mean = sum(numbers) / len(numbers)
            std = math.sqrt(sum((x - mean) ** 2 for x in numbers) / len(numbers))
            low, high = min(numbers), max(numbers)
            stats: dict[str, Any] = {
                "common": common,
                "mean": mean,
                "sum": sum(numbers),
                "std_dev": std,
                "min": low,
                "max": high,
                "distribution": {"kll": {"buckets": _buckets(numbers, low, high), "sketch": sketch.to_json()}},
            }
        else:
            stats = {"common": common, "mean": 0.0, "sum": 0.0, "std_dev": 0.0, "min": 0.0, "max": 0.0}
        entry["numerical_statistics"] = stats
    else:
        counts = Counter(str(v) for v in present)
        entry["string_statistics"] = {
            "common": common,
            "distinct_count": float(len(counts)),
            "distribution": {"categorical": {"buckets": [{"value": v, "count": c} for v, c in counts.most_common()]}},
        }
    return entry


def statistics(dataset: Dataset, types: dict[str, str] | None = None) -> dict[str, Any]:
    """The whole ``statistics.json`` of a dataset; ``types`` forces a column's inferred type."""
    features = [
        feature_statistics(name, dataset.column(i), (types or {}).get(name)) for i, name in enumerate(dataset.columns)
    ]
    return {"version": 0.0, "dataset": {"item_count": len(dataset.rows)}, "features": features}


def suggest_constraints(stats: dict[str, Any]) -> dict[str, Any]:
    """``constraints.json`` suggested from baseline statistics (as ``suggest_baseline`` writes it)."""
    features = []
    for feature in stats["features"]:
        block = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
        common = block.get("common", {"num_present": 0, "num_missing": 0})
        total = common["num_present"] + common["num_missing"]
        entry: dict[str, Any] = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": (common["num_present"] / total) if total else 0.0,
        }
        if "numerical_statistics" in feature:
            entry["num_constraints"] = {"is_non_negative": feature["numerical_statistics"].get("min", 0.0) >= 0}
        elif "string_statistics" in feature:
            buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
            if 0 < len(buckets) <= DOMAIN_MAX_VALUES:
                entry["string_constraints"] = {"domains": sorted(b["value"] for b in buckets)}
        features.append(entry)
    return {
        "version": 0.0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust",
            },
        },
    }


# -- drift ------------------------------------------------------------------------------------------


def robust(distance: float, n: float, m: float) -> float:
    """Subtract the two-sample KS critical value (c = 1.8) from an L-infinity distance, floored at 0."""
    if n <= 0 or m <= 0:
        return distance
    return max(0.0, distance - ROBUST_C * math.sqrt((n + m) / (n * m)))


def numeric_distance(baseline: dict[str, Any], current: dict[str, Any], method: str = "Robust") -> float | None:
    """L-infinity distance between two ``numerical_statistics`` blocks' KLL sketches."""
    try:
        base = KLLSketch.from_json(baseline["distribution"]["kll"]["sketch"])
        cur = KLLSketch.from_json(current["distribution"]["kll"]["sketch"])
    except (KeyError, TypeError):
        return None
    points = sorted({v for v, _ in base.weighted()} | {v for v, _ in cur.weighted()})
    if not points:
        return None
    linf = max(abs(base.cdf(x) - cur.cdf(x)) for x in points)
    if method.lower() in ("simple", "linf_simple"):
        return linf
    return robust(linf, baseline["common"]["num_present"], current["common"]["num_present"])


def _category_counts(block: dict[str, Any]) -> dict[str, float]:
    buckets = block.get("distribution", {}).get("categorical", {}).get("buckets", [])
    return {str(b["value"]): float(b["count"]) for b in buckets}


def categorical_distance(
    baseline: dict[str, Any], current: dict[str, Any], method: str = "Robust", drift_method: str = "LInfinity"
) -> float | None:
    """L-infinity distance (or chi-square p-value) between two ``string_statistics`` blocks."""
    base, cur = _category_counts(baseline), _category_counts(current)
    n, m = sum(base.values()), sum(cur.values())
    if n == 0 or m == 0:
        return None
    if drift_method == "ChiSquared":
        from scipy.stats import chisquare

        categories = sorted(base)
        observed = [cur.get(k, 0.0) for k in categories]
        unseen = m - sum(observed)
        expected = [base[k] / n * m for k in categories]
        if unseen > 0:
            observed.append(unseen)
            expected.append(0.5)  # a category the baseline never saw: expected almost never
            scale = sum(observed) / sum(expected)
            expected = [e * scale for e in expected]
        if len(categories) < 2:
            return None
        return float(chisquare(observed, expected).pvalue)
    keys = set(base) | set(cur)
    linf = max(abs(base.get(k, 0.0) / n - cur.get(k, 0.0) / m) for k in keys)
    if method.lower() in ("simple", "linf_simple"):
        return linf
    return robust(linf, n, m)


# -- checks -----------------------------------------------------------------------------------------


def _percent(share: float) -> str:
    return f"{share * 100}%"


def _enabled(value: Any, default: bool = True) -> bool:
    if value is None:
        return default
    return str(value).lower() == "enabled"


def _feature_evaluates(feature: dict[str, Any]) -> bool:
    for holder in (feature, feature.get("string_constraints") or {}, feature.get("num_constraints") or {}):
        overrides = holder.get("monitoringConfigOverrides") or holder.get("monitoring_config_overrides") or {}
        if str(overrides.get("evaluate_constraints", "Enabled")).lower() == "disabled":
            return False
    return True


def check(
    dataset: Dataset,
    current: dict[str, Any],
    constraints: dict[str, Any] | None,
    baseline_stats: dict[str, Any] | None,
) -> tuple[list[dict[str, str]], dict[str, float]]:
    """Check a dataset against baseline constraints and statistics.

    :return: (the ``violations`` list, the drift distance per feature).
    """
    violations: list[dict[str, str]] = []
    drift: dict[str, float] = {}
    config = (constraints or {}).get("monitoring_config") or {}
    evaluate = _enabled(config.get("evaluate_constraints"))
    by_name = {f["name"]: f for f in current["features"]}
    columns = {name: i for i, name in enumerate(dataset.columns)}

    def add(feature: str, kind: str, description: str) -> None:
        violations.append({"feature_name": feature, "constraint_check_type": kind, "description": description})

    if constraints is not None and evaluate:
        expected = constraints.get("features", [])
        if len(dataset.columns) < len(expected):
            missing = [f["name"] for f in expected if f["name"] not in columns]
            add(
                ", ".join(missing) or "dataset",
                "missing_column_check",
                f"There are missing columns in current dataset. Number of columns in current dataset: "
                f"{len(dataset.columns)}, Number of columns in baseline constraints: {len(expected)}",
            )
        elif len(dataset.columns) > len(expected):
            extra = [c for c in dataset.columns if c not in {f["name"] for f in expected}]
            add(
                ", ".join(extra) or "dataset",
                "extra_column_check",
                f"There are extra columns in current dataset. Number of columns in current dataset: "
                f"{len(dataset.columns)}, Number of columns in baseline constraints: {len(expected)}",
            )
        type_threshold = float(config.get("datatype_check_threshold", 1.0))
        domain_threshold = float(config.get("domain_content_threshold", 1.0))
        for feature in expected:
            name = feature["name"]
            if name not in columns or not _feature_evaluates(feature):
                continue
            values = dataset.column(columns[name])
            present = [v for v in values if not is_missing(v)]
            kind = feature.get("inferred_type")
            if present and kind in ("Integral", "Fractional"):
                accepted = {"Integral"} if kind == "Integral" else {"Integral", "Fractional"}
                share = sum(1 for v in present if value_type(v) in accepted) / len(present)
                if share < type_threshold:
                    add(
                        name,
                        "data_type_check",
                        f"Data type match requirement is not met. Expected data type: {kind}, Expected match: "
                        f"{_percent(type_threshold)}. Observed: Only {_percent(share)} of data is {kind}.",
                    )
            completeness = feature.get("completeness")
            if completeness is not None and values:
                observed = len(present) / len(values)
                if observed < float(completeness):
                    add(
                        name,
                        "completeness_check",
                        f"Data completeness requirement is not met. Expected completeness: "
                        f"{_percent(float(completeness))}. Observed: Only {_percent(observed)} of data is complete.",
                    )
            domains = (feature.get("string_constraints") or {}).get("domains")
            if domains and present:
                allowed = {str(d) for d in domains}
                share = sum(1 for v in present if str(v) in allowed) / len(present)
                if share < domain_threshold:
                    outside = sorted({str(v) for v in present if str(v) not in allowed})[:5]
                    add(
                        name,
                        "categorical_values_check",
                        f"Value outside domain requirement is not met. Expected match: {_percent(domain_threshold)}. "
                        f"Observed: Only {_percent(share)} of data is within the baseline domain "
                        f"(unexpected values include {', '.join(outside)}).",
                    )

    distribution = config.get("distribution_constraints") or {}
    if (
        baseline_stats is not None
        and _enabled(distribution.get("perform_comparison"))
        and (evaluate or not constraints)
    ):
        threshold = float(distribution.get("comparison_threshold", 0.1))
        categorical_threshold = float(distribution.get("categorical_comparison_threshold", threshold))
        method = str(distribution.get("comparison_method", "Robust"))
        drift_method = str(distribution.get("categorical_drift_method", "LInfinity"))
        skipped = {f["name"] for f in (constraints or {}).get("features", []) if not _feature_evaluates(f)}
        for base in baseline_stats.get("features", []):
            name = base["name"]
            cur = by_name.get(name)
            if cur is None or name in skipped:
                continue
            if "numerical_statistics" in base and "numerical_statistics" in cur:
                distance = numeric_distance(base["numerical_statistics"], cur["numerical_statistics"], method)
                limit = threshold
                chi = False
            elif "string_statistics" in base and "string_statistics" in cur:
                distance = categorical_distance(
                    base["string_statistics"], cur["string_statistics"], method, drift_method
                )
                limit = categorical_threshold
                chi = drift_method == "ChiSquared"
            else:
                continue
            if distance is None:
                continue
            drift[name] = distance
            if (distance < limit) if chi else (distance > limit):
                relation = "is below" if chi else "exceeds"
                label = "Baseline drift p-value" if chi else "Baseline drift distance"
                add(name, "baseline_drift_check", f"{label}: {distance} {relation} threshold: {limit}")
    return violations, drift
