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
import datetime as dt
import importlib.metadata
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import time
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
        print(f"  reports         {folder}/ (evaluation.json, gate.json, roc_curve.png, pr_curve.png)")
    if validate := x.get("validate"):
        print(f"  data validation {validate.get('result_uri')}")
    if approved := x.get("publish_approval"):
        print(f"  approved model  pointer updated for {approved.get('model_package_arn')}")
    print("  tasks:")
    for task in result["tasks"]:
        seconds = f"{task['seconds']:7.1f} s" if task["seconds"] is not None else "        -"
        print(f"    {task['task_id']:<18} {task['state']:<16} {seconds}  (try {task['try_number']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    today = dt.datetime.now(dt.UTC).date()
    parser.add_argument("--date", default=today.isoformat(), help="logical date, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--window-days", type=int, help="training window in days (default: the config's)")
    parser.add_argument("--tuning", action="store_true", help="run a hyperparameter tuning job")
    parser.add_argument("--num-round", type=int, help="override the num_round hyperparameter")
    # the devstack's state directory, as `python -m devstack` picks it
    state_dir = Path(os.environ.get("DEVSTACK_STATE_DIR") or ROOT / ".devstack")
    parser.add_argument("--env-file", type=Path, default=state_dir / "env", help="default: <state dir>/env")
    parser.add_argument("--airflow-home", type=Path, default=state_dir / "airflow", help="default: <state dir>/airflow")
    args = parser.parse_args(argv)
    try:
        dt.date.fromisoformat(args.date)
    except ValueError:
        parser.error(f"--date {args.date!r} is not YYYY-MM-DD")

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
