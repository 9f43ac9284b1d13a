"""Hyperparameter search: range rules, grid enumeration, seeded sampling, child names."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.sagemaker import search


def ranges(**kwargs: object) -> dict[str, object]:
    return dict(kwargs)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            ranges(
                ContinuousParameterRanges=[
                    {"Name": "a", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}
                ]
            ),
            "requires values greater than 0",
            id="log-zero",
        ),
        pytest.param(
            ranges(
                ContinuousParameterRanges=[
                    {"Name": "a", "MinValue": "0.1", "MaxValue": "1", "ScalingType": "ReverseLogarithmic"}
                ]
            ),
            "requires 0 <= value < 1",
            id="reverse-log-one",
        ),
        pytest.param(
            ranges(
                IntegerParameterRanges=[
                    {"Name": "a", "MinValue": "1", "MaxValue": "5", "ScalingType": "ReverseLogarithmic"}
                ]
            ),
            "not valid for integer",
            id="reverse-log-integer",
        ),
        pytest.param(
            ranges(IntegerParameterRanges=[{"Name": "a", "MinValue": "5", "MaxValue": "1"}]),
            "MinValue must be less than or equal to MaxValue",
            id="inverted",
        ),
        pytest.param(
            ranges(IntegerParameterRanges=[{"Name": "a", "MinValue": "1.5", "MaxValue": "3"}]),
            "is not an integer",
            id="not-integer",
        ),
        pytest.param(
            ranges(
                IntegerParameterRanges=[{"Name": "a", "MinValue": "1", "MaxValue": "3"}],
                CategoricalParameterRanges=[{"Name": "a", "Values": ["x"]}],
            ),
            "more than one parameter range",
            id="duplicate",
        ),
    ],
)
def test_bad_ranges_are_rejected(spec: dict[str, object], message: str) -> None:
    with pytest.raises(search.RangeError, match=message):
        search.parse_ranges(spec)  # type: ignore[arg-type]


def test_grid_enumerates_every_combination_and_rejects_numeric_ranges() -> None:
    parsed = search.parse_ranges(
        {"CategoricalParameterRanges": [{"Name": "a", "Values": ["1", "2"]}, {"Name": "b", "Values": ["x", "y", "z"]}]}
    )
    grid = search.grid_configurations(parsed)
    assert len(grid) == 6
    assert grid[0] == {"a": "1", "b": "x"}
    assert grid[-1] == {"a": "2", "b": "z"}
    with pytest.raises(search.RangeError, match="only categorical"):
        search.grid_size(
            search.parse_ranges({"IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "2"}]})
        )


SPEC = {
    "IntegerParameterRanges": [
        {"Name": "depth", "MinValue": "2", "MaxValue": "8"},
        {"Name": "rounds", "MinValue": "10", "MaxValue": "1000", "ScalingType": "Logarithmic"},
    ],
    "ContinuousParameterRanges": [
        {"Name": "eta", "MinValue": "0.001", "MaxValue": "0.5", "ScalingType": "Logarithmic"},
        {"Name": "momentum", "MinValue": "0.9", "MaxValue": "0.999", "ScalingType": "ReverseLogarithmic"},
        {"Name": "subsample", "MinValue": "0.5", "MaxValue": "1.0", "ScalingType": "Linear"},
    ],
    "CategoricalParameterRanges": [{"Name": "booster", "Values": ["gbtree", "dart"]}],
}


@given(seed=st.integers(min_value=0, max_value=2**63))
def test_random_samples_stay_in_range(seed: int) -> None:
    for config in search.random_configurations(search.parse_ranges(SPEC), 5, seed):
        assert 2 <= int(config["depth"]) <= 8
        assert 10 <= int(config["rounds"]) <= 1000
        assert 0.001 <= float(config["eta"]) <= 0.5
        assert 0.9 <= float(config["momentum"]) <= 0.999
        assert 0.5 <= float(config["subsample"]) <= 1.0
        assert config["booster"] in {"gbtree", "dart"}


def test_random_search_is_seeded_by_the_job_name() -> None:
    parsed = search.parse_ranges(SPEC)
    first = search.random_configurations(parsed, 8, search.seed_for("tune-a"))
    assert first == search.random_configurations(parsed, 8, search.seed_for("tune-a"))
    assert first != search.random_configurations(parsed, 8, search.seed_for("tune-b"))


def test_logarithmic_scaling_favours_small_values() -> None:
    parsed = search.parse_ranges(
        {
            "ContinuousParameterRanges": [
                {"Name": "lr", "MinValue": "0.0001", "MaxValue": "1", "ScalingType": "Logarithmic"}
            ]
        }
    )
    values = [float(c["lr"]) for c in search.random_configurations(parsed, 400, 7)]
    below_centre = sum(1 for v in values if v < math.sqrt(0.0001 * 1))
    assert 150 < below_centre < 250  # uniform in log space: about half below the geometric centre
    linear = search.parse_ranges({"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.0001", "MaxValue": "1"}]})
    assert sum(1 for c in search.random_configurations(linear, 400, 7) if float(c["lr"]) < 0.01) < 20


def test_child_names_follow_sagemaker() -> None:
    name = search.child_job_name("xgboost-tuning-2026-01-01", 9)
    assert re.fullmatch(r"xgboost-tuning-2026-01-01-009-[0-9a-f]{8}", name)
    assert name == search.child_job_name("xgboost-tuning-2026-01-01", 9)
    assert len(search.child_job_name("a" * 32, 999)) <= 63
