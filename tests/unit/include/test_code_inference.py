"""The serving handlers bundled in model.tar.gz: request formats, responses and clear rejections."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from tests.unit.include.conftest import PipelineRun, load_script


@pytest.fixture(scope="module")
def handlers(pipeline: PipelineRun) -> ModuleType:
    """The inference.py that train.py copied into the model directory."""
    return load_script(pipeline.model_dir / "code" / "inference.py", "bundled_inference")


@pytest.fixture(scope="module")
def model(handlers: ModuleType, pipeline: PipelineRun) -> Any:
    return handlers.model_fn(str(pipeline.model_dir))


@pytest.fixture(scope="module")
def raw_rows(pipeline: PipelineRun) -> pd.DataFrame:
    return pd.read_parquet(pipeline.processing / "test" / "test_raw.parquet").head(5)


def _features(model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    return rows[model.features]


def _csv_body(frame: pd.DataFrame, header: bool = False) -> str:
    out = frame.copy()
    for column in ("is_weekend", "card_present", "is_foreign"):
        out[column] = out[column].astype(int)
    return out.to_csv(index=False, header=header)


def _score(handlers: ModuleType, model: Any, body: str | bytes, content_type: str) -> np.ndarray:
    prediction = handlers.predict_fn(handlers.input_fn(body, content_type), model)
    return prediction["probabilities"]


def test_scores_match_the_preprocessed_test_split(
    handlers: ModuleType, model: Any, pipeline: PipelineRun, raw_rows: pd.DataFrame
) -> None:
    """Preprocessing in the endpoint gives the same matrix as the processing job did."""
    served = _score(handlers, model, _csv_body(_features(model, raw_rows)), "text/csv")
    matrix = np.loadtxt(pipeline.processing / "test" / "test.csv", delimiter=",", ndmin=2)[:5, 1:]
    booster = xgb.Booster()
    booster.load_model(pipeline.model_dir / "xgboost-model.json")
    np.testing.assert_allclose(served, booster.predict(xgb.DMatrix(matrix)), rtol=1e-6)


def test_every_request_format_gives_the_same_scores(handlers: ModuleType, model: Any, raw_rows: pd.DataFrame) -> None:
    features = _features(model, raw_rows)
    records = json.loads(features.to_json(orient="records"))
    reordered = features[list(reversed(features.columns))]
    bodies = {
        "csv": (_csv_body(features), "text/csv"),
        "csv-header-any-order": (_csv_body(reordered, header=True), "text/csv"),
        "csv-bytes-charset": (_csv_body(features).encode(), "text/csv; charset=utf-8"),
        "json-instances": (json.dumps({"instances": records}), "application/json"),
        "json-list": (json.dumps(records), "application/json"),
        "json-value-lists": (json.dumps({"instances": features.values.tolist()}), "application/json"),
        "json-with-keys": (
            json.dumps({"instances": [{**r, "transaction_id": "tx-1"} for r in records]}),
            "application/json",
        ),
    }
    reference = _score(handlers, model, *bodies["csv"])
    assert reference.shape == (5,)
    assert ((reference >= 0) & (reference <= 1)).all()
    for name, (body, content_type) in bodies.items():
        np.testing.assert_allclose(_score(handlers, model, body, content_type), reference, err_msg=name)
    single = _score(handlers, model, json.dumps(records[0]), "application/json")
    np.testing.assert_allclose(single, reference[:1])


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        pytest.param("application/json", "application/json", id="json"),
        pytest.param(None, "application/json", id="default-json"),
        pytest.param("*/*", "application/json", id="any"),
        pytest.param("text/csv", "text/csv", id="csv"),
        pytest.param("application/x-npy, text/csv", "text/csv", id="first-supported"),
    ],
)
def test_response_formats(
    handlers: ModuleType, model: Any, raw_rows: pd.DataFrame, accept: str | None, content_type: str
) -> None:
    prediction = handlers.predict_fn(handlers.input_fn(_csv_body(_features(model, raw_rows)), "text/csv"), model)
    body, returned_type = handlers.output_fn(prediction, accept)
    assert returned_type == content_type
    if content_type == "text/csv":
        lines = body.strip().splitlines()
        assert len(lines) == 5
        for line, probability in zip(lines, prediction["probabilities"], strict=True):
            value, label = line.split(",")
            assert float(value) == pytest.approx(probability, abs=1e-6)
            assert int(label) == int(probability >= 0.5)
    else:
        records = json.loads(body)["predictions"]
        assert [set(r) for r in records] == [{"fraud_probability", "is_fraud"}] * 5


def test_unsupported_accept_is_a_406(handlers: ModuleType, model: Any, raw_rows: pd.DataFrame) -> None:
    prediction = handlers.predict_fn(handlers.input_fn(_csv_body(_features(model, raw_rows)), "text/csv"), model)
    with pytest.raises(ValueError, match="unsupported Accept") as caught:
        handlers.output_fn(prediction, "application/x-npy")
    assert caught.value.status_code == 406


def test_decision_threshold_comes_from_the_environment(
    handlers: ModuleType, pipeline: PipelineRun, raw_rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DECISION_THRESHOLD", "0.000001")
    eager = handlers.model_fn(str(pipeline.model_dir))
    prediction = handlers.predict_fn(handlers.input_fn(_csv_body(_features(eager, raw_rows)), "text/csv"), eager)
    assert prediction["labels"].tolist() == [1] * 5


GOOD = "25.5,3.277,3,2,0,0,1,ECOM,electronics,5,20.0,1.275"
CSV = "text/csv"
JSON = "application/json"
BAD_REQUESTS = [
    pytest.param(CSV, GOOD.replace("25.5", "abc", 1), 400, "'amount' must be a number", id="text-amount"),
    pytest.param(CSV, GOOD.replace("ECOM", ""), 400, "'channel' is empty in row 1", id="empty-channel"),
    pytest.param(CSV, GOOD + "\n" + GOOD[:-6], 400, "CSV row 2 has 11 values", id="short-row"),
    pytest.param(CSV, GOOD.replace(",0,0,1,", ",0,maybe,1,"), 400, "'card_present' must be a boolean", id="bad-flag"),
    pytest.param(CSV, GOOD.replace("1.275", "inf"), 400, "must be finite", id="infinite"),
    pytest.param(
        CSV, "amount,channel\n1,POS", 400, "header is missing feature column(s): log_amount", id="partial-header"
    ),
    pytest.param(CSV, "  \n", 400, "request body is empty", id="empty"),
    pytest.param(
        JSON, '{"instances": [{"amount": 3}]}', 400, "missing feature column(s): log_amount", id="json-missing"
    ),
    pytest.param(JSON, '{"instances": [', 400, "not valid JSON", id="json-broken"),
    pytest.param(JSON, '{"instances": []}', 400, "non-empty list", id="json-empty"),
    pytest.param(JSON, '{"instances": [[1, 2]]}', 400, "JSON record 1 has 2 values", id="json-short-list"),
    pytest.param(JSON, '{"instances": [5]}', 400, "must be an object or a list", id="json-scalar"),
    pytest.param("application/x-npy", b"\x93NUMPY", 415, "unsupported content type", id="npy"),
    pytest.param(CSV, b"\xff\xfe", 400, "not UTF-8", id="binary"),
]


@pytest.mark.parametrize(("content_type", "body", "status", "message"), BAD_REQUESTS)
def test_malformed_requests_are_rejected_naming_the_problem(
    handlers: ModuleType, model: Any, content_type: str, body: str | bytes, status: int, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        handlers.predict_fn(handlers.input_fn(body, content_type), model)
    assert caught.value.status_code == status


def test_json_number_as_boolean_text_is_rejected(handlers: ModuleType, model: Any, raw_rows: pd.DataFrame) -> None:
    record = json.loads(_features(model, raw_rows).head(1).to_json(orient="records"))[0]
    record["hour_of_day"] = True
    with pytest.raises(ValueError, match="'hour_of_day' must be a number"):
        handlers.predict_fn(handlers.input_fn(json.dumps([record]), "application/json"), model)


def test_model_fn_names_missing_artefacts(handlers: ModuleType, pipeline: PipelineRun, tmp_path: Path) -> None:
    (tmp_path / "xgboost-model.json").write_bytes((pipeline.model_dir / "xgboost-model.json").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"preprocessor\.joblib, feature_spec\.json"):
        handlers.model_fn(str(tmp_path))


def test_command_line_scores_a_request_file(
    handlers: ModuleType,
    pipeline: PipelineRun,
    raw_rows: pd.DataFrame,
    model: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    request = tmp_path / "rows.csv"
    request.write_text(_csv_body(_features(model, raw_rows)))
    argv = ["--model-dir", str(pipeline.model_dir), "--input", str(request), "--accept", "text/csv"]
    assert handlers.main(argv) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 5
    request.write_text("1,2\n")
    assert handlers.main(argv) == 1
    assert "400: CSV row 1 has 2 values" in capsys.readouterr().err
