"""Pieces of the container scripts tested in-process: split rules, argument handling, report maths."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from tests.unit.include.conftest import CODE, SCRIPTS, load_script

SCHEMA = json.loads((CODE.parent / "code" / "common" / "features_schema.json").read_text())


@pytest.fixture(scope="module")
def preprocess() -> ModuleType:
    return load_script(SCRIPTS["preprocess"], "fraud_preprocess")


@pytest.fixture(scope="module")
def train() -> ModuleType:
    return load_script(SCRIPTS["train"], "fraud_train")


@pytest.fixture(scope="module")
def evaluate() -> ModuleType:
    return load_script(SCRIPTS["evaluate"], "fraud_evaluate")


@pytest.fixture(scope="module")
def inference() -> ModuleType:
    return load_script(SCRIPTS["inference"], "fraud_inference")


# ------------------------------------------------------------------------------------------------ preprocess


def test_scripts_follow_the_dataset_contract(preprocess: ModuleType, inference: ModuleType) -> None:
    kinds = {c["name"]: c["kind"] for c in SCHEMA["columns"]}
    assert preprocess.RAW_FEATURES == SCHEMA["features"]
    assert list(inference.DEFAULT_FEATURES) == SCHEMA["features"]
    assert preprocess.KEY_COLUMNS == SCHEMA["keys"]
    # an attribute is in the data (the bias facet), never a model input
    assert preprocess.ATTRIBUTE_COLUMNS == SCHEMA["attributes"] == ["customer_segment"]
    assert "customer_segment" not in preprocess.RAW_FEATURES
    assert preprocess.LABEL == SCHEMA["label"]
    assert set(preprocess.CATEGORICAL_FEATURES) == {
        n for n, k in kinds.items() if k == "categorical" and n not in SCHEMA["attributes"]
    }
    assert set(preprocess.BOOLEAN_FEATURES) == {n for n, k in kinds.items() if k == "boolean"}
    assert set(preprocess.NUMERIC_FEATURES) == {n for n, k in kinds.items() if k == "numeric"}


def test_time_split_never_shares_a_timestamp_between_splits(
    preprocess: ModuleType, make_feature_frame: Callable[..., pd.DataFrame]
) -> None:
    frame = make_feature_frame(rows=300, days=3, seed=2)
    # heavy ties: every transaction of an hour gets the same timestamp
    frame["event_ts"] = frame["event_ts"].dt.floor("h")
    splits = preprocess.time_split(frame.sample(frac=1.0, random_state=1), 0.2, 0.2)
    assert splits["train"]["event_ts"].max() < splits["validation"]["event_ts"].min()
    assert splits["validation"]["event_ts"].max() < splits["test"]["event_ts"].min()
    assert sum(len(p) for p in splits.values()) == len(frame)
    assert len(splits["train"]) == pytest.approx(180, abs=20)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        pytest.param(lambda f: f.drop(columns=["channel"]), "missing column(s) channel", id="missing-column"),
        pytest.param(lambda f: f.assign(is_fraud=f["is_fraud"].where(f.index != 3)), "null is_fraud", id="null-label"),
        pytest.param(lambda f: f.assign(is_fraud=f["is_fraud"] * 2), "must be 0 or 1", id="label-not-binary"),
        pytest.param(lambda f: f.assign(is_fraud=0), "only one class", id="single-class"),
    ],
)  # fmt: skip
def test_preprocess_refuses_unusable_data_with_a_reason(
    preprocess: ModuleType,
    make_feature_frame: Callable[..., pd.DataFrame],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    spoil: Callable[[pd.DataFrame], pd.DataFrame],
    message: str,
) -> None:
    data = tmp_path / "input"
    data.mkdir()
    spoil(make_feature_frame(rows=200, days=2)).to_parquet(data / "part.parquet")
    code = preprocess.main(["--input-dir", str(data), "--output-root", str(tmp_path / "out")])
    assert code == 1
    assert message in caplog.text
    assert not (tmp_path / "out" / "train").exists()


def test_preprocess_without_input_files_fails_naming_the_folder(
    preprocess: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert preprocess.main(["--input-dir", str(tmp_path), "--output-root", str(tmp_path / "out")]) == 1
    assert f"no *.parquet files under {tmp_path}" in caplog.text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--test-fraction", "0"], "--test-fraction must be between 0 and 1", id="zero-test"),
        pytest.param(["--validation-fraction", "0.6", "--test-fraction", "0.4"], "sum < 1", id="no-train-left"),
    ],
)
def test_preprocess_rejects_bad_fractions(
    preprocess: ModuleType, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit):
        preprocess.parse_args(argv)
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------ train


def test_train_reads_sagemaker_rendered_hyperparameters(train: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_CHANNEL_TRAIN", "/data/train")
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", "/data/validation")
    monkeypatch.setenv("SM_MODEL_DIR", "/model")
    rendered = ["--_tuning_objective_metric", "validation:auc", "--eta", "0.1", "--max_depth", "6.0"]
    rendered += ["--num_round", "20", "--sagemaker_program", "train.py", "--scale_pos_weight", "3"]
    args = train.parse_args(rendered)
    assert (args.eta, args.max_depth, args.num_round, args.scale_pos_weight) == (0.1, 6, 20, 3.0)
    assert args.train == Path("/data/train")
    assert args.model_dir == Path("/model")
    assert train.parse_args([]).scale_pos_weight is None  # auto


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--eta", "0"], "--eta must be in (0, 1]", id="eta"),
        pytest.param(["--num_round", "2.5"], "expected an integer", id="fractional-rounds"),
        pytest.param(["--subsample", "1.5"], "--subsample must be in (0, 1]", id="subsample"),
        pytest.param(["--scale_pos_weight", "lots"], "a number or 'auto'", id="scale-pos-weight"),
        pytest.param(["--max_dpeth", "3"], "unrecognized arguments: --max_dpeth", id="misspelt"),
    ],
)
def test_train_rejects_bad_hyperparameters(
    train: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    for name in ("SM_CHANNEL_TRAIN", "SM_CHANNEL_VALIDATION", "SM_MODEL_DIR"):
        monkeypatch.setenv(name, "/x")
    with pytest.raises(SystemExit):
        train.parse_args(argv)
    assert message in capsys.readouterr().err


def test_train_needs_channel_paths(train: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    for name in ("SM_CHANNEL_TRAIN", "SM_CHANNEL_VALIDATION", "SM_MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit):
        train.parse_args([])
    assert "pass --train or set SM_CHANNEL_TRAIN" in capsys.readouterr().err


def test_train_bundles_the_inference_channel_over_the_checkout(
    train: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In a job the handlers arrive as the ``inference`` channel; that copy is the one bundled."""
    channel = tmp_path / "input" / "data" / "inference"
    channel.mkdir(parents=True)
    (channel / "inference.py").write_text("# handlers from the channel\n")
    monkeypatch.setenv("SM_CHANNEL_INFERENCE", str(channel))
    assert train.find_inference_code(None) == channel / "inference.py"
    explicit = tmp_path / "mine.py"
    explicit.write_text("# handlers named on the command line\n")
    assert train.find_inference_code(explicit) == explicit


def test_train_outside_the_checkout_needs_the_inference_channel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``sourcedir.tar.gz`` holds only the training folder: without the channel there are no handlers."""
    shipped = tmp_path / "opt" / "ml" / "code"
    shipped.mkdir(parents=True)
    shutil.copy2(SCRIPTS["train"], shipped / "train.py")
    monkeypatch.delenv("SM_CHANNEL_INFERENCE", raising=False)
    module = load_script(shipped / "train.py", "fraud_train_shipped")
    with pytest.raises(module.TrainingError, match=r"add an 'inference' channel holding inference\.py"):
        module.find_inference_code(None)
    missing = tmp_path / "nowhere.py"
    with pytest.raises(module.TrainingError, match=re.escape(str(missing))):
        module.find_inference_code(missing)


def test_metric_definitions_match_only_their_own_line() -> None:
    definitions = json.loads((CODE / "training" / "metric_definitions.json").read_text())
    log = "validation:aucpr=0.400000;\nvalidation:auc=0.900000;\ntrain:auc=0.950000;\nbest_iteration=7;\n"
    values = {d["Name"]: re.findall(d["Regex"], log) for d in definitions}
    assert values["validation:auc"] == ["0.900000"]
    assert values["validation:aucpr"] == ["0.400000"]
    assert values["train:auc"] == ["0.950000"]
    assert values["best_iteration"] == ["7"]
    assert all(len(d["Regex"]) <= 500 and 1 <= len(d["Name"]) <= 255 for d in definitions)


def test_roc_auc_matches_scikit_learn(train: ModuleType) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.1).astype(float)
    scores = np.round(rng.random(500) + labels * 0.3, 2)  # rounded: plenty of ties
    assert train.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


# --------------------------------------------------------------------------------------------------- evaluate


def test_report_reproduces_the_model_quality_example(evaluate: ModuleType) -> None:
    """Four transactions, one fraud: SageMaker's documented binary-classification example."""
    labels = np.array([0, 0, 0, 1])
    scores = np.array([0.1, 0.6, 0.7, 0.9])
    report = evaluate.compute_report(labels, scores, 0.5)
    bcm = report["binary_classification_metrics"]
    assert bcm["confusion_matrix"] == {"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}}
    expected = {
        "recall": 1.0,
        "precision": 1 / 3,
        "accuracy": 0.5,
        "recall_best_constant_classifier": 1.0,
        "precision_best_constant_classifier": 0.25,
        "accuracy_best_constant_classifier": 0.25,
        "true_negative_rate": 1 / 3,
        "false_positive_rate": 2 / 3,
        "false_negative_rate": 0.0,
        "auc": 1.0,
        "f0_5": 0.3846153846153846,
        "f1": 0.5,
        "f2": 0.7142857142857143,
        "f0_5_best_constant_classifier": 0.29411764705882354,
        "f1_best_constant_classifier": 0.4,
        "f2_best_constant_classifier": 0.625,
    }
    for name, value in expected.items():
        assert bcm[name] == {"value": pytest.approx(value), "standard_deviation": "NaN"}, name
    assert report["summary"]["confusion_matrix"] == {"tn": 1, "fp": 2, "fn": 0, "tp": 1}


def test_single_class_test_set_reports_null_auc_instead_of_nan(evaluate: ModuleType) -> None:
    report = evaluate.compute_report(np.zeros(5, dtype=int), np.linspace(0, 1, 5), 0.5)
    assert report["summary"]["auc"] is None
    assert report["binary_classification_metrics"]["auc"]["value"] is None
    json.dumps(report, allow_nan=False)  # strict JSON: a gate can parse it


def test_evaluate_scores_the_xgboost_csv_when_no_raw_test_data(evaluate: ModuleType, pipeline, tmp_path: Path) -> None:
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    (test_dir / "test.csv").write_bytes((pipeline.processing / "test" / "test.csv").read_bytes())
    code = evaluate.main(
        [
            "--model-dir",
            str(pipeline.model_archive.parent),
            "--test-dir",
            str(test_dir),
            "--output-dir",
            str(tmp_path / "e"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    reference = json.loads((pipeline.evaluation / "evaluation.json").read_text())
    assert report["data"]["source"] == "test.csv"
    assert report["summary"]["auc"] == pytest.approx(reference["summary"]["auc"], abs=1e-6)


def test_evaluate_fails_clearly_without_a_model(evaluate: ModuleType, tmp_path: Path, caplog) -> None:
    code = evaluate.main(
        ["--model-dir", str(tmp_path), "--test-dir", str(tmp_path), "--output-dir", str(tmp_path / "e")]
    )
    assert code == 1
    assert "holds neither xgboost-model.json nor a model.tar.gz" in caplog.text
