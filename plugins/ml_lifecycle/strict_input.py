"""Strict input: what a run may be given, from the environment's config.

- A model package ARN must be a version of the environment's model package group, in its region and
  account (``sagemaker.model_package_group``, ``aws.region``, ``aws.account_id``).
- An S3 URI must be in one of the environment's buckets (``storage.bucket`` and
  ``storage.input_buckets``).
- A run's conf may only set the DAG's params: any other key is refused by name.

The ARN and S3 rules are also the ``pattern`` of the params that take them, so the trigger (REST API,
UI form, CLI) refuses a foreign value before a run exists; the functions here apply the same rules where
the value is used, and name the rule that failed. Airflow 3.3 accepts a conf key that is not a param
(``create_dagrun`` adds it as a param without a schema), so unknown keys are refused by
:func:`refuse_unknown_conf_keys`, which every task runs before its own work (``pre_execute`` in
``default_args``): the first task of the run fails, without retries, naming the key.

Imported at DAG parse time: nothing here reaches the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

#: a model package version's ARN: partition, region, account, group, version
_PACKAGE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"model-package/(?P<group>[A-Za-z0-9-]+)/(?P<version>\d+)$"
)
_S3_URI = re.compile(r"^s3://(?P<bucket>[^/]*)(?P<key>/.*)?$")


class InputError(ValueError):
    """A value given to a run breaks one of the environment's rules; the message names the value and the rule."""


# ------------------------------------------------------------------------------------------ model packages


def model_package_arn_pattern(cfg: Config, *, allow_latest: bool = True) -> str:
    """The regular expression of an acceptable model package ARN (a ``Param``'s ``pattern``).

    :param cfg: the environment's config
    :param allow_latest: also accept ``latest``
    """
    arn = (
        rf"arn:aws[a-z-]*:sagemaker:{re.escape(cfg.aws.region)}:{re.escape(cfg.aws.account_id)}:"
        rf"model-package/{re.escape(cfg.sagemaker.model_package_group)}/[0-9]+"
    )
    return rf"^(latest|{arn})$" if allow_latest else rf"^{arn}$"


def check_model_package_arn(
    arn: str, cfg: Config, *, field: str = "model_package_arn", group: str | None = None
) -> None:
    """Refuse an ARN that is not a version of the environment's model package group, region and account.

    :param arn: the ARN given to the run
    :param cfg: the environment's config
    :param field: the param or argument it came from, for the message
    :param group: the model package group (default ``sagemaker.model_package_group``)
    :raises InputError: naming the part that differs and what this environment expects
    """
    found = _PACKAGE_ARN.match(arn or "")
    group = group or cfg.sagemaker.model_package_group
    expected = f"arn:aws:sagemaker:{cfg.aws.region}:{cfg.aws.account_id}:model-package/{group}/<version>"
    if not found:
        raise InputError(f"{field} {arn!r} is not a model package version ARN (expected {expected})")
    wanted = {
        "account": cfg.aws.account_id,
        "region": cfg.aws.region,
        "group": group,
    }
    wrong = [f"{part} {found[part]!r} is not {value!r}" for part, value in wanted.items() if found[part] != value]
    if wrong:
        raise InputError(
            f"{field} {arn!r} is outside this environment ({cfg.environment}): {'; '.join(wrong)} (expected {expected})"
        )


# ----------------------------------------------------------------------------------------------- S3 URIs


def allowed_buckets(cfg: Config) -> list[str]:
    """The buckets a run's S3 URIs may name: ``storage.bucket``, then ``storage.input_buckets``.

    :param cfg: the environment's config
    """
    return list(dict.fromkeys([cfg.storage.bucket, *cfg.storage.input_buckets]))


def s3_uri_pattern(cfg: Config, *, allow_empty: bool = True) -> str:
    """The regular expression of an acceptable S3 URI (a ``Param``'s ``pattern``): a key in one of the
    environment's buckets.

    :param cfg: the environment's config
    :param allow_empty: also accept the empty string (the param is optional)
    """
    buckets = "|".join(re.escape(b) for b in allowed_buckets(cfg))
    uri = rf"s3://({buckets})(/[^\s]*)?"
    return rf"^(|{uri})$" if allow_empty else rf"^{uri}$"


def check_s3_uri(uri: str, cfg: Config, *, field: str) -> None:
    """Refuse an S3 URI outside the environment's buckets.

    :param uri: the URI given to the run
    :param cfg: the environment's config
    :param field: the param or argument it came from, for the message
    :raises InputError: naming the URI, its bucket and the buckets allowed
    """
    buckets = allowed_buckets(cfg)
    found = _S3_URI.match(uri or "")
    if not found or not found["bucket"]:
        raise InputError(f"{field} {uri!r} is not an S3 URI (expected s3://<bucket>/<key>, bucket one of {buckets})")
    if found["bucket"] not in buckets:
        raise InputError(
            f"{field} {uri!r}: bucket {found['bucket']!r} is not one of this environment's buckets "
            f"({', '.join(buckets)}; storage.bucket and storage.input_buckets in {cfg.source_file or 'the config'})"
        )
    if re.search(r"\s", uri):
        raise InputError(f"{field} {uri!r}: an S3 URI has no whitespace")


# ------------------------------------------------------------------------------------------- run conf


def unknown_conf_keys(conf: Mapping[str, Any] | None, accepted: Iterable[str]) -> list[str]:
    """The keys of ``conf`` that are not params, sorted.

    :param conf: the run's conf
    :param accepted: the DAG's param names
    """
    names = set(accepted)
    return sorted(str(key) for key in (conf or {}) if key not in names)


def unknown_keys_message(dag_id: str, unknown: list[str], accepted: Iterable[str]) -> str:
    """The message that refuses ``unknown``, listing the accepted keys.

    :param dag_id: the DAG
    :param unknown: the keys that are not params
    :param accepted: the DAG's param names
    """
    what = "key" if len(unknown) == 1 else "keys"
    return (
        f"{dag_id}: unknown conf {what} {', '.join(repr(k) for k in unknown)} (not a param of the DAG; "
        f"accepted: {', '.join(sorted(accepted)) or 'none'})"
    )


def refuse_unknown_conf_keys(context: Mapping[str, Any]) -> None:
    """``pre_execute`` of every task: fail the task, without retries, when the run's conf has a key that is
    not a param of the DAG.

    :param context: the task's context
    :raises AirflowFailException: naming the unknown keys and listing the accepted ones
    """
    from airflow.providers.common.compat.sdk import AirflowFailException

    dag_run = context.get("dag_run")
    task = context.get("task")
    dag = getattr(task, "dag", None) or context.get("dag")
    if dag_run is None or dag is None:
        return
    accepted = list(dag.params)
    unknown = unknown_conf_keys(getattr(dag_run, "conf", None), accepted)
    if unknown:
        raise AirflowFailException(unknown_keys_message(dag.dag_id, unknown, accepted))
