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
