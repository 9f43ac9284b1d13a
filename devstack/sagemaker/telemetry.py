"""Batched CloudWatch metrics and the background flusher shared by metrics and data capture.

Invocations never call CloudWatch on the request path: :class:`MetricBatcher` aggregates values per
metric, dimension set and second into ``StatisticValues`` (SampleCount, Sum, Minimum, Maximum), and the
:class:`Flusher` thread sends them with ``PutMetricData`` (and uploads queued capture files) every
``interval`` seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_METRICS_PER_CALL = 500

_Key = tuple[str, tuple[tuple[str, str], ...], str, str, int]


class MetricBatcher:
    """Aggregates metric values per (namespace, dimensions, name, unit, second).

    :param cloudwatch: a function returning a CloudWatch client (called at flush time).
    """

    def __init__(self, cloudwatch: Callable[[], Any]) -> None:
        self._cloudwatch = cloudwatch
        self._lock = threading.Lock()
        self._stats: dict[_Key, list[float]] = {}

    def add(
        self,
        namespace: str,
        dimensions: dict[str, str],
        name: str,
        value: float,
        unit: str = "None",
        timestamp: float | None = None,
    ) -> None:
        """Record one value (aggregated with the others of the same second)."""
        second = int(timestamp if timestamp is not None else dt.datetime.now(dt.UTC).timestamp())
        key = (namespace, tuple(sorted(dimensions.items())), name, unit, second)
        with self._lock:
            stat = self._stats.get(key)
            if stat is None:
                self._stats[key] = [1.0, value, value, value]
            else:
                stat[0] += 1
                stat[1] += value
                stat[2] = min(stat[2], value)
                stat[3] = max(stat[3], value)

    def flush(self) -> int:
        """Send every aggregated datum; return how many were sent. Failed sends are kept for later."""
        with self._lock:
            stats, self._stats = self._stats, {}
        by_namespace: dict[str, list[tuple[_Key, list[float]]]] = {}
        for key, stat in stats.items():
            by_namespace.setdefault(key[0], []).append((key, stat))
        sent = 0
        for namespace, items in by_namespace.items():
            for start in range(0, len(items), MAX_METRICS_PER_CALL):
                chunk = items[start : start + MAX_METRICS_PER_CALL]
                data = [
                    {
                        "MetricName": key[2],
                        "Dimensions": [{"Name": k, "Value": v} for k, v in key[1]],
                        "Timestamp": dt.datetime.fromtimestamp(key[4], dt.UTC),
                        "StatisticValues": {
                            "SampleCount": stat[0],
                            "Sum": stat[1],
                            "Minimum": stat[2],
                            "Maximum": stat[3],
                        },
                        "Unit": key[3],
                    }
                    for key, stat in chunk
                ]
                try:
                    self._cloudwatch().put_metric_data(Namespace=namespace, MetricData=data)
                    sent += len(data)
                except Exception:
                    log.warning("Cannot put %d metric data to %s; retrying at the next flush", len(data), namespace)
                    with self._lock:
                        for key, stat in chunk:
                            self._stats.setdefault(key, stat)
        return sent


class Flusher:
    """Calls each ``flush`` callable every ``interval`` seconds in a daemon thread, and once at close.

    :param flushes: the callables.
    :param interval: seconds between rounds.
    """

    def __init__(self, flushes: list[Callable[[], Any]], interval: float = 1.0) -> None:
        self.flushes = flushes
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="devstack-telemetry", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        """Run every flush now."""
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
