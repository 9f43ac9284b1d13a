"""CloudWatch as CloudWatch answers: what the devstack adds to moto's CloudWatch.

moto stores metric data and alarms but matches dimensions as a subset, computes no percentile, evaluates
no metric math, keeps no alarm history and starts every alarm in ``OK``. :func:`install` replaces those
parts of moto's CloudWatch in the process that runs the moto server (``python -m devstack.moto_server`` and the
test fixtures call it before the server starts):

- ``PutMetricData`` keeps raw values with their counts (``Value``, ``Values``/``Counts``) and statistic
  sets as they were sent, in one series per (namespace, metric name, exact dimension set);
- ``GetMetricStatistics`` and ``GetMetricData`` match a metric only when its dimension set is exactly the
  request's (as CloudWatch does), honour ``Unit``, compute every statistic of
  :mod:`devstack.cloudwatch.statistics` (percentiles from raw values) and evaluate metric math
  (:mod:`devstack.cloudwatch.expressions`); periods are aligned to the request's (rounded) start time;
- ``PutMetricAlarm`` starts a new alarm in ``INSUFFICIENT_DATA`` and keeps an updated alarm's state;
- ``DescribeAlarmHistory`` answers the ``ConfigurationUpdate`` and ``StateUpdate`` items (newest first).

Alarm evaluation itself runs in the SageMaker service (:mod:`devstack.sagemaker.alarms`), through these
APIs. See ``docs/devstack-hosting.md`` for what still differs from CloudWatch.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devstack.cloudwatch import expressions
from devstack.cloudwatch.statistics import Extended, PeriodSamples, StatisticError, parse_statistic
from devstack.once import once

_LOCK = threading.RLock()
HISTORY_LIMIT = 10_000
#: the ExtendedStatistic shapes PutMetricAlarm accepts (whether the devstack computes them is checked later)
EXTENDED_STATISTIC = re.compile(r"^(p\d|tm\d|wm\d|tc\d|ts\d|IQM$|(PR|TM|WM|TC|TS)\()", re.IGNORECASE)

MetricKey = tuple[str, str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Sample:
    """One ``MetricData`` entry: raw values with counts, or a statistic set."""

    timestamp: float
    unit: str | None
    values: tuple[tuple[float, float], ...] = ()
    stats: tuple[float, float, float, float] | None = None  # SampleCount, Sum, Minimum, Maximum


class MetricStore:
    """The metric series of one moto CloudWatch backend (one account and region)."""

    def __init__(self) -> None:
        self.series: dict[MetricKey, list[Sample]] = {}

    @staticmethod
    def key(namespace: str, name: str, dimensions: Iterable[dict[str, Any]]) -> MetricKey:
        return namespace, name, frozenset((str(d["Name"]), str(d["Value"])) for d in dimensions)

    def add(self, namespace: str, datum: dict[str, Any]) -> None:
        """Store one ``MetricData`` member."""
        stamp = _epoch(datum.get("Timestamp")) if datum.get("Timestamp") else _now()
        unit = datum.get("Unit") or None
        key = self.key(namespace, datum["MetricName"], datum.get("Dimensions") or [])
        if datum.get("Values"):
            values = [float(v) for v in datum["Values"]]
            counts = [float(c) for c in (datum.get("Counts") or [1.0] * len(values))]
            sample = Sample(stamp, unit, values=tuple(zip(values, counts, strict=True)))
        elif datum.get("StatisticValues"):
            s = datum["StatisticValues"]
            sample = Sample(
                stamp,
                unit,
                stats=(float(s["SampleCount"]), float(s["Sum"]), float(s["Minimum"]), float(s["Maximum"])),
            )
        else:
            sample = Sample(stamp, unit, values=((float(datum.get("Value", 0.0)), 1.0),))
        with _LOCK:
            self.series.setdefault(key, []).append(sample)

    def buckets(
        self, key: MetricKey, start: float, end: float, period: int, unit: str | None
    ) -> dict[float, tuple[PeriodSamples, str | None]]:
        """The samples of a series in ``[start, end)`` grouped into periods starting at ``start``."""
        with _LOCK:
            samples = list(self.series.get(key, ()))
        out: dict[float, tuple[PeriodSamples, set[str | None]]] = {}
        for sample in samples:
            if not start <= sample.timestamp < end or (unit and sample.unit != unit):
                continue
            bucket = start + math.floor((sample.timestamp - start) / period) * period
            acc, units = out.setdefault(bucket, (PeriodSamples(), set()))
            units.add(sample.unit)
            if sample.stats is not None:
                acc.sets.append(sample.stats)
            else:
                acc.values.extend(sample.values)
        return {t: (acc, next(iter(units)) if len(units) == 1 else None) for t, (acc, units) in sorted(out.items())}


def _now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    try:
        return float(text)
    except ValueError:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def _stamp(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def aligned_start(start: float, period: int) -> float:
    """CloudWatch's rounding of a query's start: down to the minute for periods of whole minutes, else to
    a multiple of the period."""
    unit = 60 if period % 60 == 0 else period
    return math.floor(start / unit) * unit


def _truthy(value: Any, default: bool = True) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


class QueryError(ValueError):
    """A GetMetricData / GetMetricStatistics request the devstack refuses, with CloudWatch's error code."""

    def __init__(self, message: str, code: str = "ValidationError") -> None:
        super().__init__(message)
        self.code = code


def metric_statistics(
    store: MetricStore,
    *,
    namespace: str,
    name: str,
    dimensions: list[dict[str, Any]],
    start: float,
    end: float,
    period: int,
    statistics: list[str],
    extended: list[str],
    unit: str | None,
) -> list[dict[str, Any]]:
    """Answer ``GetMetricStatistics``: one datapoint per period with data (exact dimension match)."""
    if period <= 0 or (period >= 60 and period % 60) or (period < 60 and period not in (1, 5, 10, 30)):
        raise QueryError("The parameter Period must be 1, 5, 10, 30 or a multiple of 60.", "InvalidParameterValue")
    if start >= end:
        raise QueryError("The parameter StartTime must be less than the parameter EndTime.", "InvalidParameterValue")
    parsed: list[Extended] = []
    for name_ in extended:
        stat = _parse(name_)
        if not isinstance(stat, Extended):
            raise QueryError(f"{name_} is a Statistics value, not an ExtendedStatistics one.", "InvalidParameterValue")
        parsed.append(stat)
    for stat in statistics:
        if stat not in ("SampleCount", "Sum", "Average", "Minimum", "Maximum"):
            raise QueryError(f"The value {stat} for parameter Statistics is not valid.", "InvalidParameterValue")
    first = aligned_start(start, period)
    points = []
    for bucket, (samples, bucket_unit) in store.buckets(
        store.key(namespace, name, dimensions), first, end, period, unit
    ).items():
        point: dict[str, Any] = {"Timestamp": _stamp(bucket), "Unit": unit or bucket_unit or "None"}
        for stat in statistics:
            point[stat] = samples.statistic(stat)
        if parsed:
            values = {s.name: samples.statistic(s) for s in parsed}
            point["ExtendedStatistics"] = {k: v for k, v in values.items() if v is not None}
        points.append(point)
    return points


def _parse(name: str) -> str | Extended:
    try:
        return parse_statistic(name)
    except StatisticError as exc:
        raise QueryError(str(exc)) from exc


def metric_data(
    store: MetricStore,
    queries: list[dict[str, Any]],
    *,
    start: float,
    end: float,
    scan_by: str = "TimestampDescending",
) -> list[dict[str, Any]]:
    """Answer ``GetMetricData``: every ``ReturnData`` query's time series (metric math evaluated)."""
    if start >= end:
        raise QueryError("The parameter StartTime must be less than the parameter EndTime.")
    if not queries:
        raise QueryError("The parameter MetricDataQueries must contain at least one query.")
    ids = [q.get("Id") for q in queries]
    if len(set(ids)) != len(ids):
        raise QueryError("The values of MetricDataQueries.member.N.Id must be unique.")
    periods = {int(q["MetricStat"]["Period"]) for q in queries if q.get("MetricStat")}
    periods |= {int(q["Period"]) for q in queries if q.get("Expression") and q.get("Period")}
    period = min(periods) if periods else 60
    first = aligned_start(start, period)
    grid = [first + i * period for i in range(max(1, math.ceil((end - first) / period)))]
    results: dict[str, expressions.Value] = {}
    labels: dict[str, str] = {}
    metric_ids: list[str] = []
    for query in queries:
        qid = str(query["Id"])
        if not qid or not qid[0].islower():
            raise QueryError(f"The Id {qid!r} must start with a lower-case letter.")
        stat_query = query.get("MetricStat")
        if stat_query and query.get("Expression"):
            raise QueryError(f"Query {qid} gives both MetricStat and Expression; give exactly one.")
        if stat_query:
            missing = [k for k in ("Metric", "Period", "Stat") if not stat_query.get(k)]
            if missing:
                raise QueryError(f"The MetricStat of query {qid} needs {', '.join(missing)}.")
            metric = stat_query["Metric"]
            stat = _parse(str(stat_query["Stat"]))
            q_period = int(stat_query["Period"])
            series: expressions.Series = {}
            for bucket, (samples, _) in store.buckets(
                store.key(metric["Namespace"], metric["MetricName"], metric.get("Dimensions") or []),
                aligned_start(start, q_period),
                end,
                q_period,
                stat_query.get("Unit"),
            ).items():
                value = samples.statistic(stat)
                if value is not None:
                    series[bucket] = value
            results[qid] = series
            metric_ids.append(qid)
            labels[qid] = query.get("Label") or f"{metric['MetricName']}"
        elif not query.get("Expression"):
            raise QueryError(f"Query {qid} needs a MetricStat or an Expression.")
    # expressions may use each other in any order: evaluate each once the ids it names are known
    pending = [q for q in queries if q.get("Expression")]
    for query in pending:
        labels[str(query["Id"])] = query.get("Label") or str(query["Id"])
    while pending:
        ready = [q for q in pending if _references(q) <= set(results)] or pending[:1]
        for query in ready:
            qid = str(query["Id"])
            context = expressions.Context(results, metric_ids, labels, grid, period)
            try:
                results[qid] = expressions.evaluate(str(query["Expression"]), context)
            except expressions.ExpressionError as exc:
                raise QueryError(f"Query {qid}: {exc}") from exc
            pending.remove(query)
    out = []
    for query in queries:
        qid = str(query["Id"])
        if not _truthy(query.get("ReturnData")):
            continue
        value = results[qid]
        if isinstance(value, list):
            raise QueryError(f"Query {qid} returns an array of time series; wrap it in SUM/AVG/MIN/MAX.")
        if isinstance(value, str):
            raise QueryError(f"Query {qid} returns a string, not a time series.")
        series = value if isinstance(value, dict) else {t: float(value) for t in grid}
        points = sorted(
            ((t, v) for t, v in series.items() if first <= t < end), reverse=scan_by != "TimestampAscending"
        )
        out.append(
            {
                "Id": qid,
                "Label": labels[qid],
                "Timestamps": [_stamp(t) for t, _ in points],
                "Values": [v for _, v in points],
                "StatusCode": "Complete",
            }
        )
    return out


def _references(query: dict[str, Any]) -> set[str]:
    try:
        return expressions.referenced_ids(str(query["Expression"]))
    except expressions.ExpressionError:
        return set()


# --------------------------------------------------------------------------------- moto integration


def _store(backend: Any) -> MetricStore:
    store = getattr(backend, "_devstack_metric_store", None)
    if store is None:
        with _LOCK:
            store = getattr(backend, "_devstack_metric_store", None)
            if store is None:
                store = MetricStore()
                backend._devstack_metric_store = store
    return store


def _history(backend: Any) -> list[dict[str, Any]]:
    items = getattr(backend, "_devstack_alarm_history", None)
    if items is None:
        items = []
        backend._devstack_alarm_history = items
    return items


def _record(backend: Any, item: dict[str, Any]) -> None:
    with _LOCK:
        items = _history(backend)
        items.append(item)
        del items[:-HISTORY_LIMIT]


def _iso(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


@once
def install() -> None:
    """Install the devstack's CloudWatch behaviour into moto (idempotent; process-wide)."""
    from moto.cloudwatch import exceptions as cw_exceptions
    from moto.cloudwatch.models import CloudWatchBackend, MetricAggregatedDatum
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow

    def error(exc: QueryError) -> Exception:
        if exc.code == "InvalidParameterValue":
            return cw_exceptions.InvalidParameterValue(str(exc))
        return cw_exceptions.ValidationError(str(exc))

    original_put_alarm = CloudWatchBackend.put_metric_alarm
    original_set_state = CloudWatchBackend.set_alarm_state

    def put_metric_data(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        for i, metric in enumerate(metric_data):
            self._validate_parameters_put_metric_data(metric, i + 1)
        store = _store(self)
        for metric in metric_data:
            store.add(namespace, metric)
            # one lightweight record per metric and dimension set keeps ListMetrics working
            key = store.key(namespace, metric["MetricName"], metric.get("Dimensions") or [])
            known: set[MetricKey] = getattr(self, "_devstack_listed", set())
            if key not in known:
                known.add(key)
                self._devstack_listed = known
                self.metric_data.append(
                    MetricAggregatedDatum(
                        namespace=namespace,
                        name=metric["MetricName"],
                        min_stat=0.0,
                        max_stat=0.0,
                        sample_count=0.0,
                        sum_stat=0.0,
                        dimensions=metric.get("Dimensions") or [],
                        timestamp=None,
                        unit=metric.get("Unit"),
                    )
                )

    def put_metric_alarm(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        previous = self.alarms.get(name)
        # CloudWatch accepts every extended statistic (tm90, IQM, PR(..)...); moto only percentiles
        extended = kwargs.get("extended_statistic")
        if extended and EXTENDED_STATISTIC.match(str(extended)):
            kwargs["extended_statistic"] = None
        if previous is not None:
            # CloudWatch takes an alarm's tags when PutMetricAlarm creates it and ignores them when it updates
            # one (TagResource changes them); moto would apply them on every call
            kwargs["tags"] = None
        alarm = original_put_alarm(self, name, *args, **kwargs)
        if extended:
            alarm.extended_statistic = extended
        now = utcnow()
        if previous is not None:
            alarm.state_value = previous.state_value
            alarm.state_reason = previous.state_reason
            alarm.state_reason_data = previous.state_reason_data
            alarm.state_updated_timestamp = previous.state_updated_timestamp
            alarm.history = previous.history
            summary, kind = f'Alarm "{name}" updated', "Update"
        else:
            alarm.state_value = "INSUFFICIENT_DATA"
            alarm.state_reason = "Unchecked: Initial alarm creation"
            alarm.state_reason_data = None
            alarm.state_updated_timestamp = now
            summary, kind = f'Alarm "{name}" created', "Create"
        _record(
            self,
            {
                "AlarmName": name,
                "AlarmType": "CompositeAlarm" if alarm.rule else "MetricAlarm",
                "Timestamp": now,
                "HistoryItemType": "ConfigurationUpdate",
                "HistorySummary": summary,
                "HistoryData": json.dumps({"version": "1.0", "type": kind}),
            },
        )
        return alarm

    def set_alarm_state(self: Any, alarm_name: str, reason: str, reason_data: str, state_value: str) -> None:
        alarm = self.alarms.get(alarm_name)
        old = (alarm.state_value, alarm.state_reason, alarm.state_reason_data) if alarm is not None else None
        original_set_state(self, alarm_name, reason, reason_data, state_value)
        if old is None:
            return
        new_state: dict[str, Any] = {"stateValue": state_value, "stateReason": reason}
        if reason_data:
            new_state["stateReasonData"] = json.loads(reason_data)
        old_state: dict[str, Any] = {"stateValue": old[0], "stateReason": old[1]}
        if old[2] and old[2] != "{}":
            old_state["stateReasonData"] = json.loads(old[2])
        _record(
            self,
            {
                "AlarmName": alarm_name,
                "AlarmType": "MetricAlarm",
                "Timestamp": self.alarms[alarm_name].state_updated_timestamp,
                "HistoryItemType": "StateUpdate",
                "HistorySummary": f"Alarm updated from {old[0]} to {state_value}",
                "HistoryData": json.dumps({"version": "1.0", "oldState": old_state, "newState": new_state}),
            },
        )

    def get_metric_statistics(self: Any) -> Any:
        statistics = self._get_param("Statistics", []) or []
        extended = self._get_param("ExtendedStatistics", []) or []
        if not statistics and not extended:
            raise cw_exceptions.InvalidParameterCombination("Must specify either Statistics or ExtendedStatistics")
        try:
            points = metric_statistics(
                _store(self.cloudwatch_backend),
                namespace=self._get_param("Namespace"),
                name=self._get_param("MetricName"),
                dimensions=self._get_param("Dimensions", []) or [],
                start=_epoch(self._get_param("StartTime")),
                end=_epoch(self._get_param("EndTime")),
                period=int(self._get_param("Period")),
                statistics=list(statistics),
                extended=list(extended),
                unit=self._get_param("Unit"),
            )
        except QueryError as exc:
            raise error(exc) from exc
        return ActionResult({"Label": self._get_param("MetricName"), "Datapoints": points})

    def get_metric_data(self: Any) -> Any:
        params = self._get_params()
        try:
            results = metric_data(
                _store(self.cloudwatch_backend),
                list(params.get("MetricDataQueries", [])),
                start=_epoch(params["StartTime"]),
                end=_epoch(params["EndTime"]),
                scan_by=params.get("ScanBy") or "TimestampDescending",
            )
        except QueryError as exc:
            raise error(exc) from exc
        return ActionResult({"MetricDataResults": results, "Messages": []})

    def describe_alarm_history(self: Any) -> Any:
        name = self._get_param("AlarmName")
        kinds = self._get_param("AlarmTypes") or ["MetricAlarm", "CompositeAlarm"]
        item_type = self._get_param("HistoryItemType")
        start = self._get_param("StartDate")
        end = self._get_param("EndDate")
        max_records = int(self._get_param("MaxRecords") or 100)
        token = int(self._get_param("NextToken") or 0)
        ascending = self._get_param("ScanBy") == "TimestampAscending"
        with _LOCK:
            items = list(_history(self.cloudwatch_backend))
        selected = [
            i
            for i in items
            if (name is None or i["AlarmName"] == name)
            and i["AlarmType"] in kinds
            and (item_type is None or i["HistoryItemType"] == item_type)
            and (start is None or i["Timestamp"].timestamp() >= _epoch(start))
            and (end is None or i["Timestamp"].timestamp() <= _epoch(end))
        ]
        selected.sort(key=lambda i: i["Timestamp"], reverse=not ascending)
        page = selected[token : token + max_records]
        result: dict[str, Any] = {"AlarmHistoryItems": page}
        if token + max_records < len(selected):
            result["NextToken"] = str(token + max_records)
        return ActionResult(result)

    CloudWatchBackend.put_metric_data = put_metric_data  # type: ignore[method-assign]
    CloudWatchBackend.put_metric_alarm = put_metric_alarm  # type: ignore[method-assign]
    CloudWatchBackend.set_alarm_state = set_alarm_state  # type: ignore[method-assign]
    CloudWatchResponse.get_metric_statistics = get_metric_statistics  # type: ignore[method-assign]
    CloudWatchResponse.get_metric_data = get_metric_data  # type: ignore[method-assign]
    CloudWatchResponse.describe_alarm_history = describe_alarm_history  # type: ignore[attr-defined]


__all__ = [
    "MetricStore",
    "QueryError",
    "Sample",
    "aligned_start",
    "install",
    "metric_data",
    "metric_statistics",
]
