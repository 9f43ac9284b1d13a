"""Monitoring schedule expressions, boundaries and analysis-window offsets."""

from __future__ import annotations

import datetime as dt

import pytest

from devstack.sagemaker.monitor import boundaries, cron_period, next_boundary, parse_duration


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def iso(value: float) -> str:
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%dT%H:%M")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("cron(0 * ? * * *)", (0, 1), id="hourly"),
        pytest.param("cron(0 5 ? * * *)", (5, 24), id="daily"),
        pytest.param("cron(0 2/6 ? * * *)", (2, 6), id="every-6-hours"),
    ],
)
def test_cron_period(expression: str, expected: tuple[int, int]) -> None:
    assert cron_period(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("cron(15 * ? * * *)", id="not-minute-zero"),
        pytest.param("cron(0 25 ? * * *)", id="hour-out-of-range"),
        pytest.param("rate(1 hour)", id="rate"),
    ],
)
def test_unsupported_expressions(expression: str) -> None:
    with pytest.raises(ValueError, match=r"not supported|outside 0-23"):
        cron_period(expression)


def test_boundaries_after_creation() -> None:
    created = epoch("2026-01-01T10:20:00")
    hourly = boundaries("cron(0 * ? * * *)", created, epoch("2026-01-01T13:00:00"))
    assert [iso(b) for b in hourly] == ["2026-01-01T11:00", "2026-01-01T12:00", "2026-01-01T13:00"]
    daily = boundaries("cron(0 5 ? * * *)", created, epoch("2026-01-03T06:00:00"))
    assert [iso(b) for b in daily] == ["2026-01-02T05:00", "2026-01-03T05:00"]
    six = boundaries("cron(0 2/6 ? * * *)", created, epoch("2026-01-02T03:00:00"))
    assert [iso(b) for b in six] == ["2026-01-01T14:00", "2026-01-01T20:00", "2026-01-02T02:00"]
    assert iso(next_boundary("cron(0 * ? * * *)", created)) == "2026-01-01T11:00"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("-PT1H", -3600, id="minus-hour"),
        pytest.param("PT0H", 0, id="zero"),
        pytest.param("-P1DT2H", -93600, id="day-and-hours"),
        pytest.param("-P8D", -8 * 86400, id="days"),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_bad_duration() -> None:
    with pytest.raises(ValueError, match="not an ISO-8601 duration"):
        parse_duration("1 hour")
