"""plugins.zip as MWAA unpacks it: Airflow's plugin loader imports nothing of the package and shadows nothing.

Airflow's plugin loader imports every ``.py`` file under the plugins folder that no ``.airflowignore`` there
excludes, as a top-level module named after the file. A package file named like an installed package
(``hooks/snowflake.py``) then replaces that package in ``sys.modules`` in every process, and every task that
imports it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tools import dist

PROBE = Path(__file__).with_name("_plugin_loading_probe.py")
#: what the tasks import beside the package: the connector (the clash seen on MWAA), GX, the provider hooks
IMPORTS = (
    "snowflake.connector",
    "great_expectations",
    "airflow.providers.snowflake.hooks.snowflake",
    "ml_lifecycle",
    "ml_lifecycle.hooks.snowflake_hook",
    "ml_lifecycle.operators.extract",
)


@pytest.fixture(scope="module")
def plugins_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist") / "mwaa"
    dist.build(out)
    return out / "plugins.zip"


def _load(plugins: Path, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PYTHONPATH": str(plugins),
        }
    )
    proc = subprocess.run(
        [sys.executable, str(PROBE), *IMPORTS], env=env, cwd=home, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _failed_imports(report: dict) -> dict:
    return {name: r["error"] for name, r in report["imports"].items() if not r["ok"]}


def test_unpacked_plugins_zip_loads_nothing_as_a_top_level_module(plugins_zip, tmp_path):
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(plugins_zip).extractall(plugins)
    report = _load(plugins, tmp_path)
    assert report["foreign_modules"] == [], "modules of the package loaded under top-level names"
    assert report["plugin_import_errors"] == {}
    assert _failed_imports(report) == {}
    assert report["imports"]["ml_lifecycle"]["file"].startswith(str(plugins)), "the package comes from the zip"
    assert "site-packages" in report["imports"]["snowflake.connector"]["file"]


def test_a_copy_that_lost_its_ignore_file_still_shadows_no_installed_package(plugins_zip, tmp_path):
    """Unpacked by a tool that drops hidden files: the loader imports the package's files, and still every
    installed package the tasks use imports from site-packages, because no module is named like one."""
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(plugins_zip) as archive:
        for name in archive.namelist():
            if not Path(name).name.startswith("."):
                archive.extract(name, plugins)
    assert not (plugins / dist.IGNORE_FILE).exists()
    report = _load(plugins, tmp_path)
    assert report["foreign_modules"], "without the ignore file the loader imports the package's files"
    assert _failed_imports(report) == {}
    assert "site-packages" in report["imports"]["snowflake.connector"]["file"]


def test_build_refuses_a_zip_whose_files_the_loader_would_import(tmp_path):
    files = {"ml_lifecycle/__init__.py": b"", "ml_lifecycle/naming.py": b""}
    with pytest.raises(dist.DistError, match=r"plugin loader \(glob ignore syntax\) would import .*naming\.py"):
        dist.check_plugin_loading(files, reserved=set())


@pytest.mark.parametrize(
    "module",
    [
        pytest.param("ml_lifecycle/hooks/snowflake.py", id="installed-distribution"),
        pytest.param("ml_lifecycle/data/json.py", id="standard-library"),
    ],
)
def test_build_refuses_a_module_named_like_a_top_level_module(module):
    files = {
        dist.IGNORE_FILE: b"ml_lifecycle/\n",
        "ml_lifecycle/__init__.py": b"",
        module: b"",
    }
    stem = Path(module).stem
    with pytest.raises(dist.DistError, match=rf"{module} \(would replace `{stem}`\).*Rename them"):
        dist.check_plugin_loading(files)


def test_plugins_zip_carries_the_build_information(plugins_zip):
    from tools.dist import BUILD_INFO

    info = json.loads(zipfile.ZipFile(plugins_zip).read(BUILD_INFO))
    commit, _ = dist.git_commit()
    assert info["git_commit"] == commit and len(commit) == 40
    assert isinstance(info["git_dirty"], bool)
