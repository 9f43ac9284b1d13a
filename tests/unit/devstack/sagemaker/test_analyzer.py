"""The devstack Model Monitor analyzer: statistics, constraints, drift and violations, and its CLI contract."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest

from devstack.monitor_analyzer.__main__ import main
from devstack.monitor_analyzer.datasets import NoDataError, read_capture, read_csv
from devstack.monitor_analyzer.stats import (
    Dataset,
    KLLSketch,
    categorical_distance,
    check,
    column_type,
    numeric_distance,
    robust,
    statistics,
    suggest_constraints,
)


def _dataset(rows: int, mean: float, channels: list[str], seed: int = 1) -> Dataset:
    rng = random.Random(seed)
    data = [[f"{rng.gauss(mean, 10):.2f}", str(rng.randint(0, 5)), rng.choice(channels)] for _ in range(rows)]
    return Dataset(["amount", "count", "channel"], data)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(["1", "2", None], "Integral", id="integral"),
        pytest.param(["1", "2.5"], "Fractional", id="fractional"),
        pytest.param([1, 2.0], "Fractional", id="python-numbers"),
        pytest.param(["1", "x"], "String", id="string"),
        pytest.param([None, ""], "Unknown", id="no-values"),
        pytest.param([True, False], "Integral", id="booleans"),
    ],
)
def test_column_types(values: list[Any], expected: str) -> None:
    assert column_type(values) == expected


def test_statistics_have_sagemaker_shape() -> None:
    stats = statistics(Dataset(["x", "c"], [["1", "a"], ["3", "b"], [None, "a"], ["5", "a"]]))

    assert stats["version"] == 0.0
    assert stats["dataset"] == {"item_count": 4}
    x, c = stats["features"]
    num = x["numerical_statistics"]
    assert x["inferred_type"] == "Integral"
    assert num["common"] == {"num_present": 3, "num_missing": 1}
    assert (num["mean"], num["sum"], num["min"], num["max"]) == (3.0, 9.0, 1.0, 5.0)
    buckets = num["distribution"]["kll"]["buckets"]
    assert len(buckets) == 10
    assert buckets[0]["lower_bound"] == 1.0 and buckets[-1]["upper_bound"] == 5.0
    assert sum(b["count"] for b in buckets) == 3.0
    assert num["distribution"]["kll"]["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
    assert c["string_statistics"]["distinct_count"] == 2.0
    assert c["string_statistics"]["distribution"]["categorical"]["buckets"][0] == {"value": "a", "count": 3}


def test_suggested_constraints() -> None:
    constraints = suggest_constraints(statistics(_dataset(200, 50.0, ["POS", "ECOM"])))

    amount, count, channel = constraints["features"]
    assert amount == {
        "name": "amount",
        "inferred_type": "Fractional",
        "completeness": 1.0,
        "num_constraints": {"is_non_negative": True},
    }
    assert count["inferred_type"] == "Integral"
    assert channel["string_constraints"] == {"domains": ["ECOM", "POS"]}
    assert constraints["monitoring_config"]["distribution_constraints"] == {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
    }


def test_kll_sketch_cdf_stays_close_to_exact_beyond_one_level() -> None:
    sketch = KLLSketch(k=64)
    values = list(range(5000))
    random.Random(3).shuffle(values)
    for value in values:
        sketch.update(float(value))
    assert len(sketch.levels) > 1
    assert sum(len(level) for level in sketch.levels) < 500
    for x in (500.0, 2500.0, 4500.0):
        assert abs(sketch.cdf(x) - x / 5000) < 0.05
    restored = KLLSketch.from_json(sketch.to_json())
    assert restored.cdf(2500.0) == sketch.cdf(2500.0)


def test_numeric_drift_distance_is_ks_with_robust_correction() -> None:
    base = statistics(_dataset(500, 50.0, ["POS"]))["features"][0]["numerical_statistics"]
    same = statistics(_dataset(500, 50.0, ["POS"], seed=2))["features"][0]["numerical_statistics"]
    shifted = statistics(_dataset(500, 80.0, ["POS"], seed=2))["features"][0]["numerical_statistics"]

    assert numeric_distance(base, same, "Robust") == 0.0
    assert numeric_distance(base, same, "Simple") < 0.1
    assert numeric_distance(base, shifted, "Simple") > 0.8
    simple = numeric_distance(base, shifted, "Simple")
    assert numeric_distance(base, shifted, "Robust") == pytest.approx(robust(simple, 500, 500))
    assert robust(0.5, 100, 100) == pytest.approx(0.5 - 1.8 * (200 / 10000) ** 0.5)
    assert robust(0.2, 100, 100) == 0.0


def test_categorical_distance() -> None:
    def block(counts: dict[str, int]) -> dict[str, Any]:
        return {"distribution": {"categorical": {"buckets": [{"value": k, "count": v} for k, v in counts.items()]}}}

    assert categorical_distance(block({"a": 50, "b": 50}), block({"a": 90, "b": 10}), "Simple") == pytest.approx(0.4)
    assert categorical_distance(block({"a": 50, "b": 50}), block({"c": 10}), "Simple") == pytest.approx(1.0)
    p_same = categorical_distance(block({"a": 500, "b": 500}), block({"a": 51, "b": 49}), drift_method="ChiSquared")
    p_drift = categorical_distance(block({"a": 500, "b": 500}), block({"a": 95, "b": 5}), drift_method="ChiSquared")
    assert p_same > 0.5 > 0.001 > p_drift


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(_dataset(300, 50.0, ["POS", "ECOM"], seed=9), [], id="undrifted"),
        pytest.param(
            _dataset(300, 90.0, ["POS", "ATM"], seed=9),
            [
                ("amount", "baseline_drift_check"),
                ("channel", "categorical_values_check"),
                ("channel", "baseline_drift_check"),
            ],
            id="drifted",
        ),
    ],
)
def test_checks(current: Dataset, expected: list[tuple[str, str]]) -> None:
    baseline_stats = statistics(_dataset(500, 50.0, ["POS", "ECOM"]))
    constraints = suggest_constraints(baseline_stats)
    types = {f["name"]: f["inferred_type"] for f in baseline_stats["features"]}

    violations, drift = check(current, statistics(current, types), constraints, baseline_stats)

    assert sorted((v["feature_name"], v["constraint_check_type"]) for v in violations) == sorted(expected)
    assert set(drift) == {"amount", "count", "channel"}
    for violation in violations:
        if violation["constraint_check_type"] == "baseline_drift_check":
            assert violation["description"].startswith("Baseline drift distance: ")
            assert violation["description"].endswith("exceeds threshold: 0.1")


def test_type_completeness_and_column_checks() -> None:
    baseline = Dataset(["n", "s"], [["1", "a"], ["2", "b"]])
    stats = statistics(baseline)
    constraints = suggest_constraints(stats)
    current = Dataset(["n", "s", "extra"], [["1.5", "a", "x"], [None, "a", "y"]])

    violations, _ = check(current, statistics(current, {"n": "Integral"}), constraints, None)

    kinds = {(v["feature_name"], v["constraint_check_type"]): v["description"] for v in violations}
    assert kinds[("n", "data_type_check")] == (
        "Data type match requirement is not met. Expected data type: Integral, Expected match: 100.0%. "
        "Observed: Only 0.0% of data is Integral."
    )
    assert ("n", "completeness_check") in kinds
    assert ("extra", "extra_column_check") in kinds


def test_disabled_evaluation_reports_nothing() -> None:
    stats = statistics(Dataset(["n"], [["1"], ["2"]]))
    constraints = suggest_constraints(stats)
    constraints["monitoring_config"]["evaluate_constraints"] = "Disabled"
    current = Dataset(["n"], [["x"], ["y"]])
    assert check(current, statistics(current, {"n": "Integral"}), constraints, stats)[0] == []


def _capture_line(inputs: str, output: str, when: str, encoding: str = "CSV") -> str:
    data = base64.b64encode(inputs.encode()).decode() if encoding == "BASE64" else inputs
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": data,
                    "encoding": encoding,
                },
                "endpointOutput": {
                    "observedContentType": "text/csv",
                    "mode": "OUTPUT",
                    "data": output,
                    "encoding": "CSV",
                },
            },
            "eventMetadata": {"eventId": "e", "inferenceTime": when},
            "eventVersion": "0",
        }
    )


def test_capture_reader_puts_output_first_filters_time_and_names_by_baseline(tmp_path: Path) -> None:
    import datetime as dt

    hour = tmp_path / "ep" / "AllTraffic" / "2026" / "01" / "01" / "10"
    hour.mkdir(parents=True)
    (hour / "00-00-000-x.jsonl").write_text(
        "\n".join(
            [
                _capture_line("5,POS", "0.5", "2026-01-01T10:10:00Z"),
                _capture_line("7,ATM", "0.7", "2026-01-01T10:20:00Z", encoding="BASE64"),
                _capture_line("9,POS", "0.9", "2026-01-01T11:00:00Z"),
            ]
        )
    )
    start = dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    end = dt.datetime(2026, 1, 1, 11, tzinfo=dt.UTC)

    dataset = read_capture(tmp_path, ["endpointInput", "endpointOutput"], start, end, ["score", "amount", "channel"])

    assert dataset.columns == ["score", "amount", "channel"]
    assert dataset.rows == [["0.5", "5", "POS"], ["0.7", "7", "ATM"]]
    with pytest.raises(NoDataError, match="Job inputs had no data"):
        read_capture(tmp_path, ["endpointInput"], end + dt.timedelta(hours=1), end + dt.timedelta(hours=2))


def test_cli_baselines_then_monitors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = _dataset(200, 50.0, ["POS", "ECOM"]).rows
    (data / "train.csv").write_text("amount,count,channel\n" + "\n".join(",".join(r) for r in rows))
    baseline_out = tmp_path / "baseline"
    opt_ml = tmp_path / "opt_ml"
    monkeypatch.setenv("dataset_format", json.dumps({"csv": {"header": True}}))
    monkeypatch.setenv("dataset_source", str(data))
    monkeypatch.setenv("output_path", str(baseline_out))

    assert main(["--opt-ml", str(opt_ml)]) == 0
    assert (opt_ml / "output" / "message").read_text() == "Completed: Job completed successfully with no violations."
    assert read_csv(data, True).columns == ["amount", "count", "channel"]

    drifted = tmp_path / "drifted"
    drifted.mkdir()
    (drifted / "now.csv").write_text(
        "amount,count,channel\n" + "\n".join(",".join(r) for r in _dataset(200, 95.0, ["POS", "ECOM"], seed=4).rows)
    )
    monkeypatch.setenv("dataset_source", str(drifted))
    monkeypatch.setenv("output_path", str(tmp_path / "report"))
    monkeypatch.setenv("baseline_constraints", str(baseline_out / "constraints.json"))
    monkeypatch.setenv("baseline_statistics", str(baseline_out / "statistics.json"))

    assert main(["--opt-ml", str(opt_ml)]) == 0
    message = (opt_ml / "output" / "message").read_text()
    assert message == "CompletedWithViolations: Job completed successfully with 1 violations."
    report = json.loads((tmp_path / "report" / "constraint_violations.json").read_text())
    assert [v["feature_name"] for v in report["violations"]] == ["amount"]
    assert (tmp_path / "report" / "constraints.json").read_text() == (baseline_out / "constraints.json").read_text()


def test_cli_failure_writes_message_and_exits_255(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("dataset_format", json.dumps({"csv": {"header": True}}))
    monkeypatch.setenv("dataset_source", str(empty))
    monkeypatch.setenv("output_path", str(tmp_path / "out"))
    assert main(["--opt-ml", str(tmp_path)]) == 255
    assert (tmp_path / "output" / "message").read_text() == "Job inputs had no data"
