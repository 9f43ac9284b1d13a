"""Bad params: every DAG's Param schemas reject invalid trigger values by name and accept valid ones.

Values are checked the way a trigger is (``SerializedDAG.create_dagrun`` merges the run conf into the
serialized DAG's params and validates them), from strategies derived from each Param's JSON schema: the
schema keywords the DAGs use (type, minimum/maximum, exclusiveMinimum/exclusiveMaximum, enum, pattern,
items, minItems, maxItems, properties with additionalProperties false, anyOf) are all covered, and a
schema keyword this file does not know fails the test, so a new kind of Param cannot slip through
unchecked. A broken config file makes every DAG file fail to import with an error naming the file and the
field.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
# keywords that describe the form, not the value
PRESENTATION = {"title", "description", "description_md", "section", "format", "values_display", "examples"}
KNOWN = {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "pattern"}
KNOWN |= {"items", "minItems", "maxItems", "properties", "additionalProperties", "anyOf"}


def _serialized_dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return {dag_id: DagSerialization.from_dict(DagSerialization.to_dict(dag)) for dag_id, dag in bag.dags.items()}


DAGS = _serialized_dags()
PARAMS = [
    pytest.param(dag_id, name, id=f"{dag_id}.{name}")
    for dag_id, dag in sorted(DAGS.items())
    for name in sorted(dag.params)
]


def _schema(dag_id: str, name: str) -> dict[str, Any]:
    return {k: v for k, v in DAGS[dag_id].params.get_param(name).schema.items() if k not in PRESENTATION}


def _validate(dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    """What triggering the DAG with ``conf`` does to the params (raises ParamValidationError)."""
    return DAGS[dag_id].params.deep_merge(conf).validate()


# ---------------------------------------------------------------------------------------------- strategies

_WORD = st.text(alphabet=string.ascii_letters + string.digits + ":/-_. ", max_size=30)
_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6), _WORD)


def _other_types(kind: str) -> st.SearchStrategy[Any]:
    """JSON values whose JSON-schema type is not ``kind``."""
    options = {
        "null": st.none(),
        "boolean": st.booleans(),
        "integer": st.integers(-(10**6), 10**6),
        # integral floats count as integers in JSON schema
        "number": st.floats(-1e6, 1e6, allow_nan=False).filter(lambda f: not f.is_integer()),
        "string": _WORD,
        "array": st.lists(_JSON_SCALARS, max_size=3),
        "object": st.dictionaries(st.sampled_from(["a", "b"]), _JSON_SCALARS, max_size=2),
    }
    excluded = {kind, "integer"} if kind == "number" else {kind}
    return st.one_of([s for name, s in options.items() if name not in excluded])


def _number_in(schema: dict[str, Any], integral: bool) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if integral:
        if exclusive_low is not None:
            low = math.floor(exclusive_low) + 1
        if exclusive_high is not None:
            high = math.ceil(exclusive_high) - 1
        return st.integers(min_value=low, max_value=high)
    return st.floats(
        min_value=exclusive_low if exclusive_low is not None else low,
        max_value=exclusive_high if exclusive_high is not None else high,
        exclude_min=exclusive_low is not None,
        exclude_max=exclusive_high is not None,
        allow_nan=False,
        allow_infinity=False,
    )


def _number_outside(schema: dict[str, Any], integral: bool) -> st.SearchStrategy[Any]:
    options = []
    if "minimum" in schema:
        low = schema["minimum"]
        options.append(
            st.integers(max_value=math.ceil(low) - 1) if integral else st.floats(max_value=low - 1e-6, min_value=-1e9)
        )
    if "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"]
        options.append(st.integers(max_value=math.floor(low)) if integral else st.floats(max_value=low, min_value=-1e9))
    if "maximum" in schema:
        high = schema["maximum"]
        options.append(
            st.integers(min_value=math.floor(high) + 1) if integral else st.floats(min_value=high + 1e-6, max_value=1e9)
        )
    if "exclusiveMaximum" in schema:
        high = schema["exclusiveMaximum"]
        options.append(st.integers(min_value=math.ceil(high)) if integral else st.floats(min_value=high, max_value=1e9))
    return st.one_of(options) if options else st.nothing()


def valid_values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the schema accepts."""
    unknown = set(schema) - KNOWN
    assert not unknown, f"schema keywords this test does not generate for: {unknown}"
    kind = schema.get("type")
    if "anyOf" in schema:
        return st.one_of([valid_values(option) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "number"):
        return _number_in(schema, kind == "integer")
    if kind == "string":
        return st.from_regex(schema["pattern"], fullmatch=True) if "pattern" in schema else _WORD
    if kind == "object" and "properties" in schema:
        assert schema.get("additionalProperties") is False, "an object Param with properties must close them"
        optional = {name: valid_values(rule) for name, rule in schema["properties"].items()}
        return st.fixed_dictionaries({}, optional=optional)
    if kind == "object":
        return st.dictionaries(
            st.from_regex(r"\A[a-z_]{1,12}\Z"), st.one_of(st.integers(0, 500), st.floats(0, 1), _WORD), max_size=4
        )
    if kind == "array":
        return st.lists(
            valid_values(schema.get("items", {})),
            min_size=schema.get("minItems", 0),
            max_size=schema.get("maxItems", 10),
        )
    raise AssertionError(f"no strategy for schema {schema}")


def invalid_values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the schema rejects: another type, or the right type outside its bounds."""
    unknown = set(schema) - KNOWN
    assert not unknown, f"schema keywords this test does not generate for: {unknown}"
    if "anyOf" in schema:
        from jsonschema import Draft202012Validator

        validator = Draft202012Validator(schema)
        candidates = st.one_of([invalid_values(option) for option in schema["anyOf"]])
        return candidates.filter(lambda value: not validator.is_valid(value))
    if "type" not in schema and "enum" in schema:
        return st.one_of(_JSON_SCALARS, _WORD).filter(lambda w: w not in schema["enum"])
    kind = schema["type"]
    options = [_other_types(kind)]
    if kind == "object" and "properties" in schema:
        rules = schema["properties"]
        # one property with a value its rule refuses, among valid ones
        options.append(
            st.sampled_from(sorted(rules)).flatmap(
                lambda name: st.tuples(valid_values(schema), st.just(name), invalid_values(rules[name])).map(
                    lambda t: {**t[0], t[1]: t[2]}
                )
            )
        )
        # a name that is not a property
        unknown = st.from_regex(r"\A[a-z_]{1,12}\Z").filter(lambda name: name not in rules)
        options.append(st.tuples(valid_values(schema), unknown, _JSON_SCALARS).map(lambda t: {**t[0], t[1]: t[2]}))
    if "enum" in schema:
        options.append(_WORD.filter(lambda w: w not in schema["enum"]))
    if kind in ("integer", "number"):
        options.append(_number_outside(schema, kind == "integer"))
    if kind == "string" and "pattern" in schema:
        pattern = re.compile(schema["pattern"])
        options.append(_WORD.filter(lambda w: not pattern.search(w)))
    if kind == "array":
        items = schema.get("items")
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if items:
            good = valid_values(items)
            bad = invalid_values(items)
            options.append(
                st.tuples(st.lists(good, max_size=max(0, (high or 3) - 1)), bad, st.integers(0, 3)).map(
                    lambda t: [*t[0][: t[2]], t[1], *t[0][t[2] :]]
                )
            )
        if low:
            options.append(st.just([]))
        if high is not None and items:
            options.append(st.lists(valid_values(items), min_size=high + 1, max_size=high + 3))
    return st.one_of(options)


# ---------------------------------------------------------------------------------------------- tests


def test_every_dag_has_typed_params():
    assert set(DAGS) >= {"train_model", "deploy_model", "monitor_model", "batch_score"}
    for dag_id, name in ((p.values[0], p.values[1]) for p in PARAMS):
        schema = _schema(dag_id, name)
        assert schema.get("type"), f"{dag_id}.{name}: a Param without a type accepts anything"


@pytest.mark.parametrize(("dag_id", "name"), PARAMS)
def test_defaults_are_valid(dag_id: str, name: str):
    assert name in _validate(dag_id, {})


@pytest.mark.parametrize(("dag_id", "name"), PARAMS)
def test_invalid_values_are_rejected_naming_the_param(dag_id: str, name: str):
    from airflow.sdk.exceptions import ParamValidationError

    schema = _schema(dag_id, name)

    @EXAMPLES
    @given(value=invalid_values(schema))
    def check(value: Any) -> None:
        with pytest.raises(ParamValidationError) as caught:
            _validate(dag_id, {name: copy.deepcopy(value)})
        assert f"Invalid input for param {name}:" in str(caught.value)

    check()


@pytest.mark.parametrize(("dag_id", "name"), PARAMS)
def test_valid_values_are_accepted(dag_id: str, name: str):
    schema = _schema(dag_id, name)

    @EXAMPLES
    @given(value=valid_values(schema))
    def check(value: Any) -> None:
        assert _validate(dag_id, {name: copy.deepcopy(value)})[name] == value

    check()


def test_a_bad_config_file_fails_every_dag_import_naming_file_and_field(tmp_path: Path):
    document = yaml.safe_load((ROOT / "include" / "config" / "local.yaml").read_text(encoding="utf-8"))
    document["sagemaker"]["processing"]["instance_type"] = "m5.large"  # the ml. prefix is missing
    bad = tmp_path / "local.yaml"
    bad.write_text(yaml.safe_dump(document), encoding="utf-8")
    probe = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(ROOT / 'dags')!r})\n"
        "print(json.dumps({'errors': bag.import_errors, 'dags': sorted(bag.dags)}))\n"
    )
    env = {**os.environ, "ML_LIFECYCLE_CONFIG_DIR": str(tmp_path), "ML_LIFECYCLE_ENV": "local"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["dags"] == [], f"DAGs imported despite the bad config: {result['dags']}"
    errors = {Path(k).name: v for k, v in result["errors"].items()}
    assert set(errors) == {p.name for p in DAG_FILES}
    for name, error in errors.items():
        assert f"{bad}: 1 invalid field" in error, f"{name}: {error}"
        assert "sagemaker.processing.instance_type:" in error, f"{name}: {error}"
