"""Which commit of the project is running: read from the bundle at run time, for lineage.

``make dist`` writes ``ml_lifecycle/BUILD_INFO.json`` into ``plugins.zip``::

    {"git_commit": "<40 hex digits or null>", "git_dirty": false}

On MWAA the package is unpacked from that zip, so every task reads the commit the bundle was built from
(and whether the built files differed from it). In a checkout (the devstack, tests) there is no such file
and the commit comes from ``$GIT_COMMIT`` (set by CI/CD systems) or ``git`` itself.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: written beside this module by the bundle build (tools/dist.py); absent in a checkout
BUILD_INFO_FILE = "BUILD_INFO.json"
GIT_COMMIT_ENV = "GIT_COMMIT"
UNKNOWN = "unknown"


class BuildInfoError(ValueError):
    """The bundle's build information is present but unreadable; the message names the file."""


@dataclass(frozen=True)
class BuildInfo:
    """The code that is running.

    :param git_commit: the commit, or ``"unknown"``
    :param git_dirty: the built files differed from that commit (``None`` when not known)
    :param source: where the answer came from: ``bundle``, ``environment``, ``checkout`` or ``unknown``
    """

    git_commit: str
    git_dirty: bool | None
    source: str


def _from_bundle(path: Path) -> BuildInfo | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        commit, dirty = data["git_commit"], data["git_dirty"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BuildInfoError(f"{path}: not the bundle's build information ({exc}); rebuild with `make dist`") from exc
    if commit is not None and not isinstance(commit, str):
        raise BuildInfoError(f"{path}: git_commit must be a string or null, found {commit!r}")
    if not isinstance(dirty, bool):
        raise BuildInfoError(f"{path}: git_dirty must be true or false, found {dirty!r}")
    return BuildInfo(git_commit=commit or UNKNOWN, git_dirty=dirty, source="bundle")


def _from_checkout(repo: Path) -> BuildInfo | None:
    if not (repo / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "dags", "plugins", "include"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return BuildInfo(git_commit=commit or UNKNOWN, git_dirty=bool(status.strip()), source="checkout")


def build_info(package_dir: Path | None = None) -> BuildInfo:
    """The running code's commit: the bundle's ``BUILD_INFO.json``, else ``$GIT_COMMIT``, else ``git``.

    :param package_dir: the ``ml_lifecycle`` folder (this module's by default)
    :raises BuildInfoError: the bundle's file exists but is malformed (a broken build must not register
        models with a made-up lineage)
    """
    package_dir = package_dir or Path(__file__).resolve().parent
    found = _from_bundle(package_dir / BUILD_INFO_FILE)
    if found is not None:
        return found
    if value := os.environ.get(GIT_COMMIT_ENV, "").strip():
        return BuildInfo(git_commit=value, git_dirty=None, source="environment")
    return _from_checkout(package_dir.parents[1]) or BuildInfo(git_commit=UNKNOWN, git_dirty=None, source="unknown")
