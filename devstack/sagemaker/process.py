"""Run a job's container command as a local subprocess, streaming its output to the job log."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from devstack.sagemaker.isolation import Confinement

log = logging.getLogger(__name__)


def escape_log_line(line: str) -> str:
    """Escape a line as SageMaker's log shipping does: tabs become ``#011``."""
    return line.replace("\t", "#011")


@dataclass
class MetricTracker:
    """Applies ``MetricDefinitions`` regexes to log lines and keeps the last value of each metric.

    :param definitions: ``[{"Name": ..., "Regex": ...}]``.
    """

    definitions: list[dict[str, str]]
    values: dict[str, tuple[float, float]] = field(default_factory=dict)
    _compiled: list[tuple[str, re.Pattern[str]]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        for definition in self.definitions:
            try:
                self._compiled.append((definition["Name"], re.compile(definition["Regex"])))
            except re.error:
                log.warning("Metric %s has a regex Python cannot compile; it is ignored", definition["Name"])

    def feed(self, line: str, timestamp: float) -> None:
        """Match one (escaped) log line; a first group that is not a float is skipped."""
        for name, pattern in self._compiled:
            match = pattern.search(line)
            if not match or not match.groups():
                continue
            try:
                self.values[name] = (float(match.group(1)), timestamp)
            except (TypeError, ValueError):
                continue

    def final_metric_data(self) -> list[dict[str, object]]:
        """Return ``FinalMetricDataList``: metrics that matched at least once, in definition order."""
        out: list[dict[str, object]] = []
        for definition in self.definitions:
            name = definition["Name"]
            if name in self.values:
                value, ts = self.values[name]
                out.append({"MetricName": name, "Value": value, "Timestamp": ts})
        return out[:40]


@dataclass
class ProcessResult:
    """How a run ended.

    :param exit_code: the exit code (negative signal number when killed by a signal).
    :param stderr_tail: the last lines of stderr.
    :param stopped: whether the run was stopped on request.
    :param timed_out: whether the run exceeded its maximum runtime.
    """

    exit_code: int
    stderr_tail: list[str]
    stopped: bool
    timed_out: bool


class JobProcess:
    """One running container command.

    :param argv: the command.
    :param env: the full environment.
    :param cwd: the working directory.
    :param on_line: called with each escaped output line and its time.
    :param stop_signal: the first signal sent when stopping (SIGTERM for training, SIGINT for processing).
    :param grace_seconds: how long to wait after the first signal before SIGKILL.
    :param confinement: run the command in a private mount (and network) namespace; ``cwd`` is then only
        where ``unshare`` starts, the command's working directory is the confinement's.
    """

    STDERR_TAIL_LINES = 30

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        on_line: Callable[[str, float], None],
        stop_signal: int = signal.SIGTERM,
        grace_seconds: float = 120.0,
        confinement: Confinement | None = None,
    ) -> None:
        self.argv = argv
        self._on_line = on_line
        self._stop_signal = stop_signal
        self._grace = grace_seconds
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=self.STDERR_TAIL_LINES)
        self._line_lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._timed_out = False
        self.started_at = time.time()
        self.popen = subprocess.Popen(
            confinement.wrap(argv) if confinement is not None else argv,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._readers = [
            threading.Thread(target=self._pump, args=(self.popen.stdout, False), daemon=True),
            threading.Thread(target=self._pump, args=(self.popen.stderr, True), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        """The process id (also the process group id)."""
        return self.popen.pid

    def _pump(self, stream: IO[bytes] | None, is_stderr: bool) -> None:
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            now = time.time()
            with self._line_lock:
                if is_stderr:
                    self._stderr_tail.append(line)
                self._on_line(escape_log_line(line), now)
        stream.close()

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def stop(self) -> None:
        """Ask the process to stop: the stop signal, then SIGKILL after the grace period."""
        if self._stop_requested.is_set():
            return
        self._stop_requested.set()
        threading.Thread(target=self._terminate, daemon=True).start()

    def _terminate(self) -> None:
        self._signal(self._stop_signal)
        try:
            self.popen.wait(timeout=self._grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)

    def wait(self, max_runtime: float | None = None) -> ProcessResult:
        """Wait for the process, enforcing ``max_runtime`` seconds (stop signal, grace, SIGKILL)."""
        deadline = self.started_at + max_runtime if max_runtime else None
        while True:
            timeout = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.time()))
            try:
                self.popen.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                if deadline is not None and time.time() >= deadline and not self._stop_requested.is_set():
                    self._timed_out = True
                    self.stop()
        for reader in self._readers:
            reader.join(timeout=5)
        # Kill whatever the command left behind in its process group.
        self._signal(signal.SIGKILL)
        with self._line_lock:
            tail = list(self._stderr_tail)
        return ProcessResult(
            exit_code=self.popen.returncode,
            stderr_tail=tail,
            stopped=self._stop_requested.is_set() and not self._timed_out,
            timed_out=self._timed_out,
        )


def stderr_excerpt(lines: list[str], limit: int = 700) -> str:
    """Return the last non-blank stderr lines, at most ``limit`` characters, newest kept."""
    kept: list[str] = []
    size = 0
    for line in reversed([line for line in lines if line.strip()]):
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(reversed(kept))
