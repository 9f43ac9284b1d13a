"""include/code/common/bias.py: Clarify's bias metrics against values worked out by hand."""

from __future__ import annotations

import json
import math
from types import ModuleType

import pandas as pd
import pytest

from tests.unit.include.conftest import CODE, load_script


@pytest.fixture(scope="module")
def bias() -> ModuleType:
    return load_script(CODE / "common" / "bias.py", "common_bias")


def small_frame() -> pd.DataFrame:
    """Ten rows: six in segment ``retail`` (facet a), four in ``smb`` (the sensitive group d).

    retail: labels 1 1 0 0 0 0, predictions 1 0 1 0 0 0 -> TP 1, FN 1, FP 1, TN 3
    smb:    labels 1 0 0 0,     predictions 1 1 1 0     -> TP 1, FN 0, FP 2, TN 1
    """
    return pd.DataFrame(
        {
            "segment": ["retail"] * 6 + ["smb"] * 4,
            "is_fraud": [1, 1, 0, 0, 0, 0, 1, 0, 0, 0],
            "predicted": [1, 0, 1, 0, 0, 0, 1, 1, 1, 0],
        }
    )


# P_a = (2/3, 1/3), P_d = (3/4, 1/4) over the label values (0, 1); M = (17/24, 7/24)
PRE_EXPECTED = {
    "CI": (6 - 4) / 10,
    "DPL": 2 / 6 - 1 / 4,
    "KL": 2 / 3 * math.log((2 / 3) / (3 / 4)) + 1 / 3 * math.log((1 / 3) / (1 / 4)),
    "JS": 0.5
    * (
        2 / 3 * math.log((2 / 3) / (17 / 24))
        + 1 / 3 * math.log((1 / 3) / (7 / 24))
        + 3 / 4 * math.log((3 / 4) / (17 / 24))
        + 1 / 4 * math.log((1 / 4) / (7 / 24))
    ),
    "LP": math.sqrt(2) / 12,
    "TVD": 1 / 12,
    "KS": 1 / 12,
}
POST_EXPECTED = {
    "DPPL": 2 / 6 - 3 / 4,  # predicted-positive share a - d
    "DI": (3 / 4) / (2 / 6),
    "DCA": 2 / 2 - 1 / 3,  # labels-positive / predicted-positive: a - d
    "DCR": 3 / 1 - 4 / 4,  # labels-negative / predicted-negative: d - a
    "RD": 1 / 2 - 1 / 1,  # recall a - d
    "SD": 1 / 3 - 3 / 4,  # specificity d - a
    "DAR": 1 / 2 - 1 / 3,  # precision a - d
    "DRR": 1 / 1 - 3 / 4,  # negative predictive value d - a
    "AD": 4 / 6 - 2 / 4,  # accuracy a - d
    "TE": 0 / 2 - 1 / 1,  # FN/FP d - a
}


def test_pre_training_metrics_match_hand_computed_values(bias: ModuleType) -> None:
    frame = small_frame()
    values = bias.pre_training_metrics(frame["segment"] == "smb", frame["is_fraud"])
    assert values == pytest.approx(PRE_EXPECTED)
    assert set(values) == set(bias.PRE_TRAINING)


def test_post_training_metrics_match_hand_computed_values(bias: ModuleType) -> None:
    frame = small_frame()
    values = bias.post_training_metrics(frame["segment"] == "smb", frame["is_fraud"], frame["predicted"])
    assert values == pytest.approx(POST_EXPECTED)
    assert set(values) == set(bias.POST_TRAINING)


def test_post_training_report_has_clarifys_analysis_shape(bias: ModuleType) -> None:
    section = bias.post_training_report(
        small_frame(), label="is_fraud", predicted_label="predicted", facet="segment", facet_values_or_threshold="smb"
    )
    document = json.loads(json.dumps(bias.analysis(post_training=section), allow_nan=False))
    assert document["version"] == "1.0"
    post = document["post_training_bias_metrics"]
    assert post["label"] == "is_fraud"
    assert post["label_value_or_threshold"] == "1"
    (entry,) = post["facets"]["segment"]
    assert entry["value_or_threshold"] == "smb"
    names = [m["name"] for m in entry["metrics"]]
    assert names == sorted(POST_EXPECTED)  # Clarify lists the metrics by name
    dppl = next(m for m in entry["metrics"] if m["name"] == "DPPL")
    assert dppl["description"] == "Difference in Positive Proportions in Predicted Labels (DPPL)"
    assert dppl["value"] == pytest.approx(-5 / 12)
    assert bias.metric_values(post) == {"smb": pytest.approx(POST_EXPECTED)}


def test_without_a_group_every_facet_value_is_compared_with_the_rest(bias: ModuleType) -> None:
    section = bias.pre_training_report(small_frame(), label="is_fraud", facet="segment")
    values = bias.metric_values(section)
    assert list(values) == ["retail", "smb"]
    assert values["smb"] == pytest.approx(PRE_EXPECTED)
    # retail as the sensitive group mirrors the signed metrics
    assert values["retail"]["CI"] == pytest.approx(-PRE_EXPECTED["CI"])
    assert values["retail"]["DPL"] == pytest.approx(-PRE_EXPECTED["DPL"])
    assert values["retail"]["TVD"] == pytest.approx(PRE_EXPECTED["TVD"])


def test_a_numeric_facet_splits_at_the_threshold(bias: ModuleType) -> None:
    frame = small_frame().assign(age=[20, 25, 30, 35, 40, 45, 61, 62, 70, 80])
    section = bias.pre_training_report(frame, label="is_fraud", facet="age", facet_values_or_threshold=60)
    (entry,) = section["facets"]["age"]
    assert entry["value_or_threshold"] == "(60.0, 80.0]"
    assert bias.metric_values(section)["(60.0, 80.0]"] == pytest.approx(PRE_EXPECTED)


def test_zero_denominators_follow_clarify(bias: ModuleType) -> None:
    # the sensitive group has a false negative and no false positive: FN_d/FP_d is infinite
    frame = pd.DataFrame(
        {
            "segment": ["a", "a", "a", "d", "d"],
            "is_fraud": [1, 0, 0, 1, 0],
            "predicted": [1, 1, 0, 0, 0],
        }
    )
    section = bias.post_training_report(
        frame, label="is_fraud", predicted_label="predicted", facet="segment", facet_values_or_threshold=["d"]
    )
    metrics = {m["name"]: m["value"] for m in section["facets"]["segment"][0]["metrics"]}
    assert metrics["TE"] == "Infinity"  # written as Clarify writes it
    assert metrics["DI"] == 0.0  # no predicted positive in d: 0 / (2/3)
    # DAR: precision of d is 0/0 = 0 by Clarify's division, a's is 1/2
    assert metrics["DAR"] == pytest.approx(0.5)
    assert bias.metric_values(section)["d"]["TE"] == math.inf


def test_an_empty_group_gives_errors_not_a_crash(bias: ModuleType) -> None:
    section = bias.pre_training_report(small_frame(), label="is_fraud", facet="segment", facet_values_or_threshold="x")
    for metric in section["facets"]["segment"][0]["metrics"]:
        assert metric["value"] is None
        assert "sensitive group" in metric["error"]


def test_no_common_label_value_makes_the_divergences_undefined(bias: ModuleType) -> None:
    values = bias.pre_training_metrics([False, False, True, True], [1, 1, 0, 0])
    assert values["KL"] is None
    assert values["CI"] == 0.0
    assert values["DPL"] == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda b, f: b.pre_training_report(f, label="fraud", facet="segment"),
            "label column 'fraud' is not in the data",
            id="missing-label",
        ),
        pytest.param(
            lambda b, f: b.pre_training_report(f, label="is_fraud", facet="region"),
            "facet column 'region' is not in the data",
            id="missing-facet",
        ),
        pytest.param(
            lambda b, f: b.pre_training_report(f.iloc[:0], label="is_fraud", facet="segment"),
            "no rows",
            id="no-rows",
        ),
        pytest.param(
            lambda b, f: b.pre_training_report(
                f.assign(segment=f["segment"].where(f.index != 2)), label="is_fraud", facet="segment"
            ),
            "facet column 'segment' has 1 empty value",
            id="empty-facet-value",
        ),
        pytest.param(
            lambda b, f: b.post_training_metrics([True], [2], [1]),
            "label must be booleans or 0/1",
            id="label-not-binary",
        ),
        pytest.param(
            lambda b, f: b.pre_training_report(f, label="is_fraud", facet="segment", facet_values_or_threshold=3),
            "is not numeric",
            id="threshold-on-text",
        ),
    ],
)  # fmt: skip
def test_unusable_input_is_refused_with_a_reason(bias: ModuleType, call, message: str) -> None:
    with pytest.raises(bias.BiasError, match=message):
        call(bias, small_frame())
