"""``python -m tools.dist``: what MWAA receives is complete, in MWAA's layout, within budget and reproducible."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tools import dist
from tools import mwaa_requirements as mr

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("_mwaa_probe.py")
STARTUP = ROOT / "infra" / "mwaa" / "startup.sh"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dist") / "mwaa"
    return out, dist.build(out)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _source_package_files() -> set[str]:
    package = ROOT / "plugins" / "ml_lifecycle"
    return {
        p.relative_to(ROOT / "plugins").as_posix()
        for p in package.rglob("*.py")
        if "__pycache__" not in p.parts and "tests" not in p.parts
    }


# ------------------------------------------------------------------------------------------- plugins.zip


def test_plugins_zip_has_the_package_at_its_root(built):
    out, _ = built
    names = zipfile.ZipFile(out / "plugins.zip").namelist()
    assert "ml_lifecycle/__init__.py" in names
    assert all(name.startswith("ml_lifecycle/") for name in names if name != dist.IGNORE_FILE), names
    assert dist.IGNORE_FILE in names, "the plugin loader's ignore file ships at the zip root"
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if "/tests/" in n or Path(n).name.startswith("test_")]
    assert set(names) >= _source_package_files(), "every module of the package ships"


def test_plugins_zip_entries_are_sorted_with_fixed_time_and_mode(built):
    out, _ = built
    infos = zipfile.ZipFile(out / "plugins.zip").infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {dist.FIXED_ZIP_TIME}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} == {0o644}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}


def test_plugins_zip_extracts_to_an_importable_package(built, tmp_path):
    out, _ = built
    zipfile.ZipFile(out / "plugins.zip").extractall(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", "import ml_lifecycle.config as c; print(c.__file__)"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(tmp_path))


# ------------------------------------------------------------------------------------------------ dags/


def test_dag_folder_carries_dags_include_and_ignore_file(built):
    out, _ = built
    dags = out / "dags"
    for dag_file in (ROOT / "dags").glob("*.py"):
        assert (dags / dag_file.name).read_bytes() == dag_file.read_bytes()
    for config in (ROOT / "include" / "config").glob("*.yaml"):
        assert (dags / "include" / "config" / config.name).read_bytes() == config.read_bytes()
    for code in (ROOT / "include" / "code").rglob("*.py"):
        if "__pycache__" not in code.parts:
            assert (dags / "include" / code.relative_to(ROOT / "include")).is_file(), code
    ignore = (dags / ".airflowignore").read_text().splitlines()
    assert "include/" in ignore, "Airflow must not parse include/ (container code, configs) as DAG files"
    assert not list(dags.rglob("__pycache__"))


def test_airflowignore_keeps_include_out_of_dag_parsing(built):
    """Airflow's own ignore logic, fed the bundle's .airflowignore, skips everything under include/."""
    from airflow.utils.file import list_py_file_paths

    out, _ = built
    parsed = [Path(p).relative_to(out / "dags").as_posix() for p in list_py_file_paths(str(out / "dags"))]
    assert not [p for p in parsed if p.startswith("include/")], parsed


def test_reserved_include_name_in_dags_is_rejected(tmp_path):
    root = _copy_sources(tmp_path / "src")
    (root / "dags" / "include").mkdir()
    (root / "dags" / "include" / "x.py").write_text("")
    with pytest.raises(dist.DistError, match=r"dags/include/ is reserved"):
        dist.build(tmp_path / "out", root=root)


# ----------------------------------------------------------------------------- requirements and startup


def test_requirements_are_copied_unchanged(built):
    out, _ = built
    assert (out / "requirements.txt").read_bytes() == (ROOT / "requirements.txt").read_bytes()
    assert mr.constraint_line((out / "requirements.txt").read_text()) == mr.AIRFLOW_CONSTRAINTS_URL


def test_requirements_without_the_constraint_line_are_rejected(tmp_path):
    root = _copy_sources(tmp_path / "src")
    (root / "requirements.txt").write_text("apache-airflow-providers-amazon==9.34.0\n")
    with pytest.raises(dist.DistError, match=r"--constraint line must be"):
        dist.build(tmp_path / "out", root=root)


@pytest.mark.slow
def test_bundled_requirements_resolve_as_mwaa_installs_them(built):
    out, _ = built
    result = mr.resolve(out / "requirements.txt")
    assert result.ok, result.message
    assert result.resolved["apache-airflow"] == mr.AIRFLOW_VERSION


def test_startup_script_is_executable_and_unchanged(built):
    out, _ = built
    assert (out / "startup.sh").read_bytes() == STARTUP.read_bytes()
    assert os.stat(out / "startup.sh").st_mode & 0o111


# ------------------------------------------------------------------------------------- sizes, manifest


def test_artefacts_are_within_budget(built):
    _, manifest = built
    sizes = {f["path"]: f["size"] for f in manifest["files"]}
    assert sizes["plugins.zip"] <= dist.MAX_PLUGINS_ZIP_BYTES
    assert sum(s for p, s in sizes.items() if p.startswith("dags/")) <= dist.MAX_DAGS_BYTES
    assert sizes["requirements.txt"] <= dist.MAX_REQUIREMENTS_BYTES


def test_oversized_plugins_are_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(dist, "MAX_PLUGINS_ZIP_BYTES", 100)
    with pytest.raises(dist.DistError, match=r"plugins\.zip is .* above its budget"):
        dist.build(tmp_path / "out")


def test_manifest_lists_every_file_with_its_digest(built):
    out, manifest = built
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {k: v for k, v in _tree(out).items() if k != "manifest.json"}
    assert set(listed) == set(on_disk)
    for path, data in on_disk.items():
        assert listed[path]["sha256"] == hashlib.sha256(data).hexdigest(), path
        assert listed[path]["size"] == len(data)
    assert manifest["airflow_version"] == "3.3.1"
    commit = manifest["git_commit"]
    assert len(commit) == 40
    known = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, capture_output=True)
    assert known.returncode == 0, f"{commit} is not a commit of this repository"
    assert json.loads((out / "manifest.json").read_text()) == manifest


# -------------------------------------------------------------------------------------- reproducibility


def _copy_sources(root: Path) -> Path:
    for name in ("dags", "plugins", "include"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("requirements.txt", ".airflowignore", "infra/mwaa/startup.sh"):
        if (ROOT / name).exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)
    return root


def test_building_twice_gives_identical_bytes(tmp_path):
    first = dist.build(tmp_path / "first")
    second = dist.build(tmp_path / "second")
    assert _tree(tmp_path / "first") == _tree(tmp_path / "second")
    assert first == second


def test_bytes_do_not_depend_on_file_times_or_modes(tmp_path):
    root = _copy_sources(tmp_path / "src")
    dist.build(tmp_path / "original", root=root)
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (time.time() - 12345, time.time() - 12345))
            path.chmod(0o600 if path.suffix == ".py" else 0o664)
    dist.build(tmp_path / "out", root=root)
    assert _tree(tmp_path / "out") == _tree(tmp_path / "original")


# ------------------------------------------------------------------------------ parsing as MWAA does


def _mwaa_home(out: Path, home: Path) -> Path:
    shutil.copytree(out / "dags", home / "dags")
    zipfile.ZipFile(out / "plugins.zip").extractall(home / "plugins")
    return home


def _repo_dag_ids() -> list[str]:
    from airflow.dag_processing.dagbag import DagBag

    return sorted(DagBag(dag_folder=str(ROOT / "dags")).dag_ids)


@pytest.mark.parametrize(
    ("mwaa_name", "expected_env"),
    [
        pytest.param("ml-lifecycle-dev", "dev", id="dev"),
        pytest.param("ml-lifecycle-prod", "prod", id="prod"),
    ],
)
def test_bundle_parses_as_on_mwaa(built, tmp_path, mwaa_name, expected_env):
    """Only the bundle is visible: AIRFLOW_HOME holds dags/ and the extracted plugins.zip, PYTHONPATH is
    the plugins folder, and the environment comes from startup.sh and the MWAA environment name."""
    out, _ = built
    home = _mwaa_home(out, tmp_path / "airflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ML_LIFECYCLE", "PYTHONPATH"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_ENV_NAME": mwaa_name,
            "PYTHONPATH": str(home / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        }
    )
    script = f'source "{out / "startup.sh"}" >/dev/null && exec "{sys.executable}" "{PROBE}"'
    proc = subprocess.run(["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["error"] is None, report["error"]
    assert report["package_file"].startswith(str(home / "plugins")), "the package must come from plugins.zip"
    assert report["environment"] == expected_env
    assert report["config_file"] == str(home / "dags" / "include" / "config" / f"{expected_env}.yaml")
    assert report["import_errors"] == {}
    assert report["dag_ids"] == _repo_dag_ids()
    if list((ROOT / "dags").glob("*.py")):
        assert report["dag_ids"], "the bundle's DAG files define no DAG"
    assert not [f for f in report["parsed_files"] if "include" in f]


# ---------------------------------------------------------------------------------------- startup.sh


def _startup(env: dict[str, str], home: Path) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "AIRFLOW_HOME": str(home)}
    show = 'printf "%s|%s" "${ML_LIFECYCLE_ENV-<unset>}" "$ML_LIFECYCLE_INCLUDE_DIR"'
    script = f'source "{STARTUP}" >/dev/null && {show}'
    return subprocess.run(["bash", "-c", script], env={**base, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({"AIRFLOW_ENV_NAME": "ml-lifecycle-dev"}, "dev", id="from-environment-name"),
        pytest.param({"AIRFLOW_ENV_NAME": "Fraud-PROD"}, "prod", id="name-is-lower-cased"),
        pytest.param(
            {"AIRFLOW_ENV_NAME": "ml-lifecycle-dev", "AIRFLOW__ML_LIFECYCLE__ENV": "prod"},
            "prod",
            id="configuration-option-wins-over-name",
        ),
        pytest.param(
            {"AIRFLOW__ML_LIFECYCLE__ENV": "prod", "ML_LIFECYCLE_ENV": "dev"}, "dev", id="explicit-variable-wins"
        ),
    ],
)
def test_startup_selects_the_environment(tmp_path, env, expected):
    started = time.monotonic()
    proc = _startup(env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 5, "MWAA allows 5 minutes; this script must take milliseconds"
    selected, include = proc.stdout.split("|")
    assert selected == expected
    assert include == str(tmp_path / "dags" / "include")


def test_startup_without_any_hint_says_so(tmp_path):
    proc = _startup({}, tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.split("|")[0] == "<unset>"
    assert "no environment selected" in proc.stderr


def test_startup_names_a_missing_config_file(tmp_path):
    config = tmp_path / "dags" / "include" / "config"
    config.mkdir(parents=True)
    (config / "dev.yaml").write_text("environment: dev\n")
    proc = _startup({"AIRFLOW_ENV_NAME": "ml-lifecycle-stagin"}, tmp_path)
    assert proc.returncode == 0
    assert "stagin.yaml does not exist" in proc.stderr
    assert "dev.yaml" in proc.stderr


def test_startup_installs_nothing():
    text = STARTUP.read_text()
    for forbidden in ("pip install", "yum ", "dnf ", "apt-get", "curl ", "wget "):
        assert forbidden not in text, f"startup.sh must stay trivial (MWAA's 5-minute limit): {forbidden!r}"
