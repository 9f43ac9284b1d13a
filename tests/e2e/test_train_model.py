"""train_model end to end on the devstack: real extraction, validation, SageMaker jobs, gate and registry.

The runs share one devstack session (seeded 2026-01-01 .. 2026-03-01) and run in order, each with
``dag.test(logical_date=D, run_after=D)`` so its run id (``manual__<D>``) is stable, like a backfill's:

1. three past intervals, a week apart (a backfill): three interval-keyed datasets, three runs; the first
   model is judged by thresholds only and approved, later ones are gated against the latest approved one;
2. the second interval re-run: nothing new anywhere (no job, no version, other intervals untouched);
3. another run over the last interval (a later hour of the same day: same window, other run id): the step cache
   reuses the jobs of the backfill's run (no new SageMaker job), the reuse shows in the XComs, the task log
   and the registered model's lineage; then with ``force`` the jobs run again;
4. an interval with planted bad rows: stops at ``validate`` with its report kept and no SageMaker job.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path

import pytest

from ml_lifecycle.naming import RunPlan
from tests.e2e.own_config import LINEAGE, own_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
#: This module's own model package group (and endpoint): the other modules of a session register theirs.
GROUP = "fraud-detector-train-e2e"
ENDPOINT = "fraud-train-e2e"
WINDOW_DAYS = 28
CONF = {"window_days": WINDOW_DAYS, "hyperparameters": {"num_round": 25}}
BACKFILL = [dt.datetime(2026, 1, d, tzinfo=dt.UTC) for d in (29,)] + [
    dt.datetime(2026, 2, d, tzinfo=dt.UTC) for d in (5, 12)
]
CORRUPT_DAY = dt.date(2026, 2, 24)
CORRUPT_RUN = dt.datetime(2026, 2, 26, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    """The ``local`` config naming this module's model package group; the DAG and its tasks read it."""
    with own_config(tmp_path_factory.mktemp("config"), endpoint=ENDPOINT, group=GROUP) as config:
        yield config


@pytest.fixture(scope="module")
def aws(devstack, airflow_db, cfg):
    """Clients against the devstack, with the environment's bucket and topic created."""
    s3 = devstack.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=cfg.storage.bucket)
    devstack.client("sns").create_topic(Name=cfg.notifications.sns_topic_arn.rsplit(":", 1)[1])
    return {"s3": s3, "sm": devstack.client("sagemaker")}


@pytest.fixture(scope="module")
def dag(aws):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "train_model.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("train_model")


def _run(dag, when: dt.datetime, conf=None):
    """One DAG run with a stable run id; returns (run_id, {task_id: state})."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dr = dag.test(logical_date=when, run_after=when, run_conf=conf or CONF)
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dr.run_id)
        ).all()
        states = {ti.task_id: getattr(ti.state, "value", ti.state) for ti in tis}
    return dr.run_id, states


def _plan(cfg, run_id, when):
    return RunPlan.create(cfg, dag_id="train_model", run_id=run_id, anchor=when, window_days=WINDOW_DAYS)


def _json(s3, uri):
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _keys(s3, uri):
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: (o["ETag"], o["LastModified"]) for page in pages for o in page.get("Contents", [])}


def _packages(sm, cfg):
    pages = sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=cfg.sagemaker.model_package_group)
    return [p for page in pages for p in page["ModelPackageSummaryList"]]


def _jobs(sm):
    """Every processing and training job's name (all pages: a session's other modules run jobs too)."""
    processing = [
        j["ProcessingJobName"]
        for page in sm.get_paginator("list_processing_jobs").paginate()
        for j in page["ProcessingJobSummaries"]
    ]
    training = [
        j["TrainingJobName"]
        for page in sm.get_paginator("list_training_jobs").paginate()
        for j in page["TrainingJobSummaries"]
    ]
    return sorted(processing), sorted(training)


@pytest.fixture(scope="module")
def backfill(dag, aws, cfg):
    """Three past intervals, oldest first (what `airflow backfill create` runs)."""
    runs = []
    for when in BACKFILL:
        run_id, states = _run(dag, when)
        runs.append({"when": when, "run_id": run_id, "states": states, "plan": _plan(cfg, run_id, when)})
    return runs


def test_backfill_runs_succeed_with_interval_keyed_datasets(backfill, aws):
    for run in backfill:
        assert run["states"]["plan"] == "success", run["states"]
        for task in ("extract", "validate", "preprocess", "train", "evaluate", "gate"):
            assert run["states"][task] == "success", (run["run_id"], run["states"])
        assert run["states"]["tune"] == "skipped", "tuning is off by default"
    keys = {run["plan"].window.key for run in backfill}
    assert len(keys) == 3
    for run in backfill:
        manifest = _keys(aws["s3"], run["plan"].dataset_uri)
        assert any(k.endswith("_manifest.json") for k in manifest), run["plan"].dataset_uri
        assert any(k.endswith(".parquet") for k in manifest)


def test_first_model_is_registered_with_metrics_and_lineage(backfill, aws, cfg):
    first = backfill[0]
    assert first["states"]["register"] == "success", first["states"]
    # automatic approval (the local config): nobody is asked, the approved model is published
    assert first["states"]["approve"] == "skipped"
    assert first["states"]["publish_approval"] == "success"
    gate = _json(aws["s3"], first["plan"].report_uri("evaluation", "gate.json"))
    assert gate["decision"] == "passed" and gate["baseline"] is None, "first model: thresholds only"
    package = next(
        p
        for p in (
            aws["sm"].describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in _packages(aws["sm"], cfg)
        )
        if p["CustomerMetadataProperties"].get("dag_run_id") == first["run_id"]
    )
    props = package["CustomerMetadataProperties"]
    missing = [k for k in LINEAGE if not props.get(k)]
    assert not missing, f"lineage missing: {missing}"
    assert props["dataset_uri"] == first["plan"].dataset_uri
    # the Model Monitor baseline dataset deploy_model uses: the evaluation job's baseline.csv
    assert props["baseline_uri"] == first["plan"].job_uri("evaluate", "baseline") + "/"
    assert _keys(aws["s3"], props["baseline_uri"]), "the baseline dataset exists"
    assert float(props["metric:auc"]) >= cfg.training.gate.thresholds["auc"]
    assert package["ModelApprovalStatus"] == "Approved"
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert statistics == first["plan"].report_uri("evaluation", "evaluation.json")
    report = _json(aws["s3"], statistics)
    assert report["binary_classification_metrics"]["auc"]["value"] == pytest.approx(
        float(props["metric:auc"]), rel=1e-5
    )
    evaluation = _keys(aws["s3"], first["plan"].report_uri("evaluation") + "/")
    assert {"roc_curve.png", "pr_curve.png", "evaluation.json", "gate.json", "analysis.json"} <= {
        k.rsplit("/", 1)[1] for k in evaluation
    }
    # pre-training bias of the training data by the customer segment, in Clarify's analysis.json shape
    bias = package["ModelMetrics"]["Bias"]["PreTrainingReport"]
    assert bias == {
        "ContentType": "application/json",
        "S3Uri": first["plan"].report_uri("evaluation", "analysis.json"),
    }
    groups = _json(aws["s3"], bias["S3Uri"])["pre_training_bias_metrics"]["facets"]["customer_segment"]
    assert {g["value_or_threshold"] for g in groups} == {"consumer", "premium", "small_business", "student"}


def _link_value(dag, run_id, task_id, key):
    """The value an operator persisted for one of its extra links."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag.dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).one()
        return XComModel.deserialize_value(row)


def _get(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.headers["Content-Type"], answer.read()


def test_extra_links_open_the_devstack_pages_of_the_job_and_the_model(backfill, dag, devstack, aws, cfg):
    from ml_lifecycle.links import SageMakerModelPackageLink, SageMakerTrainingJobLink

    first = backfill[0]
    job = _xcoms(dag, first["run_id"])["train"]["job_name"]
    link = SageMakerTrainingJobLink().format_link(
        **_link_value(dag, first["run_id"], "train", SageMakerTrainingJobLink.key)
    )
    assert link == f"{devstack.sagemaker_url}/console/jobs/training/{job}", "the link the UI shows"
    content_type, page = _get(link)
    assert content_type == "text/html; charset=utf-8"
    assert f"Training job {job}" in page.decode() and "Completed" in page.decode()

    package = _package_of(aws, cfg, first["run_id"])
    link = SageMakerModelPackageLink().format_link(
        **_link_value(dag, first["run_id"], "register", SageMakerModelPackageLink.key)
    )
    assert link == (f"{devstack.sagemaker_url}/console/model-packages/{GROUP}/{package['ModelPackageVersion']}")
    page = _get(link)[1].decode()
    gate_uri = package["CustomerMetadataProperties"]["gate_uri"]
    assert gate_uri.startswith("s3://"), "the registry keeps the S3 URI"
    bucket, key = gate_uri[len("s3://") :].split("/", 1)
    report = f"{devstack.sagemaker_url}/console/s3/{bucket}/{key}"
    assert f'href="{report.removeprefix(devstack.sagemaker_url)}"' in page, "the package page links the report"
    content_type, body = _get(report)
    assert content_type == "application/json" and json.loads(body)["decision"] == "passed"


def test_later_runs_are_gated_against_the_latest_approved_model(backfill, aws, cfg):
    by_run = {}
    for summary in _packages(aws["sm"], cfg):
        package = aws["sm"].describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        by_run[package["CustomerMetadataProperties"].get("dag_run_id")] = package
    approved_before = None
    for run in backfill:
        gate = _json(aws["s3"], run["plan"].report_uri("evaluation", "gate.json"))
        if approved_before is None:
            assert gate["baseline"] is None
        else:
            assert gate["baseline"]["model_package_arn"] == approved_before
            assert {c["kind"] for c in gate["checks"]} == {"threshold", "regression"}
        if gate["decision"] == "passed":
            assert run["states"]["register"] == "success"
            package = by_run[run["run_id"]]
            assert package["ModelApprovalStatus"] == "Approved"
            approved_before = package["ModelPackageArn"]
        else:
            assert run["states"]["register"] == "skipped", "a rejected model is not registered, not failed"
            assert run["states"]["gate"] == "success"
            assert run["run_id"] not in by_run
    pointer = _json(aws["s3"], cfg.storage.uri("models", cfg.sagemaker.model_package_group, "approved.json"))
    assert pointer["model_package_arn"] == approved_before, "the pointer names the newest approved model"


def test_rerunning_an_interval_changes_nothing_else(backfill, dag, aws, cfg):
    second = backfill[1]
    others = [r for r in backfill if r is not second]
    before = {r["run_id"]: _keys(aws["s3"], r["plan"].dataset_uri) for r in others}
    before_reports = {r["run_id"]: _keys(aws["s3"], r["plan"].report_uri("")) for r in others}
    packages, jobs = len(_packages(aws["sm"], cfg)), _jobs(aws["sm"])

    run_id, states = _run(dag, second["when"])

    assert run_id == second["run_id"]
    assert states["gate"] == "success", states
    assert _jobs(aws["sm"]) == jobs, "re-running re-attaches to the run's completed jobs"
    assert len(_packages(aws["sm"], cfg)) == packages, "no second model version for the same run"
    for r in others:
        assert _keys(aws["s3"], r["plan"].dataset_uri) == before[r["run_id"]]
        assert _keys(aws["s3"], r["plan"].report_uri("")) == before_reports[r["run_id"]]
    manifest = next(k for k in _keys(aws["s3"], second["plan"].dataset_uri) if k.endswith("_manifest.json"))
    assert manifest


def _xcoms(dag, run_id):
    """{task_id: XCom return value} of one run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag.dag_id, XComModel.run_id == run_id, XComModel.key == "return_value"
            )
        ).all()
        return {x.task_id: XComModel.deserialize_value(x) for x in rows}


def _package_of(aws, cfg, run_id):
    for summary in _packages(aws["sm"], cfg):
        package = aws["sm"].describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        if package["CustomerMetadataProperties"].get("dag_run_id") == run_id:
            return package
    raise AssertionError(f"no model package registered by {run_id}")


@pytest.fixture(scope="module")
def second_run(backfill, dag, aws, cfg):
    """Another run over the interval of the newest approved model (same day, later hour: same window, other run
    id). The gate compares with the newest approved model, here the source run's own, so the reused model is
    registered (a model reused from a rejected run would be rejected again, by the same evidence)."""
    source = next(run for run in reversed(backfill) if run["states"]["register"] == "success")
    when = source["when"] + dt.timedelta(hours=6)
    jobs = _jobs(aws["sm"])
    source_gate = _keys(aws["s3"], source["plan"].report_uri("evaluation", "gate.json"))
    with _task_logs() as lines:
        run_id, states = _run(dag, when)
    return {
        "log": " ".join(" ".join(lines).split()),
        "source": source,
        "run_id": run_id,
        "states": states,
        "plan": _plan(cfg, run_id, when),
        "jobs_before": jobs,
        "jobs_after": _jobs(aws["sm"]),
        "source_gate": source_gate,
    }


def test_a_second_run_of_an_interval_reuses_the_completed_jobs(second_run, dag, aws, cfg):
    source, plan = second_run["source"], second_run["plan"]
    assert plan.window == source["plan"].window and plan.run_hash != source["plan"].run_hash
    states = second_run["states"]
    for task in ("extract", "validate", "preprocess", "train", "evaluate", "gate", "register"):
        assert states[task] == "success", (task, states)
    assert second_run["jobs_after"] == second_run["jobs_before"], "no new processing or training job"

    xcoms, source_xcoms = _xcoms(dag, second_run["run_id"]), _xcoms(dag, source["run_id"])
    assert xcoms["extract"]["dataset_digest"] == source_xcoms["extract"]["dataset_digest"], "same data, same digest"
    for step in ("preprocess", "train", "evaluate"):
        cache = xcoms[step]["cache"]
        assert cache["reused"] is True, (step, cache)
        assert cache["source_run_id"] == source["run_id"] and cache["key"] == source_xcoms[step]["cache"]["key"]
        assert xcoms[step]["job_name"] == source_xcoms[step]["job_name"] == cache["source_job_name"]
    assert xcoms["train"]["model_uri"] == source_xcoms["train"]["model_uri"]
    validate = xcoms["validate"]["cache"]  # worker-mode validation: no job, the same reuse
    assert validate["reused"] is True and validate["source_run_id"] == source["run_id"], validate
    assert validate["key"] == source_xcoms["validate"]["cache"]["key"]
    assert xcoms["validate"]["result_uri"] == source_xcoms["validate"]["result_uri"]

    # the run's summary: the registered model names the reused steps; the gate wrote to this run's own folder
    props = _package_of(aws, cfg, second_run["run_id"])["CustomerMetadataProperties"]
    for step in ("preprocess", "train", "evaluate"):
        assert props[f"reused:{step}"] == f"{source_xcoms[step]['job_name']} from run {source['run_id']}"
    assert props["reused:validate"] == f"train_model.validate from run {source['run_id']}"
    assert xcoms["register"]["reused_steps"] == {k.split(":", 1)[1]: v for k, v in props.items() if ":" in k
                                                 and k.startswith("reused:")}  # fmt: skip
    assert props["training_job"] == source_xcoms["train"]["job_name"], "lineage names the job that trained it"
    assert xcoms["gate"]["gate_uri"] == plan.report_uri("evaluation", "gate.json")
    assert _keys(aws["s3"], source["plan"].report_uri("evaluation", "gate.json")) == second_run["source_gate"]

    # the task log says what was reused
    assert (
        f"reused outputs of train job {source_xcoms['train']['job_name']} from run {source['run_id']}, cache key "
        f"{xcoms['train']['cache']['key']}" in second_run["log"]
    )


def test_force_runs_the_jobs_again(second_run, dag, aws, cfg):
    source = second_run["source"]
    when = source["when"] + dt.timedelta(hours=12)
    run_id, states = _run(dag, when, {**CONF, "force": True})
    plan = _plan(cfg, run_id, when)
    assert plan.window == source["plan"].window
    assert states["evaluate"] == "success" and states["gate"] == "success", states
    processing, training = _jobs(aws["sm"])
    assert sorted(j for j in processing if plan.run_hash in j) == sorted(
        [plan.job_name("preprocess"), plan.job_name("evaluate")]
    ), "forced: its own processing jobs"
    assert [j for j in training if plan.run_hash in j] == [plan.job_name("train")], "forced: its own training job"
    xcoms = _xcoms(dag, run_id)
    assert all(xcoms[step]["cache"]["reused"] is False for step in ("validate", "preprocess", "train", "evaluate"))
    assert xcoms["train"]["model_uri"] != _xcoms(dag, source["run_id"])["train"]["model_uri"]


@contextlib.contextmanager
def _task_logs():
    """The log lines the tasks write while inside: ``dag.test`` runs them in this process and writes no log
    files, so every structlog event is recorded, formatted as the task log shows it. (sys.stderr stays as it
    is: the validation task's hang backstop hands its file descriptor to faulthandler.)"""
    import structlog

    lines: list[str] = []

    def record(_logger, _method, event_dict):
        event, args = event_dict.get("event"), event_dict.get("positional_args")
        try:
            lines.append(str(event) % tuple(args) if args else str(event))
        except (TypeError, ValueError):
            lines.append(f"{event} {args}")
        return event_dict

    processors = structlog.get_config()["processors"]
    processors.insert(0, record)  # in place: loggers already bound share this list
    try:
        yield lines
    finally:
        processors.remove(record)


@pytest.fixture(scope="module")
def corrupt_run(backfill, dag, devstack, cfg):
    from tests.conftest import DEVSTACK_TEST_SEED_KWARGS

    devstack.seed(**DEVSTACK_TEST_SEED_KWARGS, corrupt_on=CORRUPT_DAY)
    try:
        run_id, states = _run(dag, CORRUPT_RUN, {"window_days": 7})
    finally:
        devstack.seed(**DEVSTACK_TEST_SEED_KWARGS)
    plan = RunPlan.create(cfg, dag_id="train_model", run_id=run_id, anchor=CORRUPT_RUN, window_days=7)
    return run_id, states, plan


def test_bad_data_stops_at_validation_and_keeps_the_report(corrupt_run, aws):
    _, states, plan = corrupt_run
    assert states["extract"] == "success"
    assert states["validate"] == "failed", states
    assert all(states[t] in ("upstream_failed", "skipped") for t in ("preprocess", "train", "evaluate", "register"))
    report = _keys(aws["s3"], plan.report_uri("validation") + "/")
    assert any(k.endswith("validation_result.json") for k in report), report
    result = _json(aws["s3"], f"s3://{plan.bucket}/" + next(k for k in report if k.endswith("validation_result.json")))
    assert result["success"] is False or result.get("summary", {}).get("success") is False
    processing, training = _jobs(aws["sm"])
    assert not [j for j in processing + training if plan.run_hash in j], "no SageMaker job for bad data"
