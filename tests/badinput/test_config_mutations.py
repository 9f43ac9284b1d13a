"""Bad configuration: mutations of ``include/config/local.yaml`` are rejected with the file and the field.

Each mutation changes one place of the shipped local file: a required field dropped, a value of the wrong
type, an unknown key, or a value outside the field's bounds (range, pattern, allowed values). The places
come from walking the pydantic models alongside the document, so a new field is covered without editing
this test. Every mutated document must fail with :class:`ConfigError` whose message starts with the file
and lists the dotted path of the field.
"""

from __future__ import annotations

import copy
import math
import re
import string
import tempfile
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ml_lifecycle import config as cfg

ROOT = Path(__file__).resolve().parents[2]
LOCAL_PATH = ROOT / "include" / "config" / "local.yaml"
LOCAL: dict[str, Any] = yaml.safe_load(LOCAL_PATH.read_text(encoding="utf-8"))
SOURCE = "/etc/ml-lifecycle/include/config/local.yaml"
EXAMPLES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False, database=None
)
# strings pydantic's lax mode reads as booleans
BOOLEAN_WORDS = {"true", "false", "yes", "no", "on", "off", "t", "f", "y", "n", "1", "0"}


@dataclass(frozen=True)
class Site:
    """One place in the document that a mutation can touch.

    :param path: keys from the top of the document.
    :param annotation: the expected type there (``Optional`` and ``Annotated`` removed).
    :param constraints: the field's bounds (``annotated_types`` objects, pattern metadata).
    :param required: the model has no default for it.
    :param model: the pydantic model that lives there (a mapping with fixed keys), if any.
    :param tags: discriminator values that pydantic puts into error locations inside this place.
    :param discriminator: the key that selects the member of a tagged union (``type`` of a tuning range).
    """

    path: tuple[str, ...]
    annotation: Any
    constraints: tuple[Any, ...]
    required: bool
    model: type[BaseModel] | None
    tags: frozenset[str] = frozenset()
    discriminator: bool = False

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    def __str__(self) -> str:
        return self.dotted


def _strip(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated`` and ``Optional`` removed; the ``Annotated`` metadata collected."""
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation, tuple(metadata)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _union_models(annotation: Any) -> list[type[BaseModel]]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if _is_model(a)]
    return []


def _discriminated(value: dict[str, Any], members: list[type[BaseModel]]) -> type[BaseModel] | None:
    for member in members:
        literal = member.model_fields.get("type")
        if literal is not None and value.get("type") in typing.get_args(literal.annotation):
            return member
    return None


def walk(model: type[BaseModel], data: dict[str, Any], prefix: tuple[str, ...] = (), tags=frozenset()) -> list[Site]:
    """Every place of ``data`` (a document of ``model``) with the type and bounds the model expects there."""
    sites: list[Site] = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        key = info.alias or name
        if key not in data:
            continue
        annotation, extra = _strip(info.annotation)
        site = Site(
            (*prefix, key),
            annotation,
            tuple(info.metadata) + extra,
            info.is_required(),
            annotation if _is_model(annotation) else None,
            tags,
            discriminator=bool(tags) and key == "type",
        )
        sites.append(site)
        value = data[key]
        if site.model is not None and isinstance(value, dict):
            sites.extend(walk(site.model, value, site.path, tags))
        elif typing.get_origin(annotation) is dict and isinstance(value, dict):
            value_type, value_meta = _strip(typing.get_args(annotation)[1])
            members = _union_models(value_type)
            for entry_key, entry in value.items():
                path = (*site.path, str(entry_key))
                member = _discriminated(entry, members) if members and isinstance(entry, dict) else None
                if member is not None:
                    member_tags = tags | {typing.get_args(member.model_fields["type"].annotation)[0]}
                    sites.append(Site(path, member, (), False, member, member_tags))
                    sites.extend(walk(member, entry, path, member_tags))
                else:
                    sites.append(Site(path, value_type, value_meta, False, None, tags))
    return sites


SITES = walk(cfg.Config, LOCAL)
ROOT_SITE = Site((), cfg.Config, (), True, cfg.Config)
REQUIRED = [s for s in SITES if s.required]
MODELS = [ROOT_SITE, *(s for s in SITES if s.model is not None)]


def _bounded(site: Site) -> bool:
    kinds = (annotated_types.Ge, annotated_types.Gt, annotated_types.Le, annotated_types.Lt)
    return (
        any(isinstance(c, kinds) or getattr(c, "pattern", None) for c in site.constraints)
        or typing.get_origin(site.annotation) is typing.Literal
    )


BOUNDED = [s for s in SITES if _bounded(s)]


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _drop(document: dict[str, Any], path: tuple[str, ...]) -> None:
    target = document
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]


def _get(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    target = document
    for key in path:
        target = target[key]
    return target


def _locations(message: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\s+- (.+?): ", message, flags=re.MULTILINE)]


def _names(message: str, site: Site, leaf: str | None = None) -> bool:
    """Whether one reported location is the site's dotted path (or a place inside it)."""
    want = site.dotted + (f".{leaf}" if leaf else "") if site.path else (leaf or "")
    if site.discriminator:
        # pydantic reports a missing or unknown tag at the union's place, naming the tag's key
        parent = ".".join(site.path[:-1])
        return any(location == parent and f"'{site.path[-1]}'" in message for location in _locations(message))
    # the location is the document's dotted path: no discriminator tags or validator names in it
    return any(location == want or location.startswith(want + ".") for location in _locations(message))


def _reject(document: Any) -> str:
    """Parse ``document`` as the file ``SOURCE``; return the ConfigError message (fail if it is accepted)."""
    text = yaml.safe_dump(document, sort_keys=False)
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.parse_config(text, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: "), f"the message must start with the file: {message}"
    return message


# ---------------------------------------------------------------------------------------------- strategies

_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-_ ./:", min_size=1, max_size=20)


def _not_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip().lower() not in BOOLEAN_WORDS and text.strip() != ""
    return False


def wrong_type(site: Site) -> st.SearchStrategy[Any]:
    """Values of a JSON/YAML kind the site does not accept."""
    annotation = site.annotation
    origin = typing.get_origin(annotation)
    mapping = st.dictionaries(st.sampled_from(["a", "b", "nested"]), st.integers(), min_size=1, max_size=2)
    listing = st.lists(st.integers(), min_size=1, max_size=3)
    if site.model is not None or origin is dict:
        return st.one_of(listing, st.integers(), _TEXT.filter(lambda t: t.strip() != ""))
    if origin is list:
        return st.one_of(mapping, _TEXT.filter(lambda t: t.strip() != ""), st.integers())
    if annotation is bool:
        return st.one_of(mapping, listing, _TEXT.filter(_not_number), st.floats(0.01, 0.99))
    if annotation in (int, float):
        # a boolean is not a number: the config refuses the 1/0 that pydantic's lax mode would make of it
        wrong = st.one_of(mapping, listing, _TEXT.filter(_not_number), st.booleans())
        return st.one_of(wrong, st.floats(0.01, 0.99)) if annotation is int else wrong
    # str, Literal, unions of scalars: a mapping or a list is never one of them
    return st.one_of(mapping, listing)


def out_of_bounds(site: Site) -> st.SearchStrategy[Any]:
    """Values of the right kind outside the site's range, pattern or allowed values."""
    if typing.get_origin(site.annotation) is typing.Literal:
        allowed = {str(a) for a in typing.get_args(site.annotation)}
        return _TEXT.filter(lambda t: t.strip() not in allowed and t.strip() != "")
    options: list[st.SearchStrategy[Any]] = []
    integral = site.annotation is int
    for c in site.constraints:
        if isinstance(c, annotated_types.Ge | annotated_types.Gt):
            bound = c.ge if isinstance(c, annotated_types.Ge) else c.gt
            if integral:
                options.append(
                    st.integers(max_value=math.ceil(bound) - (1 if isinstance(c, annotated_types.Ge) else 0))
                )
            else:
                top = bound - 1e-6 if isinstance(c, annotated_types.Ge) else bound
                options.append(st.floats(max_value=top, allow_nan=False, allow_infinity=False, min_value=-1e9))
        elif isinstance(c, annotated_types.Le | annotated_types.Lt):
            bound = c.le if isinstance(c, annotated_types.Le) else c.lt
            if integral:
                options.append(
                    st.integers(min_value=math.floor(bound) + (1 if isinstance(c, annotated_types.Le) else 0))
                )
            else:
                bottom = bound + 1e-6 if isinstance(c, annotated_types.Le) else bound
                options.append(st.floats(min_value=bottom, allow_nan=False, allow_infinity=False, max_value=1e9))
        elif getattr(c, "pattern", None):
            pattern = re.compile(c.pattern)
            options.append(_TEXT.filter(lambda t, p=pattern: t.strip() != "" and not p.search(t.strip())))
    assert options, f"{site}: no bounds to break"
    return st.one_of(options)


def _unknown_key(model: type[BaseModel]) -> st.SearchStrategy[str]:
    known = {info.alias or name for name, info in model.model_fields.items()} | set(model.model_fields)
    return st.from_regex(r"\A[a-z][a-z_]{2,15}\Z").filter(lambda k: k not in known)


# ---------------------------------------------------------------------------------------------- tests


def test_the_shipped_file_is_valid_and_the_walk_covers_it():
    assert cfg.parse_config(LOCAL_PATH.read_text(encoding="utf-8"), str(LOCAL_PATH)).environment == "local"
    dotted = {s.dotted for s in SITES}
    assert {
        "aws.account_id",
        "snowflake.schema",
        "sagemaker.tuning.ranges.eta.min",
        "training.gate.thresholds.auc",
    } <= dotted
    assert len(REQUIRED) >= 20 and len(BOUNDED) >= 40


@pytest.mark.parametrize("site", [pytest.param(s, id=s.dotted) for s in REQUIRED])
def test_every_required_field_dropped_is_named(site: Site):
    document = copy.deepcopy(LOCAL)
    _drop(document, site.path)
    message = _reject(document)
    assert _names(message, site), message
    if not site.discriminator:
        assert "required field is missing" in message


@EXAMPLES
@given(data=st.data())
def test_dropping_a_required_field_is_rejected(data: st.DataObject):
    site = data.draw(st.sampled_from(REQUIRED), label="site")
    document = copy.deepcopy(LOCAL)
    _drop(document, site.path)
    message = _reject(document)
    assert _names(message, site), f"{site.dotted} not named in:\n{message}"


@EXAMPLES
@given(data=st.data())
def test_a_value_of_the_wrong_type_is_rejected(data: st.DataObject):
    site = data.draw(st.sampled_from(SITES), label="site")
    value = data.draw(wrong_type(site), label="value")
    document = copy.deepcopy(LOCAL)
    _set(document, site.path, value)
    message = _reject(document)
    assert _names(message, site), f"{site.dotted} = {value!r} not named in:\n{message}"


NUMBERS = [s for s in SITES if s.annotation in (int, float)]
# how a person types a boolean in YAML 1.1 (PyYAML): each loads as True or False
YAML_BOOLEANS = ["true", "false", "yes", "no", "on", "off", "True", "FALSE", "Yes", "NO", "On", "OFF"]


@EXAMPLES
@given(data=st.data())
def test_a_boolean_in_a_number_field_is_rejected(data: st.DataObject):
    """``max_jobs: yes`` is a slip, not 1: every integer and float field refuses a boolean, naming the field."""
    site = data.draw(st.sampled_from(NUMBERS), label="site")
    word = data.draw(st.sampled_from(YAML_BOOLEANS), label="word")
    document = copy.deepcopy(LOCAL)
    _set(document, site.path, "__boolean__")
    text = yaml.safe_dump(document, sort_keys=False).replace("__boolean__", word)
    assert isinstance(_get(yaml.safe_load(text), site.path), bool)
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.parse_config(text, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: 1 invalid field:"), message
    assert f"  - {site.dotted}: expected a number, not a boolean" in message, message


def test_every_number_field_is_covered():
    """The walk finds the integer and float fields (including tuning ranges and thresholds) to try booleans on."""
    dotted = {s.dotted for s in NUMBERS}
    assert {
        "sagemaker.tuning.max_jobs",
        "sagemaker.tuning.ranges.max_depth.min",
        "sagemaker.tuning.ranges.eta.max",
        "training.gate.thresholds.auc",
        "deployment.canary_percent",
    } <= dotted
    assert len(NUMBERS) >= 25


@EXAMPLES
@given(data=st.data())
def test_an_unknown_key_is_rejected(data: st.DataObject):
    site = data.draw(st.sampled_from(MODELS), label="site")
    key = data.draw(_unknown_key(site.model), label="key")
    document = copy.deepcopy(LOCAL)
    target = _get(document, site.path) if site.path else document
    target[key] = data.draw(st.one_of(st.integers(), _TEXT), label="value")
    message = _reject(document)
    assert _names(message, site, leaf=key), f"{site.dotted}.{key} not named in:\n{message}"
    assert "unknown key" in message


@EXAMPLES
@given(data=st.data())
def test_a_value_out_of_bounds_is_rejected(data: st.DataObject):
    site = data.draw(st.sampled_from(BOUNDED), label="site")
    value = data.draw(out_of_bounds(site), label="value")
    document = copy.deepcopy(LOCAL)
    _set(document, site.path, value)
    message = _reject(document)
    assert _names(message, site), f"{site.dotted} = {value!r} not named in:\n{message}"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("- a\n- list\n", id="top-level-list"),
        pytest.param("aws: {conn_id: x\n", id="broken-yaml"),
        pytest.param("", id="empty-file"),
    ],
)
def test_a_file_that_is_not_a_mapping_names_the_file(text: str):
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.parse_config(text, SOURCE)
    assert str(caught.value).startswith(f"{SOURCE}: ")


def test_load_config_names_the_file_on_disk(monkeypatch: pytest.MonkeyPatch):
    """Through ``load_config`` (what a DAG file calls): the message carries the real path of the file."""
    document = copy.deepcopy(LOCAL)
    document["sagemaker"]["training"]["instance_count"] = 0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "local.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        monkeypatch.setenv(cfg.CONFIG_DIR_VAR, folder)
        with pytest.raises(cfg.ConfigError) as caught:
            cfg.load_config("local")
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "sagemaker.training.instance_count:" in message
