"""The Airflow UI in a real browser: log in, see every DAG without import errors, trigger train_model, watch it.

Runs what a person does after ``make ui``, against Airflow's four components on the devstack: the login page
with the generated admin password; the home page's import-error indicator (after the page has fetched
``/api/v2/importErrors``) and the DAG list, both cross-checked with the REST API; ``train_model``'s
trigger form with the default logical date (now), a 45-day window and tuning off; then the run, polled
through the REST API until it ends (at most 15 minutes), and the gate's decision on its task page.
Screenshots of each step are kept in ``test-artifacts/ui/test_trigger_train_model_from_the_ui/``.

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
from playwright.sync_api import Page, expect

from tools.ui import ADMIN_USER, AirflowUI, UIInfo, dag_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

#: the history seeded for this module ends yesterday (UTC), so a run triggered now has data in its window
SEEDED_DAYS = 60
WINDOW_DAYS = 45
RUN_TIMEOUT = 15 * 60


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


def _run_logs(ui: AirflowUI, token: str, run_id: str, folder: Path) -> str:
    """Save every task's log of the run under ``folder``; return the failed tasks' last lines."""
    tis = ui.api("GET", f"/api/v2/dags/train_model/dagRuns/{run_id}/taskInstances", token=token)["task_instances"]
    summary = []
    for ti in tis:
        lines: list[str] = []
        for attempt in range(1, max(ti.get("try_number") or 0, 0) + 1):
            path = f"/api/v2/dags/train_model/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{attempt}"
            try:
                content = ui.api("GET", f"{path}?full_content=true", token=token).get("content", [])
            except Exception as exc:  # a missing log must not hide the run's result
                content = [f"(log unavailable: {exc})"]
            lines += [f"--- try {attempt}"] + [
                item.get("event", json.dumps(item)) if isinstance(item, dict) else str(item) for item in content
            ]
        (folder / f"task-{ti['task_id']}.log").write_text("\n".join(lines) + "\n")
        summary.append(f"{ti['task_id']}: {ti['state']}")
        if ti["state"] in ("failed", "upstream_failed", "up_for_retry"):
            summary.append("    " + "\n    ".join(lines[-25:]))
    return "\n".join(summary)


def _manual_runs(ui: AirflowUI, token: str) -> list[dict[str, Any]]:
    runs = ui.api("GET", "/api/v2/dags/train_model/dagRuns?limit=100", token=token)["dag_runs"]
    return [r for r in runs if r["run_type"] == "manual"]


@pytest.fixture(scope="module")
def recent_history(devstack: Any) -> Any:
    """The devstack's transactions re-seeded to end yesterday (UTC), as a live Snowflake table would."""
    start = datetime.now(UTC).date() - timedelta(days=SEEDED_DAYS)
    return devstack.seed(days=SEEDED_DAYS, rows_per_day=200, seed=42, start=start)


def test_trigger_train_model_from_the_ui(
    recent_history: Any,
    chromium: str,
    devstack: Any,
    airflow_ui: tuple[AirflowUI, UIInfo],
    page: Page,
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
    token = ui.token(info.url)

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

    # --- train_model's trigger form: logical date, window, tuning off
    page.goto(f"{info.url}/dags/train_model")
    page.locator("button:visible").filter(has_text=re.compile(r"^\s*Trigger\s*$")).first.click()
    submit = page.locator("[data-testid=trigger-dag-submit]")
    submit.wait_for()
    logical_date = page.locator("input[name=logicalDate]")
    # the number field's input is the one its increment button controls
    controls = page.locator("[id='number-input:element_window_days:inc']").get_attribute("aria-controls")
    window = page.locator(f"[id='{controls}']")
    tuning = page.locator("input[name=element_tuning]")
    expect(logical_date).not_to_have_value("")
    expect(window).not_to_have_value("")
    window.fill(str(WINDOW_DAYS))
    window.press("Tab")
    if tuning.is_checked():
        tuning.locator("xpath=ancestor::label[1]").click()
    expect(tuning).not_to_be_checked()
    expect(window).to_have_value(str(WINDOW_DAYS))
    unpause = page.get_by_text("Unpause train_model on trigger").count() > 0
    _shot(page, artifacts, "trigger-form")
    # exactly the trigger endpoint: the page behind the form polls other POST endpoints under .../dagRuns/
    trigger_path = "/api/v2/dags/train_model/dagRuns"
    with page.expect_request(lambda r: r.method == "POST" and urlsplit(r.url).path == trigger_path) as sent:
        submit.click()
    body = sent.value.post_data_json
    assert body["conf"]["window_days"] == WINDOW_DAYS and body["conf"]["tuning"] is False, f"the form sent {body}"
    today = datetime.now(UTC).date().isoformat()
    assert str(body.get("logical_date", "")).startswith(today), f"the form sent {body}"
    # the toast (Chakra) can be in the page twice while it animates in: one visible is the confirmation; the
    # number of runs the form created is checked through the API below
    expect(page.get_by_text("Dag Run Triggered").first).to_be_visible()
    _shot(page, artifacts, "triggered")

    # --- the run the form created carries the form's values
    runs: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not runs and time.monotonic() < deadline:
        runs = _manual_runs(ui, token)
        time.sleep(1)
    assert len(runs) == 1, f"the trigger form should have created one manual run, found {runs}"
    run = runs[0]
    run_id = run["dag_run_id"]
    assert run["logical_date"].startswith(today), run["logical_date"]
    assert run["conf"]["window_days"] == WINDOW_DAYS
    assert run["conf"]["tuning"] is False
    if unpause:
        dag = ui.api("GET", "/api/v2/dags/train_model", token=token)
        assert dag["is_paused"] is False, "the form's 'Unpause on trigger' left train_model paused"

    # --- wait for the run to end; screenshot its grid every minute
    run_page = f"{info.url}/dags/train_model/runs/{run_id}"
    deadline = time.monotonic() + RUN_TIMEOUT
    next_shot = 0.0
    state = run["state"]
    while time.monotonic() < deadline:
        run = ui.api("GET", f"/api/v2/dags/train_model/dagRuns/{run_id}", token=token)
        state = run["state"]
        if state in ("success", "failed"):
            break
        if time.monotonic() >= next_shot:
            page.goto(run_page)
            _shot(page, artifacts, f"run-{state}")
            next_shot = time.monotonic() + 60
        time.sleep(5)
    page.goto(run_page)
    _shot(page, artifacts, f"run-{state}")
    tasks = _run_logs(ui, token, run_id, artifacts)
    assert state == "success", (
        f"train_model run {run_id} ended {state!r} after {time.perf_counter() - t0:.0f}s "
        f"(limit {RUN_TIMEOUT}s); task states and failed tasks' last log lines:\n{tasks}\n"
        f"task logs: {artifacts}, Airflow logs: test-artifacts/ui/airflow-logs"
    )

    # --- the gate's decision: in its XCom, and on its task page in the UI
    gate = ui.api(
        "GET", f"/api/v2/dags/train_model/dagRuns/{run_id}/taskInstances/gate/xcomEntries/return_value", token=token
    )["value"]
    gate = json.loads(gate) if isinstance(gate, str) else gate
    assert gate["decision"] in ("passed", "rejected")
    page.goto(f"{run_page}/tasks/gate")
    expect(page.get_by_text(f"Quality gate: {gate['decision'].upper()}").first).to_be_visible(timeout=60_000)
    _shot(page, artifacts, f"gate-{gate['decision']}")
    timings |= {"run_s": round(_seconds(run), 1), "test_s": round(time.perf_counter() - t0, 1)}
    (artifacts / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"train_model {run_id}: gate {gate['decision']}; timings {timings}")


def _seconds(run: dict[str, Any]) -> float:
    """Seconds between a run's start and end."""
    from datetime import datetime

    start, end = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
    return (end - start).total_seconds()
