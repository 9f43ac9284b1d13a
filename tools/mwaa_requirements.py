"""Check that a ``requirements.txt`` resolves the way Amazon MWAA installs it.

MWAA runs ``pip install --constraint <essential pins> -r requirements.txt`` on Python 3.12, where
``requirements.txt`` carries its own ``--constraint`` line (Airflow's constraint file). This resolves the
same inputs for Python 3.12 on Linux x86_64 with uv, without installing anything, and fails with the
resolver's explanation when they conflict.

The constraint files come from ``$MWAA_CONSTRAINTS_LOCATION``, a folder holding
``airflow-constraints-py3.12.txt`` and ``mwaa-essential-constraints.txt``; by default the copies kept in
``requirements/mwaa/3.3.1/`` (see its README), so no check needs to reach GitHub.

Usage: ``python -m tools.mwaa_requirements [requirements.txt] [--output resolved.txt]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

AIRFLOW_VERSION = "3.3.1"
PYTHON_VERSION = "3.12"
PLATFORM = "x86_64-manylinux_2_28"
LOCATION_VAR = "MWAA_CONSTRAINTS_LOCATION"
AIRFLOW_CONSTRAINTS_URL = (
    f"https://raw.githubusercontent.com/apache/airflow/constraints-{AIRFLOW_VERSION}/constraints-{PYTHON_VERSION}.txt"
)
ESSENTIAL_CONSTRAINTS_URL = (
    "https://raw.githubusercontent.com/aws/amazon-mwaa-docker-images/main/images/airflow/"
    f"{AIRFLOW_VERSION}/etc/mwaa_essential_constraints.txt"
)
AIRFLOW_FILE = f"airflow-constraints-py{PYTHON_VERSION}.txt"
ESSENTIAL_FILE = "mwaa-essential-constraints.txt"
#: the copies of both files kept in the repository
VENDORED_CONSTRAINTS = Path(__file__).resolve().parents[1] / "requirements" / "mwaa" / AIRFLOW_VERSION
_CONSTRAINT_LINE = re.compile(r"^\s*(-c|--constraint)[\s=]+[\"']?(?P<target>[^\"'\s]+)[\"']?\s*$")


@dataclass(frozen=True)
class Resolution:
    ok: bool
    resolved: dict[str, str]
    message: str


def constraint_sources(location: str | None = None) -> tuple[str, str]:
    """The Airflow constraints and MWAA's essential pins: files in ``location`` (``$MWAA_CONSTRAINTS_LOCATION``,
    else :data:`VENDORED_CONSTRAINTS`), or the public URLs when neither exists."""
    location = location if location is not None else os.environ.get(LOCATION_VAR, "")
    if not location:
        if not VENDORED_CONSTRAINTS.is_dir():
            return AIRFLOW_CONSTRAINTS_URL, ESSENTIAL_CONSTRAINTS_URL
        location = str(VENDORED_CONSTRAINTS)
    folder = Path(location).expanduser().resolve()
    airflow, essential = folder / AIRFLOW_FILE, folder / ESSENTIAL_FILE
    missing = [str(p) for p in (airflow, essential) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{LOCATION_VAR}={location}: missing {', '.join(missing)}")
    return str(airflow), str(essential)


def constraint_line(text: str) -> str | None:
    """The target of the ``--constraint`` line of a requirements file, if it has one."""
    for line in text.splitlines():
        if match := _CONSTRAINT_LINE.match(line):
            return match["target"]
    return None


def _uv() -> str:
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if not found:
        raise RuntimeError("uv is not installed: run `make setup`")
    return found


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line):
            pins[match[1].lower()] = match[2]
    return pins


def resolve(requirements: Path, location: str | None = None, timeout: float = 600) -> Resolution:
    """Resolve ``requirements`` as MWAA would, for Python 3.12 on Linux x86_64.

    The file's own ``--constraint`` line must name Airflow 3.3.1's constraints for Python 3.12 (MWAA rejects
    others); it is pointed at the configured location, and MWAA's essential pins are applied on top.
    """
    text = requirements.read_text(encoding="utf-8")
    target = constraint_line(text)
    if target != AIRFLOW_CONSTRAINTS_URL:
        return Resolution(
            False,
            {},
            f"{requirements}: the --constraint line must be {AIRFLOW_CONSTRAINTS_URL!r}, found {target!r}",
        )
    airflow_constraints, essential = constraint_sources(location)
    with tempfile.TemporaryDirectory() as tmp:
        local_copy = Path(tmp) / "requirements.txt"
        local_copy.write_text(text.replace(AIRFLOW_CONSTRAINTS_URL, airflow_constraints), encoding="utf-8")
        out = Path(tmp) / "resolved.txt"
        cmd = [
            _uv(),
            "pip",
            "compile",
            "--quiet",
            "--no-header",
            "--python-version",
            PYTHON_VERSION,
            "--python-platform",
            PLATFORM,
            "--constraint",
            essential,
            str(local_copy),
            "--output-file",
            str(out),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            return Resolution(False, {}, proc.stderr.strip() or proc.stdout.strip())
        resolved = out.read_text(encoding="utf-8")
    return Resolution(True, _pins(resolved), f"{len(_pins(resolved))} packages resolve for Python {PYTHON_VERSION}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", nargs="?", default="requirements.txt", type=Path)
    parser.add_argument("--output", type=Path, help="write the resolved pins here")
    args = parser.parse_args(argv)
    result = resolve(args.requirements)
    if not result.ok:
        print(f"MWAA resolution FAILED for {args.requirements}:\n{result.message}", file=sys.stderr)
        return 1
    if args.output:
        args.output.write_text("".join(f"{k}=={v}\n" for k, v in sorted(result.resolved.items())), encoding="utf-8")
    print(f"MWAA resolution OK for {args.requirements}: {result.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
