"""Static security analysis: bandit over the shipped and tooling code; every finding is justified.

bandit runs over ``plugins/``, ``dags/``, ``include/code/``, ``devstack/`` and ``tools/`` at every severity
and confidence. Each finding must be covered by a line of ``security/bandit-justifications.txt``::

    <test id> <path>::<enclosing function or class> [xN] | <why it is acceptable>

A line covers up to N findings (default 1) of that test in that function (``<module>`` for top-level
code), so line moves do not matter but a new finding in the same place does. The test fails on any
finding without a line, on a line without a reason, and on a line that no longer matches anything.

Run just this check: ``.venv/bin/pytest tests/security/test_bandit.py``.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("plugins", "dags", "include/code", "devstack", "tools")
JUSTIFICATIONS = ROOT / "security" / "bandit-justifications.txt"
_LINE = re.compile(
    r"^(?P<test>B\d{3})\s+(?P<path>[^\s:]+)::(?P<scope>\S+)(?:\s+x(?P<count>\d+))?\s*\|\s*(?P<reason>.*)$"
)


@dataclass(frozen=True)
class Finding:
    test: str
    path: str
    scope: str
    line: int
    text: str
    severity: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.test, self.path, self.scope)

    def __str__(self) -> str:
        return f"{self.test} {self.path}::{self.scope} (line {self.line}, {self.severity}): {self.text}"


@dataclass(frozen=True)
class Justification:
    test: str
    path: str
    scope: str
    count: int
    reason: str
    lineno: int

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.test, self.path, self.scope)


def enclosing_scope(source: str, line: int) -> str:
    """Dotted name of the innermost function or class around ``line`` (``<module>`` when none)."""
    best: list[str] = []

    def visit(node: ast.AST, trail: list[str]) -> None:
        nonlocal best
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                end = getattr(child, "end_lineno", child.lineno)
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                if first <= line <= end:
                    here = [*trail, child.name]
                    if len(here) > len(best):
                        best = here
                    visit(child, here)
                    continue
            visit(child, trail)

    visit(ast.parse(source), [])
    return ".".join(best) or "<module>"


def run_bandit(root: Path, targets: tuple[str, ...]) -> list[Finding]:
    """bandit's findings under ``root`` (every severity and confidence), with their enclosing scopes."""
    existing = [t for t in targets if (root / t).exists()]
    proc = subprocess.run(
        [sys.executable, "-m", "bandit", "-r", *existing, "-f", "json", "-q", "-x", "*/__pycache__/*"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise RuntimeError(f"bandit did not run (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    if report.get("errors"):
        raise RuntimeError(f"bandit could not scan some files: {report['errors']}")
    sources: dict[str, str] = {}
    findings = []
    for item in report["results"]:
        path = Path(item["filename"]).as_posix().removeprefix("./")
        if path not in sources:
            sources[path] = (root / path).read_text(encoding="utf-8")
        findings.append(
            Finding(
                item["test_id"],
                path,
                enclosing_scope(sources[path], item["line_number"]),
                item["line_number"],
                item["issue_text"],
                item["issue_severity"],
            )
        )
    return findings


def read_justifications(path: Path) -> tuple[list[Justification], list[str]]:
    """The justification lines, and the problems with the file (malformed lines, missing reasons, repeats)."""
    entries: list[Justification] = []
    problems: list[str] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            problems.append(f"{path.name}:{lineno}: not '<test> <path>::<scope> [xN] | <reason>': {line}")
            continue
        if len(match["reason"].strip()) < 15:
            problems.append(f"{path.name}:{lineno}: the reason is missing or too short to review")
        entries.append(
            Justification(
                match["test"],
                match["path"],
                match["scope"],
                int(match["count"] or 1),
                match["reason"].strip(),
                lineno,
            )
        )
    seen = Counter(e.key for e in entries)
    problems += [f"{path.name}: {' '.join(k)} is listed {n} times; merge with xN" for k, n in seen.items() if n > 1]
    return entries, problems


def compare(findings: list[Finding], entries: list[Justification]) -> tuple[list[str], list[str]]:
    """(findings nobody justified, justification lines that match fewer findings than they claim)."""
    allowed = {e.key: e.count for e in entries}
    found = Counter(f.key for f in findings)
    unjustified = []
    for key, count in found.items():
        extra = count - allowed.get(key, 0)
        if extra > 0:
            matching = [str(f) for f in findings if f.key == key]
            unjustified.append(f"{extra} more than justified of:\n    " + "\n    ".join(matching))
    stale = [
        f"line {e.lineno}: {e.test} {e.path}::{e.scope} x{e.count} matches {found.get(e.key, 0)} finding(s)"
        for e in entries
        if found.get(e.key, 0) < e.count
    ]
    return unjustified, stale


@pytest.fixture(scope="module")
def findings() -> list[Finding]:
    return run_bandit(ROOT, TARGETS)


@pytest.fixture(scope="module")
def justifications() -> list[Justification]:
    entries, problems = read_justifications(JUSTIFICATIONS)
    assert not problems, "\n".join(problems)
    return entries


def test_every_bandit_finding_is_justified(findings, justifications):
    unjustified, _ = compare(findings, justifications)
    assert not unjustified, (
        "bandit findings without a justification in security/bandit-justifications.txt (fix the code, or add "
        "a line '<test> <path>::<scope> | <reason>'):\n" + "\n".join(unjustified)
    )


def test_no_justification_is_stale(findings, justifications):
    _, stale = compare(findings, justifications)
    assert not stale, "justifications that no longer match bandit's findings (remove or lower xN):\n" + "\n".join(stale)


def test_a_new_finding_fails_the_check(tmp_path: Path, justifications):
    """The check can fail: a new unsafe call in a justified file's scope, and one in a new file."""
    package = tmp_path / "tools"
    package.mkdir()
    (package / "runner.py").write_text(
        "import subprocess\n\n\ndef run(command):\n    return subprocess.call(command, shell=True)\n",
        encoding="utf-8",
    )
    new = run_bandit(tmp_path, ("tools",))
    unjustified, _ = compare(new, justifications)
    assert any("B602 tools/runner.py::run" in u for u in unjustified), unjustified
    assert any("B404 tools/runner.py::<module>" in u for u in unjustified), unjustified


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        pytest.param("B603 tools/dist.py::git_commit x2 |", "reason", id="no-reason"),
        pytest.param("B603 tools/dist.py git_commit | runs git with fixed args", "not '<test>", id="no-scope"),
    ],
)
def test_malformed_justifications_are_reported(tmp_path: Path, line: str, problem: str):
    path = tmp_path / "j.txt"
    path.write_text(line + "\n", encoding="utf-8")
    _, problems = read_justifications(path)
    assert problems and problem in problems[0]
