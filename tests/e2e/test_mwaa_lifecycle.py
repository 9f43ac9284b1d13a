"""The lifecycle through the bundle, run the way MWAA runs it (``tools.mwaa_local``), on the devstack.

What runs is what ships: ``tools.dist`` builds the bundle from this tree into a temporary folder, the local MWAA
runtime lays it out (``dags/`` synced, ``plugins.zip`` extracted into ``plugins/``, ``startup.sh`` sourced),
installs its ``requirements.txt`` under MWAA's constraint files in a virtualenv of its own, reads the
connections from the devstack's Secrets Manager and starts the scheduler (LocalExecutor), dag-processor,
triggerer and API server with nothing of the repository on their path. A DAG or operator that works from the
tree but not from the bundle fails here.

The runs are started through the REST API, as a person starts them from the UI, and the scheduler does the
rest:

1. ``train_model`` for the window ``[2026-01-15, 2026-02-12)``, on its tune branch (a tuning job of two
   training jobs), registers the best job's model as an approved model package with its lineage (the commit
   of the bundle included) and publishes the approved-model asset;
2. the scheduler starts ``deploy_model`` from that asset event (and from SageMaker's approval event, which the
   devstack routes to the approval queue as the stack's rule does: a second run, when the two arrive apart,
   changes nothing): the endpoint serves the model's predictions, with data capture and auto-scaling, and the
   registry names where the champion's monitoring reports go;
3. drifted traffic is sent to the endpoint; ``monitor_model`` (the default engine: the project's monitoring
   job over the traffic's interval) finds the drift, publishes its metrics and alarms to CloudWatch, links its
   reports from the champion and emits the drift asset, on which the scheduler starts a retraining
   ``train_model`` run (then stopped: it would train again on the same history);
4. a ``batch_score`` backfill scores 2026-02-10 .. 2026-02-12 with the deployed model into the Snowflake
   predictions table, one run and one transform job per day; a second backfill re-processing the middle day
   writes it again, not twice.

SageMaker Model Monitor is refused for the whole module, as in an account without access to it (the devstack's
availability switch): the lifecycle must not call it.

Unpausing a DAG makes the scheduler start the run that is due now (catch-up is off locally), for a period with
no seeded data; the suite marks those runs failed at once so that only its own runs use the machine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.e2e.own_config import LINEAGE
from tests.faults.conftest import control, s3_json, s3_keys, wait_for
from tools import lifecycle
from tools.lifecycle import Driver

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "mwaa-local"
DAG_IDS = {"train_model", "deploy_model", "monitor_model", "batch_score"}
TRAIN_DATE = "2026-02-12T00:00:00Z"
#: the tune branch, with a small tuning job (two training jobs at once): it runs under the scheduler here only
TRAIN_CONF = {
    "window_days": 28,
    "hyperparameters": {"num_round": 25},
    "tuning": True,
    "tuning_max_jobs": 2,
    "tuning_max_parallel_jobs": 2,
}
DRIFTED = ("2026-02-15 00:00:00", "2026-03-02 00:00:00")
SCORE_DAY = dt.date(2026, 2, 10)
#: re-processing a completed day re-attaches to that run's completed transform job (same model, same input):
#: its output is loaded again, no second job is started
TRANSFORMS_AFTER_RERUN = 3
#: the devstack's switch that makes Model Monitor refuse, as for an account without access to it
MODEL_MONITOR = "/_devstack/monitoring/availability"


# ------------------------------------------------------------------------------------------ the runtime


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The bundle ``make dist`` builds, built from this tree into a temporary folder."""
    from tools.dist import build

    out = tmp_path_factory.mktemp("dist") / "mwaa"
    manifest = build(out)
    return SimpleNamespace(path=out, manifest=manifest)


@pytest.fixture(scope="module")
def runtime(devstack: Any, bundle: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The local MWAA runtime on the session's devstack; its logs are kept in ``test-artifacts/mwaa-local``."""
    from devstack.stack import free_port
    from tools.mwaa_local import MwaaLocal, ensure_venv

    venv = ensure_venv(bundle.path / "requirements.txt")
    home = tmp_path_factory.mktemp("mwaa-home")
    runtime = MwaaLocal(home, venv=venv, stack_info=devstack.info, port=free_port())
    runtime.prepare(bundle.path)
    try:
        runtime.info = runtime.start(timeout=420)
        yield runtime
    finally:
        runtime.stop()
        runtime.metadb.remove()
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        if (home / "logs").is_dir():
            shutil.copytree(home / "logs", ARTIFACTS)


@pytest.fixture(scope="module")
def api(runtime: Any) -> Driver:
    return Driver(runtime, poll=2.0)


@pytest.fixture(scope="module")
def aws(devstack: Any) -> Iterator[SimpleNamespace]:
    """The devstack's clients, with Model Monitor refused (an account without it) while the module runs."""
    from ml_lifecycle.config import load_config

    cfg = load_config("local")
    assert cfg.monitoring.engine == "evidently", "the local environment runs the default engine"
    assert control(devstack.sagemaker_url, "POST", MODEL_MONITOR, {"available": False}) == {"available": False}
    try:
        yield SimpleNamespace(
            cfg=cfg,
            s3=devstack.client("s3"),
            sm=devstack.client("sagemaker"),
            runtime=devstack.client("sagemaker-runtime"),
            cloudwatch=devstack.client("cloudwatch"),
            devstack=devstack,
        )
    finally:
        control(devstack.sagemaker_url, "POST", MODEL_MONITOR, {"available": True})


# ------------------------------------------------------------------------------------------ the runtime itself


def test_components_run_only_what_the_bundle_ships(runtime: Any) -> None:
    """Every component: the bundle's settings, connections from Secrets Manager, no repository on the path."""
    base = runtime.environment(runtime.info.port)
    for name, component in runtime.info.components.items():
        # what the component was started with (its /proc environ is overwritten by Airflow's process titles)
        environ = runtime.component_environment(name, base)
        assert "PYTHONPATH" not in environ, name
        assert not [k for k in environ if k.startswith("AIRFLOW_CONN_")], f"{name}: connections come from secrets"
        assert environ["AIRFLOW__SECRETS__BACKEND"].endswith("secrets_manager.SecretsManagerBackend"), name
        assert json.loads(environ["AIRFLOW__SECRETS__BACKEND_KWARGS"])["connections_prefix"] == "airflow/connections"
        assert environ["AIRFLOW_ENV_NAME"] == "ml-lifecycle-local"
        # what startup.sh exported, from the configuration option ml_lifecycle.env
        assert environ["ML_LIFECYCLE_ENV"] == "local"
        assert environ["ML_LIFECYCLE_INCLUDE_DIR"] == str(runtime.home / "dags" / "include")
        assert Path(f"/proc/{component.pid}/cwd").resolve() == runtime.home.resolve()

    # a task process as the scheduler starts one: Airflow's settings and plugins loaded, then the package
    probe = (
        "import json, sys\n"
        "from airflow import plugins_manager, settings\n"
        "plugins_manager.integrate_macros_plugins()\n"
        "import ml_lifecycle, snowflake.connector, great_expectations\n"
        "from airflow.sdk import BaseHook\n"
        "conn = BaseHook.get_connection('snowflake_default')\n"
        "print(json.dumps({'path': sys.path, 'package': ml_lifecycle.__file__,\n"
        "                  'snowflake': snowflake.connector.__file__, 'snowflake_port': conn.port}))\n"
    )
    env = runtime.component_environment("scheduler", runtime.environment(runtime.info.port))
    out = subprocess.run(
        [str(runtime.venv / "bin" / "python"), "-c", probe],
        env=dict(env),
        cwd=runtime.home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(runtime.home / "plugins"), found["package"]
    assert Path(found["snowflake"]).is_relative_to(runtime.venv), "snowflake is the installed package"
    assert found["snowflake_port"] == runtime.stack_info.snowflake_port, "the connection is the secret's"
    leaked = [p for p in found["path"] if p and Path(p).resolve().is_relative_to(ROOT) and ".mwaa-local" not in p]
    assert not leaked, f"the repository is on the runtime's path: {leaked}"


def test_the_four_dags_parse_without_import_errors_and_are_served(api: Driver) -> None:
    dags, errors = api.runtime.wait_parsed(api.token, timeout=180, url=api.url)
    assert not errors, [(e["filename"], (e.get("stack_trace") or "").splitlines()[-1:]) for e in errors]
    assert {d["dag_id"] for d in dags} == DAG_IDS
    for dag in dags:
        assert Path(dag["fileloc"]).is_relative_to(api.runtime.home / "dags"), dag["fileloc"]
    import urllib.request

    with urllib.request.urlopen(api.url + "/", timeout=30) as page:  # the UI's single-page app
        assert page.status == 200 and b"<html" in page.read().lower()


# ------------------------------------------------------------------------------------------ the lifecycle


@pytest.fixture(scope="module")
def trained(api: Driver) -> dict[str, Any]:
    # deploy_model is started by the approved-model asset train_model publishes
    api.unpause("deploy_model", "train_model")
    run_id = api.trigger("train_model", "mwaa_e2e__train", logical_date=TRAIN_DATE, conf=TRAIN_CONF)["dag_run_id"]
    states = api.wait("train_model", run_id, timeout=1500)
    return {"run_id": run_id, "states": states, "register": api.xcom("train_model", run_id, "register")}


def test_train_model_registers_an_approved_model_with_its_lineage(
    trained: dict[str, Any], aws: SimpleNamespace, bundle: SimpleNamespace
) -> None:
    states = trained["states"]
    for task in ("plan", "extract", "validate", "preprocess", "tune", "evaluate", "gate", "register"):
        assert states[task] == "success", states
    assert states["publish_approval"] == "success"
    assert states["train"] == "skipped", "the run took the tune branch"
    tuning = aws.sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    assert len(tuning) == 1 and tuning[0]["HyperParameterTuningJobStatus"] == "Completed", tuning
    described = aws.sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning[0]["HyperParameterTuningJobName"]
    )
    assert described["TrainingJobStatusCounters"]["Completed"] == 2, described["TrainingJobStatusCounters"]
    best = described["BestTrainingJob"]["TrainingJobName"]
    arn = trained["register"]["model_package_arn"]
    package = aws.sm.describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "Approved"
    props = package["CustomerMetadataProperties"]
    missing = [k for k in LINEAGE if not props.get(k)]
    assert not missing, f"lineage missing: {missing}"
    assert props["dag_run_id"] == trained["run_id"]
    assert props["training_job"] == best, "the registered model is the tuning job's best"
    assert (props["window_start"][:10], props["window_end"][:10]) == ("2026-01-15", "2026-02-12")
    assert props["git_commit"] == bundle.manifest["git_commit"], "the model names the commit of the bundle"
    gate = s3_json(aws.s3, props["gate_uri"])
    assert gate["decision"] == "passed"


@pytest.fixture(scope="module")
def deployed(api: Driver, trained: dict[str, Any]) -> dict[str, Any]:
    """The deploy_model run the scheduler started from the approval, and the runs the same approval started again.

    The approval reaches deploy_model as the approved-model asset event and as SageMaker's event on the approval
    queue: one run, or two when they arrive apart; the first created deploys.
    """

    api.new_run("deploy_model", known=(), timeout=120)
    run_id = api.runs("deploy_model", "asset_triggered")[-1]["dag_run_id"]  # newest first: the first created
    states = api.wait("deploy_model", run_id, timeout=900)
    again = {}
    for run in api.runs("deploy_model", "asset_triggered"):
        if run["dag_run_id"] != run_id:
            other = api.wait("deploy_model", run["dag_run_id"], timeout=900)
            ran = other.get("resolve") == "success"
            again[run["dag_run_id"]] = {
                "states": other,
                "resolve": api.xcom("deploy_model", run["dag_run_id"], "resolve") if ran else None,
                "deploy": api.xcom("deploy_model", run["dag_run_id"], "deploy_guarded") if ran else None,
            }
    return {
        "run_id": run_id,
        "states": states,
        "deploy_tries": api("GET", f"/api/v2/dags/deploy_model/dagRuns/{run_id}/taskInstances/deploy_guarded")[
            "try_number"
        ],
        "resolve": api.xcom("deploy_model", run_id, "resolve"),
        "deploy": api.xcom("deploy_model", run_id, "deploy_guarded"),
        "again": again,
    }


def test_deploy_model_serves_the_approved_model(
    deployed: dict[str, Any], trained: dict[str, Any], aws: SimpleNamespace
) -> None:
    states = deployed["states"]
    for task in ("resolve", "choose_strategy", "deploy_guarded", "autoscale"):
        assert states[task] == "success", states
    assert not {"baseline", "schedule_monitoring"} & set(states), "the default engine puts no Model Monitor on it"
    assert states["deploy_stepwise"] == "skipped"
    assert deployed["resolve"]["model_package_arn"] == trained["register"]["model_package_arn"]
    # Airflow 3.3 may re-queue a resumed deferral before it has the executor's event of the deferring try, and
    # then retries the task: the endpoint was created by try 1, and try 2 finds it serving the model
    assert deployed["deploy"]["action"] == ("created" if deployed["deploy_tries"] == 1 else "unchanged"), deployed
    # the same approval delivered twice (asset event, SageMaker's event), and the champion's own marking (an
    # update of an Approved version, so SageMaker's event again), deploy once: any later run finds the
    # endpoint serving the model, or is skipped at resolve because the version was deployed before
    for run in deployed["again"].values():
        if run["states"]["resolve"] == "skipped":
            assert set(run["states"].values()) == {"skipped"}, run
            continue
        assert run["resolve"]["model_package_arn"] == trained["register"]["model_package_arn"]
        assert run["resolve"]["already_serving"] is True and run["deploy"]["action"] == "unchanged", run
    package = aws.sm.describe_model_package(ModelPackageName=trained["register"]["model_package_arn"])
    assert package["ModelLifeCycle"]["Stage"] == "Production", "the deployed version is the champion"
    endpoint = aws.cfg.deployment.endpoint_name
    from ml_lifecycle.builders.monitoring_job import model_reports_uri

    reports = package["CustomerMetadataProperties"]["monitoring_reports"]
    assert reports == model_reports_uri(aws.cfg, endpoint, package["ModelPackageVersion"]), reports
    assert aws.sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"
    rows = feature_rows(aws, ("2026-02-13 00:00:00", "2026-02-13 06:00:00"))[:20]
    answer = predict(aws, rows)
    assert len(answer) == len(rows)
    assert all(0.0 <= float(line.split(",")[0]) <= 1.0 for line in answer), answer[:3]


def feature_rows(aws: SimpleNamespace, interval: tuple[str, str]) -> list[list[str]]:
    return lifecycle.feature_rows(aws.devstack.snowflake_connect(), interval)


def predict(aws: SimpleNamespace, rows: list[list[str]]) -> list[str]:
    return lifecycle.predict(aws.runtime, aws.cfg.deployment.endpoint_name, rows)


def test_monitor_model_finds_drift_and_the_scheduler_starts_retraining(
    api: Driver, deployed: dict[str, Any], aws: SimpleNamespace
) -> None:
    from ml_lifecycle.assets import drift_uri

    endpoint = aws.cfg.deployment.endpoint_name
    rows = feature_rows(aws, DRIFTED)
    assert len(rows) >= 2500
    # the interval is the traffic's: from the first request (after every earlier one) to the last one's capture
    start = lifecycle.interval_start()
    requests = lifecycle.send(aws.runtime, endpoint, rows)
    capture = deployed["deploy"]["data_capture_uri"].rstrip("/") + f"/{endpoint}/"

    def captured() -> bool:
        return lifecycle.captured_records(aws.s3, capture, since=start) >= requests

    wait_for(captured, 60, "the captured requests", interval=1)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)

    api.unpause("monitor_model")
    conf = {"interval_start": start.isoformat(), "interval_end": end.isoformat()}
    run_id = api.trigger("monitor_model", "mwaa_e2e__monitor", logical_date=None, conf=conf)["dag_run_id"]
    states = api.wait("monitor_model", run_id, timeout=600)
    assert states == {"export_labels": "success", "run_monitoring": "success", "publish_drift": "success"}, states
    result = api.xcom("monitor_model", run_id, "run_monitoring")
    assert result["status"] == "completed" and result["rows"]["interval"] == len(rows), result
    assert result["drift"]["drifted"] is True, result["drift"]
    assert {"amount", "card_avg_amount_7d"} <= set(result["drift"]["features"]), result["drift"]
    assert result["model_quality"]["status"] == "no_labels", "no label arrived in the lookback window"
    report = s3_json(aws.s3, drift_uri(aws.cfg))
    assert report["dag_run_id"] == run_id and report["reasons"], report

    # the metrics and the alarms are in CloudWatch
    metrics = aws.cloudwatch.list_metrics(
        Namespace="MlLifecycle/Monitoring", Dimensions=[{"Name": "Endpoint", "Value": endpoint}]
    )["Metrics"]
    assert {"DriftShare", "FeatureDriftScore"} <= {m["MetricName"] for m in metrics}, metrics
    alarms = aws.cloudwatch.describe_alarms(AlarmNamePrefix=f"{endpoint}-monitoring-")["MetricAlarms"]
    assert {a["AlarmName"] for a in alarms} == {f"{endpoint}-monitoring-{a.name}" for a in aws.cfg.monitoring.alarms}
    # the champion links its monitoring reports: the interval's entry names them, and they are there
    package = aws.sm.describe_model_package(ModelPackageName=result["model_package_arn"])
    assert result["model_reports_uri"] == package["CustomerMetadataProperties"]["monitoring_reports"]
    entries = list(s3_keys(aws.s3, result["model_reports_uri"]))
    assert len(entries) == 1, entries
    entry = s3_json(aws.s3, result["model_reports_uri"] + entries[0].rsplit("/", 1)[-1])
    assert entry["job_name"] == result["job_name"] and entry["decision"]["retrain"] is True, entry
    assert {"report.html", "summary.json", "drift.png", "model_quality.png"} == set(entry["reports"]), entry
    for uri in entry["reports"].values():
        assert s3_keys(aws.s3, uri), f"{uri} is linked but absent"

    # the drift asset event schedules train_model: the scheduler creates the retraining run; the suite checks
    # that it starts, then stops it (training again would prove nothing new). The asset-event list is read once
    # that run has started: Airflow 3.3.1's API answers 500 to it while a run the event created is still queued
    # (it cannot serialise the run's empty start_date).
    def started_retraining() -> list[dict[str, Any]]:
        runs = api("GET", "/api/v2/dags/train_model/dagRuns?run_type=asset_triggered")["dag_runs"]
        return runs if runs and all(r.get("start_date") for r in runs) else []

    retraining = wait_for(started_retraining, 120, "the drift-triggered train_model run to start", interval=2)
    events = api("GET", f"/api/v2/assets/events?source_dag_id=monitor_model&source_run_id={run_id}")["asset_events"]
    assert [e["uri"] for e in events] == [drift_uri(aws.cfg)], events
    assert [r["run_id"] for r in events[0]["created_dagruns"]] == [retraining[0]["dag_run_id"]], events
    assert len(retraining) == 1, retraining
    api("PATCH", f"/api/v2/dags/train_model/dagRuns/{retraining[0]['dag_run_id']}", {"state": "failed"})


def _backfill(api: Driver, first: dt.date, last: dt.date, **extra: Any) -> dict[str, dict[str, Any]]:
    """Backfill ``batch_score`` over ``first``..``last``; when it completed, ``{day: run}`` of its days.

    The API creates the backfill's runs before it answers; the scheduler marks the backfill completed once
    none of them is unfinished. Each run must then have succeeded with every task.
    """
    body = {"dag_id": "batch_score", "from_date": _midnight(first), "to_date": _midnight(last), "dag_run_conf": {}}
    backfill = api("POST", "/api/v2/backfills", body | extra)
    days = (last - first).days + 1
    wait_for(
        lambda: api("GET", f"/api/v2/backfills/{backfill['id']}").get("completed_at"),
        900 * days,
        f"the backfill of {first} .. {last} to complete",
    )
    runs = {
        run["data_interval_start"][:10]: run
        for run in api("GET", "/api/v2/dags/batch_score/dagRuns?run_type=backfill&limit=100")["dag_runs"]
        if first.isoformat() <= run["data_interval_start"][:10] <= last.isoformat()
    }
    assert sorted(runs) == [(first + dt.timedelta(days=i)).isoformat() for i in range(days)], runs
    for run in runs.values():
        states = api.wait("batch_score", run["dag_run_id"], timeout=60)
        assert all(states[t] == "success" for t in ("resolve", "extract", "prepare", "transform", "load")), states
    return runs


def _midnight(day: dt.date) -> str:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC).isoformat()


def _predictions_by_day(aws: SimpleNamespace) -> dict[str, tuple[int, int, int, int]]:
    """{day: (rows, distinct transactions, distinct runs, distinct models)} of the predictions table."""
    with contextlib.closing(aws.devstack.snowflake_connect()) as conn:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT CAST(EVENT_TS AS DATE), COUNT(*), COUNT(DISTINCT TRANSACTION_ID), "
            f"COUNT(DISTINCT DAG_RUN_ID), COUNT(DISTINCT MODEL_PACKAGE_ARN) FROM {aws.cfg.snowflake.predictions_fqn} "
            "GROUP BY 1 ORDER BY 1"
        )
        return {str(day)[:10]: (rows, ids, runs, models) for day, rows, ids, runs, models in cursor.fetchall()}


def _source_rows(aws: SimpleNamespace, day: dt.date) -> int:
    start = dt.datetime.combine(day, dt.time.min)
    with contextlib.closing(aws.devstack.snowflake_connect()) as conn:
        cursor = conn.cursor()
        cursor.execute(
            f"SELECT COUNT(*) FROM {aws.cfg.snowflake.source_fqn} WHERE EVENT_TS >= %s AND EVENT_TS < %s",
            (start, start + dt.timedelta(days=1)),
        )
        return cursor.fetchone()[0]


def test_batch_score_backfills_three_days_once_each_and_a_rerun_writes_nothing_twice(
    api: Driver, deployed: dict[str, Any], aws: SimpleNamespace
) -> None:
    """``batch_score`` over three past days through a backfill (a manual run dated before the DAG's start_date
    would create no tasks): one run and one transform job per day, each day's transactions scored once. A
    second backfill of the middle day re-processing completed runs writes that day again, not twice."""
    days = [SCORE_DAY + dt.timedelta(days=i) for i in range(3)]
    api.unpause("batch_score")
    runs = _backfill(api, days[0], days[-1])

    transforms = aws.sm.list_transform_jobs(MaxResults=100)["TransformJobSummaries"]
    assert len(transforms) == 3 and {t["TransformJobStatus"] for t in transforms} == {"Completed"}, transforms
    expected = {d.isoformat(): _source_rows(aws, d) for d in days}
    assert all(expected.values()), expected
    scored = _predictions_by_day(aws)
    assert scored == {day: (rows, rows, 1, 1) for day, rows in expected.items()}, (scored, expected)
    with contextlib.closing(aws.devstack.snowflake_connect()) as conn:
        cursor = conn.cursor()
        cursor.execute(f"SELECT DISTINCT MODEL_PACKAGE_ARN FROM {aws.cfg.snowflake.predictions_fqn}")
        assert cursor.fetchall() == [(deployed["resolve"]["model_package_arn"],)]

    middle = days[1].isoformat()
    again = _backfill(api, days[1], days[1], reprocess_behavior="completed")[middle]
    assert again["end_date"] > runs[middle]["end_date"], ("the middle day ran again", again, runs[middle])
    assert _predictions_by_day(aws) == scored, "the re-run replaced the day's predictions, duplicated none"
    jobs = aws.sm.list_transform_jobs(MaxResults=100)["TransformJobSummaries"]
    assert len(jobs) == TRANSFORMS_AFTER_RERUN, jobs


def test_every_resource_the_dags_created_carries_the_configured_tags(
    deployed: dict[str, Any], aws: SimpleNamespace
) -> None:
    """After the four DAGs ran: every SageMaker resource, alarm and scalable target on the devstack carries
    owner, cost-centre, project, environment and the free-form tags of ``include/config/local.yaml``."""
    from tests.e2e.tag_audit import MODEL_MONITOR_KINDS, audit, untagged

    # Model Monitor refuses in this module (the default engine never calls it): its kinds cannot be listed
    found = audit(aws.devstack.client, leave_out=MODEL_MONITOR_KINDS)
    for kind in ("processing-job", "training-job", "model", "endpoint-config", "endpoint", "model-package-group"):
        assert found[kind], f"the lifecycle created no {kind}: the audit would prove nothing"
    for kind in ("alarm", "scalable-target", "transform-job"):
        assert found[kind], f"the lifecycle created no {kind}: the audit would prove nothing"
    monitoring = [arn for arn in found["processing-job"] if "-mon-" in arn.rsplit("/", 1)[-1]]
    assert monitoring, "the monitoring job is audited with the other processing jobs"
    assert any("-monitoring-" in arn for arn in found["alarm"]), "the monitoring alarms are audited"
    assert untagged(found, dict(aws.cfg.tags)) == {}
