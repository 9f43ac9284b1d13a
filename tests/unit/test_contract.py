"""Every consumer of the dataset contract (``include/code/common/features_schema.json``) agrees with it.

:func:`disagreements` asks each consumer what it makes of a contract file: the feature SQL and the GX suite
are checked against it (they are hand-written), preprocessing and inference are loaded from their shipped
archive layout with that file as their ``common/features_schema.json`` (they read it), and the devstack seed
must draw exactly the contract's categories. Changing the contract alone therefore names every file that
still has to change.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from devstack.snowflake import seed
from ml_lifecycle.code_package import package_component
from ml_lifecycle.config import include_dir
from ml_lifecycle.contract import (
    ContractMismatchError,
    check_sql,
    check_suite,
    derived_expectations,
    load_contract,
    sql_disagreement,
    suite_disagreements,
    updated_suite,
)

INCLUDE = include_dir()
CONTRACT_FILE = INCLUDE / "code" / "common" / "features_schema.json"
SQL_FILE = INCLUDE / "sql" / "features.sql"
SUITE_FILE = INCLUDE / "gx" / "card_transactions_features.json"
_loads = itertools.count()


def _shipped_module(component: str, script: str, contract: dict[str, Any], root: Path) -> Any:
    """``script`` of ``component`` loaded from its archive's files, the contract replaced by ``contract``."""
    folder = root / f"{component}-{next(_loads)}"
    for name, data in package_component(INCLUDE / "code", component).files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (folder / "common" / "features_schema.json").write_text(json.dumps(contract))
    spec = importlib.util.spec_from_file_location(f"contract_{folder.name.replace('-', '_')}", folder / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kinds(contract: dict[str, Any], kind: str) -> list[str]:
    kinds = {c["name"]: c["kind"] for c in contract["columns"]}
    return [f for f in contract["features"] if kinds[f] == kind]


def disagreements(contract: dict[str, Any], root: Path) -> dict[str, str]:
    """Consumer -> how it differs from ``contract`` (empty when all agree)."""
    found: dict[str, str] = {}
    problem = sql_disagreement(SQL_FILE.read_text(encoding="utf-8"), contract)
    if problem:
        found["include/sql/features.sql"] = problem
    problems = suite_disagreements(json.loads(SUITE_FILE.read_text(encoding="utf-8")), contract)
    if problems:
        found["include/gx/card_transactions_features.json"] = "; ".join(problems)

    preprocess = _shipped_module("preprocessing", "preprocess.py", contract, root)
    seen = {
        "keys": preprocess.KEY_COLUMNS,
        "label": preprocess.LABEL,
        "features": preprocess.RAW_FEATURES,
        "numeric": preprocess.NUMERIC_FEATURES,
        "boolean": preprocess.BOOLEAN_FEATURES,
        "categorical": preprocess.CATEGORICAL_FEATURES,
    }
    wanted = {
        "keys": contract["keys"],
        "label": contract["label"],
        "features": contract["features"],
        **{kind: _kinds(contract, kind) for kind in ("numeric", "boolean", "categorical")},
    }
    if seen != wanted:
        found["include/code/preprocessing/preprocess.py"] = f"{seen} != {wanted}"
    inference = _shipped_module("inference", "inference.py", contract, root)
    if list(inference.DEFAULT_FEATURES) != contract["features"]:
        found["include/code/inference/inference.py"] = f"{inference.DEFAULT_FEATURES} != {contract['features']}"

    categories = {c["name"]: c.get("categories") for c in contract["columns"]}
    drawn = {"merchant_category": list(seed.CATEGORIES), "channel": list(seed.CHANNELS)}
    wanted_categories = {name: categories.get(name) for name in drawn}
    if drawn != wanted_categories:
        found["devstack/snowflake/seed.py"] = f"draws {drawn}, the contract allows {wanted_categories}"
    return found


def _with_feature(contract: dict[str, Any], name: str) -> dict[str, Any]:
    changed = copy.deepcopy(contract)
    changed["features"].append(name)
    column = {"name": name, "role": "feature", "snowflake_type": "FLOAT", "kind": "numeric", "nullable": False}
    changed["columns"].insert(len(changed["columns"]) - 1, column)
    return changed


def test_every_consumer_agrees_with_the_contract(tmp_path: Path) -> None:
    assert disagreements(load_contract(CONTRACT_FILE), tmp_path) == {}


def test_a_feature_added_to_the_contract_alone_names_the_sql_and_the_suite(tmp_path: Path) -> None:
    changed = _with_feature(load_contract(CONTRACT_FILE), "merchant_risk_score")

    found = disagreements(changed, tmp_path)

    # preprocessing and inference read the contract they are shipped with, so they follow it
    assert sorted(found) == ["include/gx/card_transactions_features.json", "include/sql/features.sql"]
    assert "missing ['merchant_risk_score']" in found["include/sql/features.sql"]
    assert (
        "expect_column_values_to_be_in_type_list(merchant_risk_score) is missing"
        in found["include/gx/card_transactions_features.json"]
    )


def test_a_category_added_to_the_contract_alone_names_the_suite_and_the_seed(tmp_path: Path) -> None:
    changed = load_contract(CONTRACT_FILE)
    channel = next(c for c in changed["columns"] if c["name"] == "channel")
    channel["categories"].append("MOTO")

    found = disagreements(changed, tmp_path)

    assert sorted(found) == ["devstack/snowflake/seed.py", "include/gx/card_transactions_features.json"]
    assert "expect_column_values_to_be_in_set(channel)" in found["include/gx/card_transactions_features.json"]


def test_the_suite_holds_the_derived_expectations_and_its_own() -> None:
    suite = json.loads(SUITE_FILE.read_text(encoding="utf-8"))
    derived = derived_expectations(load_contract(CONTRACT_FILE))
    # 16 columns: the ordered column list, a type and a not-null check each, and three category sets
    assert len(derived) == 36
    assert len(suite["expectations"]) == 46  # the other ten are ranges, uniqueness and the fraud-rate band


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            lambda sql: sql.replace('AS "day_of_week",', 'AS "weekday",'),
            "missing ['day_of_week']; not in the contract ['weekday']",
            id="renamed-column",
        ),
        pytest.param(
            lambda sql: (
                sql.replace('AS "is_weekend",', 'AS "tmp_swap",')
                .replace('AS "card_present",', 'AS "is_weekend",')
                .replace('AS "tmp_swap",', 'AS "card_present",')
            ),
            "same columns in another order",
            id="swapped-columns",
        ),
        pytest.param(
            lambda sql: sql.replace('    card_present AS "card_present",\n', ""),
            "missing ['card_present']",
            id="dropped-column",
        ),
    ],
)
def test_a_query_that_differs_from_the_contract_is_refused(edit: Any, message: str) -> None:
    sql = SQL_FILE.read_text(encoding="utf-8")
    edited = edit(sql)
    assert edited != sql
    with pytest.raises(ContractMismatchError, match=r"^sql/features\.sql: output columns") as caught:
        check_sql(edited, load_contract(CONTRACT_FILE), "sql/features.sql")
    assert message in str(caught.value)


def test_commented_out_aliases_are_not_output_columns() -> None:
    sql = SQL_FILE.read_text(encoding="utf-8").replace(
        '    amount AS "amount",\n', '    amount AS "amount",\n    -- 0 AS "old_feature",\n'
    )
    check_sql(sql, load_contract(CONTRACT_FILE), "sql/features.sql")


def test_a_suite_that_contradicts_the_contract_is_refused() -> None:
    suite = json.loads(SUITE_FILE.read_text(encoding="utf-8"))
    for expectation in suite["expectations"]:
        if expectation["type"] == "expect_column_values_to_be_in_set" and expectation["kwargs"]["column"] == "channel":
            expectation["kwargs"]["value_set"] = ["POS", "ECOM"]
    with pytest.raises(ContractMismatchError, match=r"expect_column_values_to_be_in_set\(channel\): the suite has"):
        check_suite(suite, load_contract(CONTRACT_FILE), "gx/card_transactions_features.json")


def test_the_package_consumers_read_the_contract_file() -> None:
    from ml_lifecycle.operators.batch import feature_columns
    from tools.lifecycle import feature_names

    contract = load_contract(CONTRACT_FILE)
    features, keys, kinds = feature_columns()
    assert (features, keys) == (contract["features"], contract["keys"])
    assert kinds == {c["name"]: c["kind"] for c in contract["columns"]}
    assert feature_names() == contract["features"]


def test_the_suite_is_as_written_from_the_contract() -> None:
    suite = json.loads(SUITE_FILE.read_text(encoding="utf-8"))
    assert updated_suite(suite, load_contract(CONTRACT_FILE)) == suite


def test_writing_a_new_feature_into_the_suite_adds_its_checks_beside_their_kind() -> None:
    suite = json.loads(SUITE_FILE.read_text(encoding="utf-8"))
    changed = _with_feature(load_contract(CONTRACT_FILE), "merchant_risk_score")

    written = updated_suite(suite, changed)

    assert suite_disagreements(written, changed) == []
    kinds = [(e["type"], e["kwargs"].get("column")) for e in written["expectations"]]
    assert len(kinds) == 48
    new_type = kinds.index(("expect_column_values_to_be_in_type_list", "merchant_risk_score"))
    assert kinds[new_type + 1] == ("expect_column_values_to_be_in_type_list", "is_fraud")  # contract order
    assert written["expectations"][new_type]["meta"] == {"why": "FLOAT in the contract: numbers"}
    new_not_null = kinds.index(("expect_column_values_to_not_be_null", "merchant_risk_score"))
    assert kinds[new_not_null + 1] == ("expect_column_values_to_not_be_null", "is_fraud")
    # everything the contract does not decide is untouched, in its order
    kept = [e for e in written["expectations"] if e["kwargs"].get("column") != "merchant_risk_score"]
    assert [e["type"] for e in kept] == [e["type"] for e in suite["expectations"]]
    assert kept[1]["kwargs"]["column_list"][-2:] == ["merchant_risk_score", "is_fraud"]
    assert updated_suite(written, changed) == written


def test_writing_drops_the_checks_of_a_removed_feature_only() -> None:
    suite = json.loads(SUITE_FILE.read_text(encoding="utf-8"))
    changed = load_contract(CONTRACT_FILE)
    changed["features"].remove("hour_of_day")
    changed["columns"] = [c for c in changed["columns"] if c["name"] != "hour_of_day"]

    written = updated_suite(suite, changed)

    gone = [e["type"] for e in suite["expectations"] if e["kwargs"].get("column") == "hour_of_day"]
    left = [e["type"] for e in written["expectations"] if e["kwargs"].get("column") == "hour_of_day"]
    assert gone == [
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
    ]
    assert left == ["expect_column_values_to_be_between"]  # a hand-written range: for its author to remove
    assert suite_disagreements(written, changed) == []
