"""CloudWatch metric-alarm evaluation for the local AWS endpoint (moto stores alarms but never evaluates them).

:class:`AlarmEvaluator` runs in the SageMaker service: every ``interval`` seconds it reads the metric
alarms (``DescribeAlarms``), fetches each alarm's metric (``GetMetricStatistics``, one-second buckets
aggregated here into the alarm's periods), evaluates it with :func:`evaluate` and, when the state changes,
calls ``SetAlarmState`` with a reason worded like CloudWatch's::

    Threshold Crossed: 1 datapoint [5.0 (26/11/26 18:40:00)] was greater than the threshold (1.0).

Evaluation rules (CloudWatch's documented behaviour; choices marked *devstack*):

- periods are aligned to multiples of ``Period`` since the epoch; the evaluation range is the last
  ``EvaluationPeriods`` (N) periods, *devstack*: including the current, still-open period, so that an
  alarm reacts within one evaluation tick;
- ``DatapointsToAlarm`` (M, default N) breaching points among the evaluated ones put the alarm in ALARM,
  otherwise OK;
- ``TreatMissingData``: ``breaching`` / ``notBreaching`` fill missing periods of the range with breaching /
  good points; ``missing`` (default) and ``ignore`` evaluate only the periods that have data, looking back up
  to ``max(2N, N + 2)`` periods for N datapoints; with fewer than M datapoints found, the alarm goes to
  ALARM only if all of them breach. With no datapoint at all, ``missing`` gives INSUFFICIENT_DATA and
  ``ignore`` keeps the current state;
- statistics: SampleCount, Sum, Average, Minimum, Maximum. Percentiles (``ExtendedStatistic``), metric-math
  alarms (``Metrics``) and anomaly-detection comparisons are not evaluated (their state is left alone).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

STATISTICS = ("SampleCount", "Sum", "Average", "Minimum", "Maximum")
COMPARISONS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "GreaterThanThreshold": ("greater than", lambda v, t: v > t),
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", lambda v, t: v >= t),
    "LessThanThreshold": ("less than", lambda v, t: v < t),
    "LessThanOrEqualToThreshold": ("less than or equal to", lambda v, t: v <= t),
}


@dataclass(frozen=True)
class Bucket:
    """Aggregated raw statistics of one period (or one second)."""

    start: float
    sample_count: float
    total: float
    minimum: float
    maximum: float

    def value(self, statistic: str) -> float:
        """The value of a statistic over the bucket."""
        if statistic == "SampleCount":
            return self.sample_count
        if statistic == "Sum":
            return self.total
        if statistic == "Average":
            return self.total / self.sample_count if self.sample_count else math.nan
        if statistic == "Minimum":
            return self.minimum
        if statistic == "Maximum":
            return self.maximum
        raise ValueError(f"Unsupported statistic {statistic!r}")


@dataclass(frozen=True)
class Evaluation:
    """The outcome of evaluating one alarm.

    :param state: ``OK``, ``ALARM`` or ``INSUFFICIENT_DATA``; None keeps the current state.
    :param reason: the ``StateReason`` text.
    :param reason_data: the ``StateReasonData`` JSON text.
    """

    state: str | None
    reason: str
    reason_data: str


def aggregate(seconds: Iterable[Bucket], period: int) -> dict[float, Bucket]:
    """Merge one-second (or finer) buckets into the alarm's periods, keyed by aligned period start."""
    merged: dict[float, list[float]] = {}
    for bucket in seconds:
        start = math.floor(bucket.start / period) * period
        acc = merged.get(start)
        if acc is None:
            merged[start] = [bucket.sample_count, bucket.total, bucket.minimum, bucket.maximum]
        else:
            acc[0] += bucket.sample_count
            acc[1] += bucket.total
            acc[2] = min(acc[2], bucket.minimum)
            acc[3] = max(acc[3], bucket.maximum)
    return {start: Bucket(start, *acc) for start, acc in merged.items()}


def _format_value(value: float) -> str:
    return repr(float(value))


def _stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%d/%m/%y %H:%M:%S")


def _iso(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _plural(count: int, word: str = "datapoint") -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def evaluable(alarm: dict[str, Any]) -> str | None:
    """Return why an alarm cannot be evaluated here, or None when it can."""
    if alarm.get("Metrics"):
        return "metric-math alarms are not evaluated by the devstack"
    if alarm.get("ExtendedStatistic"):
        return "percentile statistics are not evaluated by the devstack"
    if alarm.get("Statistic") not in STATISTICS:
        return f"statistic {alarm.get('Statistic')!r} is not supported"
    if alarm.get("ComparisonOperator") not in COMPARISONS:
        return f"comparison {alarm.get('ComparisonOperator')!r} is not evaluated by the devstack"
    if not alarm.get("Period") or not alarm.get("EvaluationPeriods"):
        return "the alarm has no Period or EvaluationPeriods"
    return None


def evaluate(alarm: dict[str, Any], periods: dict[float, Bucket], now: float) -> Evaluation:
    """Evaluate a metric alarm over its periods' data, as CloudWatch does (see the module docstring).

    :param alarm: a ``DescribeAlarms`` ``MetricAlarms`` entry.
    :param periods: aggregated data keyed by aligned period start (see :func:`aggregate`).
    :param now: the evaluation time (epoch seconds).
    """
    period = int(alarm["Period"])
    n = int(alarm["EvaluationPeriods"])
    m = int(alarm.get("DatapointsToAlarm") or n)
    threshold = float(alarm["Threshold"])
    statistic = alarm["Statistic"]
    words, crosses = COMPARISONS[alarm["ComparisonOperator"]]
    treat = alarm.get("TreatMissingData") or "missing"
    current = math.floor(now / period) * period
    range_starts = [current - i * period for i in range(n)]  # most recent first

    evaluated: list[tuple[float, float | None]] = []  # (start, value or None for a filled missing point)
    if treat in ("breaching", "notBreaching"):
        for start in range_starts:
            bucket = periods.get(start)
            evaluated.append((start, bucket.value(statistic) if bucket else None))
        present = [(s, v) for s, v in evaluated if v is not None]
        breaching = sum(1 for _, v in present if crosses(v, threshold))
        if treat == "breaching":
            breaching += sum(1 for _, v in evaluated if v is None)
        considered = n
    else:
        lookback = max(2 * n, n + 2)
        present = []
        for i in range(lookback):
            start = current - i * period
            bucket = periods.get(start)
            if bucket is not None:
                present.append((start, bucket.value(statistic)))
            if len(present) == n:
                break
        evaluated = list(present)
        breaching = sum(1 for _, v in present if crosses(v, threshold))
        considered = len(present)
        if not present:
            data = _reason_data(alarm, now, range_starts[-1], [], threshold, periods)
            if treat == "ignore":
                return Evaluation(None, "", data)
            return Evaluation(
                "INSUFFICIENT_DATA",
                f"Insufficient Data: {_plural(n)} {'was' if n == 1 else 'were'} unknown.",
                data,
            )
    needed = m if considered >= m else considered
    state = "ALARM" if breaching >= needed and breaching > 0 else "OK"
    shown = [(s, v) for s, v in evaluated if v is not None]
    listing = ", ".join(f"{_format_value(v)} ({_stamp(s)})" for s, v in shown)
    data = _reason_data(alarm, now, range_starts[-1], shown, threshold, periods)
    if state == "ALARM":
        if considered == 1:
            reason = (
                f"Threshold Crossed: 1 datapoint [{listing}] was {words} the threshold ({_format_value(threshold)})."
            )
        elif m == n and breaching == considered:
            reason = (
                f"Threshold Crossed: {_plural(breaching)} [{listing}] were {words} the threshold "
                f"({_format_value(threshold)})."
            )
        else:
            reason = (
                f"Threshold Crossed: {breaching} out of the last {_plural(considered)} [{listing}] "
                f"{'was' if breaching == 1 else 'were'} {words} the threshold ({_format_value(threshold)}) "
                f"(minimum {_plural(m)} for OK -> ALARM transition)."
            )
    else:
        good = considered - breaching
        if considered == 1:
            reason = (
                f"Threshold Crossed: 1 datapoint [{listing}] was not {words} the threshold "
                f"({_format_value(threshold)})."
            )
        else:
            reason = (
                f"Threshold Crossed: {good} out of the last {_plural(considered)} [{listing}] "
                f"{'was' if good == 1 else 'were'} not {words} the threshold ({_format_value(threshold)}) "
                f"(minimum 1 datapoint for ALARM -> OK transition)."
            )
    return Evaluation(state, reason, data)


def _reason_data(
    alarm: dict[str, Any],
    now: float,
    start: float,
    shown: list[tuple[float, float]],
    threshold: float,
    periods: dict[float, Bucket],
) -> str:
    return json.dumps(
        {
            "version": "1.0",
            "queryDate": _iso(now),
            "startDate": _iso(start),
            "statistic": alarm.get("Statistic"),
            "period": int(alarm["Period"]),
            "recentDatapoints": [v for _, v in shown],
            "threshold": threshold,
            "evaluatedDatapoints": [
                {"timestamp": _iso(s), "sampleCount": periods[s].sample_count, "value": v}
                for s, v in shown
                if s in periods
            ],
        }
    )


class AlarmEvaluator:
    """Evaluates every CloudWatch metric alarm of the local AWS endpoint in a background thread.

    :param cloudwatch: a function returning a CloudWatch client.
    :param interval: seconds between two evaluation rounds (0: never start the thread).
    """

    def __init__(self, cloudwatch: Callable[[], Any], interval: float = 5.0) -> None:
        self._cloudwatch = cloudwatch
        self.interval = interval
        self._stop = threading.Event()
        self._skipped: set[str] = set()
        self._thread: threading.Thread | None = None
        if interval > 0:
            self._thread = threading.Thread(target=self._run, name="devstack-alarms", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.evaluate_all()
            except Exception:
                log.warning("Alarm evaluation round failed", exc_info=True)

    def close(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def evaluate_all(self, now: float | None = None) -> dict[str, str]:
        """Evaluate every metric alarm once; return the new state of those that changed."""
        client = self._cloudwatch()
        changed: dict[str, str] = {}
        paginator = client.get_paginator("describe_alarms")
        for page in paginator.paginate(AlarmTypes=["MetricAlarm"]):
            for alarm in page.get("MetricAlarms", []):
                try:
                    state = self.evaluate_one(client, alarm, now)
                except Exception:
                    log.warning("Cannot evaluate alarm %s", alarm.get("AlarmName"), exc_info=True)
                    continue
                if state is not None:
                    changed[alarm["AlarmName"]] = state
        return changed

    def evaluate_one(self, client: Any, alarm: dict[str, Any], now: float | None = None) -> str | None:
        """Evaluate one alarm and set its state if it changed; return the new state or None."""
        name = alarm["AlarmName"]
        why = evaluable(alarm)
        if why is not None:
            if name not in self._skipped:
                self._skipped.add(name)
                log.info("Alarm %s is not evaluated: %s", name, why)
            return None
        moment = now if now is not None else dt.datetime.now(dt.UTC).timestamp()
        period = int(alarm["Period"])
        n = int(alarm["EvaluationPeriods"])
        lookback = max(2 * n, n + 2)
        start = (math.floor(moment / period) - lookback + 1) * period
        request: dict[str, Any] = {
            "Namespace": alarm["Namespace"],
            "MetricName": alarm["MetricName"],
            "Dimensions": alarm.get("Dimensions", []),
            "StartTime": dt.datetime.fromtimestamp(start, dt.UTC),
            "EndTime": dt.datetime.fromtimestamp(math.floor(moment) + 1, dt.UTC),
            "Period": 1,
            "Statistics": ["SampleCount", "Sum", "Minimum", "Maximum"],
        }
        if alarm.get("Unit"):
            request["Unit"] = alarm["Unit"]
        points = client.get_metric_statistics(**request)["Datapoints"]
        seconds = [
            Bucket(p["Timestamp"].timestamp(), p["SampleCount"], p["Sum"], p["Minimum"], p["Maximum"]) for p in points
        ]
        result = evaluate(alarm, aggregate(seconds, period), moment)
        if result.state is None or result.state == alarm.get("StateValue"):
            return None
        client.set_alarm_state(
            AlarmName=name,
            StateValue=result.state,
            StateReason=result.reason[:1023],
            StateReasonData=result.reason_data,
        )
        log.info("Alarm %s: %s -> %s: %s", name, alarm.get("StateValue"), result.state, result.reason)
        return result.state
