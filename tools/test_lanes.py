"""Run the test suite's pytest sessions in concurrent lanes: ``python -m tools.test_lanes`` (``make test``).

The suite is several pytest sessions (``docs/architecture.md``, *Tests*): the main one, then one per isolated
suite (each ``tests/e2e/test_*.py`` module, ``tests/faults``, ``tests/ui``), each with its own devstack on free
loopback ports, its own temporary ``AIRFLOW_HOME`` and metadata database. Much of an isolated suite's time is
waiting (scheduler loops, deferrals, devstack jobs), so two sessions at a time finish the suite sooner than one.

- ``--lanes 1``: every session one after the other, in the order the suite always ran (main, ``tests/e2e``
  modules by name, ``tests/faults``, ``tests/ui``).
- ``--lanes N`` (N > 1): N lanes run at once, each its sessions one after the other. Sessions are given to lanes
  longest first, each to the lane with the least work so far (:data:`ESTIMATES`, minutes of a serial CI run; a
  suite not listed counts as :data:`DEFAULT_ESTIMATE`), so the lanes end close together.

Each session writes its output to ``<log dir>/<session>.log``; the whole log is printed when the session ends, so
no two sessions' lines interleave, followed at the end by a summary of every session in plan order (lane, exit
status, duration). The exit status is 1 when any session fails, including a session that collects no tests
(pytest's exit status 5). ``--plan`` prints the lanes without running anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOG_DIR = ROOT / "test-artifacts" / "sessions"

#: minutes each session took in a serial CI run; what the lanes are balanced by
ESTIMATES: dict[str, float] = {
    "main": 19.0,
    "tests/faults": 12.9,
    "tests/e2e/test_mwaa_lifecycle.py": 5.1,
    "tests/e2e/test_hitl_approval.py": 4.6,
    "tests/e2e/test_train_model.py": 3.9,
    "tests/ui": 3.4,
    "tests/e2e/test_monitor_evidently.py": 5.0,
    "tests/e2e/test_monitor_drift.py": 1.8,
    "tests/e2e/test_deploy_devstack.py": 1.6,
    "tests/e2e/test_extraction_modes.py": 1.4,
    "tests/e2e/test_batch_devstack.py": 0.5,
}
#: minutes assumed for an isolated suite not in :data:`ESTIMATES` (a new end-to-end module)
DEFAULT_ESTIMATE = 3.0


@dataclasses.dataclass(frozen=True)
class Session:
    """One pytest session: its name (``main`` or the suite's path) and its pytest arguments."""

    name: str
    args: tuple[str, ...]

    @property
    def estimate(self) -> float:
        return ESTIMATES.get(self.name, DEFAULT_ESTIMATE)

    @property
    def log_name(self) -> str:
        return self.name.removeprefix("tests/").removesuffix(".py").replace("/", "-") + ".log"


@dataclasses.dataclass
class Result:
    """How a session ended."""

    session: Session
    lane: int
    returncode: int
    seconds: float
    summary: str


def isolated_suites(root: Path = ROOT) -> list[str]:
    """The suites that run in sessions of their own, in the serial order: e2e modules by name, faults, ui
    (the Makefile's ``ISOLATED_SUITES``, which it passes on the command line)."""
    e2e = sorted(p.relative_to(root).as_posix() for p in (root / "tests" / "e2e").glob("test_*.py"))
    return [*e2e, "tests/faults", "tests/ui"]


def sessions(isolated: list[str]) -> list[Session]:
    """Every session of the suite in the serial order: the main one (everything not ``isolated``) first."""
    main = Session("main", ("--durations=25", *(f"--ignore={suite}" for suite in isolated)))
    return [main, *(Session(suite, ("--durations=10", suite)) for suite in isolated)]


def plan(all_sessions: list[Session], lanes: int) -> list[list[Session]]:
    """The sessions of each lane, in the order the lane runs them.

    One lane keeps the given order; with more, the longest session goes first to the lane with the least work.
    """
    if lanes < 1:
        raise ValueError(f"lanes must be at least 1, got {lanes}")
    if lanes == 1:
        return [list(all_sessions)]
    result: list[list[Session]] = [[] for _ in range(lanes)]
    load = [0.0] * lanes
    for session in sorted(all_sessions, key=lambda s: -s.estimate):  # stable: equal estimates keep their order
        lane = load.index(min(load))
        result[lane].append(session)
        load[lane] += session.estimate
    return [lane for lane in result if lane]


def last_line(log: Path) -> str:
    """pytest's closing line (``== 3 passed in 1.2s ==``), or the log's last non-empty line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip("= ") if lines else "(no output)"


class Runner:
    """Runs the lanes of a plan, one thread per lane; prints each session's log whole when it ends."""

    def __init__(self, lanes: list[list[Session]], log_dir: Path, python: str = sys.executable) -> None:
        self.lanes = lanes
        self.log_dir = log_dir
        self.python = python
        self.results: dict[str, Result] = {}
        self._print_lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()
        self._stopping = threading.Event()

    def command(self, session: Session) -> list[str]:
        # each session its own cache folder: pytest rewrites its cache files at the end of every session
        cache = f"cache_dir=.pytest_cache/{session.log_name.removesuffix('.log')}"
        return [self.python, "-m", "pytest", "-o", cache, *session.args]

    def run_session(self, session: Session, lane: int) -> Result:
        log = self.log_dir / session.log_name
        started = time.monotonic()
        with log.open("wb") as out:
            if self._stopping.is_set():
                code = -signal.SIGTERM
            else:
                proc = subprocess.Popen(self.command(session), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
                self._procs.add(proc)
                code = proc.wait()
                self._procs.discard(proc)
        result = Result(session, lane, code, time.monotonic() - started, last_line(log))
        with self._print_lock:
            status = "passed" if code == 0 else f"FAILED (exit status {code})"
            print(f"\n===== lane {lane}: {session.name}: {status} in {result.seconds / 60:.1f} min =====", flush=True)
            sys.stdout.write(log.read_text(errors="replace"))
            print(f"===== end of {session.name} (log: {log.relative_to(ROOT) if log.is_relative_to(ROOT) else log})")
            sys.stdout.flush()
        return result

    def run_lane(self, lane: int) -> None:
        for session in self.lanes[lane - 1]:
            self.results[session.name] = self.run_session(session, lane)

    def stop(self) -> None:
        """Stop the running sessions (each ends its own devstack and Airflow) and start no other."""
        self._stopping.set()
        for proc in list(self._procs):
            proc.terminate()

    def run(self) -> int:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        threads = [threading.Thread(target=self.run_lane, args=(n,)) for n in range(1, len(self.lanes) + 1)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except KeyboardInterrupt:
            self.stop()
            for thread in threads:
                thread.join()
        return self.report(time.monotonic() - started)

    def report(self, seconds: float) -> int:
        print(f"\n===== {len(self.results)} pytest sessions in {len(self.lanes)} lane(s), {seconds / 60:.1f} min")
        failed = 0
        for lane, lane_sessions in enumerate(self.lanes, start=1):
            for session in lane_sessions:
                result = self.results.get(session.name)
                if result is None:
                    failed += 1
                    print(f"  lane {lane}  {session.name:<40} NOT RUN")
                    continue
                ok = result.returncode == 0
                failed += not ok
                status = "ok" if ok else f"FAILED ({result.returncode})"
                print(
                    f"  lane {lane}  {session.name:<40} {result.seconds / 60:5.1f} min  {status:<12} {result.summary}"
                )
        print("all sessions passed" if not failed else f"{failed} session(s) failed")
        return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=2, help="sessions running at once (1: serial; default 2)")
    parser.add_argument("--log-dir", type=Path, default=DEFAULT_LOG_DIR, help="where each session's log goes")
    parser.add_argument("--plan", action="store_true", help="print the lanes and exit")
    parser.add_argument("suites", nargs="*", help="the isolated suites, in serial order (default: as make test)")
    args = parser.parse_args(argv)
    if args.lanes < 1:
        parser.error(f"--lanes must be at least 1, got {args.lanes}")
    lanes = plan(sessions(args.suites or isolated_suites()), args.lanes)
    for n, lane in enumerate(lanes, start=1):
        total = sum(s.estimate for s in lane)
        print(f"lane {n} (~{total:.0f} min serial): " + ", ".join(s.name for s in lane))
    if args.plan:
        return 0
    runner = Runner(lanes, args.log_dir)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
