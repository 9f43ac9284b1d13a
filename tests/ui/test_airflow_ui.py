"""The Airflow UI in a real browser: a person's way from training to a deployed model.

Runs what a person does after ``make ui``, against Airflow's four components on the devstack:

1. the login page with the generated admin password; the home page's import-error indicator (after the page
   has fetched ``/api/v2/importErrors``) and the DAG list, both cross-checked with the REST API;
2. ``deploy_model`` switched on with its toggle (a paused DAG ignores the approved-model asset);
3. ``train_model``'s trigger form with the default logical date (now), a 45-day window, tuning off and
   approval ``manual``; the run waits in its ``approve`` task;
4. the home page's **Required Actions**: the request names the run; its evaluation report link opens the
   report in the devstack's console, the same ``evaluation.json`` as in S3; a comment, **Approve**;
5. the run succeeds, the gate's decision shows on its task page, and the ``approve`` task's extra link opens
   the model package's page, ``Approved`` with the comment;
6. the approved-model asset starts ``deploy_model``; it succeeds, and ``deploy_guarded``'s extra link opens
   the endpoint's page, ``InService``.

The waits are on the page (Playwright's auto-waiting ``expect``) or on the REST API's state, never on time
alone. Screenshots of each step, the task logs and the browser's console are kept in
``test-artifacts/ui/test_walk_from_training_to_deployment_in_the_ui[chromium]/``.

The page is Playwright's (pytest-playwright) on the machine's Chromium. The logical date is left at the
form's default, as a person usually does: Airflow 3.3.1's trigger form can submit its default date although
the field shows a date typed into it (seen with Playwright's ``fill`` as with DevTools input events, in some
runs and not others), so the devstack's history is seeded to end yesterday for this module, and the test
checks the request the form sends (its conf and a logical date of today) rather than a typed date.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from ml_lifecycle.config import load_config
from tools.lifecycle import Driver, LifecycleError, RunFailedError, wait_for
from tools.ui import ADMIN_USER, AirflowUI, UIInfo, dag_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

#: the history seeded for this module ends yesterday (UTC), so a run triggered now has data in its window
SEEDED_DAYS = 60
WINDOW_DAYS = 45
#: seconds a training run may take to reach its approval, and then to end; a deployment
RUN_TIMEOUT = 15 * 60
DEPLOY_TIMEOUT = 15 * 60
COMMENT = "recall holds on the test split; approved from the browser test"


def _login(page: Page, info: UIInfo, ui: AirflowUI, artifacts: Path) -> None:
    page.goto(f"{info.url}/")
    page.wait_for_url(lambda url: "/auth/login" in url)
    page.locator("input[name=username]").wait_for()
    _shot(page, artifacts, "login-page")
    page.locator("input[name=username]").fill(ADMIN_USER)
    page.locator("input[name=password]").fill(ui.admin_password())
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{info.url}/")


def _shot(page: Page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def _run_logs(ui: AirflowUI, token: str, dag_id: str, run_id: str, folder: Path) -> str:
    """Save every task's log of the run under ``folder``; return the task states and the failed tasks' last lines."""
    base = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    tis = ui.api("GET", base, token=token)["task_instances"]
    summary = []
    for ti in tis:
        lines: list[str] = []
        for attempt in range(1, max(ti.get("try_number") or 0, 0) + 1):
            path = f"{base}/{ti['task_id']}/logs/{attempt}"
            try:
                content = ui.api("GET", f"{path}?full_content=true", token=token).get("content", [])
            except Exception as exc:  # a missing log must not hide the run's result
                content = [f"(log unavailable: {exc})"]
            lines += [f"--- try {attempt}"] + [
                item.get("event", json.dumps(item)) if isinstance(item, dict) else str(item) for item in content
            ]
        (folder / f"{dag_id}.{ti['task_id']}.log").write_text("\n".join(lines) + "\n")
        summary.append(f"{ti['task_id']}: {ti['state']}")
        if ti["state"] in ("failed", "upstream_failed", "up_for_retry"):
            summary.append("    " + "\n    ".join(lines[-25:]))
    return "\n".join(summary)


def _seconds(run: dict[str, Any]) -> float:
    """Seconds between a run's start and end."""
    start, end = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
    return (end - start).total_seconds()


def _await_approval_request(driver: Driver, run_id: str, timeout: float) -> None:
    """Wait until ``approve`` waits for input, and the scheduler has seen the worker that asked exit.

    Airflow 3.3.1's scheduler fails a task whose resumed try already runs when it processes the exit of the
    try that parked it (docs/how-to/approve-a-model.md): an answer before that exit loses the task. A person
    never answers that fast; the test waits for the scheduler's record of the exit.
    """

    def waiting() -> bool:
        states = driver.tasks("train_model", run_id)
        run = driver("GET", f"/api/v2/dags/train_model/dagRuns/{run_id}")
        if run["state"] in ("success", "failed") or states.get("register") == "skipped":
            raise LifecycleError(f"train_model {run_id} ended without asking for approval: {states}")
        return states.get("approve") == "awaiting_input"

    wait_for(waiting, timeout, f"train_model {run_id} to ask for approval", interval=2)
    log = driver.runtime.log_file("scheduler")
    marker = f"TaskInstance Finished: dag_id=train_model, task_id=approve, run_id={run_id}, "
    wait_for(
        lambda: any(marker in line and "state=awaiting_input" in line for line in log.read_text().splitlines()),
        120,
        f"the scheduler to see the worker of {run_id}'s approval request exit",
    )


def _open_link(context: BrowserContext, link: Any) -> Page:
    """Click a link that opens a new tab; the tab, loaded."""
    with context.expect_page() as opened:
        link.click()
    tab = opened.value
    tab.wait_for_load_state()
    return tab


def test_walk_from_training_to_deployment_in_the_ui(
    recent_history: Any,
    chromium: str,
    devstack: Any,
    airflow_ui: tuple[AirflowUI, UIInfo],
    page: Page,
    context: BrowserContext,
    console: list[str],
    artifacts: Path,
) -> None:
    # `chromium` first: without a browser the test fails at once, before starting anything
    ui, info = airflow_ui
    t0 = time.perf_counter()
    timings = {
        "devstack_start_s": round(devstack.startup_seconds, 1),
        "airflow_start_s": round(info.started_seconds, 1),
    }
    driver = Driver(ui, poll=2.0)
    token = driver.token

    # --- the REST API's view: every file of dags/ parsed, no import errors
    api_dags, api_errors = ui.wait_parsed(token, timeout=300, url=info.url)
    assert api_errors == [], f"import errors: {json.dumps(api_errors, indent=2)}"
    by_file: dict[str, list[str]] = {}
    for dag in api_dags:
        by_file.setdefault(Path(dag["fileloc"]).name, []).append(dag["dag_id"])
    assert {p.name for p in dag_files()} <= set(by_file), f"files without a DAG: {by_file}"
    assert "train_model" in by_file.get("train_model.py", [])
    dag_ids = sorted(d["dag_id"] for d in api_dags)

    # --- sign in
    _login(page, info, ui, artifacts)

    # --- home: the page fetched the import errors and shows no "Dag Import Error(s)" indicator
    with page.expect_response(lambda r: "/api/v2/importErrors" in r.url) as import_errors:
        page.goto(f"{info.url}/")
    assert import_errors.value.status == 200
    assert import_errors.value.json()["total_entries"] == 0
    expect(page.get_by_text("Health", exact=False).first).to_be_visible()
    _shot(page, artifacts, "home-no-import-errors")
    expect(page.get_by_text("Dag Import Error")).to_have_count(0)

    # --- the DAG list shows exactly the DAGs the API knows
    page.goto(f"{info.url}/dags")
    expect(page.get_by_text(f"{len(dag_ids)} Dags")).to_be_visible()
    listed = page.eval_on_selector_all(
        'a[href^="/dags/"]', "els => [...new Set(els.map(a => a.getAttribute('href').split('/')[2]))].sort()"
    )
    _shot(page, artifacts, "dag-list")
    assert listed == dag_ids

    # --- deploy_model switched on: a paused DAG is not started by the approved-model asset
    page.goto(f"{info.url}/dags/deploy_model")
    toggle = page.get_by_test_id("toggle-pause")
    expect(toggle).to_have_attribute("data-state", "unchecked")
    with page.expect_response(lambda r: r.request.method == "PATCH" and r.url.endswith("/dags/deploy_model")) as unp:
        toggle.click()
    assert unp.value.status == 200 and unp.value.json()["is_paused"] is False, unp.value.text()
    expect(toggle).to_have_attribute("data-state", "checked")
    assert driver("GET", "/api/v2/dags/deploy_model")["is_paused"] is False

    # --- train_model's trigger form: logical date, window, tuning off, manual approval
    page.goto(f"{info.url}/dags/train_model")
    page.locator("button:visible").filter(has_text=re.compile(r"^\s*Trigger\s*$")).first.click()
    submit = page.locator("[data-testid=trigger-dag-submit]")
    submit.wait_for()
    logical_date = page.locator("input[name=logicalDate]")
    # the number field's input is the one its increment button controls
    controls = page.locator("[id='number-input:element_window_days:inc']").get_attribute("aria-controls")
    window = page.locator(f"[id='{controls}']")
    tuning = page.locator("input[name=element_tuning]")
    # a select of the param's enum; its value is in a hidden input
    approval = page.locator("#element_approval")
    expect(logical_date).not_to_have_value("")
    expect(window).not_to_have_value("")
    window.fill(str(WINDOW_DAYS))
    window.press("Tab")
    if tuning.is_checked():
        tuning.locator("xpath=ancestor::label[1]").click()
    approval.get_by_role("combobox").click()
    page.get_by_role("option", name="manual", exact=True).click()
    expect(tuning).not_to_be_checked()
    expect(window).to_have_value(str(WINDOW_DAYS))
    expect(approval.locator("input[name=element_approval]")).to_have_value("manual")
    unpause = page.get_by_text("Unpause train_model on trigger").count() > 0
    _shot(page, artifacts, "trigger-form")
    # exactly the trigger endpoint: the page behind the form polls other POST endpoints under .../dagRuns/
    trigger_path = "/api/v2/dags/train_model/dagRuns"
    with page.expect_request(lambda r: r.method == "POST" and urlsplit(r.url).path == trigger_path) as sent:
        submit.click()
    body = sent.value.post_data_json
    conf = body["conf"]
    assert (conf["window_days"], conf["tuning"], conf["approval"]) == (WINDOW_DAYS, False, "manual"), body
    today = datetime.now(UTC).date().isoformat()
    assert str(body.get("logical_date", "")).startswith(today), f"the form sent {body}"
    # the toast (Chakra) can be in the page twice while it animates in: one visible is the confirmation; the
    # number of runs the form created is checked through the API below
    expect(page.get_by_text("Dag Run Triggered").first).to_be_visible()
    _shot(page, artifacts, "triggered")

    # --- the run the form created carries the form's values
    runs = wait_for(lambda: driver.runs("train_model", "manual"), 60, "the run the form created")
    assert len(runs) == 1, f"the trigger form should have created one manual run, found {runs}"
    run = runs[0]
    run_id = run["dag_run_id"]
    assert run["logical_date"].startswith(today), run["logical_date"]
    assert (run["conf"]["window_days"], run["conf"]["tuning"], run["conf"]["approval"]) == (
        WINDOW_DAYS,
        False,
        "manual",
    )
    if unpause:
        assert driver("GET", "/api/v2/dags/train_model")["is_paused"] is False, (
            "the form's 'Unpause on trigger' left train_model paused"
        )
    # switched on, train_model also starts its latest scheduled interval (locally nothing catches up further);
    # that run would approve itself (the local config) and deploy first: it is marked failed, as `make demo` does
    driver.unpause("train_model")

    # --- the run trains, passes the gate and asks for approval
    try:
        _await_approval_request(driver, run_id, RUN_TIMEOUT)
    except LifecycleError as exc:
        tasks = _run_logs(ui, token, "train_model", run_id, artifacts)
        pytest.fail(f"{exc}\n{tasks}\ntask logs: {artifacts}", pytrace=False)
    finally:
        page.goto(f"{info.url}/dags/train_model/runs/{run_id}")
        _shot(page, artifacts, "run-asks-for-approval")
    registration = driver.xcom("train_model", run_id, "register")
    evaluation_uri = registration["evaluation_uri"]
    timings["to_approval_request_s"] = round(time.perf_counter() - t0, 1)

    # --- Required Actions, from the home page: the request of this run
    page.goto(f"{info.url}/")
    page.get_by_role("button", name=re.compile("Required Actions")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Pending required actions (1)")).to_be_visible()
    dialog.get_by_role("row").filter(has_text="train_model").filter(has_text="approve").click()
    expect(dialog.get_by_role("row").filter(has_text="Dag Run ID")).to_contain_text(run_id)
    expect(dialog.get_by_text(re.compile(r"\[local\] Approve model fraud-detector version \d+\?"))).to_be_visible()
    _shot(page, artifacts, "required-action")

    # its evaluation report opens in the devstack's console: the report the evaluation wrote to S3
    report_link = dialog.get_by_role("listitem").filter(has_text="Evaluation report").get_by_role("link")
    report = _open_link(context, report_link)
    bucket, _, key = evaluation_uri.removeprefix("s3://").partition("/")
    assert urlsplit(report.url).path == f"/console/s3/{bucket}/{key}", report.url
    stored = json.loads(devstack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert json.loads(report.locator("pre").first.inner_text()) == stored
    assert "binary_classification_metrics" in stored
    _shot(report, artifacts, "evaluation-report")
    report.close()

    # a comment, then Approve
    approve = dialog.get_by_test_id("hitl-option-Approve")
    dialog.locator("#element_comment").fill(COMMENT)
    expect(approve).to_be_enabled()
    with page.expect_response(lambda r: r.request.method == "PATCH" and "/hitlDetails" in r.url) as answered:
        approve.click()
    assert answered.value.status == 200, answered.value.text()
    assert answered.value.json()["chosen_options"] == ["Approve"]
    expect(dialog.get_by_text("Pending required actions (0)")).to_be_visible()
    _shot(page, artifacts, "approved")

    # --- the run ends with the approval published
    try:
        driver.wait("train_model", run_id, timeout=RUN_TIMEOUT)
    except (RunFailedError, LifecycleError) as exc:
        tasks = _run_logs(ui, token, "train_model", run_id, artifacts)
        pytest.fail(f"train_model {run_id} did not succeed: {exc}\n{tasks}\ntask logs: {artifacts}", pytrace=False)
    finally:
        page.goto(f"{info.url}/dags/train_model/runs/{run_id}")
        _shot(page, artifacts, "run-ended")
    _run_logs(ui, token, "train_model", run_id, artifacts)
    states = driver.tasks("train_model", run_id)
    assert (states["approve"], states["publish_approval"]) == ("success", "success"), states
    decision = driver.xcom("train_model", run_id, "approve")
    assert decision["decision"] == "approved" and decision["responded_by"]["id"] == ADMIN_USER, decision
    assert decision["comment"] == COMMENT
    timings["train_run_s"] = round(_seconds(driver("GET", f"/api/v2/dags/train_model/dagRuns/{run_id}")), 1)

    # the gate's decision on its task page
    page.goto(f"{info.url}/dags/train_model/runs/{run_id}/tasks/gate")
    expect(page.get_by_text("Quality gate: PASSED").first).to_be_visible()
    _shot(page, artifacts, "gate-passed")

    # the approve task's extra link: the model package, Approved with who and why
    page.goto(f"{info.url}/dags/train_model/runs/{run_id}/tasks/approve/details")
    package_page = _open_link(context, page.get_by_role("link", name="SageMaker Model Package"))
    group, version = registration["model_package_group"], registration["version"]
    assert urlsplit(package_page.url).path == f"/console/model-packages/{group}/{version}", package_page.url
    expect(package_page.get_by_role("heading", name=f"Model package {group} version {version}")).to_be_visible()
    # the first rows are the summary's (the full description repeats them further down)
    expect(package_page.get_by_role("row").filter(has_text="ModelApprovalStatus").first).to_contain_text("Approved")
    expect(package_page.get_by_role("row").filter(has_text="ApprovalDescription").first).to_contain_text(
        re.compile(rf"Approved by {ADMIN_USER} \(id {ADMIN_USER}\) in Airflow at \S+: {re.escape(COMMENT)}")
    )
    _shot(package_page, artifacts, "model-package")
    package_page.close()

    # --- the approved-model asset starts deploy_model; the endpoint is in service
    # the approval reaches deploy_model twice (the asset event and SageMaker's event on the approval queue): one
    # run, or two when they arrive apart; the first created deploys, a second finds the model deployed
    driver.new_run("deploy_model", known=(), timeout=300)
    deploy_id = driver.runs("deploy_model", "asset_triggered")[-1]["dag_run_id"]  # newest first: the first created
    try:
        driver.wait("deploy_model", deploy_id, timeout=DEPLOY_TIMEOUT)
    except (RunFailedError, LifecycleError) as exc:
        tasks = _run_logs(ui, token, "deploy_model", deploy_id, artifacts)
        pytest.fail(f"deploy_model {deploy_id} did not succeed: {exc}\n{tasks}\ntask logs: {artifacts}", pytrace=False)
    finally:
        page.goto(f"{info.url}/dags/deploy_model/runs/{deploy_id}")
        _shot(page, artifacts, "deploy-ended")
    resolved = driver.xcom("deploy_model", deploy_id, "resolve")
    assert resolved["model_package_arn"] == registration["model_package_arn"], resolved
    deploy_run = driver("GET", f"/api/v2/dags/deploy_model/dagRuns/{deploy_id}")
    timings["deploy_run_s"] = round(_seconds(deploy_run), 1)

    page.goto(f"{info.url}/dags/deploy_model/runs/{deploy_id}/tasks/deploy_guarded/details")
    endpoint_page = _open_link(context, page.get_by_role("link", name="SageMaker Endpoint"))
    endpoint = load_config("local").deployment.endpoint_name
    assert urlsplit(endpoint_page.url).path == f"/console/endpoints/{endpoint}", endpoint_page.url
    expect(endpoint_page.get_by_role("heading", name=f"Endpoint {endpoint}")).to_be_visible()
    expect(endpoint_page.get_by_role("row").filter(has_text="EndpointStatus").first).to_contain_text("InService")
    _shot(endpoint_page, artifacts, "endpoint")
    endpoint_page.close()

    timings["test_s"] = round(time.perf_counter() - t0, 1)
    (artifacts / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"train_model {run_id} approved in the UI, deploy_model {deploy_id}; timings {timings}")


@pytest.fixture(scope="module")
def recent_history(devstack: Any) -> Any:
    """The devstack's transactions re-seeded to end yesterday (UTC), as a live Snowflake table would."""
    start = datetime.now(UTC).date() - timedelta(days=SEEDED_DAYS)
    return devstack.seed(days=SEEDED_DAYS, rows_per_day=200, seed=42, start=start)
