"""Batched CloudWatch metrics and the background flusher shared by metrics and data capture.

Invocations never call CloudWatch on the request path: :class:`MetricBatcher` collects values per
metric, dimension set and second, and the :class:`Flusher` thread sends them with ``PutMetricData``
(and uploads queued capture files) every ``interval`` seconds. Values are sent raw, as ``Values`` with
``Counts`` (at most 150 distinct values per datum, CloudWatch's limit), not as statistic sets: CloudWatch
computes percentiles (the p99 ``ModelLatency`` of a rollback alarm) only from raw values.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: CloudWatch's limits: MetricData entries per PutMetricData call, distinct values per entry
MAX_METRICS_PER_CALL = 500
MAX_VALUES_PER_DATUM = 150
#: keeps one call's body well under CloudWatch's 1 MB request limit
MAX_VALUES_PER_CALL = 15_000

_Key = tuple[str, tuple[tuple[str, str], ...], str, str, int]


class MetricBatcher:
    """Collects metric values per (namespace, dimensions, name, unit, second), with their counts.

    :param cloudwatch: a function returning a CloudWatch client (called at flush time).
    """

    def __init__(self, cloudwatch: Callable[[], Any]) -> None:
        self._cloudwatch = cloudwatch
        self._lock = threading.Lock()
        self._values: dict[_Key, dict[float, float]] = {}

    def add(
        self,
        namespace: str,
        dimensions: dict[str, str],
        name: str,
        value: float,
        unit: str = "None",
        timestamp: float | None = None,
    ) -> None:
        """Record one value (counted with the equal values of the same second)."""
        second = int(timestamp if timestamp is not None else dt.datetime.now(dt.UTC).timestamp())
        key = (namespace, tuple(sorted(dimensions.items())), name, unit, second)
        with self._lock:
            counts = self._values.setdefault(key, {})
            counts[value] = counts.get(value, 0.0) + 1.0

    @staticmethod
    def _data(key: _Key, counts: dict[float, float]) -> list[dict[str, Any]]:
        items = sorted(counts.items())
        return [
            {
                "MetricName": key[2],
                "Dimensions": [{"Name": k, "Value": v} for k, v in key[1]],
                "Timestamp": dt.datetime.fromtimestamp(key[4], dt.UTC),
                "Values": [v for v, _ in items[start : start + MAX_VALUES_PER_DATUM]],
                "Counts": [c for _, c in items[start : start + MAX_VALUES_PER_DATUM]],
                "Unit": key[3],
            }
            for start in range(0, len(items), MAX_VALUES_PER_DATUM)
        ]

    def flush(self) -> int:
        """Send every collected value; return how many data were sent. Failed sends are kept for later."""
        with self._lock:
            collected, self._values = self._values, {}
        by_namespace: dict[str, list[tuple[_Key, dict[float, float]]]] = {}
        for key, counts in collected.items():
            by_namespace.setdefault(key[0], []).append((key, counts))
        sent = 0
        for namespace, items in by_namespace.items():
            for chunk in _chunks(items):
                data = [datum for key, counts in chunk for datum in self._data(key, counts)]
                try:
                    self._cloudwatch().put_metric_data(Namespace=namespace, MetricData=data)
                    sent += len(data)
                except Exception:
                    log.warning("Cannot put %d metric data to %s; retrying at the next flush", len(data), namespace)
                    with self._lock:
                        for key, counts in chunk:
                            merged = self._values.setdefault(key, {})
                            for value, count in counts.items():
                                merged[value] = merged.get(value, 0.0) + count
        return sent


def _chunks(
    items: list[tuple[_Key, dict[float, float]]],
) -> list[list[tuple[_Key, dict[float, float]]]]:
    """Group keys into PutMetricData calls within CloudWatch's entry and size limits."""
    chunks: list[list[tuple[_Key, dict[float, float]]]] = []
    current: list[tuple[_Key, dict[float, float]]] = []
    entries = values = 0
    for key, counts in items:
        need = -(-len(counts) // MAX_VALUES_PER_DATUM)
        if current and (entries + need > MAX_METRICS_PER_CALL or values + len(counts) > MAX_VALUES_PER_CALL):
            chunks.append(current)
            current, entries, values = [], 0, 0
        current.append((key, counts))
        entries += need
        values += len(counts)
    if current:
        chunks.append(current)
    return chunks


class Flusher:
    """Calls each ``flush`` callable every ``interval`` seconds in a daemon thread, and once at close.

    :param flushes: the callables.
    :param interval: seconds between rounds.
    """

    def __init__(self, flushes: list[Callable[[], Any]], interval: float = 1.0) -> None:
        self.flushes = flushes
        self.interval = interval
        self._stop = threading.Event()
        # one round at a time: a caller's flush() returns only after a round already running has finished
        self._round = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="devstack-telemetry", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        """Run every flush now (after the round in progress, if any, so that everything queued is sent)."""
        with self._round:
            for flush in self.flushes:
                try:
                    flush()
                except Exception:
                    log.exception("Telemetry flush failed")

    def close(self) -> None:
        """Stop the thread after a last round."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()
