"""Run the training pipeline once on the devstack and print what it produced.

Usage (with the devstack up: ``make devstack-up``; its state directory is ``$DEVSTACK_STATE_DIR``, else
``.devstack``)::

    .venv/bin/python scripts/demo.py [--date YYYY-MM-DD] [--window-days N] [--tuning] [--num-round N]

It points Airflow at this repository (``AIRFLOW_HOME=<state dir>/airflow``, SQLite, ``dags/`` and
``plugins/``, no examples), migrates the metadata database once per Airflow version, creates the environment's
S3 bucket and SNS topic in the devstack if they are missing, runs ``airflow dags test train_model <date>`` and
prints a summary read from Airflow's metadata database: the model package (ARN, version, approval), its
metrics, the gate decision, where the reports and plots are, and how long each task took.

It imports neither the DAG package nor the devstack, nor Airflow itself: the devstack's endpoints come from
``<state dir>/env``, the bucket and topic from ``include/config/<ML_LIFECYCLE_ENV>.yaml``, and the summary is
read from the SQLite database with the standard library (Airflow starts once, in ``airflow dags test``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "train_model"

#: ``python -m airflow`` with garbage collection suited to one short CLI process. ``airflow dags test`` holds
#: about half a million long-lived objects (Airflow, the providers, Great Expectations, the execution API's
#: models); each full collection walks all of them again, and the interpreter runs one more on exit. On a
#: two-core machine that came to 15-25 % of the run. Survivors of a full collection are frozen (left out of
#: later collections, still freed by reference counting when released), and everything before exit, when the
#: operating system frees the memory anyway. What Airflow runs and how is unchanged.
AIRFLOW_CLI = """
import gc, runpy, sys

def _freeze_survivors(phase, info):
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()

gc.callbacks.append(_freeze_survivors)
sys.argv[0] = "airflow"
try:
    runpy.run_module("airflow", run_name="__main__", alter_sys=True)
finally:
    gc.freeze()
"""


def read_env_file(path: Path) -> dict[str, str]:
    """``export KEY=value`` lines (shell-quoted) of the devstack's env file."""
    if not path.is_file():
        raise SystemExit(f"{path} not found: start the devstack first (make devstack-up)")
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line.removeprefix("export "))
        if words and "=" in words[0]:
            key, value = words[0].split("=", 1)
            env[key] = value
    return env


def airflow_env(devstack_env: dict[str, str], airflow_home: Path) -> dict[str, str]:
    env = {**os.environ, **devstack_env}
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            # this script migrates the database itself (once per Airflow version, see main); the CLI's own
            # check would load Alembic and compare revisions on every run
            "AIRFLOW__DATABASE__CHECK_MIGRATIONS": "False",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
    )
    env.setdefault("ML_LIFECYCLE_ENV", "local")
    return env


def ensure_bucket_and_topic(env: dict[str, str]) -> None:
    """Create the config's bucket and SNS topic in the devstack (real accounts provision them with IaC)."""
    import boto3
    import yaml

    config_file = ROOT / "include" / "config" / f"{env['ML_LIFECYCLE_ENV']}.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    moto = env["DEVSTACK_MOTO_URL"]
    s3 = session.client("s3", endpoint_url=env.get("AWS_ENDPOINT_URL_S3", moto))
    bucket = config["storage"]["bucket"]
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    topic = (config.get("notifications") or {}).get("sns_topic_arn")
    if topic:
        session.client("sns", endpoint_url=env.get("AWS_ENDPOINT_URL_SNS", moto)).create_topic(
            Name=topic.rsplit(":", 1)[1]
        )


def run(cmd: list[str], env: dict[str, str], log_file: Path | None = None) -> int:
    if log_file is None:
        return subprocess.run(cmd, env=env, cwd=ROOT, check=False).returncode
    with log_file.open("w", encoding="utf-8") as out:
        return subprocess.run(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False).returncode


def _xcom_value(raw: Any) -> Any:
    """An XCom value as stored in the metadata database (JSON text) -> Python."""
    if raw is None or not isinstance(raw, str | bytes):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def summary(database: Path) -> dict[str, Any]:
    """The latest train_model run, its task durations and the XComs that matter, from Airflow's SQLite DB.

    Read with :mod:`sqlite3` (read-only) rather than through Airflow's models, so the summary costs no second
    Airflow start-up. Our tasks' return values are small JSON documents, stored as JSON text.

    :param database: the metadata database file.
    """
    if not database.is_file():
        raise SystemExit(f"no Airflow metadata database at {database}")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        dag_run = conn.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
        ).fetchone()
        if dag_run is None:
            raise SystemExit("no train_model run found in the metadata database")
        tis = conn.execute(
            "SELECT task_id, state, try_number, duration, start_date FROM task_instance "
            "WHERE dag_id = ? AND run_id = ? ORDER BY start_date IS NULL, start_date, task_id",
            (DAG_ID, dag_run["run_id"]),
        ).fetchall()
        xcoms = conn.execute(
            "SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? AND key = 'return_value'",
            (DAG_ID, dag_run["run_id"]),
        ).fetchall()
    return {
        "run_id": dag_run["run_id"],
        "state": str(dag_run["state"]),
        "tasks": [
            {
                "task_id": ti["task_id"],
                "state": str(ti["state"]),
                "try_number": ti["try_number"],
                "seconds": round(ti["duration"], 1) if ti["duration"] is not None else None,
                "start": ti["start_date"],
            }
            for ti in tis
        ],
        "xcom": {x["task_id"]: _xcom_value(x["value"]) for x in xcoms},
    }


def print_summary(result: dict[str, Any], wall: float, log_file: Path) -> None:
    x = result["xcom"]
    plan, gate, register = x.get("plan") or {}, x.get("gate") or {}, x.get("register") or {}
    model = x.get("train") or x.get("tune") or {}
    evaluate = x.get("evaluate") or {}
    print()
    print(f"train_model run {result['run_id']}: {result['state'].upper()} in {wall:.0f} s (log: {log_file})")
    if window := plan.get("window"):
        print(f"  window          {window['start'][:10]} .. {window['end'][:10]} ({window['days']} days)")
    if extract := x.get("extract"):
        print(f"  dataset         {extract.get('dataset_uri')} ({extract.get('row_count')} rows)")
    if model:
        print(f"  model           {model.get('model_uri')}")
        print(f"  training job    {model.get('best_training_job') or model.get('job_name')}")
    if gate:
        print(f"  gate            {gate.get('decision', '?').upper()}: {gate.get('reason')}")
        print(f"                  baseline: {gate.get('baseline_model_package_arn') or 'none (thresholds only)'}")
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted((gate.get("metrics") or {}).items()))
        print(f"  metrics         {metrics}")
    if register:
        print(f"  model package   {register.get('model_package_arn')}")
        print(f"                  version {register.get('version')}, {register.get('approval_status')}")
    elif gate and not gate.get("passed"):
        print("  model package   not registered (the quality gate rejected the model)")
    if evaluate.get("evaluation_uri"):
        folder = evaluate["evaluation_uri"].rsplit("/", 1)[0]
        files = "evaluation.json, gate.json, roc_curve.png, pr_curve.png, confusion_matrix.png"
        print(f"  reports         {folder}/ ({files})")
    if validate := x.get("validate"):
        print(f"  data validation {validate.get('result_uri')}")
    if approved := x.get("publish_approval"):
        print(f"  approved model  pointer updated for {approved.get('model_package_arn')}")
    print("  tasks:")
    for task in result["tasks"]:
        seconds = f"{task['seconds']:7.1f} s" if task["seconds"] is not None else "        -"
        print(f"    {task['task_id']:<18} {task['state']:<16} {seconds}  (try {task['try_number']})")


# ------------------------------------------------------------------------------------------ the whole loop

#: the DAGs the whole loop runs: unpaused for it, paused again when it ends
LOOP_DAGS = ("deploy_model", "monitor_model", "train_model")
#: seconds each stage of the whole-loop demo may take before it is reported as stuck
STAGE_TIMEOUT = {"train_model": 1200, "deploy_model": 900, "monitor_model": 600, "start": 300, "asset": 180}
#: the report files a person opens, by the S3 folder they come from
EVALUATION_FILES = ("evaluation.json", "gate.json", "roc_curve.png", "pr_curve.png", "confusion_matrix.png")
VALIDATION_FILES = ("validation_report.html", "validation_result.json")
DRIFT_FILES = ("constraint_violations.json", "statistics.json")
#: the evidently monitoring job's files a person opens (``ml_lifecycle.builders.monitoring_job.REPORT_FILES``)
MONITORING_FILES = ("report.html", "summary.json", "model_quality.html", "drift.png", "model_quality.png")


class Progress:
    """One line per event on standard output, each with the seconds since the demo started.

    :param out: where the lines go.
    :param clock: monotonic seconds.
    """

    def __init__(self, out: Any = None, clock: Any = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.started = clock()

    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return self.clock() - self.started

    def line(self, text: str) -> str:
        """Print ``[  12.3s] text``; the line printed."""
        line = f"[{self.elapsed():6.1f}s] {text}"
        print(line, file=self.out or sys.stdout, flush=True)
        return line

    def task(self, dag_id: str, run_id: str, task_id: str, state: str | None, try_number: int) -> str:
        """A task state change, as :class:`tools.lifecycle.Driver` reports it."""
        return self.line(format_task(dag_id, task_id, state, try_number))


def format_task(dag_id: str, task_id: str, state: str | None, try_number: int) -> str:
    """``deploy_model   deploy_guarded       running`` (``(try 2)`` appended from the second try on).

    :param dag_id: the DAG.
    :param task_id: the task.
    :param state: its new state (``None``: not scheduled yet, e.g. cleared for a retry).
    :param try_number: the try the state belongs to.
    """
    text = f"{dag_id:<13} {task_id:<20} {state or 'none'}"
    return f"{text} (try {try_number})" if try_number > 1 else text


def s3_location(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``.

    :raises ValueError: ``uri`` is not an ``s3://`` URI with a bucket.
    """
    if not isinstance(uri, str) or not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return bucket, key


def download_reports(s3: Any, folder: str, names: Sequence[str], dest: Path) -> list[Path]:
    """Download the files ``names`` of the S3 ``folder`` that exist into ``dest``; the files written.

    :param s3: an S3 client (the devstack's).
    :param folder: ``s3://bucket/prefix/`` (a trailing object name is dropped: the report's folder is meant).
    :param names: the file names wanted; missing ones are skipped.
    :param dest: the local folder (created).
    """
    bucket, prefix = s3_location(folder)
    prefix = prefix if prefix.endswith("/") or not prefix else prefix.rsplit("/", 1)[0] + "/"
    if "/" not in prefix.rstrip("/") and "." in prefix.rstrip("/"):  # an object at the bucket's root
        prefix = ""
    present = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        present |= {obj["Key"][len(prefix) :] for obj in page.get("Contents", [])}
    written = []
    for name in names:
        if name in present:
            dest.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, prefix + name, str(dest / name))
            written.append(dest / name)
    return written


def numeric_buckets(statistics: dict[str, Any], feature: str) -> list[dict[str, float]] | None:
    """The equal-width buckets of ``feature`` in a Model Monitor ``statistics.json``, ``None`` when absent.

    :param statistics: the parsed document (baseline or execution).
    :param feature: the feature's name.
    """
    for entry in statistics.get("features") or []:
        if entry.get("name") == feature:
            distribution = (entry.get("numerical_statistics") or {}).get("distribution") or {}
            return (distribution.get("kll") or {}).get("buckets")
    return None


def drift_chart(feature: str, baseline: dict[str, Any], live: dict[str, Any], path: Path) -> Path | None:
    """Draw the baseline and live distributions of ``feature`` side by side into ``path`` (PNG).

    Each distribution is drawn as the share of its values per bucket, from the buckets of its own
    ``statistics.json``; ``None`` (nothing drawn) when either has no numeric buckets for the feature.

    :param feature: the feature.
    :param baseline: the baseline's ``statistics.json``.
    :param live: the monitoring execution's ``statistics.json``.
    :param path: the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    sides = {"baseline": numeric_buckets(baseline, feature), "live traffic": numeric_buckets(live, feature)}
    if not all(sides.values()):
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, buckets in sides.items():
        total = sum(b["count"] for b in buckets) or 1
        edges = [b["lower_bound"] for b in buckets] + [buckets[-1]["upper_bound"]]
        ax.stairs([b["count"] / total for b in buckets], edges, label=label, fill=label == "baseline", alpha=0.6)
    ax.set_title(f"drift of {feature}")
    ax.set_xlabel(feature)
    ax.set_ylabel("share of values")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def evidently_summary(monitoring: dict[str, Any]) -> list[str]:
    """The summary's lines for the evidently engine's findings (``run_monitoring``'s XCom)."""
    drift, quality = monitoring.get("drift") or {}, monitoring.get("model_quality") or {}
    bias, decision = monitoring.get("bias") or {}, monitoring.get("decision") or {}
    lines = [
        f"  monitoring      drift {'FOUND' if drift.get('drifted') else 'not found'} (share {drift.get('share')}), "
        f"model quality {quality.get('status')}, bias {bias.get('status')}: "
        f"{'retraining' if decision.get('retrain') else 'no retraining'}",
        f"                  drifted features: {', '.join(drift.get('features') or []) or 'none'}",
    ]
    lines += [f"                  reason: {monitoring_reason(r)}" for r in decision.get("reasons") or []]
    lines.append(
        f"                  CloudWatch: {monitoring.get('metrics_published')} metric(s) in MlLifecycle/Monitoring; "
        f"alarms {', '.join(monitoring.get('alarms') or []) or 'none'}"
    )
    if monitoring.get("model_reports_uri"):
        lines.append(f"                  the champion's reports: {monitoring['model_reports_uri']}")
    return lines


def lifecycle_summary(result: dict[str, Any]) -> list[str]:
    """The closing summary of the whole-loop demo, one string per line.

    :param result: what :func:`run_lifecycle` gathered: ``wall``, ``airflow_url``, ``endpoint``, ``sample``,
        ``champion``, ``trainings`` (each with ``run_id``, ``gate``, ``register``), ``deployments``,
        ``monitoring``, ``reports`` (label -> paths), ``reports_dir``.
    """
    lines = [f"Whole loop {result.get('state', 'done').upper()} in {result['wall']:.0f} s"]
    lines.append(f"  airflow         {result['airflow_url']} (scheduler, dag-processor, triggerer; LocalExecutor)")
    if endpoint := result.get("endpoint"):
        lines.append(f"  endpoint        {endpoint['name']} ({endpoint.get('status')}, {endpoint.get('variants')})")
    if sample := result.get("sample"):
        lines.append(f"  prediction      fraud probability {sample['prediction']} for {','.join(sample['row'])}")
    if champion := result.get("champion"):
        lines.append(f"  champion        version {champion.get('version')}: {champion.get('model_package_arn')}")
        if champion.get("monitoring_reports"):
            lines.append(f"                  its monitoring reports go to {champion['monitoring_reports']}")
    for number, training in enumerate(result.get("trainings") or [], 1):
        gate = training.get("gate") or {}
        label = f"training {number}"
        lines.append(f"  {label:<15} {training['run_id']} ({training.get('trigger', 'manual')})")
        if gate:
            baseline = gate.get("baseline_model_package_arn") or "none (thresholds only)"
            metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted((gate.get("metrics") or {}).items()))
            lines.append(f"    gate          {str(gate.get('decision', '?')).upper()}: {gate.get('reason')}")
            lines.append(f"                  against: {baseline}")
            lines.append(f"                  metrics: {metrics}")
        if register := training.get("register"):
            approval = register.get("approval_status")
            if training.get("approved_by"):
                approval = f"{approval}, then Approved by {training['approved_by']}"
            lines.append(f"    registered    version {register.get('version')}, {approval}")
    for number, deployment in enumerate(result.get("deployments") or [], 1):
        lines.append(f"  deployment {number}    {deployment['run_id']}: {deployment.get('how')}")
    if (monitoring := result.get("monitoring")) and monitoring.get("engine") == "evidently":
        lines.extend(evidently_summary(monitoring))
    elif monitoring:
        features = ", ".join(monitoring.get("features") or []) or "none"
        lines.append(
            f"  monitoring      {monitoring.get('violation_count')} violation(s) (threshold "
            f"{monitoring.get('threshold')}), drift {'FOUND' if monitoring.get('drift') else 'not found'}"
        )
        lines.append(f"                  drifted features: {features}")
    if reports := result.get("reports"):
        lines.append(f"  reports         {result.get('reports_dir')}/")
        for label, paths in reports.items():
            for path in paths:
                lines.append(f"    {label:<13} {path}")
    pages = [
        (label, page)
        for label, page in (
            ("model package", (result.get("champion") or {}).get("console_url")),
            ("endpoint", (result.get("endpoint") or {}).get("console_url")),
        )
        if page
    ]
    if pages:
        lines.append("  console         the devstack's pages (they open while the devstack runs)")
        lines.extend(f"    {label:<13} {page}" for label, page in pages)
    return lines


def _deployment_kind(sm: Any, endpoint: str, strategy: str, percent: Any) -> str:
    try:
        sm.describe_endpoint(EndpointName=endpoint)
    except sm.exceptions.ClientError:
        return "first deployment: creates the endpoint"
    return f"update of the live endpoint: {strategy}" + (f" {float(percent):g} % first" if strategy == "canary" else "")


def run_lifecycle(args: argparse.Namespace, progress: Progress) -> int:
    """The whole loop on the devstack with Airflow's scheduler, dag-processor and triggerer; 0 on success.

    :param args: the command line.
    :param progress: where the progress lines go.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from devstack.stack import Stack, StackError, free_port
    from ml_lifecycle.config import load_config
    from tools import lifecycle
    from tools.ui import ADMIN_USER, AirflowUI, UIError

    os.environ.setdefault("ML_LIFECYCLE_ENV", "local")
    cfg = load_config(os.environ["ML_LIFECYCLE_ENV"])
    try:
        stack = Stack(args.state_dir).info()
    except StackError as exc:
        raise SystemExit(f"{exc}") from None
    progress.line(f"devstack: AWS stand-in {stack.env().get('DEVSTACK_MOTO_URL')}, Snowflake stand-in up")
    ensure_bucket_and_topic({**os.environ, **stack.env()})
    from tools.approval_events import provision

    # the approval queue and the EventBridge rule that fills it, as the stack creates them on AWS
    provision(stack, cfg)
    ui = AirflowUI(args.airflow_home, devstack_env=stack.env(), port=free_port(), database="postgres")
    progress.line("airflow: starting on PostgreSQL: api-server, scheduler (LocalExecutor), dag-processor, triggerer")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    result: dict[str, Any] = {"trainings": [], "deployments": [], "state": "failed"}
    driver = None
    try:
        ui.info = ui.start(timeout=STAGE_TIMEOUT["start"])
        result["airflow_url"] = ui.info.url
        progress.line(f"airflow: up at {ui.info.url} (login {ADMIN_USER}, password in {ui.password_file})")
        driver = lifecycle.Driver(ui, on_task=progress.task)
        dags, errors = ui.wait_parsed(driver.token, timeout=STAGE_TIMEOUT["start"], url=ui.info.url)
        if errors:
            names = ", ".join(str(e.get("filename")) for e in errors)
            raise SystemExit(f"DAG import errors in {names}; see {ui.log_file('dag-processor')}")
        progress.line(f"airflow: parsed {', '.join(sorted(d['dag_id'] for d in dags))}")
        code = _loop(args, progress, driver, cfg, stack, stamp, result)
    except (UIError, lifecycle.LifecycleError) as exc:
        progress.line(f"FAILED: {exc}")
        code = 1
    finally:
        if args.keep_airflow and getattr(ui, "info", None) is not None:
            progress.line(f"airflow: left running at {ui.info.url}; `python -m tools.ui --stop --home {ui.home}`")
        else:
            if driver is not None:
                # paused as they were found: the next start of this Airflow owes them no scheduled run
                with contextlib.suppress(UIError, lifecycle.LifecycleError, OSError):
                    driver.pause(*LOOP_DAGS)
            ui.stop()
            progress.line("airflow: stopped (the devstack keeps running)")
    result["wall"] = progress.elapsed()
    result.setdefault("airflow_url", "not started")
    print()
    print("\n".join(lifecycle_summary(result)))
    return code


def _loop(
    args: argparse.Namespace,
    progress: Progress,
    driver: Any,
    cfg: Any,
    stack: Any,
    stamp: str,
    result: dict[str, Any],
) -> int:
    from tools import lifecycle

    sm, runtime = stack.client("sagemaker"), stack.client("sagemaker-runtime")
    dep = cfg.deployment
    for dag_id in LOOP_DAGS:
        if dropped := driver.drop_queued_asset_events(dag_id):
            progress.line(
                f"{dag_id}: {dropped} asset event(s) queued while it was paused dropped (from an earlier run)"
            )
    for dag_id, runs in driver.unpause(*LOOP_DAGS).items():
        for run_id in runs:
            progress.line(f"{dag_id}: unpaused; its due scheduled run {run_id} marked failed (the demo starts its own)")
    known = {dag: {r["dag_run_id"] for r in driver.runs(dag)} for dag in ("train_model", "deploy_model")}

    # 1. train_model, then the automatic approval
    train_id = f"demo__{stamp}__train"
    conf: dict[str, Any] = {"hyperparameters": {"num_round": args.num_round}} if args.num_round else {}
    now = dt.datetime.now(dt.UTC).isoformat()
    driver.trigger("train_model", train_id, logical_date=now, conf=conf)
    progress.line(f"train_model: triggered {train_id} (window: the {cfg.training.window_days} days before today)")
    known["train_model"].add(train_id)
    _training(progress, driver, "train_model", train_id, "manual", result)
    register = result["trainings"][-1].get("register")
    if not register:
        progress.line("train_model: the gate rejected the model; nothing to deploy")
        return 1

    # 2. the first deployment, from the approval (the approved-model asset and SageMaker's approval event)
    how = _deployment_kind(sm, dep.endpoint_name, dep.strategy, dep.canary_percent)
    deploy_id = _deploy(progress, driver, known["deploy_model"], how)
    result["deployments"].append({"run_id": deploy_id, "how": how})
    # the approval's second delivery finds the model deployed: it runs beside the traffic, not awaited
    evidently = cfg.monitoring.engine == "evidently"
    baseline = None if evidently else driver.xcom("deploy_model", deploy_id, "baseline")

    # 3. live traffic, then drifted traffic
    interval = lifecycle.labelled_traffic_days(dt.datetime.now(dt.UTC).date(), args.traffic_days)
    ids, rows = lifecycle.transactions(stack.snowflake_connect(), interval)
    if not rows:
        raise lifecycle.LifecycleError(f"no transactions in {interval}: reseed the devstack (python -m devstack seed)")
    answer = lifecycle.predict(runtime, dep.endpoint_name, rows[:1], inference_id=ids[0])
    result["sample"] = {"row": rows[0], "prediction": answer[0].split(",")[0]}
    progress.line(f"traffic: sample prediction {result['sample']['prediction']} (fraud probability)")
    shifted = lifecycle.drifted(rows)
    # the monitored interval is the traffic's: from its first request (the sample's is left out) to its capture
    traffic_start = lifecycle.interval_start()
    # real-time scoring: one request per transaction, InferenceId = its id (late labels join the capture by it)
    requests = lifecycle.send(runtime, dep.endpoint_name, shifted, inference_ids=ids)
    factors = ", ".join(f"{k} x{v}" for k, v in lifecycle.DRIFT_FACTORS.items())
    progress.line(f"traffic: {len(shifted)} transactions in {requests} requests, drift injected ({factors})")

    # 4. monitoring over the traffic: the drift asset starts the retraining
    monitor_id = f"demo__{stamp}__monitor"
    if evidently:
        capture = driver.xcom("deploy_model", deploy_id, "deploy_guarded")["data_capture_uri"]
        capture = f"{capture.rstrip('/')}/{dep.endpoint_name}/"
        s3 = stack.client("s3")
        lifecycle.wait_for(
            lambda: lifecycle.captured_records(s3, capture, since=traffic_start) >= requests,
            120,
            f"the capture of {requests} requests",
        )
        interval = (traffic_start, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
        if not _monitor_interval(progress, driver, monitor_id, interval, result):
            return 1
    elif not _monitor_now(progress, driver, monitor_id, baseline or {}, result):
        return 1

    # 5. the drift-triggered train_model, gated against the champion
    retrain_id = driver.new_run("train_model", known["train_model"], STAGE_TIMEOUT["asset"])
    # every deploy_model run so far came from the first approval or a registry marking: the retrained model's
    # approval starts a later one (a marking that arrives later still is skipped at resolve by _deploy)
    known["deploy_model"] |= {r["dag_run_id"] for r in driver.runs("deploy_model")}
    progress.line(f"train_model: {retrain_id} started by the drift asset")
    _training(progress, driver, "train_model", retrain_id, "drift asset", result)
    if not result["trainings"][-1].get("register"):
        progress.line("train_model: the gate kept the champion; no second deployment")
        _finish(progress, driver, cfg, stack, result, deploy_id)
        return 0

    # 6. the second deployment: a canary of the new model
    how = _deployment_kind(sm, dep.endpoint_name, dep.strategy, dep.canary_percent)
    deploy_id = _deploy(progress, driver, known["deploy_model"], how)
    result["deployments"].append({"run_id": deploy_id, "how": how})
    _settle_duplicates(progress, driver, known["deploy_model"])
    _finish(progress, driver, cfg, stack, result, deploy_id)
    return 0


def _monitor_interval(
    progress: Progress, driver: Any, run_id: str, interval: tuple[dt.datetime, dt.datetime], result: dict[str, Any]
) -> bool:
    """monitor_model under the evidently engine, over ``interval`` (every record of it already captured); whether
    it decided to retrain."""
    start, end = interval
    conf = {"interval_start": start.isoformat(), "interval_end": end.isoformat()}
    driver.trigger("monitor_model", run_id, logical_date=None, conf=conf)
    progress.line(f"monitor_model: triggered {run_id} (the monitoring job over the traffic's interval)")
    driver.wait("monitor_model", run_id, STAGE_TIMEOUT["monitor_model"])
    found = driver.xcom("monitor_model", run_id, "run_monitoring")
    result["monitoring"] = {"engine": "evidently", **found}
    drift, quality, bias = found.get("drift") or {}, found.get("model_quality") or {}, found.get("bias") or {}
    progress.line(
        f"monitor_model: drift {'FOUND' if drift.get('drifted') else 'not found'} (share {drift.get('share')}: "
        f"{', '.join(drift.get('features') or []) or 'none'}); model quality {quality.get('status')}; "
        f"bias {bias.get('status')}"
    )
    decision = found.get("decision") or {}
    for reason in decision.get("reasons") or []:
        progress.line(f"monitor_model: reason {monitoring_reason(reason)}")
    if not decision.get("retrain"):
        progress.line("monitor_model: no drift and no model-quality breach, so no retraining starts")
        return False
    return True


def monitoring_reason(reason: dict[str, Any]) -> str:
    """One retraining reason (``check``, ``metric``, ``value``, ``threshold``) as a phrase."""
    return (
        f"{reason.get('check')}: {reason.get('metric')} = {reason.get('value')} (threshold {reason.get('threshold')})"
    )


def _monitor_now(
    progress: Progress, driver: Any, run_id: str, baseline: dict[str, Any], result: dict[str, Any]
) -> bool:
    """monitor_model under the model_monitor engine: a one-off execution over the last hour; whether it drifted."""
    driver.trigger("monitor_model", run_id, logical_date=None, conf={"run_now": True, "window_hours": 1})
    progress.line(f"monitor_model: triggered {run_id} (a monitoring execution over the last hour, now)")
    driver.wait("monitor_model", run_id, STAGE_TIMEOUT["monitor_model"])
    findings = driver.xcom("monitor_model", run_id, "run_now")
    result["monitoring"] = {**findings, "baseline_statistics_uri": baseline.get("statistics_uri")}
    progress.line(
        f"monitor_model: {findings.get('violation_count')} violation(s), drifted: "
        f"{', '.join(findings.get('features') or []) or 'none'}"
    )
    if not findings.get("drift"):
        progress.line("monitor_model: no drift found, so no retraining starts")
        return False
    return True


def _deployment_run(progress: Progress, driver: Any, known: set[str]) -> str:
    """The deploy_model run an approval started: the first one created after ``known`` (added to it).

    An approval reaches deploy_model twice (the approved-model asset event and SageMaker's approval event on the
    approval queue): one run, or two when they arrive apart. The first deploys; a second finds its work done.
    """
    driver.new_run("deploy_model", known, STAGE_TIMEOUT["asset"])
    fresh = [r["dag_run_id"] for r in driver.runs("deploy_model", "asset_triggered") if r["dag_run_id"] not in known]
    first = fresh[-1]  # the runs are listed newest first
    known.add(first)
    return first


def _deploy(progress: Progress, driver: Any, known: set[str], how: str) -> str:
    """Follow the deploy_model run the approval started, to its end; its run id.

    A run started by SageMaker's event for an earlier deployment's registry marking (the champion's, or the
    retired version's: updates of Approved versions) can come first: it is skipped at ``resolve``, and the next
    run is followed.
    """
    while True:
        deploy_id = _deployment_run(progress, driver, known)
        progress.line(f"deploy_model: {deploy_id} started by an approval ({how})")
        states = driver.wait("deploy_model", deploy_id, STAGE_TIMEOUT["deploy_model"])
        if states.get("resolve") != "skipped":
            return deploy_id
        progress.line(f"deploy_model: {deploy_id} skipped: its event names a version deployed before")


def _settle_duplicates(progress: Progress, driver: Any, known: set[str]) -> None:
    """Wait for the runs the same approval started a second time (they change nothing) and add them to ``known``."""
    for run in reversed(driver.runs("deploy_model", "asset_triggered")):
        if run["dag_run_id"] in known:
            continue
        driver.wait("deploy_model", run["dag_run_id"], STAGE_TIMEOUT["deploy_model"])
        known.add(run["dag_run_id"])
        progress.line(
            f"deploy_model: {run['dag_run_id']} (an approval delivered again, or a registry marking) changed nothing"
        )


def _training(progress: Progress, driver: Any, dag_id: str, run_id: str, trigger: str, result: dict[str, Any]) -> None:
    states = driver.wait(dag_id, run_id, STAGE_TIMEOUT["train_model"], input_task="approve")
    if states.get("approve") == "awaiting_input":
        # not approved automatically (a bias hold, or a model older than the current one): a person decides
        held = driver.xcom(dag_id, run_id, "register")
        progress.line(
            f"approval: version {held.get('version')} waits for a person in Required Actions: "
            f"{held.get('approval_hold') or held.get('approval_status')}"
        )
        driver.answer(dag_id, run_id, "approve", "Approve", "approved by the demo after reading the monitoring report")
        progress.line("approval: the demo answered Approve as admin (Required Actions, the REST API a person uses)")
        states = driver.wait(dag_id, run_id, STAGE_TIMEOUT["train_model"])
    training: dict[str, Any] = {"run_id": run_id, "trigger": trigger}
    if states.get("approve") == "success":
        training["approved_by"] = "admin in Required Actions"
    for task in ("plan", "validate", "evaluate", "gate"):
        training[task] = driver.xcom(dag_id, run_id, task) if states.get(task) == "success" else None
    if states.get("register") == "success":
        training["register"] = driver.xcom(dag_id, run_id, "register")
    result["trainings"].append(training)
    gate = training.get("gate") or {}
    progress.line(f"{dag_id}: gate {str(gate.get('decision', '?')).upper()}: {gate.get('reason')}")
    if (register := training.get("register")) and states.get("approve") != "success":
        progress.line(
            f"approval: automatic in the local config: version {register.get('version')} "
            f"{register.get('approval_status')}, approved-model asset updated"
        )


def _finish(progress: Progress, driver: Any, cfg: Any, stack: Any, result: dict[str, Any], deploy_id: str) -> None:
    """The endpoint, the champion and a prediction it serves now; the reports downloaded."""
    from tools import lifecycle

    sm, s3 = stack.client("sagemaker"), stack.client("s3")
    endpoint = sm.describe_endpoint(EndpointName=cfg.deployment.endpoint_name)
    variants = ", ".join(
        f"{v['VariantName']} weight {v.get('CurrentWeight')}" for v in endpoint.get("ProductionVariants") or []
    )
    result["endpoint"] = {"name": endpoint["EndpointName"], "status": endpoint["EndpointStatus"], "variants": variants}
    resolved = driver.xcom("deploy_model", deploy_id, "resolve")
    package = sm.describe_model_package(ModelPackageName=resolved["model_package_arn"])
    result["champion"] = {
        "model_package_arn": package["ModelPackageArn"],
        "version": package.get("ModelPackageVersion"),
        "monitoring_reports": (package.get("CustomerMetadataProperties") or {}).get("monitoring_reports"),
    }
    if stack.sagemaker_url:  # the pages the tasks' extra links open
        from devstack.sagemaker.console import page_url

        group, version = package["ModelPackageGroupName"], str(package.get("ModelPackageVersion"))
        result["champion"]["console_url"] = stack.sagemaker_url + page_url("model-packages", group, version)
        result["endpoint"]["console_url"] = stack.sagemaker_url + page_url("endpoints", endpoint["EndpointName"])
    if result.get("sample"):
        answer = lifecycle.predict(
            stack.client("sagemaker-runtime"), endpoint["EndpointName"], [result["sample"]["row"]]
        )
        result["sample"]["prediction"] = answer[0].split(",")[0]
    result["state"] = "success"
    reports_dir = result["reports_dir"] = result.get("reports_dir") or str(progress_reports_dir(result))
    result["reports"] = collect_reports(s3, result, Path(reports_dir))
    progress.line(f"reports: {sum(len(p) for p in result['reports'].values())} files in {reports_dir}/")


def progress_reports_dir(result: dict[str, Any]) -> Path:
    """``<state dir>/reports/<first training run>``."""
    state_dir = Path(os.environ.get("DEVSTACK_STATE_DIR") or ROOT / ".devstack")
    first = (result.get("trainings") or [{"run_id": "demo"}])[0]["run_id"]
    return state_dir / "reports" / first.replace(":", "_")


def collect_reports(s3: Any, result: dict[str, Any], dest: Path) -> dict[str, list[Path]]:
    """Download what a person opens into ``dest``; ``{label: [paths]}``.

    Per training: the evaluation's reports (``evaluation.json``, ``gate.json``, ROC and precision-recall curves,
    confusion matrix) and the data-validation report (HTML). For the monitoring job (evidently engine): its
    Evidently report (HTML), summary, model-quality report, drift chart and model quality over time (PNG). For a
    Model Monitor execution: its violations and statistics, and a drift chart per drifted numeric feature
    (baseline against live traffic).

    :param s3: the devstack's S3 client.
    :param result: what the demo gathered.
    :param dest: the local folder.
    """
    reports: dict[str, list[Path]] = {}
    for number, training in enumerate(result.get("trainings") or [], 1):
        evaluate, validate = training.get("evaluate") or {}, training.get("validate") or {}
        if evaluate.get("evaluation_uri"):
            folder = dest / f"training-{number}"
            reports[f"training {number}"] = download_reports(s3, evaluate["evaluation_uri"], EVALUATION_FILES, folder)
        if validate.get("result_uri"):
            folder = dest / f"training-{number}" / "validation"
            reports[f"validation {number}"] = download_reports(s3, validate["result_uri"], VALIDATION_FILES, folder)
    monitoring = result.get("monitoring") or {}
    if monitoring.get("engine") == "evidently" and monitoring.get("report_uri"):
        reports["monitoring"] = download_reports(s3, monitoring["report_uri"], MONITORING_FILES, dest / "monitoring")
    elif monitoring.get("output_uri"):
        folder = dest / "monitoring"
        files = download_reports(s3, monitoring["output_uri"].rstrip("/") + "/", DRIFT_FILES, folder)
        if monitoring.get("report_uri"):  # the findings as monitor_model read them
            files += download_reports(
                s3, monitoring["report_uri"], [monitoring["report_uri"].rsplit("/", 1)[1]], folder
            )
        live = folder / "statistics.json"
        if monitoring.get("baseline_statistics_uri") and live.is_file():
            bucket, key = s3_location(monitoring["baseline_statistics_uri"])
            baseline = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            current = json.loads(live.read_text(encoding="utf-8"))
            for feature in monitoring.get("features") or []:
                chart = drift_chart(feature, baseline, current, folder / f"drift_{feature}.png")
                if chart is not None:
                    files.append(chart)
        reports["monitoring"] = files
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--demo",
        choices=("lifecycle", "train"),
        default="lifecycle",
        help="lifecycle: the whole loop with Airflow's scheduler (default); train: train_model once (dags test)",
    )
    today = dt.datetime.now(dt.UTC).date()
    parser.add_argument("--date", default=today.isoformat(), help="train: logical date, YYYY-MM-DD (default: today)")
    parser.add_argument("--window-days", type=int, help="train: training window in days (default: the config's)")
    parser.add_argument("--tuning", action="store_true", help="train: run a hyperparameter tuning job")
    parser.add_argument("--num-round", type=int, help="override the num_round hyperparameter of the first training")
    parser.add_argument("--traffic-days", type=int, default=3, help="lifecycle: days of transactions sent as traffic")
    parser.add_argument("--keep-airflow", action="store_true", help="lifecycle: leave Airflow running at the end")
    # the devstack's state directory, as `python -m devstack` picks it
    state_dir = Path(os.environ.get("DEVSTACK_STATE_DIR") or ROOT / ".devstack")
    parser.add_argument("--env-file", type=Path, default=state_dir / "env", help="default: <state dir>/env")
    parser.add_argument(
        "--airflow-home", type=Path, help="default: <state dir>/airflow (train), airflow-loop (lifecycle)"
    )
    args = parser.parse_args(argv)
    args.state_dir = state_dir
    try:
        dt.date.fromisoformat(args.date)
    except ValueError:
        parser.error(f"--date {args.date!r} is not YYYY-MM-DD")
    if args.traffic_days < 1:
        parser.error(f"--traffic-days must be at least 1, got {args.traffic_days}")
    if args.demo == "lifecycle":
        args.airflow_home = args.airflow_home or state_dir / "airflow-loop"
        progress = Progress()
        progress.line("demo: the whole loop (train, approve, deploy, traffic, monitor, drift, retrain, canary)")
        return run_lifecycle(args, progress)
    args.airflow_home = args.airflow_home or state_dir / "airflow"
    return run_training(args)


def run_training(args: argparse.Namespace) -> int:
    """The training-only demo: ``airflow dags test train_model <date>`` and its summary; 0 on success."""
    env = airflow_env(read_env_file(args.env_file), args.airflow_home)
    args.airflow_home.mkdir(parents=True, exist_ok=True)
    airflow = [sys.executable, "-c", AIRFLOW_CLI]
    # the marker holds the Airflow version the database was migrated with: a new Airflow migrates again
    marker, version = args.airflow_home / ".migrated", importlib.metadata.version("apache-airflow")
    if not marker.is_file() or marker.read_text(encoding="utf-8").strip() != version:
        print(f"Migrating the Airflow metadata database (once for Airflow {version}) ...", flush=True)
        if run([*airflow, "db", "migrate"], env, args.airflow_home / "migrate.log") != 0:
            print(f"airflow db migrate failed; see {args.airflow_home / 'migrate.log'}", file=sys.stderr)
            return 1
        marker.write_text(version + "\n", encoding="utf-8")
    ensure_bucket_and_topic(env)

    conf: dict[str, Any] = {"tuning": args.tuning}
    if args.window_days:
        conf["window_days"] = args.window_days
    if args.num_round:
        conf["hyperparameters"] = {"num_round": args.num_round}
    log_file = args.airflow_home / f"demo-{args.date}.log"
    print(f"Running airflow dags test {DAG_ID} {args.date} --conf '{json.dumps(conf)}' ...", flush=True)
    started = time.monotonic()
    # --dagfile-path: the CLI's own parse and sync cover this DAG's file only (dag.test re-syncs the folder)
    dag_file = str(ROOT / "dags" / f"{DAG_ID}.py")
    command = [*airflow, "dags", "test", DAG_ID, args.date, "--dagfile-path", dag_file, "--conf", json.dumps(conf)]
    code = run(command, env, log_file)
    wall = time.monotonic() - started
    try:
        result = summary(args.airflow_home / "airflow.db")
    except Exception as exc:  # a summary problem must not hide the run's own outcome
        print(f"Could not read the run's summary: {exc}", file=sys.stderr)
        return code or 1
    print_summary(result, wall, log_file)
    return 0 if code == 0 and result["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
