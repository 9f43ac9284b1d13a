"""CloudWatch alarm evaluation rules (pure function)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.sagemaker.alarms import Bucket, aggregate, evaluable, evaluate

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
    return base


def series(pattern: str, breach: float = 5.0, ok: float = 0.0) -> dict[float, Bucket]:
    """Periods from a pattern read oldest to newest ('X' breaching, '0' good, '-' missing); last = current."""
    out = {}
    for age, char in enumerate(reversed(pattern)):
        if char == "-":
            continue
        start = CURRENT - age * PERIOD
        value = breach if char == "X" else ok
        out[start] = Bucket(start, 1.0, value, value, value)
    return out


@pytest.mark.parametrize(
    ("pattern", "treat", "expected"),
    [
        # CloudWatch's documented table for an alarm with 3 evaluation periods and 3 datapoints to alarm
        pytest.param("0-X-X", "missing", "OK", id="0-X-X-missing"),
        pytest.param("0-X-X", "ignore", "OK", id="0-X-X-ignore"),
        pytest.param("0-X-X", "breaching", "ALARM", id="0-X-X-breaching"),
        pytest.param("0-X-X", "notBreaching", "OK", id="0-X-X-notBreaching"),
        pytest.param("----0", "missing", "OK", id="----0-missing"),
        pytest.param("----0", "breaching", "OK", id="----0-breaching"),
        pytest.param("-----", "missing", "INSUFFICIENT_DATA", id="none-missing"),
        pytest.param("-----", "ignore", None, id="none-ignore-keeps-state"),
        pytest.param("-----", "breaching", "ALARM", id="none-breaching"),
        pytest.param("-----", "notBreaching", "OK", id="none-notBreaching"),
        pytest.param("0XX-X", "missing", "ALARM", id="0XX-X-missing-looks-back"),
        pytest.param("0XX-X", "notBreaching", "OK", id="0XX-X-notBreaching"),
        pytest.param("--X--", "missing", "ALARM", id="--X---missing-fewer-than-M-all-breach"),
        pytest.param("--X--", "notBreaching", "OK", id="--X---notBreaching"),
    ],
)
def test_missing_data_treatment_matches_cloudwatch_table(pattern: str, treat: str, expected: str | None) -> None:
    result = evaluate(alarm(EvaluationPeriods=3, DatapointsToAlarm=3, TreatMissingData=treat), series(pattern), NOW)
    assert result.state == expected


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
    periods = {CURRENT: Bucket(CURRENT, 1.0, value, value, value)}
    assert evaluate(alarm(ComparisonOperator=operator), periods, NOW).state == expected


def test_m_out_of_n() -> None:
    two_of_three = alarm(EvaluationPeriods=3, DatapointsToAlarm=2)
    assert evaluate(two_of_three, series("X0X"), NOW).state == "ALARM"
    assert evaluate(two_of_three, series("00X"), NOW).state == "OK"


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [
        pytest.param("Sum", 6.0, id="sum"),
        pytest.param("SampleCount", 3.0, id="sample-count"),
        pytest.param("Average", 2.0, id="average"),
        pytest.param("Minimum", 1.0, id="minimum"),
        pytest.param("Maximum", 3.0, id="maximum"),
    ],
)
def test_statistics_over_aggregated_seconds(statistic: str, expected: float) -> None:
    seconds = [Bucket(CURRENT + i, 1.0, v, v, v) for i, v in enumerate([1.0, 2.0, 3.0])]
    periods = aggregate(seconds, PERIOD)
    assert list(periods) == [CURRENT]
    result = evaluate(alarm(Statistic=statistic, Threshold=expected - 0.5), periods, NOW)
    assert result.state == "ALARM"
    assert json.loads(result.reason_data)["recentDatapoints"] == [expected]


def test_seconds_are_aggregated_into_aligned_periods() -> None:
    seconds = [Bucket(CURRENT - 1, 1.0, 4.0, 4.0, 4.0), Bucket(CURRENT + 5, 2.0, 3.0, 1.0, 2.0)]
    periods = aggregate(seconds, PERIOD)
    assert periods[CURRENT - PERIOD].total == 4.0
    assert periods[CURRENT] == Bucket(CURRENT, 2.0, 3.0, 1.0, 2.0)


def test_reason_is_worded_like_cloudwatch() -> None:
    periods = {CURRENT: Bucket(CURRENT, 5.0, 5.0, 1.0, 1.0)}
    result = evaluate(alarm(), periods, NOW)
    stamp = __import__("datetime").datetime.fromtimestamp(CURRENT, __import__("datetime").UTC)
    assert result.reason == (
        f"Threshold Crossed: 1 datapoint [5.0 ({stamp:%d/%m/%y %H:%M:%S})] was greater than the threshold (1.0)."
    )
    ok = evaluate(alarm(), {CURRENT: Bucket(CURRENT, 1.0, 0.0, 0.0, 0.0)}, NOW)
    assert ok.reason.endswith("was not greater than the threshold (1.0).")
    data = json.loads(result.reason_data)
    assert data["statistic"] == "Sum" and data["period"] == PERIOD and data["threshold"] == 1.0


def test_insufficient_data_reason() -> None:
    result = evaluate(alarm(EvaluationPeriods=2), {}, NOW)
    assert (result.state, result.reason) == ("INSUFFICIENT_DATA", "Insufficient Data: 2 datapoints were unknown.")


def test_data_older_than_the_range_does_not_count_for_filled_treatments() -> None:
    old = CURRENT - 5 * PERIOD
    periods = {old: Bucket(old, 1.0, 9.0, 9.0, 9.0)}
    assert evaluate(alarm(TreatMissingData="notBreaching"), periods, NOW).state == "OK"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"ExtendedStatistic": "p99", "Statistic": None}, "percentile", id="percentile"),
        pytest.param({"Metrics": [{"Id": "m1"}]}, "metric-math", id="metric-math"),
        pytest.param(
            {"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"}, "comparison", id="anomaly-band"
        ),
    ],
)
def test_unsupported_alarms_are_reported(overrides: dict[str, Any], reason: str) -> None:
    why = evaluable(alarm(**overrides))
    assert why is not None and reason in why
    assert evaluable(alarm()) is None
