"""Bias metrics with SageMaker Clarify's short names, descriptions and definitions, and its report shape.

Clarify (the ``smclarify`` library inside its processing image) compares a sensitive group *d* of a facet
(a column, e.g. a customer segment) with the rest of the data *a*. Pre-training metrics look at the labels
only; post-training metrics at the labels and the model's predicted labels. This module computes the same
metrics with numpy and pandas only (it runs in the training, evaluation and monitoring images) and returns
them in the shape of Clarify's ``analysis.json``::

    {"version": "1.0",
     "pre_training_bias_metrics":  {"label": ..., "label_value_or_threshold": "1",
                                    "facets": {<facet>: [{"value_or_threshold": "<group>",
                                                          "metrics": [{"name", "description", "value"}]}]}},
     "post_training_bias_metrics": {...}}

Notation (as in Clarify's documentation): ``n_a``, ``n_d`` rows of the two groups; ``n_x(1)`` those with a
positive label, ``n̂_x(1)`` those with a positive predicted label (``(0)``: negative); ``TP_x``, ``FP_x``,
``TN_x``, ``FN_x`` the confusion counts of a group. A ratio with a zero denominator is 0 when its numerator
is 0 too, else infinite (Clarify's rule); the difference of two infinite ratios is 0.

Pre-training:

- ``CI``  Class Imbalance: ``(n_a - n_d) / (n_a + n_d)``.
- ``DPL`` Difference in Positive Proportions in Labels: ``n_a(1)/n_a - n_d(1)/n_d``.
- ``KL``  Kullback-Leibler divergence of the label distributions: ``sum P_a log(P_a / P_d)``.
- ``JS``  Jensen-Shannon divergence: ``(KL(P_a, P) + KL(P_d, P)) / 2`` with ``P = (P_a + P_d) / 2``.
- ``LP``  L-p norm (p = 2) of ``P_a - P_d``.
- ``TVD`` Total Variation Distance: half the L1 norm of ``P_a - P_d``.
- ``KS``  Kolmogorov-Smirnov distance: ``max |P_a - P_d|``.

  The distributions ``P_a`` and ``P_d`` are those of the (binary) label in each group, over the label values
  that occur in both groups (as Clarify aligns them; they are not renormalised).

Post-training:

- ``DPPL`` Difference in Positive Proportions in Predicted Labels: ``n̂_a(1)/n_a - n̂_d(1)/n_d``.
- ``DI``   Disparate Impact: ``(n̂_d(1)/n_d) / (n̂_a(1)/n_a)`` (1 = parity).
- ``DCA``  Difference in Conditional Acceptance: ``n_a(1)/n̂_a(1) - n_d(1)/n̂_d(1)``.
- ``DCR``  Difference in Conditional Rejection: ``n_d(0)/n̂_d(0) - n_a(0)/n̂_a(0)``.
- ``RD``   Recall Difference: ``TP_a/(TP_a+FN_a) - TP_d/(TP_d+FN_d)``.
- ``DAR``  Difference in Acceptance Rates (precision): ``TP_a/n̂_a(1) - TP_d/n̂_d(1)``.
- ``DRR``  Difference in Rejection Rates: ``TN_d/n̂_d(0) - TN_a/n̂_a(0)``.
- ``AD``   Accuracy Difference: ``acc_a - acc_d``.
- ``TE``   Treatment Equality: ``FN_d/FP_d - FN_a/FP_a``.
- ``SD``   Specificity Difference: ``TN_d/(TN_d+FP_d) - TN_a/(TN_a+FP_a)``.

A metric that cannot be computed (an empty group, no label value common to both groups) is reported as
Clarify reports it: ``"value": null`` and an ``"error"`` text. Infinite values are written as the strings
``"Infinity"`` / ``"-Infinity"``, as in Clarify's files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

VERSION = "1.0"
INFINITY = float("inf")

PRE_TRAINING: dict[str, str] = {
    "CI": "Class Imbalance (CI)",
    "DPL": "Difference in Positive Proportions in Labels (DPL)",
    "JS": "Jensen-Shannon Divergence (JS)",
    # Clarify's own spelling of the description, kept so reports compare equal
    "KL": "Kullback-Liebler Divergence (KL)",
    "KS": "Kolmogorov-Smirnov Distance (KS)",
    "LP": "L-p Norm (LP)",
    "TVD": "Total Variation Distance (TVD)",
}
POST_TRAINING: dict[str, str] = {
    "AD": "Accuracy Difference (AD)",
    "DAR": "Difference in Acceptance Rates (DAR)",
    "DCA": "Difference in Conditional Acceptance (DCA)",
    "DCR": "Difference in Conditional Rejection (DCR)",
    "DI": "Disparate Impact (DI)",
    "DPPL": "Difference in Positive Proportions in Predicted Labels (DPPL)",
    "DRR": "Difference in Rejection Rates (DRR)",
    "RD": "Recall Difference (RD)",
    "SD": "Specificity Difference (SD)",
    "TE": "Treatment Equality (TE)",
}


class BiasError(ValueError):
    """The data cannot be analysed at all (missing column, no rows); the message names what is wrong."""


class MetricUndefinedError(ValueError):
    """One metric has no value for this split (e.g. an empty group); reported as the metric's ``error``."""


def divide(numerator: float, denominator: float) -> float:
    """Clarify's division: ``0/0 = 0``, ``x/0 = ±inf``."""
    if denominator == 0:
        if numerator == 0:
            return 0.0
        return -INFINITY if numerator < 0 else INFINITY
    return numerator / denominator


def _difference(first: float, second: float) -> float:
    """``first - second``, 0 when both are infinite (Clarify's rule for two undefined ratios)."""
    if math.isinf(first) and first == second:
        return 0.0
    return first - second


# ------------------------------------------------------------------------------------------------ the groups


class _Split:
    """Counts of one facet split: ``d`` the sensitive group, ``a`` the rest."""

    def __init__(self, sensitive: np.ndarray, label: np.ndarray, predicted: np.ndarray | None = None) -> None:
        self.d = sensitive.astype(bool)
        self.a = ~self.d
        self.label = label.astype(bool)
        self.predicted = None if predicted is None else predicted.astype(bool)
        self.n_a = int(self.a.sum())
        self.n_d = int(self.d.sum())

    def require_both(self) -> None:
        if self.n_d == 0:
            raise MetricUndefinedError("the sensitive group (facet d) has no rows")
        if self.n_a == 0:
            raise MetricUndefinedError("the rest of the data (facet a) has no rows")

    def count(self, group: np.ndarray, label: bool | None = None, predicted: bool | None = None) -> int:
        mask = group
        if label is not None:
            mask = mask & (self.label == label)
        if predicted is not None:
            if self.predicted is None:
                raise ValueError("post-training metrics need predicted labels")
            mask = mask & (self.predicted == predicted)
        return int(mask.sum())

    def label_distributions(self) -> tuple[np.ndarray, np.ndarray]:
        """``P_a`` and ``P_d`` of the label over the values present in both groups (False, True order)."""
        self.require_both()
        p_a, p_d = [], []
        for value in (False, True):
            share_a = self.count(self.a, label=value) / self.n_a
            share_d = self.count(self.d, label=value) / self.n_d
            if share_a > 0 and share_d > 0:
                p_a.append(share_a)
                p_d.append(share_d)
        if not p_a:
            raise MetricUndefinedError("no label value occurs in both groups")
        return np.asarray(p_a), np.asarray(p_d)


# ------------------------------------------------------------------------------------------------ pre-training


def _ci(s: _Split) -> float:
    s.require_both()
    return (s.n_a - s.n_d) / (s.n_a + s.n_d)


def _positive_proportion_difference(s: _Split, *, predicted: bool) -> float:
    s.require_both()
    key = "predicted" if predicted else "label"
    q_a = s.count(s.a, **{key: True}) / s.n_a
    q_d = s.count(s.d, **{key: True}) / s.n_d
    return q_a - q_d


def _dpl(s: _Split) -> float:
    return _positive_proportion_difference(s, predicted=False)


def _kl(s: _Split) -> float:
    p_a, p_d = s.label_distributions()
    return float(np.sum(p_a * np.log(p_a / p_d)))


def _js(s: _Split) -> float:
    p_a, p_d = s.label_distributions()
    mean = (p_a + p_d) / 2
    return float(0.5 * (np.sum(p_a * np.log(p_a / mean)) + np.sum(p_d * np.log(p_d / mean))))


def _lp(s: _Split) -> float:
    p_a, p_d = s.label_distributions()
    return float(np.linalg.norm(p_a - p_d, 2))


def _tvd(s: _Split) -> float:
    p_a, p_d = s.label_distributions()
    return float(0.5 * np.linalg.norm(p_a - p_d, 1))


def _ks(s: _Split) -> float:
    p_a, p_d = s.label_distributions()
    return float(np.max(np.abs(p_a - p_d)))


# ------------------------------------------------------------------------------------------------ post-training


def _confusion(s: _Split, group: np.ndarray) -> tuple[int, int, int, int]:
    """``(TP, FP, TN, FN)`` of a group."""
    return (
        s.count(group, label=True, predicted=True),
        s.count(group, label=False, predicted=True),
        s.count(group, label=False, predicted=False),
        s.count(group, label=True, predicted=False),
    )


def _dppl(s: _Split) -> float:
    return _positive_proportion_difference(s, predicted=True)


def _di(s: _Split) -> float:
    s.require_both()
    q_a = s.count(s.a, predicted=True) / s.n_a
    q_d = s.count(s.d, predicted=True) / s.n_d
    return divide(q_d, q_a)


def _dca(s: _Split) -> float:
    s.require_both()
    c_a = divide(s.count(s.a, label=True), s.count(s.a, predicted=True))
    c_d = divide(s.count(s.d, label=True), s.count(s.d, predicted=True))
    return _difference(c_a, c_d)


def _dcr(s: _Split) -> float:
    s.require_both()
    r_a = divide(s.count(s.a, label=False), s.count(s.a, predicted=False))
    r_d = divide(s.count(s.d, label=False), s.count(s.d, predicted=False))
    return _difference(r_d, r_a)


def _rd(s: _Split) -> float:
    s.require_both()
    tp_a, _, _, fn_a = _confusion(s, s.a)
    tp_d, _, _, fn_d = _confusion(s, s.d)
    return _difference(divide(tp_a, tp_a + fn_a), divide(tp_d, tp_d + fn_d))


def _sd(s: _Split) -> float:
    s.require_both()
    _, fp_a, tn_a, _ = _confusion(s, s.a)
    _, fp_d, tn_d, _ = _confusion(s, s.d)
    return _difference(divide(tn_d, tn_d + fp_d), divide(tn_a, tn_a + fp_a))


def _dar(s: _Split) -> float:
    s.require_both()
    tp_a, fp_a, _, _ = _confusion(s, s.a)
    tp_d, fp_d, _, _ = _confusion(s, s.d)
    return _difference(divide(tp_a, tp_a + fp_a), divide(tp_d, tp_d + fp_d))


def _drr(s: _Split) -> float:
    s.require_both()
    _, _, tn_a, fn_a = _confusion(s, s.a)
    _, _, tn_d, fn_d = _confusion(s, s.d)
    return _difference(divide(tn_d, tn_d + fn_d), divide(tn_a, tn_a + fn_a))


def _ad(s: _Split) -> float:
    s.require_both()
    tp_a, _, tn_a, _ = _confusion(s, s.a)
    tp_d, _, tn_d, _ = _confusion(s, s.d)
    return _difference(divide(tp_a + tn_a, s.n_a), divide(tp_d + tn_d, s.n_d))


def _te(s: _Split) -> float:
    s.require_both()
    _, fp_a, _, fn_a = _confusion(s, s.a)
    _, fp_d, _, fn_d = _confusion(s, s.d)
    return _difference(divide(fn_d, fp_d), divide(fn_a, fp_a))


_PRE: dict[str, Callable[[_Split], float]] = {
    "CI": _ci,
    "DPL": _dpl,
    "JS": _js,
    "KL": _kl,
    "KS": _ks,
    "LP": _lp,
    "TVD": _tvd,
}
_POST: dict[str, Callable[[_Split], float]] = {
    "AD": _ad,
    "DAR": _dar,
    "DCA": _dca,
    "DCR": _dcr,
    "DI": _di,
    "DPPL": _dppl,
    "DRR": _drr,
    "RD": _rd,
    "SD": _sd,
    "TE": _te,
}


# ------------------------------------------------------------------------------------------------ plain values


def _as_bool(values: Sequence[Any] | np.ndarray | pd.Series, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool:
        return array
    try:
        numbers = array.astype(float)
    except (TypeError, ValueError):
        raise BiasError(f"{what} must be booleans or 0/1, got {array[:5].tolist()}") from None
    if not np.isin(numbers, (0.0, 1.0)).all():
        raise BiasError(f"{what} must be booleans or 0/1, got {sorted(set(numbers.tolist()))[:5]}")
    return numbers == 1.0


def _compute(split: _Split, functions: dict[str, Callable[[_Split], float]]) -> dict[str, float | None]:
    values: dict[str, float | None] = {}
    for name, function in functions.items():
        try:
            values[name] = float(function(split))
        except MetricUndefinedError:
            values[name] = None
    return values


def pre_training_metrics(
    sensitive: Sequence[Any] | np.ndarray, label: Sequence[Any] | np.ndarray
) -> dict[str, float | None]:
    """Pre-training metrics of one split, as plain numbers (``None`` where undefined).

    :param sensitive: per row, True when the row is in the sensitive group *d*
    :param label: per row, True (or 1) for a positive label
    """
    d, y = _as_bool(sensitive, "sensitive"), _as_bool(label, "label")
    if len(d) != len(y):
        raise BiasError(f"sensitive has {len(d)} rows, label {len(y)}")
    return _compute(_Split(d, y), _PRE)


def post_training_metrics(
    sensitive: Sequence[Any] | np.ndarray, label: Sequence[Any] | np.ndarray, predicted: Sequence[Any] | np.ndarray
) -> dict[str, float | None]:
    """Post-training metrics of one split, as plain numbers (``None`` where undefined).

    :param sensitive: per row, True when the row is in the sensitive group *d*
    :param label: per row, True (or 1) for a positive label
    :param predicted: per row, True (or 1) for a positive predicted label
    """
    d, y, p = _as_bool(sensitive, "sensitive"), _as_bool(label, "label"), _as_bool(predicted, "predicted")
    if not len(d) == len(y) == len(p):
        raise BiasError(f"sensitive has {len(d)} rows, label {len(y)}, predicted {len(p)}")
    return _compute(_Split(d, y, p), _POST)


# ------------------------------------------------------------------------------------------------ reports


def _json_value(value: float) -> float | str:
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _positive(column: pd.Series, positive_values: Sequence[Any], what: str) -> np.ndarray:
    """Rows whose value is one of ``positive_values`` (compared as numbers when both sides are numeric)."""
    if column.isna().any():
        raise BiasError(f"{what} column {column.name!r} has {int(column.isna().sum())} empty value(s)")
    wanted = list(positive_values)
    try:
        numbers = pd.to_numeric(column)
        targets = [float(v) for v in wanted]
    except (TypeError, ValueError):
        return column.astype(str).isin([str(v) for v in wanted]).to_numpy()
    return numbers.astype(float).isin(targets).to_numpy()


def _facet_splits(
    facet: pd.Series, facet_values_or_threshold: Sequence[Any] | float | int | str | None
) -> list[tuple[str, np.ndarray]]:
    """``(value_or_threshold text, sensitive mask)`` per split, as Clarify forms them.

    No group given: one split per facet value, that value against the rest. A list of values: one split,
    those values against the rest. A single number on a numeric facet: one split, ``(threshold, max]``
    against the rest.
    """
    if facet.isna().any():
        raise BiasError(f"facet column {facet.name!r} has {int(facet.isna().sum())} empty value(s)")
    if facet_values_or_threshold is None or (
        isinstance(facet_values_or_threshold, (list, tuple)) and not facet_values_or_threshold
    ):
        values = sorted(facet.unique(), key=str)
        return [(str(v), (facet == v).to_numpy()) for v in values]
    if isinstance(facet_values_or_threshold, (int, float)) and not isinstance(facet_values_or_threshold, bool):
        if not pd.api.types.is_numeric_dtype(facet):
            raise BiasError(f"facet column {facet.name!r} is not numeric, so a threshold cannot split it")
        threshold = float(facet_values_or_threshold)
        return [(f"({threshold}, {float(facet.max())}]", (facet.astype(float) > threshold).to_numpy())]
    group = (
        list(facet_values_or_threshold)
        if isinstance(facet_values_or_threshold, (list, tuple))
        else [facet_values_or_threshold]
    )
    return [(",".join(map(str, group)), _positive(facet, group, "facet"))]


def _entries(split: _Split, functions: dict[str, Callable[[_Split], float]], descriptions: dict[str, str]) -> list:
    entries = []
    for name in sorted(functions):
        entry: dict[str, Any] = {"name": name, "description": descriptions[name]}
        try:
            entry["value"] = _json_value(float(functions[name](split)))
        except MetricUndefinedError as exc:
            entry["value"] = None
            entry["error"] = str(exc)
        entries.append(entry)
    return entries


def _report(
    frame: pd.DataFrame,
    *,
    label: str,
    facet: str,
    facet_values_or_threshold: Any,
    label_values: Sequence[Any],
    predicted_label: str | None,
) -> dict[str, Any]:
    if frame.empty:
        raise BiasError("no rows to analyse")
    for role, column in (("label", label), ("facet", facet), ("predicted label", predicted_label)):
        if column is not None and column not in frame.columns:
            raise BiasError(f"{role} column {column!r} is not in the data (columns: {', '.join(map(str, frame))})")
    if not label_values:
        raise BiasError("label_values (the positive label values) is empty")
    y = _positive(frame[label], label_values, "label")
    p = None if predicted_label is None else _positive(frame[predicted_label], label_values, "predicted label")
    functions, descriptions = (_PRE, PRE_TRAINING) if p is None else (_POST, POST_TRAINING)
    facets = [
        {"value_or_threshold": text, "metrics": _entries(_Split(mask, y, p), functions, descriptions)}
        for text, mask in _facet_splits(frame[facet], facet_values_or_threshold)
    ]
    return {
        "label": label,
        "label_value_or_threshold": ",".join(map(str, label_values)),
        "facets": {facet: facets},
    }


def pre_training_report(
    frame: pd.DataFrame,
    *,
    label: str,
    facet: str,
    facet_values_or_threshold: Any = None,
    label_values: Sequence[Any] = (1,),
) -> dict[str, Any]:
    """Clarify's ``pre_training_bias_metrics`` section for ``frame``.

    :param label: the label column
    :param facet: the facet column
    :param facet_values_or_threshold: the sensitive group (a value, a list of values, or for a numeric facet
        a threshold); ``None``: one entry per facet value, each against the rest
    :param label_values: the positive label values
    :raises BiasError: a column is missing, has empty values, or there are no rows
    """
    return _report(
        frame,
        label=label,
        facet=facet,
        facet_values_or_threshold=facet_values_or_threshold,
        label_values=label_values,
        predicted_label=None,
    )


def post_training_report(
    frame: pd.DataFrame,
    *,
    label: str,
    predicted_label: str,
    facet: str,
    facet_values_or_threshold: Any = None,
    label_values: Sequence[Any] = (1,),
) -> dict[str, Any]:
    """Clarify's ``post_training_bias_metrics`` section for ``frame``.

    :param predicted_label: the column of predicted labels (same values as the label, e.g. 0/1)
    :raises BiasError: as :func:`pre_training_report`
    """
    return _report(
        frame,
        label=label,
        facet=facet,
        facet_values_or_threshold=facet_values_or_threshold,
        label_values=label_values,
        predicted_label=predicted_label,
    )


def analysis(pre_training: dict | None = None, post_training: dict | None = None) -> dict[str, Any]:
    """The ``analysis.json`` document holding the sections given."""
    document: dict[str, Any] = {"version": VERSION}
    if post_training is not None:
        document["post_training_bias_metrics"] = post_training
    if pre_training is not None:
        document["pre_training_bias_metrics"] = pre_training
    return document


def metric_values(section: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """``{value_or_threshold: {metric name: value}}`` of a report section (its one facet), with the
    ``"Infinity"`` strings turned back into floats and undefined metrics as ``None``."""
    (entries,) = section["facets"].values()
    result: dict[str, dict[str, float | None]] = {}
    for entry in entries:
        values: dict[str, float | None] = {}
        for metric in entry["metrics"]:
            value = metric["value"]
            values[metric["name"]] = None if value is None else float(value)
        result[entry["value_or_threshold"]] = values
    return result
