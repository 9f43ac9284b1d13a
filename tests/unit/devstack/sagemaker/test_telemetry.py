"""Endpoint metrics are sent to CloudWatch as raw values with counts (what percentiles need)."""

from __future__ import annotations

from typing import Any

from devstack.sagemaker.telemetry import MAX_VALUES_PER_DATUM, MetricBatcher

DIMS = {"EndpointName": "ep", "VariantName": "AllTraffic"}


class FakeCloudWatch:
    def __init__(self, fail: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    def put_metric_data(self, **kwargs: Any) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("CloudWatch unreachable")
        self.calls.append(kwargs)


def test_values_of_one_second_are_sent_raw_with_counts() -> None:
    cloudwatch = FakeCloudWatch()
    batcher = MetricBatcher(lambda: cloudwatch)
    for value in (1000.0, 1000.0, 2_500_000.0):
        batcher.add("AWS/SageMaker", DIMS, "ModelLatency", value, "Microseconds", 1_700_000_000.4)

    assert batcher.flush() == 1
    [call] = cloudwatch.calls
    [datum] = call["MetricData"]
    assert (datum["Values"], datum["Counts"], datum["Unit"]) == ([1000.0, 2_500_000.0], [2.0, 1.0], "Microseconds")
    assert "StatisticValues" not in datum, "a statistic set would hide the values a percentile needs"
    assert datum["Dimensions"] == [
        {"Name": "EndpointName", "Value": "ep"},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]


def test_many_distinct_values_are_split_at_cloudwatchs_limit() -> None:
    cloudwatch = FakeCloudWatch()
    batcher = MetricBatcher(lambda: cloudwatch)
    for i in range(MAX_VALUES_PER_DATUM + 10):
        batcher.add("AWS/SageMaker", DIMS, "ModelLatency", float(i), "Microseconds", 1_700_000_000)

    batcher.flush()
    sizes = [len(d["Values"]) for call in cloudwatch.calls for d in call["MetricData"]]
    assert sizes == [MAX_VALUES_PER_DATUM, 10]


def test_a_failed_send_is_retried_without_losing_counts() -> None:
    cloudwatch = FakeCloudWatch(fail=1)
    batcher = MetricBatcher(lambda: cloudwatch)
    batcher.add("AWS/SageMaker", DIMS, "Invocations", 1.0, "None", 1_700_000_000)
    assert batcher.flush() == 0
    batcher.add("AWS/SageMaker", DIMS, "Invocations", 1.0, "None", 1_700_000_000)
    assert batcher.flush() == 1
    assert cloudwatch.calls[0]["MetricData"][0]["Counts"] == [2.0]


def test_flush_waits_for_the_round_in_progress() -> None:
    import threading

    from devstack.sagemaker.telemetry import Flusher

    started, release, done = threading.Event(), threading.Event(), []

    def slow_upload() -> None:
        if not started.is_set():
            started.set()
            release.wait(5)
            done.append("background round")

    flusher = Flusher([slow_upload], interval=0.01)
    try:
        assert started.wait(5)
        caller = threading.Thread(target=flusher.flush)
        caller.start()
        caller.join(0.2)
        assert caller.is_alive(), "the caller's flush waits for the background round"
        release.set()
        caller.join(5)
        assert done == ["background round"]
    finally:
        release.set()
        flusher.close()
