"""CloudWatch metric-alarm evaluation for the local AWS endpoint (moto stores alarms but never evaluates them).

:class:`AlarmEvaluator` runs in the SageMaker service: every ``interval`` seconds it reads the metric
alarms (``DescribeAlarms``), fetches each alarm's datapoints with ``GetMetricData`` (one value per alarm
period: the alarm's ``Statistic`` or ``ExtendedStatistic`` over its exact dimension set, or its metric-math
``Metrics``; the devstack's CloudWatch computes them, see :mod:`devstack.cloudwatch`), evaluates them with
:func:`evaluate` and, when the state changes, calls ``SetAlarmState`` with a reason worded like
CloudWatch's, which ``DescribeAlarms`` and ``DescribeAlarmHistory`` then show::

    Threshold Crossed: 1 datapoint [2500000.0 (07/12/26 10:40:10)] was greater than the threshold (2000000.0).

Evaluation follows CloudWatch's documented rules (choices marked *devstack*):

- periods are aligned to multiples of ``Period`` since the epoch; *devstack*: the current, still-open
  period counts as the most recent one, so that an alarm reacts within one evaluation round;
- the evaluation range is the last N + 2 periods (N = ``EvaluationPeriods``; CloudWatch's documented
  example retrieves 5 periods for N = 3, its exact range depends on the period and resolution);
- with at least N real datapoints in the range, the N most recent are evaluated and ``TreatMissingData``
  is not used; ``DatapointsToAlarm`` (M, default N) breaching ones give ALARM, fewer give OK;
- with fewer, every real datapoint of the range is evaluated and the N - k missing ones are filled:
  ``breaching`` / ``notBreaching`` count them as breaching / not breaching; ``missing`` gives ALARM when
  at least M real datapoints breach, OK when a real one does not breach, ALARM when all real ones breach and
  the oldest breaching one within the last N periods is at least M periods old (CloudWatch's guard against
  premature ALARM), and INSUFFICIENT_DATA otherwise (always, with no datapoint at all); ``ignore`` is
  ``missing`` except that where ``missing`` would give INSUFFICIENT_DATA or that premature-guard ALARM,
  the alarm keeps its state. Alarms on ``AWS/DynamoDB`` metrics always ignore missing data, as on AWS;
- percentile alarms with ``EvaluateLowSampleCountPercentile`` ``ignore`` keep their state while an evaluated
  period has fewer than 10/(1-p) samples (p >= 0.5) or 10/p samples (p < 0.5).

An alarm the devstack cannot evaluate (anomaly detection, a statistic or metric-math function the devstack's
CloudWatch does not compute) is never left looking healthy: it is set to INSUFFICIENT_DATA with a
``StateReason`` starting ``Unchecked: the devstack cannot evaluate this alarm:`` that names the reason, and
``UpdateEndpoint`` refuses it as an auto-rollback alarm (:func:`unsupported`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack.cloudwatch import expressions
from devstack.cloudwatch.statistics import Extended, StatisticError, parse_statistic

log = logging.getLogger(__name__)

COMPARISONS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "GreaterThanThreshold": ("greater than", lambda v, t: v > t),
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", lambda v, t: v >= t),
    "LessThanThreshold": ("less than", lambda v, t: v < t),
    "LessThanOrEqualToThreshold": ("less than or equal to", lambda v, t: v <= t),
}
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")
UNCHECKED = "Unchecked: the devstack cannot evaluate this alarm: "
#: the id of the extra SampleCount query of a single-metric alarm
SAMPLES_ID = "devstack_samples"


@dataclass(frozen=True)
class Point:
    """One alarm datapoint: the period's start, its value and (single-metric alarms) its sample count."""

    start: float
    value: float
    samples: float | None = None


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


# ------------------------------------------------------------------------------------ alarm shape


def _returned(alarm: dict[str, Any]) -> dict[str, Any]:
    returned = [m for m in alarm["Metrics"] if m.get("ReturnData", True)]
    if len(returned) != 1:
        raise ValueError(f"a metric-math alarm must return exactly one time series, it returns {len(returned)}")
    return returned[0]


def period_of(alarm: dict[str, Any]) -> int:
    """The alarm's period: ``Period``, or the period of its metric-math queries."""
    if not alarm.get("Metrics"):
        return int(alarm["Period"])
    periods = {int(m["MetricStat"]["Period"]) for m in alarm["Metrics"] if m.get("MetricStat")}
    periods |= {int(m["Period"]) for m in alarm["Metrics"] if m.get("Expression") and m.get("Period")}
    if len(periods) != 1:
        raise ValueError(f"the metrics of a metric-math alarm must share one period, they use {sorted(periods)}")
    return periods.pop()


def unsupported(alarm: dict[str, Any]) -> str | None:
    """Return why the devstack cannot evaluate an alarm, or None when it can."""
    if alarm.get("ThresholdMetricId"):
        return "anomaly-detection alarms (ThresholdMetricId) are not evaluated by the devstack"
    if alarm.get("ComparisonOperator") not in COMPARISONS:
        return f"the comparison {alarm.get('ComparisonOperator')!r} is not evaluated by the devstack"
    if (alarm.get("TreatMissingData") or "missing") not in TREATMENTS:
        return f"TreatMissingData {alarm.get('TreatMissingData')!r} is not one of {', '.join(TREATMENTS)}"
    if not alarm.get("EvaluationPeriods"):
        return "the alarm has no EvaluationPeriods"
    try:
        if alarm.get("Metrics"):
            _returned(alarm)
            for query in alarm["Metrics"]:
                if query.get("MetricStat"):
                    parse_statistic(str(query["MetricStat"]["Stat"]))
                elif query.get("Expression"):
                    expressions.check(str(query["Expression"]))
                else:
                    return f"metric query {query.get('Id')!r} has neither MetricStat nor Expression"
            period_of(alarm)
        else:
            stat = alarm.get("ExtendedStatistic") or alarm.get("Statistic")
            if not stat:
                return "the alarm has neither Statistic nor ExtendedStatistic"
            parse_statistic(str(stat))
            if not alarm.get("Period"):
                return "the alarm has no Period"
    except (StatisticError, expressions.ExpressionError, ValueError, KeyError) as exc:
        return str(exc)
    return None


def queries_for(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``MetricDataQueries`` that give an alarm's datapoints (plus their sample counts, single metric)."""
    if alarm.get("Metrics"):
        keep = ("Id", "MetricStat", "Expression", "Label", "ReturnData", "Period")
        out = []
        for query in alarm["Metrics"]:
            item = {k: query[k] for k in keep if query.get(k) is not None}
            item["ReturnData"] = bool(query.get("ReturnData", True))
            out.append(item)
        return out
    metric: dict[str, Any] = {"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"]}
    metric["Dimensions"] = alarm.get("Dimensions") or []
    stat: dict[str, Any] = {"Metric": metric, "Period": int(alarm["Period"])}
    if alarm.get("Unit"):
        stat["Unit"] = alarm["Unit"]
    return [
        {"Id": "m1", "MetricStat": {**stat, "Stat": alarm.get("ExtendedStatistic") or alarm["Statistic"]}},
        {"Id": SAMPLES_ID, "MetricStat": {**stat, "Stat": "SampleCount"}},
    ]


# ------------------------------------------------------------------------------------ evaluation


def _format_value(value: float) -> str:
    return repr(float(value))


def _stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%d/%m/%y %H:%M:%S")


def _iso(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _plural(count: int, word: str = "datapoint") -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _missing(count: int) -> str:
    return f"{count} missing {'datapoint' if count == 1 else 'datapoints'}"


def _was(count: int) -> str:
    return "was" if count == 1 else "were"


def _low_samples(alarm: dict[str, Any], evaluated: list[Point]) -> bool:
    stat = alarm.get("ExtendedStatistic")
    if not stat or alarm.get("EvaluateLowSampleCountPercentile") != "ignore":
        return False
    parsed = parse_statistic(stat)
    if not isinstance(parsed, Extended) or parsed.kind != "p" or parsed.percentile in (0.0, 100.0):
        return False
    p = parsed.percentile / 100.0
    needed = 10.0 / (1.0 - p) if p >= 0.5 else 10.0 / p
    return any(point.samples is not None and point.samples < needed for point in evaluated)


def evaluate(alarm: dict[str, Any], points: dict[float, Point], now: float) -> Evaluation:
    """Evaluate a metric alarm over its datapoints, as CloudWatch does (see the module docstring).

    :param alarm: a ``DescribeAlarms`` ``MetricAlarms`` entry.
    :param points: the alarm's datapoints keyed by aligned period start.
    :param now: the evaluation time (epoch seconds).
    """
    period = period_of(alarm)
    n = int(alarm["EvaluationPeriods"])
    m = int(alarm.get("DatapointsToAlarm") or n)
    threshold = float(alarm["Threshold"])
    words, crosses = COMPARISONS[alarm["ComparisonOperator"]]
    treat = alarm.get("TreatMissingData") or "missing"
    if alarm.get("Namespace") == "AWS/DynamoDB":
        treat = "ignore"
    current = math.floor(now / period) * period
    starts = [current - i * period for i in range(n + 2)]  # the evaluation range, most recent first
    real = [points[s] for s in starts if s in points]

    def breach(point: Point) -> bool:
        return crosses(point.value, threshold)

    def data(evaluated: list[Point], filled: list[float]) -> str:
        return _reason_data(alarm, now, period, threshold, evaluated, filled)

    if len(real) >= n:
        evaluated, filled = real[:n], []
    else:
        evaluated = real
        taken = {p.start for p in real}
        filled = [s for s in starts if s not in taken][: n - len(real)]
    if _low_samples(alarm, evaluated):
        return Evaluation(None, "", data(evaluated, filled))
    breaching = sum(1 for p in evaluated if breach(p))
    fill = len(filled)
    if not evaluated:
        if treat == "missing":
            return Evaluation(
                "INSUFFICIENT_DATA", f"Insufficient Data: {_plural(n)} {_was(n)} unknown.", data([], starts[:n])
            )
        if treat == "ignore":
            return Evaluation(None, "", data([], starts[:n]))
        kind = "Breaching" if treat == "breaching" else "NonBreaching"
        return Evaluation(
            "ALARM" if treat == "breaching" and n >= m else "OK",
            f"Threshold Crossed: no datapoints were received for {_plural(n, 'period')} and "
            f"{_missing(n)} {_was(n)} treated as [{kind}].",
            data([], starts[:n]),
        )
    fill_kind: str | None = None
    if fill == 0:
        state = "ALARM" if breaching >= m else "OK"
    elif treat == "breaching":
        state, fill_kind = ("ALARM" if breaching + fill >= m else "OK"), "Breaching"
    elif treat == "notBreaching":
        state, fill_kind = ("ALARM" if breaching >= m else "OK"), "NonBreaching"
    elif breaching >= m:
        state = "ALARM"
    elif breaching < len(evaluated):
        state = "OK"
    else:
        # every real datapoint breaches, fewer than M of them: ALARM only past CloudWatch's premature guard
        recent = [p for p in evaluated if p.start in starts[:n]]
        oldest_age = max((starts.index(p.start) + 1 for p in recent), default=0)
        if oldest_age >= m:
            if treat == "ignore":
                return Evaluation(None, "", data(evaluated, filled))
            state = "ALARM"
        else:
            if treat == "ignore":
                return Evaluation(None, "", data(evaluated, filled))
            return Evaluation(
                "INSUFFICIENT_DATA",
                f"Insufficient Data: {_plural(fill)} {_was(fill)} unknown.",
                data(evaluated, filled),
            )
    return Evaluation(
        state,
        _reason(alarm, state, evaluated, breach, words, threshold, n, m, fill, fill_kind),
        data(evaluated, filled),
    )


def _reason(
    alarm: dict[str, Any],
    state: str,
    evaluated: list[Point],
    breach: Callable[[Point], bool],
    words: str,
    threshold: float,
    n: int,
    m: int,
    fill: int,
    fill_kind: str | None,
) -> str:
    alarming = state == "ALARM"
    shown = [p for p in evaluated if breach(p) == alarming]
    listing = ", ".join(f"{_format_value(p.value)} ({_stamp(p.start)})" for p in shown)
    relation = words if alarming else f"not {words}"
    filled = f" and {_missing(fill)} {_was(fill)} treated as [{fill_kind}]" if fill_kind and fill else ""
    plain = "DatapointsToAlarm" not in alarm and len(shown) == len(evaluated)
    if plain:
        return (
            f"Threshold Crossed: {_plural(len(shown))} [{listing}] {_was(len(shown))} {relation} the threshold "
            f"({_format_value(threshold)}){filled}."
        )
    minimum = (
        f"minimum {_plural(m)} for OK -> ALARM transition"
        if alarming
        else f"minimum {_plural(n - m + 1)} for ALARM -> OK transition"
    )
    return (
        f"Threshold Crossed: {len(shown)} out of the last {n} datapoints [{listing}] {_was(len(shown))} {relation} "
        f"the threshold ({_format_value(threshold)}){filled} ({minimum})."
    )


def _reason_data(
    alarm: dict[str, Any], now: float, period: int, threshold: float, evaluated: list[Point], filled: list[float]
) -> str:
    body: dict[str, Any] = {"version": "1.0", "queryDate": _iso(now)}
    starts = [p.start for p in evaluated] + list(filled)
    if evaluated:
        body["startDate"] = _iso(min(starts))
    if alarm.get("Unit"):
        body["unit"] = alarm["Unit"]
    if not alarm.get("Metrics"):
        body["statistic"] = alarm.get("ExtendedStatistic") or alarm.get("Statistic")
    body["period"] = period
    body["recentDatapoints"] = [p.value for p in sorted(evaluated, key=lambda p: p.start)]
    body["threshold"] = threshold
    items: list[tuple[float, dict[str, Any]]] = []
    for point in evaluated:
        item: dict[str, Any] = {"timestamp": _iso(point.start)}
        if point.samples is not None:
            item["sampleCount"] = point.samples
        item["value"] = point.value
        items.append((point.start, item))
    items.extend((start, {"timestamp": _iso(start)}) for start in filled)
    body["evaluatedDatapoints"] = [item for _, item in sorted(items, key=lambda x: -x[0])]
    return json.dumps(body, separators=(",", ":"))


# ------------------------------------------------------------------------------------ evaluator


class AlarmEvaluator:
    """Evaluates every CloudWatch metric alarm of the local AWS endpoint in a background thread.

    :param cloudwatch: a function returning a CloudWatch client.
    :param interval: seconds between two evaluation rounds (0: never start the thread).
    """

    def __init__(self, cloudwatch: Callable[[], Any], interval: float = 5.0) -> None:
        self._cloudwatch = cloudwatch
        self.interval = interval
        self._stop = threading.Event()
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

    def _set(self, client: Any, alarm: dict[str, Any], state: str, reason: str, data: str) -> str | None:
        current = str(alarm.get("StateReason") or "")
        if state == alarm.get("StateValue") and (
            state != "INSUFFICIENT_DATA"
            or reason[:1023] == current
            or not (current.startswith("Unchecked:") or reason.startswith("Unchecked:"))
        ):
            # no transition; INSUFFICIENT_DATA's reason changes only out of or into "Unchecked: ..."
            return None
        client.set_alarm_state(
            AlarmName=alarm["AlarmName"], StateValue=state, StateReason=reason[:1023], StateReasonData=data
        )
        log.info("Alarm %s: %s -> %s: %s", alarm["AlarmName"], alarm.get("StateValue"), state, reason)
        return state

    def _unchecked(self, client: Any, alarm: dict[str, Any], why: str, now: float) -> str | None:
        reason = UNCHECKED + why
        if alarm.get("StateReason") != reason[:1023]:
            log.warning("Alarm %s is not evaluated: %s", alarm["AlarmName"], why)
        data = json.dumps({"version": "1.0", "queryDate": _iso(now)})
        changed = self._set(client, alarm, "INSUFFICIENT_DATA", reason, data)
        return changed

    def fetch(self, client: Any, alarm: dict[str, Any], now: float) -> dict[float, Point]:
        """The alarm's datapoints over its evaluation range, keyed by period start."""
        period = period_of(alarm)
        n = int(alarm["EvaluationPeriods"])
        current = math.floor(now / period) * period
        answer = client.get_metric_data(
            MetricDataQueries=queries_for(alarm),
            StartTime=dt.datetime.fromtimestamp(current - (n + 1) * period, dt.UTC),
            EndTime=dt.datetime.fromtimestamp(current + period, dt.UTC),
            ScanBy="TimestampAscending",
        )
        results = {r["Id"]: r for r in answer["MetricDataResults"]}
        samples: dict[float, float] = {}
        if SAMPLES_ID in results:
            samples = dict(
                zip(
                    (t.timestamp() for t in results[SAMPLES_ID]["Timestamps"]),
                    results[SAMPLES_ID]["Values"],
                    strict=True,
                )
            )
        wanted = "m1" if not alarm.get("Metrics") else _returned(alarm)["Id"]
        series = results[wanted]
        points = {}
        for stamp, value in zip(series["Timestamps"], series["Values"], strict=True):
            start = stamp.timestamp()
            points[start] = Point(start, float(value), samples.get(start) if not alarm.get("Metrics") else None)
        return points

    def evaluate_one(self, client: Any, alarm: dict[str, Any], now: float | None = None) -> str | None:
        """Evaluate one alarm and set its state if it changed; return the new state or None."""
        moment = now if now is not None else dt.datetime.now(dt.UTC).timestamp()
        why = unsupported(alarm)
        if why is not None:
            return self._unchecked(client, alarm, why, moment)
        try:
            points = self.fetch(client, alarm, moment)
        except Exception as exc:
            error = getattr(exc, "response", {}).get("Error", {})
            if error.get("Code") in ("ValidationError", "InvalidParameterValue"):
                return self._unchecked(client, alarm, error.get("Message", str(exc)), moment)
            raise
        result = evaluate(alarm, points, moment)
        if result.state is None:
            return None
        return self._set(client, alarm, result.state, result.reason, result.reason_data)
