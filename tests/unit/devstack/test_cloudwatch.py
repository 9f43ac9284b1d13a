"""The devstack's CloudWatch: statistics, metric math and exact-dimension queries (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.cloudwatch import MetricStore, QueryError, metric_data, metric_statistics
from devstack.cloudwatch.expressions import Context, ExpressionError, evaluate
from devstack.cloudwatch.statistics import Extended, PeriodSamples, StatisticError, parse_statistic

T0 = 1_700_000_040.0  # a whole minute
VARIANT = [{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "AllTraffic"}]
FLEET = [*VARIANT, {"Name": "EndpointConfigName", "Value": "cfg-2"}]


def samples(*values: float) -> PeriodSamples:
    return PeriodSamples(values=[(v, 1.0) for v in values])


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        pytest.param("p50", 50.0, id="p50"),
        pytest.param("p99", 99.0, id="p99"),
        pytest.param("p99.9", 100.0, id="p99.9"),
        pytest.param("p100", 100.0, id="p100"),
        pytest.param("tm90", 45.5, id="tm90"),
        pytest.param("TM(10%:90%)", 50.5, id="tm-range"),
        pytest.param("tc90", 90.0, id="tc90"),
        pytest.param("ts10", 55.0, id="ts10"),
        pytest.param("IQM", 50.5, id="iqm"),
        pytest.param("wm98", 50.47, id="wm98-clamps-the-top-2"),
    ],
)
def test_extended_statistics_over_raw_values(stat: str, expected: float) -> None:
    period = samples(*range(1, 101))
    assert period.statistic(parse_statistic(stat)) == pytest.approx(expected)


def test_percentile_counts_repeated_values() -> None:
    # 98 fast requests and 2 slow ones: p99 is slow (nearest rank 99 of 100), p98 is fast
    period = PeriodSamples(values=[(1_000.0, 98.0), (2_500_000.0, 2.0)])
    assert period.statistic(parse_statistic("p99")) == 2_500_000.0
    assert period.statistic(parse_statistic("p98")) == 1_000.0
    assert period.statistic("SampleCount") == 100.0
    assert period.statistic("Average") == pytest.approx((98_000 + 5_000_000) / 100)


def test_percentiles_need_raw_values_as_on_cloudwatch() -> None:
    mixed = PeriodSamples(sets=[(4.0, 10.0, 1.0, 4.0)])
    assert mixed.statistic(parse_statistic("p99")) is None
    assert mixed.statistic("Maximum") == 4.0
    constant = PeriodSamples(sets=[(3.0, 6.0, 2.0, 2.0)], values=[(9.0, 1.0)])
    assert constant.statistic(parse_statistic("p50")) == 2.0
    assert constant.statistic("Sum") == 15.0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("PR(100:2000)", "percentile rank", id="percentile-rank"),
        pytest.param("TM(150:1000)", "absolute", id="absolute-bounds"),
        pytest.param("Median", "not a CloudWatch statistic", id="unknown"),
        pytest.param("TM(90%:10%)", "low < high", id="inverted-range"),
    ],
)
def test_unsupported_statistics_are_refused(name: str, message: str) -> None:
    with pytest.raises(StatisticError, match=message):
        parse_statistic(name)


def test_parse_statistic_shapes() -> None:
    assert parse_statistic("Average") == "Average"
    assert parse_statistic("p99.99") == Extended("p99.99", "p", 99.99, 99.99)
    assert parse_statistic("WM(:95%)") == Extended("WM(:95%)", "wm", 0.0, 95.0)


def _context(**series: dict[float, float]) -> Context:
    grid = [T0 + i * 60 for i in range(4)]
    return Context(dict(series), list(series), {k: k for k in series}, grid, 60)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("errors / calls * 100", {T0: 50.0, T0 + 60: 0.0}, id="rate-joins-timestamps"),
        pytest.param("errors / 0", {}, id="division-by-zero-drops-points"),
        pytest.param("IF(calls > 3, errors, 0)", {T0: 2.0, T0 + 60: 0.0, T0 + 120: 0.0}, id="if"),
        pytest.param("FILL(errors, 0)", {T0: 2.0, T0 + 60: 0.0, T0 + 120: 0.0, T0 + 180: 0.0}, id="fill-value"),
        pytest.param("FILL(errors, REPEAT)", {T0: 2.0, T0 + 60: 0.0, T0 + 120: 0.0, T0 + 180: 0.0}, id="fill-repeat"),
        pytest.param("SUM([errors, calls])", {T0: 6.0, T0 + 60: 5.0, T0 + 120: 2.0}, id="sum-of-array"),
        pytest.param("MAX(METRICS())", {T0: 4.0, T0 + 60: 5.0, T0 + 120: 2.0}, id="max-of-metrics"),
        pytest.param("-errors + 2 ^ 2", {T0: 2.0, T0 + 60: 4.0}, id="precedence"),
        pytest.param("calls >= 4 AND NOT errors", {T0: 0.0, T0 + 60: 1.0}, id="logic"),
    ],
)
def test_metric_math(expression: str, expected: dict[float, float]) -> None:
    context = _context(errors={T0: 2.0, T0 + 60: 0.0}, calls={T0: 4.0, T0 + 60: 5.0, T0 + 120: 2.0})
    assert evaluate(expression, context) == expected


def test_metric_math_reduces_a_single_series_to_a_scalar() -> None:
    assert evaluate("AVG(calls)", _context(calls={T0: 4.0, T0 + 60: 2.0})) == 3.0


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        pytest.param("SEARCH('{AWS/SageMaker} Errors', 'Sum', 60)", "SEARCH is not evaluated", id="search"),
        pytest.param("missing * 2", "'missing', which is not a query id", id="unknown-id"),
        pytest.param("calls +", "ends too early", id="truncated"),
        pytest.param("calls # 2", "Unexpected character", id="bad-character"),
    ],
)
def test_metric_math_errors_name_the_problem(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        evaluate(expression, _context(calls={T0: 1.0}))


def _store() -> MetricStore:
    store = MetricStore()
    for dims, latency in ((VARIANT, 1_000.0), (FLEET, 2_500_000.0)):
        store.add(
            "AWS/SageMaker",
            {
                "MetricName": "ModelLatency",
                "Dimensions": dims,
                "Timestamp": T0 + 5,
                "Values": [latency, 3_000.0],
                "Counts": [99, 1],
                "Unit": "Microseconds",
            },
        )
    return store


def _stats(store: MetricStore, dims: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
    query = {
        "namespace": "AWS/SageMaker",
        "name": "ModelLatency",
        "dimensions": dims,
        "start": T0,
        "end": T0 + 60,
        "period": 60,
        "statistics": ["SampleCount"],
        "extended": ["p99"],
        "unit": None,
    }
    query.update(kwargs)
    return metric_statistics(store, **query)


def test_queries_match_the_exact_dimension_set() -> None:
    store = _store()
    [variant] = _stats(store, VARIANT)
    [fleet] = _stats(store, FLEET)
    assert (variant["SampleCount"], variant["ExtendedStatistics"]) == (100.0, {"p99": 1_000.0})
    assert fleet["ExtendedStatistics"] == {"p99": 2_500_000.0}
    assert _stats(store, VARIANT[:1]) == [], "a subset of the dimensions is another metric"
    assert _stats(store, VARIANT, unit="Milliseconds") == []


def test_get_metric_data_evaluates_statistics_and_math() -> None:
    store = _store()

    def stat(qid: str, dims: list[dict[str, Any]], name: str, **extra: Any) -> dict[str, Any]:
        metric = {"Namespace": "AWS/SageMaker", "MetricName": "ModelLatency", "Dimensions": dims}
        return {"Id": qid, "MetricStat": {"Metric": metric, "Period": 60, "Stat": name}, **extra}

    results = metric_data(
        store,
        [
            stat("blue", VARIANT, "p99", ReturnData=False),
            stat("green", FLEET, "p99", ReturnData=False),
            {"Id": "ratio", "Expression": "green / blue", "Label": "green vs all"},
        ],
        start=T0,
        end=T0 + 120,
    )
    assert [(r["Id"], r["Label"], r["Values"]) for r in results] == [("ratio", "green vs all", [2500.0])]


def test_get_metric_data_refuses_what_it_cannot_compute() -> None:
    metric = {"Namespace": "N", "MetricName": "M", "Dimensions": []}
    with pytest.raises(QueryError, match="PR"):
        metric_data(
            MetricStore(),
            [{"Id": "m1", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "PR(1:2)"}}],
            start=T0,
            end=T0 + 60,
        )
    with pytest.raises(QueryError, match="array"):
        metric_data(
            MetricStore(),
            [
                {"Id": "m1", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}, "ReturnData": False},
                {"Id": "e1", "Expression": "METRICS()"},
            ],
            start=T0,
            end=T0 + 60,
        )


def test_expressions_may_use_each_other_in_any_order() -> None:
    metric = {"Namespace": "AWS/SageMaker", "MetricName": "ModelLatency", "Dimensions": VARIANT}
    results = metric_data(
        _store(),
        [
            {"Id": "doubled", "Expression": "ms * 2"},
            {"Id": "ms", "Expression": "m1 / 1000", "ReturnData": False},
            {"Id": "m1", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Maximum"}, "ReturnData": False},
        ],
        start=T0,
        end=T0 + 60,
    )
    assert [(r["Id"], r["Values"]) for r in results] == [("doubled", [6.0])]
