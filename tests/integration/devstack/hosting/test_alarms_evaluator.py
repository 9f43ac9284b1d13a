"""The CloudWatch alarm evaluator against moto: alarms follow the metric data put to the local endpoint."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from tests.integration.devstack.hosting_support import eventually

pytestmark = pytest.mark.integration


def _alarm(cloudwatch: Any, name: str, metric: str, **extra: Any) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="Devstack/Test",
        MetricName=metric,
        Dimensions=[{"Name": "Service", "Value": "checkout"}],
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=100.0,
        ComparisonOperator="GreaterThanThreshold",
        **extra,
    )


def _put(cloudwatch: Any, metric: str, *values: float) -> None:
    cloudwatch.put_metric_data(
        Namespace="Devstack/Test",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": "Service", "Value": "checkout"}],
                "Value": value,
                "Timestamp": dt.datetime.now(dt.UTC),
            }
            for value in values
        ],
    )


def _state(cloudwatch: Any, name: str) -> dict[str, Any]:
    return cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


def test_alarm_goes_to_alarm_then_back_to_ok(fast: Any, cloudwatch: Any, unique_name: Any) -> None:
    name, metric = unique_name("latency"), unique_name("Latency")
    _alarm(cloudwatch, name, metric, TreatMissingData="missing")
    _put(cloudwatch, metric, 150.0, 250.0)

    alarm = eventually(lambda: (a := _state(cloudwatch, name))["StateValue"] == "ALARM" and a, timeout=20)

    assert alarm["StateReason"].startswith("Threshold Crossed: 1 datapoint [200.0 (")
    assert alarm["StateReason"].endswith(")] was greater than the threshold (100.0).")
    data = json.loads(alarm["StateReasonData"])
    assert data["statistic"] == "Average" and data["recentDatapoints"] == [200.0]

    _put(cloudwatch, metric, *([0.0] * 20))  # the average of this minute drops to 400/22
    alarm = eventually(lambda: (a := _state(cloudwatch, name))["StateValue"] == "OK" and a, timeout=20)
    assert "was not greater than the threshold (100.0)" in alarm["StateReason"]


def test_alarm_without_data_is_insufficient_data(fast: Any, cloudwatch: Any, unique_name: Any) -> None:
    name = unique_name("nodata")
    _alarm(cloudwatch, name, unique_name("Never"), TreatMissingData="breaching")
    eventually(lambda: _state(cloudwatch, name)["StateValue"] == "ALARM", timeout=20)

    other = unique_name("nodata-missing")
    _alarm(cloudwatch, other, unique_name("Never"))
    fast.alarms.evaluate_all()
    assert _state(cloudwatch, other)["StateValue"] == "INSUFFICIENT_DATA"


def _put_dims(cloudwatch: Any, metric: str, dims: list[dict[str, str]], *values: float) -> None:
    cloudwatch.put_metric_data(
        Namespace="Devstack/Test",
        MetricData=[
            {"MetricName": metric, "Dimensions": dims, "Values": list(values), "Timestamp": dt.datetime.now(dt.UTC)}
        ],
    )


def test_alarm_watches_only_its_exact_dimension_set(fast: Any, cloudwatch: Any, unique_name: Any) -> None:
    name, metric = unique_name("exact"), unique_name("Latency")
    _alarm(cloudwatch, name, metric)  # dimensions: Service=checkout
    # a datapoint with one more dimension is another metric for CloudWatch (moto alone would match it)
    _put_dims(cloudwatch, metric, [{"Name": "Service", "Value": "checkout"}, {"Name": "Zone", "Value": "a"}], 500.0)
    fast.alarms.evaluate_all()
    alarm = _state(cloudwatch, name)
    assert alarm["StateValue"] == "INSUFFICIENT_DATA"
    assert alarm["StateReason"] == "Insufficient Data: 1 datapoint was unknown."

    _put(cloudwatch, metric, 500.0)
    eventually(lambda: _state(cloudwatch, name)["StateValue"] == "ALARM", timeout=20)


def test_percentile_alarm_fires_on_the_slow_tail_only(fast: Any, cloudwatch: Any, unique_name: Any) -> None:
    name, metric = unique_name("p99"), unique_name("Latency")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="Devstack/Test",
        MetricName=metric,
        Dimensions=[{"Name": "Service", "Value": "checkout"}],
        ExtendedStatistic="p99",
        Period=60,
        EvaluationPeriods=1,
        Threshold=100.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    # 98 fast values and 2 slow ones: the average (49) stays far below the bound, the p99 (900) does not
    _put(cloudwatch, metric, *([10.0] * 98), 900.0, 900.0)
    alarm = eventually(lambda: (a := _state(cloudwatch, name))["StateValue"] == "ALARM" and a, timeout=20)
    assert "[900.0 (" in alarm["StateReason"]
    assert json.loads(alarm["StateReasonData"])["evaluatedDatapoints"][0]["sampleCount"] == 100.0


def test_metric_math_alarm_on_an_error_rate(fast: Any, cloudwatch: Any, unique_name: Any) -> None:
    name, errors, calls = unique_name("rate"), unique_name("Errors"), unique_name("Calls")
    dims = [{"Name": "Service", "Value": "checkout"}]

    def stat(qid: str, metric: str) -> dict[str, Any]:
        metric_ = {"Namespace": "Devstack/Test", "MetricName": metric, "Dimensions": dims}
        return {"Id": qid, "MetricStat": {"Metric": metric_, "Period": 60, "Stat": "Sum"}, "ReturnData": False}

    cloudwatch.put_metric_alarm(
        AlarmName=name,
        EvaluationPeriods=1,
        Threshold=5.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        Metrics=[
            stat("e", errors),
            stat("n", calls),
            {"Id": "rate", "Expression": "100 * e / n", "Label": "error rate %", "ReturnData": True},
        ],
    )
    _put(cloudwatch, calls, 10.0)
    _put(cloudwatch, errors, 1.0)
    alarm = eventually(lambda: (a := _state(cloudwatch, name))["StateValue"] == "ALARM" and a, timeout=20)
    assert "[10.0 (" in alarm["StateReason"]
    assert "statistic" not in json.loads(alarm["StateReasonData"])


def test_state_changes_are_in_the_alarm_history(fast: Any, cloudwatch: Any, unique_name: Any) -> None:
    name, metric = unique_name("history"), unique_name("Latency")
    _alarm(cloudwatch, name, metric)
    assert _state(cloudwatch, name)["StateValue"] == "INSUFFICIENT_DATA", "a new alarm starts unchecked"
    _put(cloudwatch, metric, 500.0)
    eventually(lambda: _state(cloudwatch, name)["StateValue"] == "ALARM", timeout=20)
    _alarm(cloudwatch, name, metric, AlarmDescription="updated")
    assert _state(cloudwatch, name)["StateValue"] == "ALARM", "updating an alarm keeps its state"

    items = cloudwatch.describe_alarm_history(AlarmName=name)["AlarmHistoryItems"]
    kinds = [(i["HistoryItemType"], i["HistorySummary"]) for i in items]
    assert kinds[0] == ("ConfigurationUpdate", f'Alarm "{name}" updated')
    assert kinds[-1] == ("ConfigurationUpdate", f'Alarm "{name}" created')
    update = next(i for i in items if i["HistorySummary"] == "Alarm updated from INSUFFICIENT_DATA to ALARM")
    data = json.loads(update["HistoryData"])
    assert data["newState"]["stateValue"] == "ALARM"
    assert data["newState"]["stateReason"].startswith("Threshold Crossed: 1 datapoint [500.0 (")


def test_alarm_the_devstack_cannot_evaluate_says_so(fast: Any, cloudwatch: Any, unique_name: Any) -> None:
    name = unique_name("pr")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="Devstack/Test",
        MetricName=unique_name("Latency"),
        ExtendedStatistic="PR(0:300)",
        Period=60,
        EvaluationPeriods=1,
        Threshold=90.0,
        ComparisonOperator="LessThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="set by hand")
    fast.alarms.evaluate_all()
    alarm = _state(cloudwatch, name)
    assert alarm["StateValue"] == "INSUFFICIENT_DATA", "never left looking healthy"
    assert alarm["StateReason"].startswith("Unchecked: the devstack cannot evaluate this alarm: ")
    assert "PR(0:300)" in alarm["StateReason"]
