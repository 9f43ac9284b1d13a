"""preprocess.py -> train.py -> evaluate.py run as separate processes on container-shaped folders."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.unit.include.conftest import CODE, PipelineRun, load_script

SCHEMA = json.loads((CODE.parents[0] / "code" / "common" / "features_schema.json").read_text())
METRIC_DEFINITIONS = json.loads((CODE / "training" / "metric_definitions.json").read_text())


def _csv(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", ndmin=2)


def test_preprocess_writes_every_output(pipeline: PipelineRun) -> None:
    root = pipeline.processing
    for relative in (
        "train/train.csv",
        "validation/validation.csv",
        "test/test.csv",
        "test/test_raw.parquet",
        "test/train_attributes.parquet",
        "baseline/baseline.csv",
        "preprocessor/preprocessor.joblib",
        "preprocessor/feature_spec.json",
    ):
        assert (root / relative).is_file(), relative


def test_splits_are_headerless_label_first_and_cover_every_row(pipeline: PipelineRun) -> None:
    spec = json.loads((pipeline.processing / "preprocessor" / "feature_spec.json").read_text())
    width = 1 + len(spec["output_features"])
    sizes = {}
    for name in ("train", "validation", "test"):
        table = _csv(pipeline.processing / name / f"{name}.csv")
        assert table.shape[1] == width
        assert set(np.unique(table[:, 0])) <= {0.0, 1.0}
        sizes[name] = table.shape[0]
        assert spec["splits"][name]["rows"] == table.shape[0]
    assert sum(sizes.values()) == len(pipeline.dataset)
    assert sizes["train"] > sizes["validation"] > 0
    assert sizes["test"] > 0
    # one-hot columns for both categoricals, named after the contract's categories
    assert "channel_ECOM" in spec["output_features"]
    assert "merchant_category_travel" in spec["output_features"]


def test_split_is_by_time_without_leakage(pipeline: PipelineRun) -> None:
    spec = json.loads((pipeline.processing / "preprocessor" / "feature_spec.json").read_text())
    splits = spec["splits"]
    assert splits["train"]["event_ts_max"] < splits["validation"]["event_ts_min"]
    assert splits["validation"]["event_ts_max"] < splits["test"]["event_ts_min"]
    test_raw = pd.read_parquet(pipeline.processing / "test" / "test_raw.parquet")
    newest = pipeline.dataset.sort_values("event_ts").tail(len(test_raw))
    assert set(test_raw["transaction_id"]) == set(newest["transaction_id"])


def test_preprocess_prints_rows_and_fraud_rate_per_split(pipeline: PipelineRun) -> None:
    for name in ("train", "validation", "test"):
        assert re.search(rf"split={name} rows=\d+ fraud_rows=\d+ fraud_rate=0\.\d{{4}}", pipeline.logs["preprocess"])


def test_baseline_has_the_inference_columns_in_contract_order(pipeline: PipelineRun) -> None:
    baseline = pd.read_csv(pipeline.processing / "baseline" / "baseline.csv")
    assert list(baseline.columns) == SCHEMA["features"]
    assert set(baseline["card_present"].unique()) <= {0, 1}


def test_training_metrics_parse_with_the_metric_definitions(pipeline: PipelineRun) -> None:
    found = {}
    for definition in METRIC_DEFINITIONS:
        values = re.findall(definition["Regex"], pipeline.logs["train"])
        assert values, f"{definition['Name']} not in the training log"
        found[definition["Name"]] = float(values[-1])
    assert 0.65 < found["validation:auc"] <= 1.0
    assert found["train:auc"] >= found["validation:auc"] - 0.05
    assert 0 < found["validation:logloss"] < 1
    assert found["best_iteration"] < 60


def test_model_dir_is_self_contained(pipeline: PipelineRun) -> None:
    names = {str(p.relative_to(pipeline.model_dir)) for p in pipeline.model_dir.rglob("*") if p.is_file()}
    assert {
        "xgboost-model.json",
        "preprocessor.joblib",
        "feature_spec.json",
        "code/inference.py",
        "code/common/contract.py",
        "code/common/features_schema.json",
        "training_metrics.json",
    } <= names
    # the handlers endpoints and batch transform load are the current ones, not a stale copy
    assert (pipeline.model_dir / "code" / "inference.py").read_bytes() == (
        CODE / "inference" / "inference.py"
    ).read_bytes()
    # with the contract the handlers were shipped with
    assert (pipeline.model_dir / "code" / "common" / "features_schema.json").read_bytes() == (
        CODE / "common" / "features_schema.json"
    ).read_bytes()
    report = json.loads((pipeline.model_dir / "training_metrics.json").read_text())
    assert report["hyperparameters"]["max_depth"] == 4
    assert report["hyperparameters"]["scale_pos_weight"] > 1  # auto: negatives / positives


def test_evaluation_report_layout_and_values(pipeline: PipelineRun) -> None:
    report = json.loads((pipeline.evaluation / "evaluation.json").read_text())
    bcm = report["binary_classification_metrics"]
    for name in ("auc", "au_prc", "precision", "recall", "f1", "accuracy"):
        assert set(bcm[name]) == {"value", "standard_deviation"}
        assert 0 <= bcm[name]["value"] <= 1
    summary = report["summary"]
    assert summary["auc"] == pytest.approx(bcm["auc"]["value"])
    assert summary["pr_auc"] == pytest.approx(bcm["au_prc"]["value"])
    assert summary["auc"] > 0.65
    assert summary["pr_auc"] > summary["positive_rate"]  # better than chance
    test_rows = len(pd.read_parquet(pipeline.processing / "test" / "test_raw.parquet"))
    matrix = bcm["confusion_matrix"]
    assert sum(matrix[a][p] for a in "01" for p in "01") == test_rows == summary["rows"]
    assert summary["confusion_matrix"]["tp"] == matrix["1"]["1"]
    curve = bcm["receiver_operating_characteristic_curve"]
    assert len(curve["false_positive_rates"]) == len(curve["true_positive_rates"]) >= 2
    assert report["data"]["source"] == "test_raw.parquet"
    assert "test:auc=" in pipeline.logs["evaluate"]


@pytest.mark.parametrize("image", ["roc_curve.png", "pr_curve.png", "confusion_matrix.png"])
def test_evaluation_writes_curve_and_confusion_matrix_images(pipeline: PipelineRun, image: str) -> None:
    assert (pipeline.evaluation / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _monitor_baseline(pipeline: PipelineRun) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader((pipeline.evaluation.parent / "evaluation-baseline" / "baseline.csv").open()))
    return rows[0], rows[1:]


def test_monitor_baseline_is_output_columns_then_input_columns(pipeline: PipelineRun) -> None:
    header, rows = _monitor_baseline(pipeline)
    assert header == ["fraud_probability", "is_fraud", *SCHEMA["features"]]
    test_raw = pd.read_parquet(pipeline.processing / "test" / "test_raw.parquet")
    assert len(rows) == len(test_raw)
    assert all(len(row) == len(header) for row in rows)
    report = json.loads((pipeline.evaluation / "evaluation.json").read_text())
    assert report["monitoring_baseline"]["rows"] == len(rows)
    assert report["monitoring_baseline"]["columns"] == header
    # inputs written as a client writes a CSV request: whole numbers and flags as integers
    for name in ("hour_of_day", "card_txn_count_24h", "is_weekend", "card_present"):
        column = header.index(name)
        assert all(re.fullmatch(r"\d+", row[column]) for row in rows), name


def test_monitor_baseline_outputs_are_what_the_endpoint_answers(pipeline: PipelineRun) -> None:
    handlers = load_script(pipeline.model_dir / "code" / "inference.py", "baseline_parity_inference")
    model = handlers.model_fn(str(pipeline.model_dir))
    header, rows = _monitor_baseline(pipeline)
    width = len(header) - len(model.features)
    sample = rows[:25]
    request = "".join(",".join(row[width:]) + "\n" for row in sample)
    answer, content_type = handlers.output_fn(
        handlers.predict_fn(handlers.input_fn(request, "text/csv"), model), "text/csv"
    )
    assert content_type == "text/csv"
    assert [line.split(",") for line in answer.splitlines()] == [row[:width] for row in sample]


def test_captured_csv_traffic_flattens_to_the_baseline_columns(pipeline: PipelineRun, tmp_path: Path) -> None:
    """A captured text/csv request and response line up with the baseline, column by column."""
    from devstack.monitor_analyzer.datasets import read_capture, read_csv
    from devstack.monitor_analyzer.stats import check, statistics, suggest_constraints
    from devstack.sagemaker.capture import build_record

    baseline_dir = pipeline.evaluation.parent / "evaluation-baseline"
    baseline = read_csv(baseline_dir, header=True)
    stats = statistics(baseline)
    width = 2
    records = []
    for start in range(0, len(baseline.rows), 50):
        chunk = baseline.rows[start : start + 50]
        records.append(
            build_record(
                {"CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]},
                request_body="".join(",".join(r[width:]) + "\n" for r in chunk).encode(),
                request_content_type="text/csv",
                response_body="".join(",".join(r[:width]) + "\n" for r in chunk).encode(),
                response_content_type="text/csv",
                inference_time=dt.datetime(2026, 3, 2, 10, 5, tzinfo=dt.UTC),
            )
        )
    capture = tmp_path / "capture" / "fraud" / "AllTraffic" / "2026" / "03" / "02" / "10"
    capture.mkdir(parents=True)
    (capture / "05-00-000-x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    names = [f["name"] for f in stats["features"]]
    live = read_capture(tmp_path / "capture", ["endpointInput", "endpointOutput"], None, None, names)
    assert live.columns == baseline.columns
    types = {f["name"]: f["inferred_type"] for f in stats["features"]}
    violations, drift = check(live, statistics(live, types), suggest_constraints(stats), stats)
    assert violations == [], violations
    assert set(drift) == set(baseline.columns)


def test_evaluation_measures_pre_training_bias_of_the_training_split_by_the_facet(pipeline: PipelineRun) -> None:
    import pandas as pd

    train = pd.read_parquet(pipeline.processing / "test" / "train_attributes.parquet")
    assert list(train.columns) == ["customer_segment", "is_fraud"]
    assert (
        len(train)
        == json.loads((pipeline.processing / "preprocessor" / "feature_spec.json").read_text())["splits"]["train"][
            "rows"
        ]
    )
    analysis = json.loads((pipeline.evaluation / "analysis.json").read_text())
    assert set(analysis) == {"version", "pre_training_bias_metrics"}
    section = analysis["pre_training_bias_metrics"]
    assert section["label"] == "is_fraud" and section["label_value_or_threshold"] == "1"
    groups = section["facets"]["customer_segment"]
    assert sorted(g["value_or_threshold"] for g in groups) == sorted(train["customer_segment"].unique())
    student = next(g for g in groups if g["value_or_threshold"] == "student")
    metrics = {m["name"]: m["value"] for m in student["metrics"]}
    assert set(metrics) == {"CI", "DPL", "KL", "JS", "LP", "TVD", "KS"}
    # CI as Clarify defines it: (n_a - n_d) / (n_a + n_d), the rest against the student segment
    n_d = int((train["customer_segment"] == "student").sum())
    assert metrics["CI"] == pytest.approx((len(train) - 2 * n_d) / len(train))
    rate = train.groupby(train["customer_segment"] == "student")["is_fraud"].mean()
    assert metrics["DPL"] == pytest.approx(rate[False] - rate[True])
    report = json.loads((pipeline.evaluation / "evaluation.json").read_text())
    assert report["bias"]["file"] == "analysis.json" and report["bias"]["facet"] == "customer_segment"
