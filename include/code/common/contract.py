"""The dataset contract and the helpers every container component shares.

This folder (``include/code/common/``) is shipped inside every component archive by
``ml_lifecycle.code_package``, as ``common/`` next to the component's own files. It holds:

- ``features_schema.json``: the dataset contract (keys, attributes, model features in order, label, and per
  column its role, Snowflake type, kind, nullability and categories); the one feature list of the project.
  Attributes (role ``attribute``, e.g. the customer segment that bias is measured on) are in the extracted data
  and its splits but never a model input;
- this module: a loader for the contract and the decimal typing of unloaded Parquet data;
- ``bias.py``: SageMaker Clarify's pre- and post-training bias metrics (numpy and pandas only).

It depends only on the standard library and (for :func:`conform_decimals`) pyarrow, never on the
``ml_lifecycle`` package. Each component loads it by file path (its ``_load_common``: ``common/`` beside the
component in an archive, ``include/code/common/`` in a checkout), because a component runs as a script, as a
module loaded by path, or inside a model server, and is never an installed package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONTRACT_FILE = Path(__file__).resolve().with_name("features_schema.json")
KINDS = ("string", "timestamp", "numeric", "boolean", "categorical", "label")


class ContractError(ValueError):
    """The contract file is missing or malformed; the message names the file and the problem."""


def load_contract(path: Path | None = None) -> dict[str, Any]:
    """The contract document, checked for internal consistency.

    :param path: the contract file (default: ``features_schema.json`` beside this module)
    :raises ContractError: the file is missing, or its ``keys`` + ``attributes`` + ``features`` + ``label`` are
        not its ``columns`` in order, or a column has an unknown kind or a categorical column no categories
    """
    path = path or CONTRACT_FILE
    try:
        contract = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"the dataset contract {path} is missing") from None
    names = [c["name"] for c in contract["columns"]]
    declared = [*contract["keys"], *attributes(contract), *contract["features"], contract["label"]]
    if names != declared:
        raise ContractError(f"{path.name}: columns {names} are not keys + attributes + features + label {declared}")
    for column in contract["columns"]:
        if column.get("kind") not in KINDS:
            raise ContractError(f"{path.name}: column {column['name']!r} has kind {column.get('kind')!r}")
        if column["kind"] == "categorical" and not column.get("categories"):
            raise ContractError(f"{path.name}: categorical column {column['name']!r} lists no categories")
    return contract


def attributes(contract: dict[str, Any]) -> list[str]:
    """The attribute columns (in the data, not model inputs), in contract order; none when the key is absent."""
    return list(contract.get("attributes", []))


def features_of_kind(contract: dict[str, Any], kind: str) -> list[str]:
    """The model features of ``kind`` (``numeric``, ``boolean`` or ``categorical``), in contract order."""
    kinds = {c["name"]: c["kind"] for c in contract["columns"]}
    return [name for name in contract["features"] if kinds[name] == kind]


def categories(contract: dict[str, Any]) -> dict[str, list[str]]:
    """Categorical column (features and attributes) -> its allowed values, in contract order."""
    return {c["name"]: list(c["categories"]) for c in contract["columns"] if c["kind"] == "categorical"}


def conform_decimals(table: Any, error: type[Exception] = ValueError) -> Any:
    """An Arrow table or record batch with its decimal columns typed as the extraction's stream mode types
    them: scale 0 -> ``int64`` (a checked cast), any other scale -> ``float64``.

    Snowflake's Parquet unload stores ``NUMBER`` columns as DECIMAL, which pandas would hold as ``object``
    columns of ``decimal.Decimal``. ``ml_lifecycle.data.parquet.conform_decimals`` behaves the same (a test
    pins the two together).

    :param error: the exception class raised for a value that does not fit (each component its own)
    :raises error: a scale-0 value does not fit in ``int64`` (never wrapped); names the column
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    fields, columns, changed = list(table.schema), list(table.columns), False
    for index, f in enumerate(fields):
        if pa.types.is_decimal(f.type):
            target = pa.int64() if f.type.scale == 0 else pa.float64()
            try:
                columns[index] = pc.cast(columns[index], target, safe=True)
            except pa.ArrowInvalid as exc:
                span = pc.min_max(columns[index])
                raise error(
                    f"column {f.name!r}: {f.type} values from {span['min']} to {span['max']} do not fit in "
                    f"{target} ({exc})"
                ) from None
            fields[index], changed = f.with_type(target), True
    if not changed:
        return table
    return type(table).from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))
