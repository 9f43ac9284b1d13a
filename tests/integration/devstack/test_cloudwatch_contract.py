"""Contract of the devstack's CloudWatch answers: every response the devstack changed parses into
botocore's output shape (members, types, enums, required members) and carries what CloudWatch carries."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.model import OperationModel, Shape

from tests.integration.devstack.hosting_support import client

pytestmark = pytest.mark.integration

DIMS = [{"Name": "EndpointName", "Value": "contract-ep"}, {"Name": "VariantName", "Value": "AllTraffic"}]


def _walk(shape: Shape, value: Any, path: str, out: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object ({shape.name})")
            return
        for name, item in value.items():
            if name == "ResponseMetadata" and not path:
                continue
            if name not in shape.members:
                out.append(f"{path}.{name}: not a member of {shape.name}")
            else:
                _walk(shape.members[name], item, f"{path}.{name}", out)
        out.extend(f"{path}.{name}: required member missing" for name in shape.required_members if name not in value)
    elif kind == "list":
        if not isinstance(value, list):
            out.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{i}]", out)
    elif kind == "map":
        for key, item in value.items():
            _walk(shape.value, item, f"{path}[{key}]", out)
    elif kind == "string":
        enum = shape.metadata.get("enum")
        if not isinstance(value, str) or (enum and value not in enum):
            out.append(f"{path}: {value!r} is not a valid {shape.name}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"{path}: {value!r} is not an integer")
    elif kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            out.append(f"{path}: {value!r} is not a number")
    elif kind == "timestamp" and not isinstance(value, dt.datetime):
        out.append(f"{path}: {value!r} is not a timestamp")
    elif kind == "boolean" and not isinstance(value, bool):
        out.append(f"{path}: {value!r} is not a boolean")


def conforms(cw: Any, operation: str, response: dict[str, Any]) -> dict[str, Any]:
    model: OperationModel = cw.meta.service_model.operation_model(operation)
    problems: list[str] = []
    _walk(model.output_shape, response, "", problems)
    assert not problems, f"{operation} does not match botocore's output shape: {problems}"
    return response


@pytest.fixture
def cw(moto_endpoint: str) -> Any:
    return client("cloudwatch", moto_endpoint)


def test_metric_queries_answer_in_cloudwatch_shapes(cw: Any, unique_name: Any) -> None:
    namespace = unique_name("Contract")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cw.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {"MetricName": "ModelLatency", "Dimensions": DIMS, "Timestamp": now, "Values": [900.0, 3.0e6],
             "Counts": [99.0, 1.0], "Unit": "Microseconds"},
            {"MetricName": "Errors", "Dimensions": DIMS, "Timestamp": now,
             "StatisticValues": {"SampleCount": 4, "Sum": 1, "Minimum": 0, "Maximum": 1}},
        ],
    )  # fmt: skip
    window = {"StartTime": now - dt.timedelta(minutes=2), "EndTime": now + dt.timedelta(minutes=1)}

    stats = conforms(
        cw,
        "GetMetricStatistics",
        cw.get_metric_statistics(
            Namespace=namespace, MetricName="ModelLatency", Dimensions=DIMS, Period=60,
            Statistics=["SampleCount", "Average"], ExtendedStatistics=["p99", "p50"], **window,
        ),
    )  # fmt: skip
    [point] = stats["Datapoints"]
    assert (point["SampleCount"], point["Unit"]) == (100.0, "Microseconds")
    assert point["ExtendedStatistics"] == {"p99": 900.0, "p50": 900.0}
    assert stats["Label"] == "ModelLatency"

    def metric(name: str, stat: str) -> dict[str, Any]:
        return {"Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": DIMS}, "Period": 60, "Stat": stat}

    data = conforms(
        cw,
        "GetMetricData",
        cw.get_metric_data(
            MetricDataQueries=[
                {"Id": "p99", "MetricStat": metric("ModelLatency", "p99.5"), "Label": "latency p99.5"},
                {"Id": "errors", "MetricStat": metric("Errors", "Sum"), "ReturnData": False},
                {"Id": "calls", "MetricStat": metric("Errors", "SampleCount"), "ReturnData": False},
                {"Id": "rate", "Expression": "100 * errors / calls"},
            ],
            ScanBy="TimestampAscending",
            **window,
        ),
    )
    results = {r["Id"]: r for r in data["MetricDataResults"]}
    assert set(results) == {"p99", "rate"}
    assert results["p99"]["Values"] == [3.0e6] and results["p99"]["Label"] == "latency p99.5"
    assert results["rate"]["Values"] == [25.0] and results["rate"]["StatusCode"] == "Complete"
    assert results["rate"]["Timestamps"][0] == now.replace(second=0)


def test_unsupported_queries_are_validation_errors(cw: Any) -> None:
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(ClientError) as caught:
        cw.get_metric_data(
            MetricDataQueries=[{"Id": "s", "Expression": "SEARCH('{AWS/SageMaker} ModelLatency', 'p99', 60)"}],
            StartTime=now - dt.timedelta(minutes=5),
            EndTime=now,
        )
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "SEARCH is not evaluated by the devstack" in caught.value.response["Error"]["Message"]


def test_alarms_and_their_history_answer_in_cloudwatch_shapes(cw: Any, unique_name: Any) -> None:
    name = unique_name("contract-alarm")
    # no datapoint ever and TreatMissingData=ignore: the service's alarm evaluator keeps whatever state is set, so
    # the history below holds only what this test did (with notBreaching it would turn ALARM into OK mid-test)
    cw.put_metric_alarm(
        AlarmName=name, Namespace="Contract", MetricName="ModelLatency", Dimensions=DIMS, ExtendedStatistic="tm90",
        Period=60, EvaluationPeriods=3, DatapointsToAlarm=2, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="ignore", EvaluateLowSampleCountPercentile="ignore", Unit="Microseconds",
    )  # fmt: skip
    alarm = conforms(cw, "DescribeAlarms", cw.describe_alarms(AlarmNames=[name]))["MetricAlarms"][0]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("INSUFFICIENT_DATA", "Unchecked: Initial alarm creation")
    assert alarm["ExtendedStatistic"] == "tm90"
    reason_data = {"version": "1.0", "statistic": "tm90", "period": 60, "recentDatapoints": [2.0], "threshold": 1.0}
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test", StateReasonData=json.dumps(reason_data))

    history = conforms(cw, "DescribeAlarmHistory", cw.describe_alarm_history(AlarmName=name))
    items = history["AlarmHistoryItems"]
    assert [i["HistoryItemType"] for i in items] == ["StateUpdate", "ConfigurationUpdate"]
    assert items[0]["HistorySummary"] == "Alarm updated from INSUFFICIENT_DATA to ALARM"
    assert json.loads(items[0]["HistoryData"])["newState"] == {
        "stateValue": "ALARM",
        "stateReason": "test",
        "stateReasonData": reason_data,
    }
    page = conforms(cw, "DescribeAlarmHistory", cw.describe_alarm_history(AlarmName=name, MaxRecords=1))
    assert len(page["AlarmHistoryItems"]) == 1 and page["NextToken"]
    rest = cw.describe_alarm_history(AlarmName=name, MaxRecords=1, NextToken=page["NextToken"])
    assert rest["AlarmHistoryItems"][0]["HistoryItemType"] == "ConfigurationUpdate"
    only_states = cw.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    assert len(only_states) == 1
