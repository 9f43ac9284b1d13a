"""requirements.txt must resolve the way MWAA installs it (Python 3.12, Airflow constraints + MWAA pins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import mwaa_requirements as mr

ROOT = Path(__file__).resolve().parents[2]
# The development tools that must never reach MWAA's requirements.txt.
DEV_ONLY = {
    "pytest",
    "ruff",
    "moto",
    "fakesnow",
    "hypothesis",
    "uv",
    "pytest-timeout",
    "xgboost",
    "scikit-learn",
}


@pytest.fixture(scope="module")
def resolution() -> mr.Resolution:
    return mr.resolve(ROOT / "requirements.txt")


def test_requirements_resolve_under_mwaa_constraints(resolution):
    assert resolution.ok, resolution.message
    assert resolution.resolved["apache-airflow"] == "3.3.1"


def test_mwaa_pins_win(resolution):
    essential = Path(mr.constraint_sources()[1])
    if not essential.is_file():
        pytest.skip("constraint files are URLs here; pins are checked where they are local files")
    pins = mr._pins(essential.read_text())
    clashes = {
        name: (version, resolution.resolved[name])
        for name, version in pins.items()
        if name in resolution.resolved and resolution.resolved[name] != version
    }
    assert not clashes


def test_requirements_hold_no_development_tools():
    text = (ROOT / "requirements.txt").read_text()
    names = {
        line.split("==")[0].strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    }
    assert not names & DEV_ONLY


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("apache-airflow-providers-amazon==9.39.0", id="provider-newer-than-airflow-constraint"),
        pytest.param("airflow-provider-great-expectations>=1.0", id="gx-provider-needs-older-structlog"),
        pytest.param("apache-airflow==3.2.0", id="airflow-other-than-mwaa-essential-pin"),
    ],
)
def test_conflicting_pin_fails(tmp_path, line):
    bad = tmp_path / "requirements.txt"
    bad.write_text(f'--constraint "{mr.AIRFLOW_CONSTRAINTS_URL}"\n{line}\n')
    result = mr.resolve(bad)
    assert not result.ok
    assert "No solution found" in result.message


def test_wrong_constraint_line_is_rejected(tmp_path):
    bad = tmp_path / "requirements.txt"
    bad.write_text('--constraint "https://example.invalid/constraints-3.1.0/constraints-3.12.txt"\npandas\n')
    result = mr.resolve(bad)
    assert not result.ok
    assert "--constraint line must be" in result.message


def test_missing_constraint_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mwaa-essential-constraints\.txt"):
        mr.constraint_sources(str(tmp_path))
