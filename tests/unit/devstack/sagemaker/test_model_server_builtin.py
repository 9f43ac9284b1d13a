"""The built-in XGBoost algorithm's hosting contract: CSV or libsvm in (libsvm without a Content-Type),
one score per row out, and the container's statuses for what it does not take."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from devstack.sagemaker.model_server import BuiltinXGBoost, HandlerError


@pytest.fixture
def served(tmp_path: Path) -> tuple[BuiltinXGBoost, object]:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=(x[:, 0] > 0)), 5)
    booster.save_model(str(tmp_path / "xgboost-model"))
    handlers = BuiltinXGBoost()
    return handlers, handlers.load(str(tmp_path))


def test_csv_and_libsvm_rows_score_the_same(served: tuple[BuiltinXGBoost, object]) -> None:
    handlers, model = served
    csv_body, csv_type = handlers.invoke(model, "1.5,0,0\n-1.5,0,0\n", "text/csv", None)
    libsvm_body, _ = handlers.invoke(model, "0:1.5 1:0 2:0\n0:-1.5 1:0 2:0\n", None, "text/csv")

    assert csv_type == "text/csv"
    scores = [float(v) for v in csv_body.split()]
    assert len(scores) == 2 and scores[0] > 0.5 > scores[1]
    assert [float(v) for v in libsvm_body.split()] == pytest.approx(scores)


def test_json_accept_gives_predictions(served: tuple[BuiltinXGBoost, object]) -> None:
    handlers, model = served
    body, media = handlers.invoke(model, "1.5,0,0\n", "text/csv", "application/json")
    assert media == "application/json"
    assert list(json.loads(body)["predictions"][0]) == ["score"]


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status"),
    [
        pytest.param("", "text/csv", None, 204, id="empty"),
        pytest.param("1,2,3", "application/x-parquet", None, 415, id="parquet"),
        pytest.param("1,2,3", "text/csv", "application/x-npy", 406, id="accept"),
    ],
)
def test_what_the_container_does_not_take(
    served: tuple[BuiltinXGBoost, object], body: str, content_type: str, accept: str | None, status: int
) -> None:
    handlers, model = served
    with pytest.raises(HandlerError) as error:
        handlers.invoke(model, body, content_type, accept)
    assert error.value.status_code == status
