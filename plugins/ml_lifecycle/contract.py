"""Check the feature SQL and a Great Expectations suite against the dataset contract.

The contract is ``include/code/common/features_schema.json``: keys, label, the model features in order, and
per column its Snowflake type, ``kind`` (``string``, ``timestamp``, ``numeric``, ``boolean``, ``categorical``,
``label``), nullability and categories. The container components read it from ``common/`` in their archive;
the package reads the same file from ``include/``.

- The feature SQL stays hand-written (it is reviewed as SQL, and window features are not generated from a
  column list); its output columns are quoted lowercase aliases (``... AS "amount"``), and
  :func:`sql_disagreement` compares them, in order, with the contract's columns.
- A suite keeps its hand-written expectations (ranges, uniqueness, the label's mean); the ones a contract
  decides are :func:`derived_expectations` (the ordered column list, one type check per column by kind,
  not-null for each non-nullable column, the category set of each categorical column).
  :func:`updated_suite` writes them into a suite (``python -m tools.contract --write``), and
  :func:`suite_disagreements` names each of them that is missing or different.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

CONTRACT_PATH = "code/common/features_schema.json"  # relative to include/

NUMERIC_DTYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "Int8Dtype",
    "Int16Dtype",
    "Int32Dtype",
    "Int64Dtype",
    "float32",
    "float64",
    "Float32Dtype",
    "Float64Dtype",
]
# the pandas dtypes the validator sees per contract kind; text is checked with ``..._to_be_of_type "str"``
# because pandas' default string dtype matches no name in ``expect_column_values_to_be_in_type_list``
KIND_TYPES: dict[str, tuple[str, Any]] = {
    "string": ("expect_column_values_to_be_of_type", "str"),
    "categorical": ("expect_column_values_to_be_of_type", "str"),
    "timestamp": (
        "expect_column_values_to_be_in_type_list",
        ["datetime64[s]", "datetime64[ms]", "datetime64[us]", "datetime64[ns]"],
    ),
    "numeric": ("expect_column_values_to_be_in_type_list", NUMERIC_DTYPES),
    "label": ("expect_column_values_to_be_in_type_list", NUMERIC_DTYPES),
    "boolean": ("expect_column_values_to_be_in_type_list", ["bool", "BooleanDtype"]),
}
# how a type expectation explains itself in the suite's ``meta.why``
KIND_WORDS = {
    "string": "text",
    "categorical": "text",
    "timestamp": "time zone-free timestamps",
    "numeric": "numbers",
    "label": "numbers",
    "boolean": "booleans",
}
_TYPE_ARGUMENTS = ("type_", "type_list")
_OUTPUT_ALIAS = re.compile(r'\bAS\s+"([^"]+)"', re.IGNORECASE)


class ContractMismatchError(ValueError):
    """A consumer of the dataset contract disagrees with it; the message names the consumer and the difference."""


def load_contract(path: Path | None = None) -> dict[str, Any]:
    """The contract document (default: ``include/code/common/features_schema.json``)."""
    if path is None:
        from ml_lifecycle.config import include_dir

        path = include_dir() / CONTRACT_PATH
    return json.loads(path.read_text(encoding="utf-8"))


def column_names(contract: dict[str, Any]) -> list[str]:
    """Every column of the dataset, in order: keys, features, label."""
    return [c["name"] for c in contract["columns"]]


def sql_output_columns(sql_text: str) -> list[str]:
    """The quoted aliases of a feature query (``AS "name"``), in order: its output columns."""
    code = "\n".join(line.split("--", 1)[0] for line in sql_text.splitlines())
    return _OUTPUT_ALIAS.findall(code)


def sql_disagreement(sql_text: str, contract: dict[str, Any]) -> str | None:
    """What differs between the query's output columns and the contract's, or ``None``."""
    found, wanted = sql_output_columns(sql_text), column_names(contract)
    if found == wanted:
        return None
    missing = [c for c in wanted if c not in found]
    extra = [c for c in found if c not in wanted]
    details = [f"missing {missing}" if missing else "", f"not in the contract {extra}" if extra else ""]
    if not missing and not extra:
        details = ["same columns in another order"]
    return f"output columns {found} differ from the contract's {wanted}: " + "; ".join(d for d in details if d)


def check_sql(sql_text: str, contract: dict[str, Any], where: str) -> None:
    """:raises ContractMismatchError: the query's output columns are not the contract's, in order"""
    problem = sql_disagreement(sql_text, contract)
    if problem:
        raise ContractMismatchError(f"{where}: {problem}")


def derived_expectations(contract: dict[str, Any]) -> list[dict[str, Any]]:
    """The expectations (``{"type", "kwargs"}``) a suite for this contract must hold."""
    out: list[dict[str, Any]] = [
        {"type": "expect_table_columns_to_match_ordered_list", "kwargs": {"column_list": column_names(contract)}}
    ]
    for column in contract["columns"]:
        name = column["name"]
        kind, value = KIND_TYPES[column["kind"]]
        argument = "type_" if kind == "expect_column_values_to_be_of_type" else "type_list"
        out.append({"type": kind, "kwargs": {"column": name, argument: value}})
    for column in contract["columns"]:
        if not column.get("nullable", True):
            out.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column["name"]}})
    for column in contract["columns"]:
        if column["kind"] == "categorical":
            out.append(
                {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": column["name"], "value_set": list(column["categories"])},
                }
            )
    return out


def _key(expectation: dict[str, Any]) -> tuple[str, str | None]:
    column = expectation["kwargs"].get("column")
    kind = expectation["type"]
    if kind == "expect_column_values_to_be_of_type":  # one type check per column, whichever form
        kind = "expect_column_values_to_be_in_type_list"
    return kind, column


def suite_disagreements(suite: dict[str, Any], contract: dict[str, Any]) -> list[str]:
    """Each contract-derived expectation the suite lacks or holds with other arguments (empty: it agrees).

    Expectations the contract does not decide (value ranges, uniqueness, the label's mean) are not compared.
    """
    present = {_key(e): e for e in suite.get("expectations", [])}
    problems = []
    for wanted in derived_expectations(contract):
        found = present.get(_key(wanted))
        label = f"{wanted['type']}({wanted['kwargs'].get('column') or ''})"
        if found is None:
            problems.append(f"{label} is missing")
            continue
        arguments = {k: v for k, v in found["kwargs"].items() if k in wanted["kwargs"]}
        if found["type"] != wanted["type"] or arguments != wanted["kwargs"]:
            problems.append(
                f"{label}: the suite has {found['type']} {arguments}, the contract gives {wanted['kwargs']}"
            )
    return problems


def check_suite(suite: dict[str, Any], contract: dict[str, Any], where: str) -> None:
    """:raises ContractMismatchError: naming every contract-derived expectation the suite lacks or contradicts"""
    problems = suite_disagreements(suite, contract)
    if problems:
        raise ContractMismatchError(f"{where} disagrees with the dataset contract: " + "; ".join(problems))


def _meta(expectation: dict[str, Any], contract: dict[str, Any]) -> dict[str, Any]:
    """``meta`` of a new derived expectation: a type check says which contract type it stands for."""
    if expectation["type"] == "expect_table_columns_to_match_ordered_list":
        return {"why": "the dataset contract: names and order"}
    column = next((c for c in contract["columns"] if c["name"] == expectation["kwargs"].get("column")), None)
    if column is not None and _key(expectation)[0] == "expect_column_values_to_be_in_type_list":
        return {"why": f"{column['snowflake_type']} in the contract: {KIND_WORDS[column['kind']]}"}
    return {}


def updated_suite(suite: dict[str, Any], contract: dict[str, Any]) -> dict[str, Any]:
    """``suite`` with its contract-derived expectations made to match ``contract``; the others unchanged.

    A derived expectation already in the suite is updated in place (its ``meta`` and ``severity`` kept); a new
    one goes among the expectations of its type, in contract column order (a new feature's type check just
    before the label's, and so on); the
    derived expectations of a column the contract no longer has are removed. Running it twice changes
    nothing.
    """
    derived = derived_expectations(contract)
    wanted = {_key(e): e for e in derived}
    kinds = {_key(e)[0] for e in derived}
    names = set(column_names(contract))
    out: list[dict[str, Any]] = []
    placed: set[tuple[str, str | None]] = set()
    for expectation in suite.get("expectations", []):
        key = _key(expectation)
        if key in wanted:
            target = wanted[key]
            kwargs = {k: v for k, v in expectation["kwargs"].items() if k not in _TYPE_ARGUMENTS}
            out.append({**expectation, "type": target["type"], "kwargs": {**kwargs, **target["kwargs"]}})
            placed.add(key)
        elif key[0] in kinds and key[1] is not None and key[1] not in names:
            continue
        else:
            out.append(expectation)
    for target in derived:
        key = _key(target)
        if key in placed:
            continue
        order = column_names(contract)
        same_kind = [i for i, e in enumerate(out) if _key(e)[0] == key[0] and _key(e)[1] in names]
        later = [i for i in same_kind if order.index(_key(out[i])[1]) > order.index(key[1])] if key[1] else []
        position = later[0] if later else (same_kind[-1] + 1 if same_kind else len(out))
        out.insert(position, {**target, "meta": _meta(target, contract), "severity": "critical"})
        placed.add(key)
    return {**suite, "expectations": out}
