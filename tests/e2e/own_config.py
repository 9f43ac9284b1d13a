"""A copy of the ``local`` config naming a test module's own endpoint and model package group.

The end-to-end modules share one devstack in a session (``make test``); each one that registers model
versions or deploys an endpoint works on names of its own, so no module sees another's versions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def own_config(folder: Path, *, endpoint: str, group: str) -> Iterator[Any]:
    """While inside, ``load_config("local")`` (and so every operator) reads a copy naming ``endpoint`` and ``group``.

    :param folder: an empty directory for the copy (``ML_LIFECYCLE_CONFIG_DIR`` points to it).
    :param endpoint: ``deployment.endpoint_name`` of the copy.
    :param group: ``sagemaker.model_package_group`` of the copy.
    """
    from ml_lifecycle.config import CONFIG_DIR_VAR, _load_cached, load_config

    text = (ROOT / "include" / "config" / "local.yaml").read_text()
    text, endpoints = re.subn(r"(?m)^(\s*endpoint_name:) .*$", rf"\1 {endpoint}", text)
    text, groups = re.subn(r"(?m)^(\s*model_package_group:) .*$", rf"\1 {group}", text)
    assert endpoints == 1 and groups == 1, "local.yaml names one endpoint and one model package group"
    (folder / "local.yaml").write_text(text)
    saved = os.environ.get(CONFIG_DIR_VAR)
    os.environ[CONFIG_DIR_VAR] = str(folder)
    _load_cached.cache_clear()
    try:
        config = load_config("local")
        assert config.deployment.endpoint_name == endpoint and config.sagemaker.model_package_group == group
        yield config
    finally:
        if saved is None:
            os.environ.pop(CONFIG_DIR_VAR, None)
        else:
            os.environ[CONFIG_DIR_VAR] = saved
        _load_cached.cache_clear()


#: the lineage every registered model package carries in its CustomerMetadataProperties
LINEAGE = (
    "git_commit",
    "dag_id",
    "dag_run_id",
    "window_start",
    "window_end",
    "dataset_uri",
    "manifest_uri",
    "validation_result_uri",
    "evaluation_uri",
    "gate_uri",
    "baseline_uri",
    "training_job",
    "code_digest",
)
