"""The CI/CD templates (GitHub Actions and CodeBuild) run the repository's own make targets in the right
order, deploy with short-lived credentials, and gate production behind an approval."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
BUILDSPEC = ROOT / "buildspec.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


@pytest.fixture(scope="module")
def buildspec() -> dict:
    return yaml.safe_load(BUILDSPEC.read_text())


def _makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def _make_calls(text: str) -> list[tuple[str, str]]:
    """(target, rest of the line) for every ``make <target>`` in shell text."""
    return re.findall(r"\bmake\s+([a-z][a-z-]*)([^\n]*)", text)


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_make_targets_used_exist_in_the_makefile(workflow, buildspec):
    calls = _make_calls("\n".join(_runs(job) for job in workflow["jobs"].values()))
    calls += _make_calls(yaml.safe_dump(buildspec["phases"]))
    used = {target for target, _ in calls}
    assert {"test", "dist", "deploy"} <= used
    missing = used - _makefile_targets()
    assert not missing, f"the Makefile lacks target(s) {sorted(missing)} (see docs/how-to/deploy-to-mwaa.md)"


def test_pull_requests_run_the_tests_with_a_pip_cache(workflow):
    assert "pull_request" in workflow["on"]
    test = workflow["jobs"]["test"]
    assert "if" not in test
    assert [t for t, _ in _make_calls(_runs(test))] == ["test"]
    setup = next(s for s in test["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip"
    assert setup["with"]["python-version"] == "3.11"


def test_main_builds_the_bundle_and_keeps_it(workflow):
    assert workflow["on"]["push"]["branches"] == ["main"]
    dist = workflow["jobs"]["dist"]
    assert dist["needs"] == "test"
    assert "refs/heads/main" in dist["if"]
    upload = next(s for s in dist["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "dist/mwaa"
    assert upload["with"]["include-hidden-files"] is True, "dags/.airflowignore is a hidden file"


@pytest.mark.parametrize(
    ("job", "env", "needs"),
    [pytest.param("deploy-dev", "dev", "dist", id="dev"), pytest.param("deploy-prod", "prod", "deploy-dev", id="prod")],
)
def test_deploys_assume_a_role_through_oidc(workflow, job, env, needs):
    spec = workflow["jobs"][job]
    assert spec["needs"] == needs
    assert spec["environment"] == env, "GitHub environments carry the approval rule and the variables"
    assert spec["permissions"]["id-token"] == "write"
    creds = next(s for s in spec["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials"))
    assert "role-to-assume" in creds["with"]
    assert not any("aws-access-key-id" in s.get("with", {}) for s in spec["steps"]), "no stored keys"
    deploys = [rest for target, rest in _make_calls(_runs(spec)) if target == "deploy"]
    assert deploys and f"ENV={env}" in deploys[0]
    download = next(s for s in spec["steps"] if s.get("uses", "").startswith("actions/download-artifact"))
    assert download["with"]["path"] == "dist/mwaa", "deploy ships the artefact that was built and tested"


def test_actions_are_pinned_to_a_release(workflow):
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$", step["uses"]), step["uses"]


def test_default_token_is_read_only(workflow):
    assert workflow["permissions"] == {"contents": "read"}


def test_buildspec_runs_the_same_stages(buildspec):
    assert str(buildspec["version"]) == "0.2"
    assert buildspec["phases"]["install"]["runtime-versions"]["python"] == 3.11
    build = [t for t, _ in _make_calls("\n".join(buildspec["phases"]["build"]["commands"]))]
    assert build == ["test", "dist"]
    post = "\n".join(buildspec["phases"]["post_build"]["commands"])
    assert "CODEBUILD_BUILD_SUCCEEDING" in post, "never deploy a failed build"
    assert [t for t, _ in _make_calls(post)] == ["deploy"]
    assert buildspec["artifacts"]["base-directory"] == "dist/mwaa"
