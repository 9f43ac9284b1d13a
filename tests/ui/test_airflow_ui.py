"""The Airflow UI in a real browser: log in, see every DAG without import errors, trigger train_model, watch it.

Runs what a person does after ``make ui``, against Airflow's four components on the devstack: the login page
with the generated admin password; the home page's import-error indicator (after the page has fetched
``/api/v2/importErrors``) and the DAG list, both cross-checked with the REST API; ``train_model``'s
trigger form with a logical date inside the seeded history, a 45-day window and tuning off; then the run,
polled through the REST API until it ends (at most 15 minutes), and the gate's decision on its task page.
Screenshots of each step are kept in ``test-artifacts/ui/test_trigger_train_model_from_the_ui/``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.ui.cdp import Browser
from tools.ui import ADMIN_USER, AirflowUI, UIInfo, dag_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

# Inside the fixture's seeded history (2026-01-01 .. 2026-03-01): the window is [2026-01-15, 2026-03-01).
LOGICAL_DATE = "2026-03-01T00:00"
WINDOW_DAYS = 45
RUN_TIMEOUT = 15 * 60


def _login(browser: Browser, info: UIInfo, ui: AirflowUI) -> None:
    browser.goto(f"{info.url}/")
    browser.wait_for("location.pathname.startsWith('/auth/login')", "the login page")
    browser.wait_for("!!document.querySelector('input[name=username]')", "the login form")
    browser.screenshot("login-page")
    browser.fill("document.querySelector('input[name=username]')", ADMIN_USER, "the username field")
    browser.fill("document.querySelector('input[name=password]')", ui.admin_password(), "the password field")
    browser.click_text("button", "Sign in", exact=True)
    browser.wait_for("location.pathname === '/'", "the home page after signing in")


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


def test_trigger_train_model_from_the_ui(
    chromium: str, devstack: Any, airflow_ui: tuple[AirflowUI, UIInfo], browser: Browser, artifacts: Path
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
    _login(browser, info, ui)

    # --- home: the page fetched the import errors and shows no "Dag Import Error(s)" indicator
    mark = len(browser.responses)
    browser.goto(f"{info.url}/")
    _, status = browser.wait_response("/api/v2/importErrors", "the home page's import-error query", since=mark)
    assert status == 200
    browser.wait_for("document.body.innerText.includes('Health')", "the home page's health panel")
    time.sleep(1.0)  # let the answer render
    browser.screenshot("home-no-import-errors")
    assert "Dag Import Error" not in browser.text()

    # --- the DAG list shows exactly the DAGs the API knows
    browser.goto(f"{info.url}/dags")
    browser.wait_for(
        f"document.body.innerText.includes('{len(dag_ids)} Dags')", f"the DAG list to count {len(dag_ids)} DAGs"
    )
    listed = browser.eval(
        "[...new Set([...document.querySelectorAll('a[href^=\"/dags/\"]')]"
        ".map(a => a.getAttribute('href').split('/')[2]))].sort()"
    )
    browser.screenshot("dag-list")
    assert listed == dag_ids

    # --- train_model's trigger form: logical date, window, tuning off
    browser.goto(f"{info.url}/dags/train_model")
    browser.click_text("button", "Trigger", exact=True)
    browser.wait_for("!!document.querySelector('[data-testid=trigger-dag-submit]')", "the trigger form")
    browser.wait_for("!!document.querySelector('input[name=logicalDate]')", "the logical date field")
    # a datetime-local field takes its value whole; React sees it through the native setter and an input event
    browser.eval(
        f"""(() => {{
            const el = document.querySelector('input[name=logicalDate]');
            Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, '{LOGICAL_DATE}');
            el.dispatchEvent(new Event('input', {{bubbles: true}}));
            el.dispatchEvent(new Event('change', {{bubbles: true}}));
        }})()"""
    )
    window = (
        "document.getElementById(document.getElementById('number-input:element_window_days:inc')"
        ".getAttribute('aria-controls'))"
    )
    browser.fill(window, str(WINDOW_DAYS), "the window_days field")
    browser.key("Tab")
    tuning_on = browser.eval("document.querySelector('input[name=element_tuning]').checked")
    if tuning_on:
        browser.click("document.querySelector('input[name=element_tuning]').closest('label')", "the tuning switch")
    assert browser.eval("document.querySelector('input[name=element_tuning]').checked") is False
    assert browser.eval(f"{window}.value") == str(WINDOW_DAYS)
    unpause = browser.eval("document.body.innerText.includes('Unpause train_model on trigger')")
    browser.screenshot("trigger-form")
    browser.click("document.querySelector('[data-testid=trigger-dag-submit]')", "the Trigger button")
    browser.wait_for("document.body.innerText.includes('Dag Run Triggered')", "the 'Dag Run Triggered' notice")
    browser.screenshot("triggered")

    # --- the run the form created carries the form's values
    runs: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not runs and time.monotonic() < deadline:
        runs = _manual_runs(ui, token)
        time.sleep(1)
    assert len(runs) == 1, f"the trigger form should have created one manual run, found {runs}"
    run = runs[0]
    run_id = run["dag_run_id"]
    assert run["logical_date"].startswith(LOGICAL_DATE), run["logical_date"]
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
            browser.goto(run_page)
            time.sleep(2)
            browser.screenshot(f"run-{state}")
            next_shot = time.monotonic() + 60
        time.sleep(5)
    browser.goto(run_page)
    time.sleep(3)
    browser.screenshot(f"run-{state}")
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
    browser.goto(f"{run_page}/tasks/gate")
    browser.wait_for(
        f"document.body.innerText.includes('Quality gate: {gate['decision'].upper()}')",
        "the gate's decision in its log on the task page",
        timeout=60,
    )
    browser.screenshot(f"gate-{gate['decision']}")
    timings |= {"run_s": round(_seconds(run), 1), "test_s": round(time.perf_counter() - t0, 1)}
    (artifacts / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"train_model {run_id}: gate {gate['decision']}; timings {timings}")


def _seconds(run: dict[str, Any]) -> float:
    """Seconds between a run's start and end."""
    from datetime import datetime

    start, end = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
    return (end - start).total_seconds()
