"""Which commit is running: the bundle's BUILD_INFO.json first, then $GIT_COMMIT, then git in a checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ml_lifecycle.build_info import BUILD_INFO_FILE, BuildInfoError, build_info
from tools import dist

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _package(tmp_path: Path, info: str | None) -> Path:
    package = tmp_path / "plugins" / "ml_lifecycle"
    package.mkdir(parents=True)
    if info is not None:
        (package / BUILD_INFO_FILE).write_text(info)
    return package


def test_the_bundle_file_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_COMMIT", "from-the-environment")
    package = _package(tmp_path, json.dumps({"git_commit": COMMIT, "git_dirty": True}))
    info = build_info(package)
    assert (info.git_commit, info.git_dirty, info.source) == (COMMIT, True, "bundle")


def test_without_a_bundle_file_the_environment_names_the_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_COMMIT", "feedface")
    info = build_info(_package(tmp_path, None))
    assert (info.git_commit, info.git_dirty, info.source) == ("feedface", None, "environment")


def test_nothing_known_says_unknown(tmp_path, monkeypatch):
    monkeypatch.delenv("GIT_COMMIT", raising=False)
    info = build_info(_package(tmp_path, None))
    assert (info.git_commit, info.source) == ("unknown", "unknown")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("{not json", "not the bundle's build information", id="not-json"),
        pytest.param('{"git_commit": "abc"}', "not the bundle's build information", id="missing-key"),
        pytest.param('{"git_commit": 5, "git_dirty": false}', "git_commit must be a string", id="commit-type"),
        pytest.param('{"git_commit": "abc", "git_dirty": "no"}', "git_dirty must be true or false", id="dirty-type"),
    ],
)
def test_a_malformed_bundle_file_is_an_error_naming_it(tmp_path, text, message):
    package = _package(tmp_path, text)
    with pytest.raises(BuildInfoError, match=message) as caught:
        build_info(package)
    assert str(package / BUILD_INFO_FILE) in str(caught.value)


def test_the_unpacked_bundle_reports_the_commit_it_was_built_from(tmp_path):
    """As on MWAA: the package from plugins.zip, outside any checkout, with no $GIT_COMMIT."""
    out = tmp_path / "dist"
    dist.build(out)
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(out / "plugins.zip").extractall(plugins)
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_COMMIT", "PYTHONPATH")}
    env["PYTHONPATH"] = str(plugins)
    code = "from ml_lifecycle.operators.registry import git_commit, git_dirty; print(git_commit(), git_dirty())"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    commit, dirty = proc.stdout.split()[-2:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert commit == manifest["git_commit"] and len(commit) == 40
    assert dirty == str(manifest["git_dirty"]).lower()
