"""Build what Amazon MWAA runs, reproducibly, under ``dist/mwaa/``.

Layout (the same inputs always give the same bytes)::

    dist/mwaa/
      dags/                 the DAG files, an .airflowignore, and include/ (config, SQL, GX suites,
                            container code) that the DAGs and the package read at run time
      plugins.zip           the package at the zip root (ml_lifecycle/__init__.py), as MWAA extracts it
                            into $AIRFLOW_HOME/plugins, which is on sys.path; an .airflowignore at the
                            zip root keeps Airflow's plugin loader out of the package; and
                            ml_lifecycle/BUILD_INFO.json, the commit the bundle was built from
      requirements.txt      what MWAA installs, with its --constraint line (checked)
      startup.sh            selects the environment (ML_LIFECYCLE_ENV) on every MWAA container
      manifest.json         every file with its SHA-256 and size, and the git commit it was built from

Zip entries are sorted, with fixed timestamps and permissions; copied files get a fixed mtime and mode;
caches, compiled files, hidden files (but the ignore files) and tests are left out.

Airflow's plugin loader imports every ``.py`` file under the plugins folder that no ``.airflowignore``
excludes, as a top-level module named after the file (``ml_lifecycle/hooks/x.py`` becomes ``x``). Two
checks make that harmless however the zip is unpacked: the build fails when the loader, fed the zip's own
``.airflowignore``, would import any file of the package; and it fails when a module of the package is named
like a top-level module of the environment (the standard library or an installed distribution), so that
even a copy that lost its ignore file cannot shadow, say, the ``snowflake`` connector.

Usage: ``python -m tools.dist [--out dist/mwaa]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.mwaa_requirements import AIRFLOW_CONSTRAINTS_URL, AIRFLOW_VERSION, PYTHON_VERSION, constraint_line

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "dist" / "mwaa"
PACKAGE = "ml_lifecycle"
STARTUP_SCRIPT = Path("infra") / "mwaa" / "startup.sh"
SOURCES = ("dags", "plugins", "include", "requirements.txt", ".airflowignore", str(STARTUP_SCRIPT))

# 1980-01-01 is the earliest timestamp a zip entry can hold; every entry and copied file gets it.
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_MTIME = 315532800  # 1980-01-01T00:00:00Z
FILE_MODE = 0o644
EXEC_MODE = 0o755

# Size budgets. MWAA publishes no hard size limit for plugins.zip or the DAG folder; every file is synced
# from S3 to each scheduler and worker at start-up and on change, so a bundle that grows far beyond the
# source of this project means something unintended (data, a virtualenv) slipped in.
MAX_PLUGINS_ZIP_BYTES = 5 * 1024 * 1024
MAX_DAGS_BYTES = 20 * 1024 * 1024
MAX_REQUIREMENTS_BYTES = 64 * 1024

_EXCLUDED_DIRS = {
    "__pycache__",
    ".pytest_cache",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".ruff_cache",
    "tests",
    "test",
}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".swp", ".orig", "~")
_TEST_FILE = re.compile(r"^(test_.*|.*_test|conftest)\.py$")
_DEFAULT_IGNORE = ("include/", "__pycache__/", r"_.*\.py")
IGNORE_FILE = ".airflowignore"
BUILD_INFO = f"{PACKAGE}/BUILD_INFO.json"
#: the ignore-file syntaxes Airflow's loader supports (``[core] dag_ignore_file_syntax``); the zip must hold in both
IGNORE_SYNTAXES = ("glob", "regexp")


class DistError(RuntimeError):
    """The sources cannot be packaged for MWAA; the message says which file and why."""


@dataclass(frozen=True)
class Artifact:
    path: str
    sha256: str
    size: int


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _shipped(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    if any(part in _EXCLUDED_DIRS or part.startswith(".") for part in rel.parts):
        return False
    if not path.is_file() or path.is_symlink() or path.name.endswith(_EXCLUDED_SUFFIXES):
        return False
    return not _TEST_FILE.match(path.name)


def _walk(folder: Path) -> Iterator[Path]:
    """Files under ``folder`` that ship, sorted by their POSIX relative path."""
    found = [p for p in folder.rglob("*") if _shipped(p, folder)]
    yield from sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _write_file(target: Path, data: bytes, *, executable: bool = False) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    os.chmod(target, EXEC_MODE if executable else FILE_MODE)
    os.utime(target, (FIXED_MTIME, FIXED_MTIME))


def deterministic_zip(files: dict[str, bytes]) -> bytes:
    """A zip of ``files`` (archive name -> bytes) whose bytes depend only on the names and contents."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the permission bits below are honoured
            info.external_attr = (0o100000 | FILE_MODE) << 16
            archive.writestr(info, files[name], compresslevel=9)
    return buffer.getvalue()


def _plugins_ignore(plugins: Path) -> bytes:
    """The zip root's ``.airflowignore``: the project's ``plugins/.airflowignore`` with the package always ignored."""
    source = plugins / IGNORE_FILE
    lines = source.read_text(encoding="utf-8").splitlines() if source.is_file() else []
    if f"{PACKAGE}/" not in {line.strip() for line in lines}:
        lines += [
            f"# {PACKAGE} is imported through sys.path; Airflow's plugin loader must not import its files",
            f"{PACKAGE}/",
        ]
    return ("\n".join(lines).rstrip("\n") + "\n").encode("utf-8")


def build_info_bytes(commit: str | None, dirty: bool) -> bytes:
    """``ml_lifecycle/BUILD_INFO.json``: what :mod:`ml_lifecycle.build_info` reads at run time."""
    return (json.dumps({"git_commit": commit, "git_dirty": dirty}, sort_keys=True) + "\n").encode("utf-8")


def plugins_files(root: Path = ROOT, *, commit: str | None = None, dirty: bool = False) -> dict[str, bytes]:
    """The files of ``plugins.zip``: the package at the zip root (no ``plugins/`` prefix, no caches or tests),
    the loader's ``.airflowignore`` and the build information."""
    plugins = root / "plugins"
    if not (plugins / PACKAGE / "__init__.py").is_file():
        raise DistError(f"{plugins / PACKAGE / '__init__.py'} does not exist: nothing to package as plugins.zip")
    files = {p.relative_to(plugins).as_posix(): p.read_bytes() for p in _walk(plugins)}
    if BUILD_INFO in files:
        raise DistError(f"{plugins / BUILD_INFO} is written by the build; remove it from the sources")
    files[IGNORE_FILE] = _plugins_ignore(plugins)
    files[BUILD_INFO] = build_info_bytes(commit, dirty)
    return files


def top_level_modules() -> set[str]:
    """Top-level module names a module of the package must not take: the standard library's and those of
    every distribution installed in this environment (resolved under MWAA's constraints)."""
    from importlib.metadata import packages_distributions

    return set(sys.stdlib_module_names) | set(packages_distributions())


def check_plugin_loading(files: dict[str, bytes], reserved: set[str] | None = None) -> None:
    """Fail unless Airflow's plugin loader, given these files as the plugins folder, imports none of them, and
    no module of the package is named like a top-level module of the environment.

    :param files: the files of ``plugins.zip``
    :param reserved: top-level module names to protect (:func:`top_level_modules` by default)
    :raises DistError: naming the files the loader would import, or the modules that would shadow another
    """
    import tempfile
    import warnings

    from airflow._shared.module_loading import find_path_from_directory  # what the plugin loader calls

    with tempfile.TemporaryDirectory(prefix="plugins-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pathspec's notice about Airflow's pattern class
        staged = Path(tmp)
        for name, data in files.items():
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            (staged / name).write_bytes(data)
        for syntax in IGNORE_SYNTAXES:
            loaded = sorted(
                Path(p).relative_to(staged).as_posix()
                for p in find_path_from_directory(staged, IGNORE_FILE, syntax)
                if p.endswith(".py")
            )
            if loaded:
                raise DistError(
                    f"Airflow's plugin loader ({syntax} ignore syntax) would import {', '.join(loaded)} from "
                    f"plugins.zip as top-level modules: exclude them in plugins/{IGNORE_FILE}"
                )
    reserved = top_level_modules() if reserved is None else reserved
    clashes = sorted(
        f"{name} (would replace `{Path(name).stem}`)"
        for name in files
        if name.endswith(".py") and Path(name).stem in reserved
    )
    if clashes:
        raise DistError(
            "modules named like a top-level module of the environment; a plugins folder that lost its "
            f"{IGNORE_FILE} would shadow it: {', '.join(clashes)}. Rename them."
        )


def _airflowignore(root: Path) -> bytes:
    """The DAG folder's ``.airflowignore``: the project's patterns, with ``include/`` always ignored."""
    for candidate in (root / "dags" / ".airflowignore", root / ".airflowignore"):
        if candidate.is_file():
            lines = candidate.read_text(encoding="utf-8").splitlines()
            break
    else:
        lines = ["# Files under dags/ that are not DAG definitions (regexp syntax)"]
    patterns = {line.strip() for line in lines}
    lines += [pattern for pattern in _DEFAULT_IGNORE if pattern not in patterns]
    return ("\n".join(lines).rstrip("\n") + "\n").encode("utf-8")


def dag_files(root: Path = ROOT) -> dict[str, bytes]:
    """The DAG folder as MWAA syncs it: DAG files, ``.airflowignore`` and ``include/`` under ``include/``."""
    dags, include = root / "dags", root / "include"
    if not dags.is_dir():
        raise DistError(f"{dags} does not exist")
    if not (include / "config").is_dir():
        raise DistError(f"{include / 'config'} does not exist: the DAGs need their configuration at run time")
    files = {p.relative_to(dags).as_posix(): p.read_bytes() for p in _walk(dags)}
    clash = sorted(name for name in files if name.startswith("include/"))
    if clash:
        raise DistError(f"dags/include/ is reserved for the bundled include/ folder; found {', '.join(clash)}")
    files[".airflowignore"] = _airflowignore(root)
    files.update({f"include/{p.relative_to(include).as_posix()}": p.read_bytes() for p in _walk(include)})
    return files


def requirements_bytes(root: Path = ROOT) -> bytes:
    """``requirements.txt``, checked to carry the constraint line MWAA expects for Airflow 3.3.1."""
    path = root / "requirements.txt"
    if not path.is_file():
        raise DistError(f"{path} does not exist")
    text = path.read_text(encoding="utf-8")
    found = constraint_line(text)
    if found != AIRFLOW_CONSTRAINTS_URL:
        raise DistError(f"{path}: the --constraint line must be {AIRFLOW_CONSTRAINTS_URL!r}, found {found!r}")
    return text.encode("utf-8")


def startup_bytes(root: Path = ROOT) -> bytes:
    path = root / STARTUP_SCRIPT
    if not path.is_file():
        raise DistError(f"{path} does not exist")
    data = path.read_bytes()
    if not data.startswith(b"#!"):
        raise DistError(f"{path}: a startup script must start with a shebang line")
    if b"\r\n" in data:
        raise DistError(f"{path}: Windows line endings; MWAA runs it with bash on Linux")
    return data


def git_commit(root: Path = ROOT) -> tuple[str | None, bool]:
    """The commit the sources come from and whether the shipped paths differ from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", *SOURCES],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, False
    return commit or None, bool(status.strip())


def _check_size(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise DistError(f"{name} is {size:,} bytes, above its budget of {limit:,} bytes: check what it contains")


def build(out: Path = DEFAULT_OUT, root: Path = ROOT) -> dict:
    """Build the MWAA artefacts into ``out`` (emptied first) and return the manifest.

    :param out: output folder, ``dist/mwaa`` by default
    :param root: the repository to package
    :raises DistError: a source is missing or invalid, or an artefact is above its size budget
    """
    dags = dag_files(root)
    commit, dirty = git_commit(root)
    plugins = plugins_files(root, commit=commit, dirty=dirty)
    check_plugin_loading(plugins)
    plugins_zip = deterministic_zip(plugins)
    requirements = requirements_bytes(root)
    startup = startup_bytes(root)
    _check_size("plugins.zip", len(plugins_zip), MAX_PLUGINS_ZIP_BYTES)
    _check_size("dags/", sum(len(v) for v in dags.values()), MAX_DAGS_BYTES)
    _check_size("requirements.txt", len(requirements), MAX_REQUIREMENTS_BYTES)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    outputs: dict[str, bytes] = {f"dags/{name}": data for name, data in dags.items()}
    outputs.update({"plugins.zip": plugins_zip, "requirements.txt": requirements, "startup.sh": startup})
    for name, data in sorted(outputs.items()):
        _write_file(out / name, data, executable=name.endswith(".sh"))
    manifest = {
        "airflow_version": AIRFLOW_VERSION,
        "python_version": PYTHON_VERSION,
        "git_commit": commit,
        "git_dirty": dirty,
        "files": [{"path": name, "sha256": _sha256(data), "size": len(data)} for name, data in sorted(outputs.items())],
    }
    _write_file(out / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: dist/mwaa)")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.out.resolve())
    except DistError as exc:
        print(f"dist: {exc}", file=sys.stderr)
        return 1
    sizes = {f["path"]: f["size"] for f in manifest["files"]}
    dags_total = sum(size for path, size in sizes.items() if path.startswith("dags/"))
    dags_count = sum(1 for path in sizes if path.startswith("dags/"))
    print(f"dist: built {args.out}")
    print(f"  dags/             {dags_count} files, {dags_total:,} bytes")
    for name in ("plugins.zip", "requirements.txt", "startup.sh"):
        print(f"  {name:<17} {sizes[name]:,} bytes")
    state = " (uncommitted changes)" if manifest["git_dirty"] else ""
    print(f"  commit            {manifest['git_commit'] or 'unknown'}{state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
