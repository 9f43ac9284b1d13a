"""include/code/monitoring/checks.py: the monitoring job's logic that needs no Evidently (join, metrics,
statuses, decision, CloudWatch datums), in-process."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from tests.unit.include import monitoring_data as data
from tests.unit.include.conftest import CODE, load_script


@pytest.fixture(scope="module")
def checks() -> ModuleType:
    return load_script(CODE / "monitoring" / "checks.py", "monitoring_checks")


@pytest.fixture(scope="module")
def bias() -> ModuleType:
    return load_script(CODE / "common" / "bias.py", "common_bias")


def config(checks: ModuleType, **overrides):
    return checks.parse_config(json.dumps(data.monitor_config(**overrides)))


def test_the_monitor_module_does_not_need_evidently_to_be_imported(checks: ModuleType) -> None:
    source = (CODE / "monitoring" / "checks.py").read_text()
    assert "evidently" not in source.split('"""', 2)[2]
    assert "matplotlib" not in source.split('"""', 2)[2]


# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"endpoint": ""}, "lacks endpoint", id="no-endpoint"),
        pytest.param({"interval_end": "2026-03-02T08:00:00Z"}, "is not after interval_start", id="reversed"),
        pytest.param({"interval_start": "yesterday"}, "interval_start is not an ISO 8601 time", id="bad-time"),
        pytest.param({"categorical_features": ["colour"]}, "categorical_features must be a list of names", id="cat"),
        pytest.param({"thresholds": {"model_quality": {"recall_min": "x"}}}, "recall_min must be a number", id="thr"),
        pytest.param({"thresholds": {"drift": {"share": 0}}}, "drift.share must be in", id="share"),
    ],
)  # fmt: skip
def test_a_bad_config_is_refused_naming_the_field(checks: ModuleType, change: dict, message: str) -> None:
    with pytest.raises(checks.MonitorInputError, match=message):
        config(checks, **change)


def test_no_config_at_all_is_named(checks: ModuleType) -> None:
    with pytest.raises(checks.MonitorInputError, match="MONITOR_CONFIG"):
        checks.parse_config(None)


# ------------------------------------------------------------------------------------------------ reading + join


def test_capture_is_read_for_the_lookback_and_the_interval_is_filtered(checks: ModuleType, tmp_path: Path) -> None:
    cfg = config(checks)
    frame = data.traffic(rows=30)
    scores = data.scores_for(frame, recall_collapsed=False, seed=1)
    data.write_capture(tmp_path / "capture", frame.iloc[:10], scores[:10], data.LOOKBACK_START)  # lookback
    data.write_capture(tmp_path / "capture", frame.iloc[10:], scores[10:], data.INTERVAL_START)  # interval
    data.write_capture(tmp_path / "capture", frame.iloc[:5], scores[:5], data.INTERVAL_END)  # after: not read
    (tmp_path / "capture" / "broken.jsonl").write_text('{"captureData": \n')
    capture = checks.read_capture(tmp_path / "capture", cfg)
    assert len(capture.rows) == 30
    assert len(checks.interval_rows(capture.rows, cfg)) == 20
    assert capture.bad_records and capture.bad_records[0].startswith("broken.jsonl:1")
    assert capture.rows[checks.SCORE].to_numpy() == pytest.approx(scores)


def test_labels_join_inference_ids_and_fall_back_to_event_ids(checks: ModuleType, tmp_path: Path) -> None:
    cfg = config(checks)
    frame = data.traffic(rows=6)
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.3])
    data.write_capture(tmp_path / "with", frame.iloc[:3], scores[:3], data.INTERVAL_START)
    data.write_capture(tmp_path / "without", frame.iloc[3:], scores[3:], data.INTERVAL_START, with_ids=False)
    rows = pd.concat(
        [checks.read_capture(tmp_path / "with", cfg).rows, checks.read_capture(tmp_path / "without", cfg).rows]
    )
    ids = list(frame["transaction_id"])
    labels = pd.DataFrame(
        {
            # two by the caller's InferenceId, one by SageMaker's eventId, one for an inference never captured
            "eventId": [ids[0], ids[2], f"evt-{ids[4]}", "tx-unknown"],
            "label": [1, 0, 1, 1],
            "facet": ["retail", "premium", "retail", "retail"],
        }
    )
    joined = checks.join_labels(rows, labels)
    assert sorted(joined[checks.ROW_ID]) == sorted([ids[0], ids[2], f"evt-{ids[4]}"])
    assert dict(zip(joined[checks.ROW_ID], joined["label"], strict=True))[ids[2]] == 0


def test_a_later_label_replaces_an_earlier_one_and_bad_lines_are_named(checks: ModuleType, tmp_path: Path) -> None:
    folder = tmp_path / "labels" / "2026" / "03" / "04" / "10"
    folder.mkdir(parents=True)
    line = {"groundTruthData": {"data": "0", "encoding": "CSV"}, "eventMetadata": {"eventId": "tx-1"}}
    later = {**line, "groundTruthData": {"data": "1", "encoding": "CSV"}, "attributes": {"customer_segment": "smb"}}
    bad = {**line, "groundTruthData": {"data": "7", "encoding": "CSV"}}
    (folder / "a.jsonl").write_text(json.dumps(line) + "\n" + json.dumps(later) + "\n" + json.dumps(bad) + "\n")
    labels, problems = checks.read_labels(tmp_path / "labels", "customer_segment")
    assert labels.to_dict("records") == [{"eventId": "tx-1", "label": 1, "facet": "smb"}]
    assert len(problems) == 1 and "not 0 or 1" in problems[0]


def test_a_baseline_without_a_feature_is_refused_by_name(checks: ModuleType, tmp_path: Path) -> None:
    baseline = data.write_baseline(tmp_path / "baseline", rows=20)
    baseline.drop(columns=["channel"]).to_csv(tmp_path / "baseline" / "baseline.csv", index=False)
    with pytest.raises(checks.MonitorInputError, match=r"lacks the feature column\(s\) channel"):
        checks.read_baseline(tmp_path / "baseline", config(checks))
    with pytest.raises(checks.MonitorInputError, match="holds no CSV file"):
        checks.read_baseline(tmp_path / "nothing", config(checks))


# ------------------------------------------------------------------------------------------------ model quality


def test_classification_metrics_match_hand_computed_values(checks: ModuleType) -> None:
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.4, 0.05])
    metrics = checks.classification_metrics(labels, scores, 0.5)
    # predicted 1 1 0 1 0 0 0 0: TP 2, FN 1, FP 1, TN 4
    assert metrics["confusion_matrix"] == {"0": {"0": 4, "1": 1}, "1": {"0": 1, "1": 2}}
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    # pairs (positive, negative) ranked right: 0.9 beats 5, 0.6 beats 4 (not 0.7), 0.2 beats 2 -> 11 of 15
    assert metrics["auc"] == pytest.approx(11 / 15)


def test_auc_is_undefined_with_one_class(checks: ModuleType) -> None:
    assert checks.classification_metrics(np.array([0, 0]), np.array([0.1, 0.9]), 0.5)["auc"] is None


def _joined(checks: ModuleType, labels: list[int], scores: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {checks.SCORE: scores, "label": labels, "facet": ["retail"] * len(labels), checks.ROW_ID: range(len(labels))}
    )


@pytest.mark.parametrize(
    ("rows", "status"),
    [
        pytest.param(0, "no_labels", id="no-labels"),
        pytest.param(10, "too_few_labels", id="too-few"),
        pytest.param(60, "ok", id="enough"),
    ],
)
def test_model_quality_status_follows_the_labelled_rows(checks: ModuleType, rows: int, status: str) -> None:
    labels = [i % 2 for i in range(rows)]
    section = checks.model_quality(_joined(checks, labels, [0.9 if y else 0.1 for y in labels]), config(checks))
    assert section["status"] == status
    assert section["labelled"] == rows
    assert section["breaches"] == []


def test_collapsed_recall_is_a_breach_with_the_comparison(checks: ModuleType) -> None:
    labels = [i % 2 for i in range(60)]
    section = checks.model_quality(_joined(checks, labels, [0.1] * 60), config(checks))
    assert section["status"] == "breach"
    recall = next(b for b in section["breaches"] if b["metric"] == "recall")
    assert recall == {"metric": "recall", "value": 0.0, "threshold": 0.5, "comparison": "LessThanThreshold"}


# ------------------------------------------------------------------------------------------------ bias


def test_bias_uses_clarify_metrics_per_segment_and_flags_a_breach(checks: ModuleType, bias: ModuleType) -> None:
    # the model flags every smb row and no other: DPPL for smb = 0 - 1 = -1, beyond 0.5
    facet = ["smb"] * 30 + ["retail"] * 30
    joined = pd.DataFrame(
        {
            checks.SCORE: [0.9] * 30 + [0.1] * 30,
            "label": [i % 2 for i in range(60)],
            "facet": facet,
            checks.ROW_ID: range(60),
        }
    )
    section, report = checks.bias_section(joined, config(checks), bias)
    assert section["status"] == "breach"
    assert set(section["metrics"]) == {"retail", "smb"}
    smb = {m["name"]: m["value"] for m in section["metrics"]["smb"]}
    assert smb["DPPL"] == pytest.approx(-1.0)
    assert {(b["facet_value"], b["metric"]) for b in section["breaches"]} >= {("smb", "DPPL"), ("retail", "DPPL")}
    assert report["facets"]["customer_segment"][0]["metrics"][0]["name"] == "AD"


def test_bias_without_facet_values_is_no_labels(checks: ModuleType, bias: ModuleType) -> None:
    joined = _joined(checks, [1, 0], [0.9, 0.1]).assign(facet=None)
    section, report = checks.bias_section(joined, config(checks), bias)
    assert section["status"] == "no_labels" and report is None
    assert "customer_segment" in section["detail"]


# ------------------------------------------------------------------------------------------------ decision


def test_the_decision_gives_reasons_for_drift_and_quality_and_holds_on_bias(checks: ModuleType) -> None:
    drift = {"drifted": True, "share": 0.75, "share_threshold": 0.5}
    quality = {"status": "breach", "breaches": [{"metric": "recall", "value": 0.1, "threshold": 0.5}]}
    result = checks.decision(drift, quality, {"status": "breach"})
    assert result == {
        "retrain": True,
        "reasons": [
            {"check": "drift", "metric": "DriftShare", "value": 0.75, "threshold": 0.5},
            {"check": "model_quality", "metric": "recall", "value": 0.1, "threshold": 0.5},
        ],
        "bias_hold": True,
    }


@pytest.mark.parametrize("status", ["no_labels", "too_few_labels", "ok"])
def test_no_retraining_without_drift_or_a_quality_breach(checks: ModuleType, status: str) -> None:
    result = checks.decision({"drifted": False, "share": 0.1, "share_threshold": 0.5}, {"status": status}, {})
    assert result == {"retrain": False, "reasons": [], "bias_hold": False}


def test_metric_datums_are_cloudwatch_shaped_and_skip_undefined_values(checks: ModuleType) -> None:
    summary = {
        "endpoint": "ep",
        "interval": {"start": "2026-03-02T09:00:00Z", "end": "2026-03-02T10:00:00Z"},
        "rows": {"interval": 10, "labelled": 0},
        "drift": {"share": 0.5, "features": {"amount": {"score": 0.01}}},
        "data_quality": {"checks": [{"passed": True}, {"passed": False}]},
        "model_quality": {"status": "ok", "metrics": {"recall": 0.5, "auc": None}},
        "bias": {"facet": "seg", "metrics": {"smb": [{"name": "TE", "value": "Infinity"}, {"name": "DI", "value": 2}]}},
    }
    datums = {
        (d["MetricName"], tuple((x["Name"], x["Value"]) for x in d["Dimensions"])): d["Value"]
        for d in checks.metric_datums(summary)
    }
    assert datums[("DataQualityFailedChecks", (("Endpoint", "ep"),))] == 1
    assert datums[("FeatureDriftScore", (("Endpoint", "ep"), ("Feature", "amount")))] == 0.01
    assert datums[("ModelQuality", (("Endpoint", "ep"), ("Metric", "recall")))] == 0.5
    assert ("ModelQuality", (("Endpoint", "ep"), ("Metric", "auc"))) not in datums
    bias_keys = [k for k in datums if k[0] == "Bias"]
    assert bias_keys == [("Bias", (("Endpoint", "ep"), ("Facet", "seg"), ("FacetValue", "smb"), ("Metric", "DI")))]


# ------------------------------------------------------------------------------------------------ monitor.py


@pytest.fixture(scope="module")
def monitor() -> ModuleType:
    """The entrypoint, imported without Evidently (it imports Evidently only to make the report)."""
    return load_script(CODE / "monitoring" / "monitor.py", "monitoring_monitor")


def _value_drift(metric_id: str, column: str, method: str, threshold: float, value: float) -> dict:
    return {
        "id": metric_id,
        "config": {
            "type": "evidently:metric_v2:ValueDrift",
            "column": column,
            "method": method,
            "threshold": threshold,
        },
        "value": value,
    }


def test_the_drift_section_reads_evidentlys_tests_per_feature(checks: ModuleType, monitor: ModuleType) -> None:
    # the shape of Evidently 0.7's Snapshot.dict() for DataDriftPreset with include_tests=True
    snapshot = {
        "metrics": [
            {"id": "m0", "config": {"type": "evidently:metric_v2:DriftedColumnsCount"}, "value": {"share": 0.5}},
            _value_drift("m1", "amount", "K-S p_value", 0.05, 0.001),
            _value_drift("m2", "channel", "Jensen-Shannon distance", 0.1, 0.02),
        ],
        "tests": [
            {"id": "drift", "metric_config": {"metric_id": "m1"}, "status": "FAIL"},
            {"id": "drift", "metric_config": {"metric_id": "m2"}, "status": "SUCCESS"},
        ],
    }
    cfg = config(checks, features=["amount", "channel"], categorical_features=["channel"])
    section = monitor.drift_section(snapshot, cfg)
    assert section == {
        "drifted": True,  # 0.5 drifted, threshold 0.5
        "share": 0.5,
        "share_threshold": 0.5,
        "features": {
            "amount": {"drifted": True, "test": "K-S p_value", "score": 0.001, "threshold": 0.05},
            "channel": {"drifted": False, "test": "Jensen-Shannon distance", "score": 0.02, "threshold": 0.1},
        },
    }
    below = config(
        checks, features=["amount", "channel"], categorical_features=["channel"], thresholds={"drift": {"share": 0.75}}
    )
    assert monitor.drift_section(snapshot, below)["drifted"] is False


def test_the_config_file_input_wins_over_the_environment(
    monitor: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_CONFIG", '{"from": "environment"}')
    assert monitor.read_config_text(tmp_path) == '{"from": "environment"}'
    (tmp_path / "config").mkdir()
    with pytest.raises(monitor.checks.MonitorInputError, match=r"holds no monitor_config\.json"):
        monitor.read_config_text(tmp_path)
    (tmp_path / "config" / "monitor_config.json").write_text('{"from": "file"}')
    assert monitor.read_config_text(tmp_path) == '{"from": "file"}'


def test_an_interval_without_traffic_is_reported_and_exits_0(
    monitor: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, output = tmp_path / "input", tmp_path / "output"
    data.write_baseline(inputs / "baseline", rows=50)
    frame = data.traffic(rows=20)
    # traffic only in the lookback window, none in the interval (no Evidently report is needed then)
    data.write_capture(
        inputs / "capture", frame, data.scores_for(frame, recall_collapsed=False, seed=1), data.LOOKBACK_START
    )
    (inputs / "config").mkdir()
    (inputs / "config" / "monitor_config.json").write_text(json.dumps(data.monitor_config()))
    assert monitor.main(["--input-dir", str(inputs), "--output-dir", str(output)]) == 0
    summary = json.loads((output / "summary.json").read_text())
    assert summary["rows"] == {"interval": 0, "labelled": 0, "lookback": 20}
    assert summary["drift"]["drifted"] is False and summary["drift"]["share"] is None
    failed = [c["name"] for c in summary["data_quality"]["checks"] if not c["passed"]]
    assert failed == ["rows_in_interval"]
    assert summary["model_quality"]["status"] == "no_labels"
    assert summary["decision"] == {"retrain": False, "reasons": [], "bias_hold": False}
    assert json.loads((output / "analysis.json").read_text()) == {"version": "1.0"}
    assert (output / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (output / "drift.png").read_bytes().startswith(b"\x89PNG")
    assert (output / "model_quality.png").read_bytes().startswith(b"\x89PNG")


def test_a_bad_input_exits_1_with_the_reason_in_the_exit_message(monitor: ModuleType, tmp_path: Path) -> None:
    inputs = tmp_path / "input"
    (inputs / "config").mkdir(parents=True)
    (inputs / "config" / "monitor_config.json").write_text(json.dumps(data.monitor_config()))
    message = tmp_path / "message"
    argv = ["--input-dir", str(inputs), "--output-dir", str(tmp_path / "out"), "--exit-message-file", str(message)]
    assert monitor.main(argv) == 1
    assert "the baseline input" in message.read_text() and "holds no CSV file" in message.read_text()


def _payload(content_type: str, body: str, encoding: str) -> dict:
    return {"observedContentType": content_type, "data": body, "encoding": encoding}


@pytest.mark.parametrize(
    ("payload", "rows"),
    [
        pytest.param(_payload("text/csv", "1,a\n2,b", "CSV"), [["1", "a"], ["2", "b"]], id="csv"),
        pytest.param(_payload("text/csv", "y,x\nb,2", "CSV"), [["2", "b"]], id="csv-header"),
        pytest.param(
            _payload("application/json", '{"instances": [{"x": 3, "y": "c", "id": 9}]}', "JSON"),
            [["3", "c"]],
            id="json-records",
        ),
        pytest.param(_payload("application/octet-stream", "NCxk", "BASE64"), [["4", "d"]], id="base64"),
    ],
)
def test_captured_requests_in_each_encoding_give_the_feature_rows(
    checks: ModuleType, payload: dict, rows: list
) -> None:
    assert checks._input_rows(payload, ["x", "y"]) == rows


def test_captured_json_responses_give_the_score_of_each_row(checks: ModuleType) -> None:
    body = '{"predictions": [{"fraud_probability": 0.9, "is_fraud": 1}, {"fraud_probability": 0.1, "is_fraud": 0}]}'
    assert checks._scores({"observedContentType": "application/json", "data": body, "encoding": "JSON"}) == [0.9, 0.1]
    assert checks._scores({"observedContentType": "text/csv", "data": "0.9,1\n0.1,0\n", "encoding": "CSV"}) == [
        0.9,
        0.1,
    ]


@pytest.mark.parametrize(
    ("score", "threshold", "test", "strength"),
    [
        pytest.param(0.05, 0.05, "K-S p_value", 1.0, id="p-value-at-threshold"),
        pytest.param(0.0025, 0.05, "K-S p_value", 2.0, id="p-value-squared-is-twice"),
        pytest.param(0.0, 0.05, "Z-test p_value", float("inf"), id="p-value-zero"),
        pytest.param(0.05, 0.1, "Wasserstein distance (normed)", 0.5, id="distance-below"),
    ],
)
def test_drift_strength_puts_every_test_on_one_scale(
    monitor: ModuleType, score: float, threshold: float, test: str, strength: float
) -> None:
    assert monitor.drift_strength(score, threshold, test) == pytest.approx(strength)


def test_code_package_ships_the_job_with_the_bias_metrics() -> None:
    from ml_lifecycle.code_package import package_component

    files = package_component(CODE, "monitoring").files
    assert {"monitor.py", "checks.py", "common/bias.py", "common/contract.py"} <= set(files)


def test_history_gives_model_quality_over_time_oldest_first(checks: ModuleType, tmp_path: Path) -> None:
    def summary(start: str, recall: float | None, endpoint: str = "fraud-endpoint") -> dict:
        return {
            "endpoint": endpoint,
            "interval": {"start": start},
            "model_quality": {"status": "ok", "metrics": {"recall": recall}},
        }

    for folder, document in {
        "b": summary("2026-03-02T08:00:00Z", 0.8),
        "a": summary("2026-03-02T07:00:00Z", 0.9),
        "other": summary("2026-03-02T07:30:00Z", 0.1, endpoint="another-endpoint"),
        "stale": summary("2026-03-02T09:00:00Z", 0.7),  # this interval, run before: replaced by the current one
    }.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "summary.json").write_text(json.dumps(document))
    (tmp_path / "broken.json").write_text("{")
    history = checks.read_history(tmp_path, "fraud-endpoint")
    points = checks.history_points(history, summary("2026-03-02T09:00:00Z", None))
    assert [(p["start"][11:16], p["recall"]) for p in points] == [("07:00", 0.9), ("08:00", 0.8), ("09:00", None)]
