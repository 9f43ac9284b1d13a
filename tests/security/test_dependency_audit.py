"""Dependency audit: no known vulnerability in what is installed for development or on MWAA.

pip-audit checks every pinned package of ``requirements/dev.lock`` (hash-checked, nothing installed) and
of ``requirements.txt`` as MWAA resolves it (``tools.mwaa_requirements``, Python 3.12 under Airflow's and
MWAA's constraints) against the PyPI vulnerability data.

An audit that could not look a package up is a failure, not a pass: pip-audit itself exits 0 when the
service is unreachable and every package is "skipped", so the test reads its JSON report and fails on any
skipped package. Before the audit, a canary (``requests==2.19.0``, which has a published advisory) must be
reported vulnerable; if it is not, the service is not answering and the tests fail saying so.

The one way to turn the audit off is to declare the machine offline: ``ML_LIFECYCLE_AUDIT_OFFLINE=1``
(the tests are then reported as skipped with that reason). Accepted advisories are listed, with a reason
and a review date, in ``security/pip-audit-ignore.md``; an entry past its review date fails the test.

Run just this check: ``.venv/bin/pytest tests/security/test_dependency_audit.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
IGNORES = ROOT / "security" / "pip-audit-ignore.md"
OFFLINE_VAR = "ML_LIFECYCLE_AUDIT_OFFLINE"
CANARY = "requests==2.19.0"  # CVE-2018-18074 / PYSEC-2018-28: a known advisory the service must report
_ROW = re.compile(
    r"^\|\s*(?P<id>[A-Za-z0-9-]+)\s*\|\s*(?P<package>[A-Za-z0-9_.-]+)\s*\|\s*(?P<reason>[^|]+?)\s*\|"
    r"\s*(?P<review>\d{4}-\d{2}-\d{2})\s*\|\s*$"
)

pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Ignore:
    vuln_id: str
    package: str
    reason: str
    review_by: dt.date


def read_ignores(path: Path = IGNORES) -> tuple[list[Ignore], list[str]]:
    """The accepted advisories of the table in ``path``, and the problems with it."""
    entries, problems = [], []
    in_table = False
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("| id "):
            in_table = True
            continue
        if not in_table or not line.startswith("|") or set(line) <= set("|-: "):
            continue
        match = _ROW.match(line)
        if not match:
            problems.append(f"{path.name}:{lineno}: not '| id | package | reason | YYYY-MM-DD |': {line}")
            continue
        if len(match["reason"]) < 15:
            problems.append(f"{path.name}:{lineno}: {match['id']}: the reason is missing or too short to review")
        entries.append(
            Ignore(match["id"], match["package"].lower(), match["reason"], dt.date.fromisoformat(match["review"]))
        )
    return entries, problems


def pip_audit(requirements: Path, *extra: str) -> dict[str, Any]:
    """pip-audit's JSON report for a fully pinned requirements file, without installing anything."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "audit.json"
        cmd = [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(requirements),
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "--output",
            str(out),
            "--vulnerability-service",
            "pypi",
            *extra,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=800, check=False)
        if not out.is_file():
            raise AssertionError(f"pip-audit did not run (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text(encoding="utf-8"))


def verdict(report: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(vulnerabilities found, packages that could not be audited)."""
    found, skipped = [], []
    for dep in report.get("dependencies", []):
        if dep.get("skip_reason"):
            skipped.append(f"{dep['name']}: {dep['skip_reason']}")
        for vuln in dep.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
            aliases = ", ".join(vuln.get("aliases") or [])
            found.append(f"{dep['name']}=={dep['version']}: {vuln['id']} ({aliases}); fixed in {fixes}")
    return found, skipped


@pytest.fixture(scope="module")
def ignores() -> list[Ignore]:
    entries, problems = read_ignores()
    assert not problems, "\n".join(problems)
    return entries


@pytest.fixture(scope="module")
def service_answers(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fail (or skip, when declared offline) unless the vulnerability service reports a known advisory."""
    folder = tmp_path_factory.mktemp("audit-canary")
    canary = folder / "canary.txt"
    canary.write_text(CANARY + "\n", encoding="utf-8")
    report = pip_audit(canary, "--no-deps")
    found, skipped = verdict(report)
    if found:
        return
    reason = skipped[0] if skipped else "no advisory returned"
    message = (
        f"the vulnerability service did not report the known advisory of {CANARY} ({reason}): PyPI's JSON API "
        "(https://pypi.org/pypi/<name>/<version>/json) is unreachable or incomplete from this machine, so no "
        f"audit result can be trusted. Run the audit where it is reachable, or set {OFFLINE_VAR}=1 to skip it "
        "on a machine without that access."
    )
    if os.environ.get(OFFLINE_VAR) == "1":
        pytest.skip(f"{OFFLINE_VAR}=1: dependency audit not run ({reason})")
    pytest.fail(message, pytrace=False)


def _assert_clean(report: dict[str, Any], ignores: list[Ignore], what: str) -> None:
    found, skipped = verdict(report)
    assert not skipped, f"{what}: {len(skipped)} package(s) could not be audited:\n" + "\n".join(skipped[:20])
    assert not found, (
        f"{what}: known vulnerabilities (upgrade, or accept with a reason and review date in "
        "security/pip-audit-ignore.md):\n" + "\n".join(found)
    )


def _ignore_args(ignores: list[Ignore]) -> list[str]:
    return [arg for entry in ignores for arg in ("--ignore-vuln", entry.vuln_id)]


def test_ignore_file_is_reviewed(ignores: list[Ignore]):
    today = dt.date.today()
    expired = [f"{e.vuln_id} ({e.package}): review was due {e.review_by}" for e in ignores if e.review_by < today]
    assert not expired, "accepted advisories past their review date:\n" + "\n".join(expired)


def test_development_lock_has_no_known_vulnerability(service_answers: None, ignores: list[Ignore]):
    report = pip_audit(ROOT / "requirements" / "dev.lock", "--require-hashes", *_ignore_args(ignores))
    _assert_clean(report, ignores, "requirements/dev.lock")


def test_mwaa_requirements_have_no_known_vulnerability(service_answers: None, ignores: list[Ignore], tmp_path: Path):
    from tools import mwaa_requirements

    resolution = mwaa_requirements.resolve(ROOT / "requirements.txt")
    assert resolution.ok, resolution.message
    pins = tmp_path / "mwaa-resolved.txt"
    pins.write_text("".join(f"{k}=={v}\n" for k, v in sorted(resolution.resolved.items())), encoding="utf-8")
    report = pip_audit(pins, "--no-deps", *_ignore_args(ignores))
    _assert_clean(report, ignores, "requirements.txt (as MWAA resolves it)")


@pytest.mark.parametrize(
    ("report", "vulnerable", "unaudited"),
    [
        pytest.param({"dependencies": [{"name": "a", "version": "1", "vulns": []}]}, 0, 0, id="clean"),
        pytest.param(
            {"dependencies": [{"name": "a", "version": "1", "vulns": [{"id": "PYSEC-1", "fix_versions": ["2"]}]}]},
            1,
            0,
            id="vulnerable",
        ),
        pytest.param(
            {"dependencies": [{"name": "a", "skip_reason": "Dependency not found on PyPI and could not be audited"}]},
            0,
            1,
            id="unreachable-is-not-clean",
        ),
    ],
)
def test_a_skipped_package_is_not_a_clean_result(report: dict[str, Any], vulnerable: int, unaudited: int):
    found, skipped = verdict(report)
    assert (len(found), len(skipped)) == (vulnerable, unaudited)
    if vulnerable or unaudited:
        with pytest.raises(AssertionError):
            _assert_clean(report, [], "example")
