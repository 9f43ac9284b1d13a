"""``tools.test_lanes``: how ``make test`` splits its pytest sessions into lanes, and what its exit status says."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import test_lanes
from tools.test_lanes import Runner, Session, plan, sessions

SUITES = test_lanes.isolated_suites()


def test_one_lane_keeps_the_serial_order() -> None:
    [lane] = plan(sessions(SUITES), 1)
    assert [s.name for s in lane] == ["main", *SUITES]
    assert lane[0].args == ("--durations=25", *(f"--ignore={suite}" for suite in SUITES))
    assert all(s.args == ("--durations=10", s.name) for s in lane[1:])


def test_two_lanes_run_every_session_once_and_end_close_together() -> None:
    lanes = plan(sessions(SUITES), 2)
    names = [s.name for lane in lanes for s in lane]
    assert sorted(names) == sorted(["main", *SUITES])
    assert lanes[0][0].name == "main" and lanes[1][0].name == "tests/faults"
    loads = [sum(s.estimate for s in lane) for lane in lanes]
    assert max(loads) - min(loads) <= 2.0, loads


def test_a_new_suite_counts_with_the_default_estimate() -> None:
    assert Session("tests/e2e/test_new.py", ()).estimate == test_lanes.DEFAULT_ESTIMATE


def test_zero_lanes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan(sessions(SUITES), 0)


def test_a_failing_or_empty_session_fails_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    print('ran')\n")
    (tmp_path / "test_bad.py").write_text("def test_bad():\n    assert False\n")
    (tmp_path / "empty").mkdir()
    ok = Session("ok", ("-p", "no:cacheprovider", str(tmp_path / "test_ok.py")))
    bad = Session("bad", ("-p", "no:cacheprovider", str(tmp_path / "test_bad.py")))
    empty = Session("empty", ("-p", "no:cacheprovider", str(tmp_path / "empty")))

    assert Runner([[ok]], tmp_path / "logs").run() == 0
    assert "all sessions passed" in capsys.readouterr().out
    # pytest's exit status 5 (no tests collected) fails the run as a failing test does
    assert Runner([[ok, bad], [empty]], tmp_path / "logs").run() == 1
    out = capsys.readouterr().out
    assert "lane 1: bad: FAILED (exit status 1)" in out and "lane 2: empty: FAILED (exit status 5)" in out
    assert "2 session(s) failed" in out
    assert "collected 0 items" in (tmp_path / "logs" / "empty.log").read_text()
