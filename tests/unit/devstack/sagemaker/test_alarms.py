"""CloudWatch alarm evaluation rules (pure function), checked against CloudWatch's documented tables."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from devstack.sagemaker.alarms import Point, evaluate, queries_for, unsupported

PERIOD = 60
NOW = 1_700_000_000 - 1_700_000_000 % PERIOD + 30  # 30 s into a period
CURRENT = NOW - NOW % PERIOD


def alarm(**overrides: Any) -> dict[str, Any]:
    base = {
        "AlarmName": "errors",
        "Namespace": "AWS/SageMaker",
        "MetricName": "Invocation5XXErrors",
        "Statistic": "Sum",
        "Period": PERIOD,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "StateValue": "INSUFFICIENT_DATA",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def series(pattern: str, breach: float = 5.0, ok: float = 0.0) -> dict[float, Point]:
    """Periods from a pattern read oldest to newest ('X' breaching, '0' good, '-' missing); last = current."""
    out = {}
    for age, char in enumerate(reversed(pattern.replace(" ", ""))):
        if char == "-":
            continue
        start = CURRENT - age * PERIOD
        out[start] = Point(start, breach if char == "X" else ok, 1.0)
    return out


KEEP = None  # "Retain current state"

# CloudWatch user guide, "How alarm state is evaluated when data is missing": the evaluation range is 5
# periods, the most recent on the right; columns MISSING, IGNORE, BREACHING, NOT BREACHING.
THREE_OF_THREE = [
    ("0 - X - X", ("OK", "OK", "OK", "OK")),
    ("0 - - - -", ("OK", "OK", "OK", "OK")),
    ("- - - - -", ("INSUFFICIENT_DATA", KEEP, "ALARM", "OK")),
    ("0 X X - X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    ("- - X - -", ("ALARM", KEEP, "ALARM", "OK")),
    # the premature-ALARM guard: a lone recent breaching point is not enough (older version of the guide)
    ("- - - - X", ("INSUFFICIENT_DATA", KEEP, "ALARM", "OK")),
]
TWO_OF_THREE = [
    ("0 - X - X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    ("0 0 X 0 X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    ("0 - X - -", ("OK", "OK", "ALARM", "OK")),
    ("- - - - 0", ("OK", "OK", "ALARM", "OK")),
    ("- - - X -", ("ALARM", KEEP, "ALARM", "OK")),
]
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")


def _cases(table: list[tuple[str, tuple[str | None, ...]]], m: int) -> list[Any]:
    return [
        pytest.param(pattern, m, treat, expected, id=f"{m}of3-{pattern.replace(' ', '')}-{treat}")
        for pattern, states in table
        for treat, expected in zip(TREATMENTS, states, strict=True)
    ]


@pytest.mark.parametrize(("pattern", "m", "treat", "expected"), _cases(THREE_OF_THREE, 3) + _cases(TWO_OF_THREE, 2))
def test_missing_data_treatment_matches_cloudwatch_tables(
    pattern: str, m: int, treat: str, expected: str | None
) -> None:
    result = evaluate(alarm(EvaluationPeriods=3, DatapointsToAlarm=m, TreatMissingData=treat), series(pattern), NOW)
    assert result.state == expected


def test_dynamodb_alarms_always_ignore_missing_data() -> None:
    dynamo = alarm(Namespace="AWS/DynamoDB", TreatMissingData="breaching")
    assert evaluate(dynamo, {}, NOW).state is None


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        pytest.param("GreaterThanThreshold", 1.0, "OK", id="gt-equal-is-ok"),
        pytest.param("GreaterThanOrEqualToThreshold", 1.0, "ALARM", id="ge-equal-alarms"),
        pytest.param("LessThanThreshold", 0.5, "ALARM", id="lt"),
        pytest.param("LessThanOrEqualToThreshold", 1.5, "OK", id="le-above-is-ok"),
    ],
)
def test_comparison_operators(operator: str, value: float, expected: str) -> None:
    points = {CURRENT: Point(CURRENT, value, 1.0)}
    assert evaluate(alarm(ComparisonOperator=operator), points, NOW).state == expected


def test_m_out_of_n_takes_the_n_most_recent_real_datapoints() -> None:
    two_of_three = alarm(EvaluationPeriods=3, DatapointsToAlarm=2)
    assert evaluate(two_of_three, series("X0X"), NOW).state == "ALARM"
    assert evaluate(two_of_three, series("00X"), NOW).state == "OK"
    # older real datapoints stand in for missing recent ones: X, X, X are the 3 most recent real ones
    assert evaluate(alarm(EvaluationPeriods=3, TreatMissingData="notBreaching"), series("0XX-X"), NOW).state == "ALARM"


def test_reason_is_worded_like_cloudwatch() -> None:
    result = evaluate(alarm(), {CURRENT: Point(CURRENT, 5.0, 5.0)}, NOW)
    stamp = dt.datetime.fromtimestamp(CURRENT, dt.UTC)
    assert result.reason == (
        f"Threshold Crossed: 1 datapoint [5.0 ({stamp:%d/%m/%y %H:%M:%S})] was greater than the threshold (1.0)."
    )
    ok = evaluate(alarm(), {CURRENT: Point(CURRENT, 0.0, 1.0)}, NOW)
    assert ok.reason.endswith("was not greater than the threshold (1.0).")
    data = json.loads(result.reason_data)
    assert data["statistic"] == "Sum" and data["period"] == PERIOD and data["threshold"] == 1.0
    assert data["evaluatedDatapoints"] == [
        {"timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.000+0000"), "sampleCount": 5.0, "value": 5.0}
    ]


def test_m_of_n_reason_names_the_minimum_and_the_filled_datapoints() -> None:
    result = evaluate(
        alarm(EvaluationPeriods=3, DatapointsToAlarm=2, TreatMissingData="breaching"), series("---X-"), NOW
    )
    assert result.state == "ALARM"
    assert result.reason.startswith("Threshold Crossed: 1 out of the last 3 datapoints [5.0 (")
    assert result.reason.endswith(
        "was greater than the threshold (1.0) and 2 missing datapoints were treated as [Breaching] "
        "(minimum 2 datapoints for OK -> ALARM transition)."
    )
    assert [p.get("value") for p in json.loads(result.reason_data)["evaluatedDatapoints"]] == [None, 5.0, None]


def test_no_data_reasons() -> None:
    result = evaluate(alarm(EvaluationPeriods=2), {}, NOW)
    assert (result.state, result.reason) == ("INSUFFICIENT_DATA", "Insufficient Data: 2 datapoints were unknown.")
    breaching = evaluate(alarm(EvaluationPeriods=2, TreatMissingData="breaching"), {}, NOW)
    assert breaching.reason == (
        "Threshold Crossed: no datapoints were received for 2 periods and 2 missing datapoints were treated as "
        "[Breaching]."
    )


def test_data_older_than_the_evaluation_range_does_not_count() -> None:
    old = CURRENT - 5 * PERIOD
    points = {old: Point(old, 9.0, 1.0)}
    assert evaluate(alarm(TreatMissingData="notBreaching"), points, NOW).state == "OK"
    assert evaluate(alarm(), points, NOW).state == "INSUFFICIENT_DATA"


def test_percentile_alarm_with_low_sample_count_ignore_keeps_its_state() -> None:
    p99 = alarm(Statistic=None, ExtendedStatistic="p99", EvaluateLowSampleCountPercentile="ignore")
    few = {CURRENT: Point(CURRENT, 5.0, 999.0)}
    enough = {CURRENT: Point(CURRENT, 5.0, 1000.0)}
    assert evaluate(p99, few, NOW).state is None
    assert evaluate(p99, enough, NOW).state == "ALARM"
    assert evaluate({**p99, "EvaluateLowSampleCountPercentile": "evaluate"}, few, NOW).state == "ALARM"
    assert json.loads(evaluate(p99, enough, NOW).reason_data)["statistic"] == "p99"


def test_single_metric_alarm_queries_its_statistic_and_sample_count() -> None:
    queries = queries_for(alarm(Statistic=None, ExtendedStatistic="p99", Unit="Microseconds"))
    assert [q["MetricStat"]["Stat"] for q in queries] == ["p99", "SampleCount"]
    assert all(q["MetricStat"]["Unit"] == "Microseconds" and q["MetricStat"]["Period"] == PERIOD for q in queries)


def _math_alarm(expression: str, **overrides: Any) -> dict[str, Any]:
    metric = {"Namespace": "AWS/SageMaker", "MetricName": "Invocation5XXErrors", "Dimensions": []}
    return alarm(
        Namespace=None,
        MetricName=None,
        Statistic=None,
        Period=None,
        Metrics=[
            {"Id": "e1", "Expression": expression, "ReturnData": True},
            {"Id": "m1", "MetricStat": {"Metric": metric, "Period": 10, "Stat": "Sum"}, "ReturnData": False},
        ],
        **overrides,
    )


def test_metric_math_alarm_uses_its_metrics_period() -> None:
    current = NOW - NOW % 10
    result = evaluate(_math_alarm("m1 * 2"), {current: Point(current, 4.0)}, NOW)
    assert result.state == "ALARM"
    data = json.loads(result.reason_data)
    assert data["period"] == 10 and "statistic" not in data


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        pytest.param({"ExtendedStatistic": "PR(100:2000)", "Statistic": None}, "percentile rank", id="pr"),
        pytest.param({"Statistic": "Median"}, "Median", id="unknown-statistic"),
        pytest.param({"ThresholdMetricId": "ad1"}, "anomaly-detection", id="anomaly-detection"),
        pytest.param(
            {"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"}, "comparison", id="anomaly-band"
        ),
        pytest.param({"TreatMissingData": "sometimes"}, "TreatMissingData", id="treat-missing"),
    ],
)
def test_unsupported_alarms_are_reported(shape: dict[str, Any], reason: str) -> None:
    why = unsupported(alarm(**shape))
    assert why is not None and reason in why


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        pytest.param("SEARCH('{AWS/SageMaker} Errors', 'Sum', 60)", "SEARCH", id="search"),
        pytest.param("ANOMALY_DETECTION_BAND(m1)", "ANOMALY_DETECTION_BAND", id="anomaly-band-function"),
        pytest.param("m1 +", "ends too early", id="malformed"),
    ],
)
def test_unsupported_metric_math_is_reported(expression: str, reason: str) -> None:
    why = unsupported(_math_alarm(expression))
    assert why is not None and reason in why


def test_supported_shapes_are_accepted() -> None:
    assert unsupported(alarm()) is None
    assert unsupported(alarm(Statistic=None, ExtendedStatistic="p99.9")) is None
    assert unsupported(_math_alarm("IF(m1 > 0, 100 * m1 / FILL(m1, 1), 0)")) is None


def test_explicit_datapoints_to_alarm_uses_the_out_of_the_last_wording() -> None:
    result = evaluate(alarm(DatapointsToAlarm=1), {CURRENT: Point(CURRENT, 5.0, 1.0)}, NOW)
    assert result.reason.startswith("Threshold Crossed: 1 out of the last 1 datapoints [5.0 (")
    assert result.reason.endswith(
        "was greater than the threshold (1.0) (minimum 1 datapoint for OK -> ALARM transition)."
    )
    ok = evaluate(alarm(EvaluationPeriods=2, DatapointsToAlarm=2), series("00"), NOW)
    assert ok.reason.endswith(
        "were not greater than the threshold (1.0) (minimum 1 datapoint for ALARM -> OK transition)."
    )
