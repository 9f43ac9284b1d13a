from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from ml_lifecycle.config import load_config
from ml_lifecycle.naming import (
    JOB_KINDS,
    NamingError,
    RunPlan,
    run_anchor,
    run_hash,
    sagemaker_name,
    training_window,
)

SM_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


@pytest.fixture(scope="module")
def cfg():
    return load_config("local")


def _context(*, logical_date, run_after=None, run_id="manual__x", window_days=None, dag_id="train_model"):
    params = {} if window_days is None else {"window_days": window_days}
    return {
        "logical_date": logical_date,
        "dag_run": SimpleNamespace(run_after=run_after or logical_date),
        "run_id": run_id,
        "dag": SimpleNamespace(dag_id=dag_id),
        "params": params,
    }


@pytest.mark.parametrize(
    ("anchor", "days", "key"),
    [
        pytest.param(datetime(2026, 3, 1, tzinfo=UTC), 59, "20260101-20260301", id="scheduled-midnight"),
        pytest.param(datetime(2026, 3, 1, 13, 45, 12, tzinfo=UTC), 59, "20260101-20260301", id="manual-afternoon"),
        pytest.param(
            datetime(2026, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=5))), 1, "20260227-20260228",
            id="non-utc-anchor-converted-first",
        ),
        pytest.param(datetime(2024, 3, 1, tzinfo=UTC), 1, "20240229-20240301", id="leap-day"),
    ],
)  # fmt: skip
def test_window_ends_at_midnight_utc_of_the_anchor(anchor, days, key):
    window = training_window(anchor, days)
    assert window.key == key
    assert window.end.hour == window.end.minute == 0
    assert window.end.tzinfo == UTC
    assert window.days == days


@pytest.mark.parametrize(
    ("anchor", "days"),
    [
        pytest.param(datetime(2026, 3, 1), 7, id="naive-anchor"),
        pytest.param(datetime(2026, 3, 1, tzinfo=UTC), 0, id="zero-days"),
        pytest.param(datetime(2026, 3, 1, tzinfo=UTC), True, id="bool-days"),
    ],
)
def test_bad_window_inputs_are_rejected(anchor, days):
    with pytest.raises(NamingError):
        training_window(anchor, days)


@pytest.mark.parametrize(
    "context",
    [
        pytest.param(
            _context(logical_date=datetime(2026, 3, 1, tzinfo=UTC), run_id="scheduled__2026-03-01T00:00:00+00:00"),
            id="scheduled-cron-trigger",
        ),
        pytest.param(
            _context(logical_date=datetime(2026, 3, 1, 9, 12, tzinfo=UTC), run_id="manual__2026-03-01T09:12:00+00:00"),
            id="manual-from-ui",
        ),
        pytest.param(
            _context(logical_date=None, run_after=datetime(2026, 3, 1, 17, 3, tzinfo=UTC), run_id="asset_triggered__x"),
            id="asset-triggered-no-logical-date",
        ),
        pytest.param(
            _context(logical_date=datetime(2026, 3, 1, tzinfo=UTC), run_id="backfill__2026-03-01T00:00:00+00:00"),
            id="backfill",
        ),
    ],
)  # fmt: skip
def test_every_run_type_gets_the_same_window(cfg, context):
    plan = RunPlan.from_context({**context, "params": {"window_days": 59}}, cfg)
    assert plan.window.key == "20260101-20260301"


def test_window_days_defaults_to_config(cfg):
    plan = RunPlan.from_context(_context(logical_date=datetime(2026, 3, 1, tzinfo=UTC)), cfg)
    assert plan.window.days == cfg.training.window_days


def test_run_without_any_date_is_an_error():
    with pytest.raises(NamingError, match="logical date"):
        run_anchor({"logical_date": None, "dag_run": SimpleNamespace(run_after=None)})


def test_names_are_stable_per_run_and_differ_between_runs(cfg):
    anchor = datetime(2026, 3, 1, tzinfo=UTC)
    a1 = RunPlan.create(cfg, dag_id="train_model", run_id="manual__a", anchor=anchor)
    a2 = RunPlan.create(cfg, dag_id="train_model", run_id="manual__a", anchor=anchor)
    b = RunPlan.create(cfg, dag_id="train_model", run_id="manual__b", anchor=anchor)
    assert a1.as_dict() == a2.as_dict()
    assert a1.job_name("train") != b.job_name("train")
    assert a1.dataset_uri == b.dataset_uri, "runs over one window share the interval's dataset"
    assert a1.job_uri("train") != b.job_uri("train")
    assert run_hash("train_model", "manual__a") != run_hash("other_dag", "manual__a")


@pytest.mark.parametrize("kind", [pytest.param(k, id=k) for k in JOB_KINDS])
@pytest.mark.parametrize("try_number", [pytest.param(1, id="try1"), pytest.param(12, id="try12")])
def test_job_names_are_valid_sagemaker_names(cfg, kind, try_number):
    plan = RunPlan.create(cfg, dag_id="train_model", run_id="manual__x", anchor=datetime(2026, 3, 1, tzinfo=UTC))
    long_prefix = RunPlan(**{**plan.__dict__, "name_prefix": "abcdefghijkl"})
    for p in (plan, long_prefix):
        name = p.job_name(kind, try_number)
        assert SM_NAME.match(name), name
        assert len(name) <= JOB_KINDS[kind]
        assert p.run_hash in name, "the run hash keeps names unique per run"
        assert name.endswith(f"-r{try_number}") == (try_number > 1)


def test_job_name_keeps_the_window_date_when_it_fits(cfg):
    plan = RunPlan.create(cfg, dag_id="train_model", run_id="r", anchor=datetime(2026, 3, 1, tzinfo=UTC))
    assert plan.job_name("train") == f"fraud-train-20260301-{plan.run_hash}"


def test_unknown_job_kind_is_rejected(cfg):
    plan = RunPlan.create(cfg, dag_id="d", run_id="r", anchor=datetime(2026, 3, 1, tzinfo=UTC))
    with pytest.raises(NamingError, match="unknown job kind"):
        plan.job_name("deploy")


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        pytest.param(("Fraud_Model", "train", "x"), "Fraud-Model-train-x", id="underscores"),
        pytest.param(("a--b", "--c"), "a-b-c", id="dash-runs"),
        pytest.param(("x" * 80, "tail"), "x" * 58 + "-tail", id="cut-from-the-front"),
    ],
)
def test_sagemaker_name_sanitises(parts, expected):
    assert sagemaker_name(*parts) == expected


def test_s3_layout_is_interval_and_run_keyed(cfg):
    plan = RunPlan.create(cfg, dag_id="train_model", run_id="r", anchor=datetime(2026, 3, 1, tzinfo=UTC),
                          window_days=59)  # fmt: skip
    bucket = cfg.storage.bucket
    assert plan.dataset_uri == f"s3://{bucket}/datasets/train_model/20260101-20260301/"
    assert plan.job_uri("preprocess", "train") == (
        f"s3://{bucket}/jobs/train_model/20260101-20260301/{plan.run_hash}/preprocess/train"
    )
    assert plan.report_uri("gate", "gate.json").startswith(f"s3://{bucket}/reports/train_model/20260101-20260301/")
