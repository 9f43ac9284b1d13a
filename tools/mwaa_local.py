"""Run the MWAA bundle locally the way Amazon MWAA runs it: ``python -m tools.mwaa_local`` (``make mwaa-local``).

What ``start`` does, in MWAA's order:

1. **The bundle**: ``dist/mwaa`` as ``make dist`` built it (``--build`` rebuilds it first), checked against its
   ``manifest.json``.
2. **The Python environment**: a virtualenv of its own (never the development ``.venv``) with what MWAA's image
   preinstalls (``apache-airflow[celery,statsd]==3.3.1``, the Amazon provider, ``watchtower``), then the bundle's
   ``requirements.txt`` installed as MWAA installs it: ``--constraint <MWAA's essential pins> -r requirements.txt``,
   the file's own ``--constraint`` line pointing at Airflow 3.3.1's constraints (``requirements/mwaa/``). The
   machine runs Python 3.11, so the pins with no 3.11 build are dropped (``requirements/DEVIATIONS.md``). The
   virtualenv is content-addressed: ``.mwaa-local/venvs/<digest of requirements, constraints, interpreter>``,
   built once, reused warm.
3. **AIRFLOW_HOME as MWAA lays it out**: ``dags/`` synced from the bundle's ``dags/``, ``plugins.zip`` extracted
   into ``plugins/``, ``startup.sh`` sourced before every component starts, with MWAA's variables
   (``AIRFLOW_HOME``, ``AIRFLOW_ENV_NAME``, ``MWAA_AIRFLOW_COMPONENT``, ...); what it exports is what the
   component gets.
4. **Configuration**: the ``AirflowConfigurationOptions`` the CloudFormation template
   (``infra/cloudformation/ml-lifecycle.yaml``) gives the environment, as ``AIRFLOW__SECTION__KEY`` variables;
   connections come from Secrets Manager through the Amazon provider's ``SecretsManagerBackend`` with the
   template's prefixes (the devstack's connections are written there first), never from ``AIRFLOW_CONN_*``.
5. **Airflow**: scheduler (LocalExecutor), dag-processor, triggerer and API server from that virtualenv, with the
   home as working directory and no ``PYTHONPATH``: nothing of the repository is importable, only what the
   bundle ships.

Where this differs from MWAA (``docs/how-to/deploy-to-mwaa.md``): Python 3.11 instead of 3.12, a virtualenv
instead of MWAA's image, the LocalExecutor instead of Celery (the metadata database is PostgreSQL, as on MWAA:
a server of its own under the home, :mod:`tools.metadb`), Airflow's simple auth
manager instead of IAM, and the ``AWS_ENDPOINT_URL_*`` variables and dummy credentials that route boto3 to the
devstack.

Usage::

    python -m tools.mwaa_local start [--build] [--background] [--port N]   # make mwaa-local
    python -m tools.mwaa_local status
    python -m tools.mwaa_local stop
    python -m tools.mwaa_local venv                                         # build (or find) the virtualenv only
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tools import mwaa_requirements as mr
from tools.ui import HOST, SIMPLE_AUTH_MANAGER, AirflowUI, UIError, _banner, _foreground, _status

log = logging.getLogger("tools.mwaa_local")

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".mwaa-local"
DEFAULT_HOME = STATE / "airflow"
VENVS = STATE / "venvs"
DEFAULT_BUNDLE = ROOT / "dist" / "mwaa"
TEMPLATE = ROOT / "infra" / "cloudformation" / "ml-lifecycle.yaml"
ENVIRONMENT_NAME = "ml-lifecycle-{env}"

#: What MWAA's image installs before a requirements.txt (its bootstrap, under the Airflow constraints). The
#: image builds psycopg2 from source for its PostgreSQL metadata database; the same release's binary wheel
#: (``psycopg2-binary``) and asyncpg (Airflow's async engine on PostgreSQL), both pinned by the same constraints,
#: talk to the local PostgreSQL. pycurl (Celery's SQS transport) is left out: a single machine runs the
#: LocalExecutor.
IMAGE_PACKAGES = (
    f"apache-airflow[celery,statsd]=={mr.AIRFLOW_VERSION}",
    "apache-airflow-providers-amazon[aiobotocore]",
    "watchtower",
    "psycopg2-binary",
    "asyncpg",
)
#: Pins of Airflow's Python 3.12 constraints with no Python 3.11 release (requirements/DEVIATIONS.md).
NO_PY311_RELEASE = ("numpy", "scipy")
#: Bump to rebuild every cached virtualenv (the recipe changed, not its inputs).
RECIPE_VERSION = "1"
COMPLETE_MARKER = ".mwaa-local.json"
STARTUP_TIMEOUT = 300.0  # MWAA stops a startup script after 5 minutes
INSTALL_TIMEOUT = 1800.0

# Variables of the calling shell a component must not inherit: the repository's path, another Airflow's
# settings, another account's credentials or endpoints, the development environment's selections.
_DROPPED_PREFIXES = ("AIRFLOW_", "AIRFLOW__", "AWS_", "ML_LIFECYCLE_", "DEVSTACK_", "PYTHON", "VIRTUAL_ENV", "CONDA")
_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM")


class MwaaLocalError(RuntimeError):
    """The local MWAA runtime cannot be built or started; the message says what and why."""


# ------------------------------------------------------------------------------------------------ bundle


def check_bundle(bundle: Path) -> dict[str, Any]:
    """The bundle's manifest, after checking that every file it lists is there with its recorded SHA-256.

    :param bundle: the folder ``make dist`` wrote (``dist/mwaa``).
    :raises MwaaLocalError: a file is missing or differs from the manifest (rebuild with ``make dist``).
    """
    manifest_path = bundle / "manifest.json"
    if not manifest_path.is_file():
        raise MwaaLocalError(f"{manifest_path} does not exist: build the bundle with `make dist`")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    problems = []
    for entry in manifest.get("files", []):
        path = bundle / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            problems.append(f"{entry['path']} differs from the manifest")
    for required in ("dags", "plugins.zip", "requirements.txt", "startup.sh"):
        if not (bundle / required).exists():
            problems.append(f"{required} is missing")
    if problems:
        raise MwaaLocalError(f"{bundle} is not a complete bundle ({'; '.join(problems[:5])}): run `make dist`")
    return manifest


def lay_out(bundle: Path, home: Path) -> None:
    """Lay the bundle out in ``home`` as MWAA does: ``dags/`` synced, ``plugins.zip`` extracted into ``plugins/``.

    Both folders are replaced, so a file the bundle no longer ships disappears, as MWAA's sync removes it.

    :param bundle: the bundle folder.
    :param home: ``AIRFLOW_HOME``.
    """
    home.mkdir(parents=True, exist_ok=True)
    for name in ("dags", "plugins"):
        shutil.rmtree(home / name, ignore_errors=True)
    shutil.copytree(bundle / "dags", home / "dags")
    (home / "plugins").mkdir()
    with zipfile.ZipFile(bundle / "plugins.zip") as archive:
        archive.extractall(home / "plugins")
    for name in ("startup.sh", "requirements.txt", "manifest.json"):
        shutil.copy2(bundle / name, home / name)


# ---------------------------------------------------------------------------------------- virtualenv


@dataclasses.dataclass(frozen=True)
class Constraints:
    """The two constraint files of an MWAA install, as text.

    :param airflow: Airflow 3.3.1's constraints for Python 3.12.
    :param essential: MWAA's essential pins.
    :param source: where they were read from.
    """

    airflow: str
    essential: str
    source: str


def _read(location: str) -> str:
    if location.startswith(("https://", "http://")):
        with urllib.request.urlopen(location, timeout=60) as response:  # noqa: S310 - the constraint URLs
            return response.read().decode("utf-8")
    return Path(location).read_text(encoding="utf-8")


def load_constraints(location: str | None = None) -> Constraints:
    """MWAA's constraint files: ``requirements/mwaa/3.3.1/``, or the folder ``$MWAA_CONSTRAINTS_LOCATION`` names.

    :param location: folder holding both files; ``None`` reads ``$MWAA_CONSTRAINTS_LOCATION``.
    :raises MwaaLocalError: they cannot be read.
    """
    try:
        airflow, essential = mr.constraint_sources(location)
        return Constraints(_read(airflow), _read(essential), os.path.dirname(airflow))
    except (OSError, ValueError) as exc:
        raise MwaaLocalError(
            f"MWAA's constraint files cannot be read ({exc}); set {mr.LOCATION_VAR} to a folder holding "
            f"{mr.AIRFLOW_FILE} and {mr.ESSENTIAL_FILE}"
        ) from None


def for_python(constraints: str, python_version: str) -> str:
    """Airflow's Python 3.12 constraints for the interpreter at hand: on 3.11 the pins with no 3.11 build go.

    :param constraints: the constraint file's text.
    :param python_version: ``major.minor`` of the virtualenv's interpreter.
    """
    if python_version == mr.PYTHON_VERSION:
        return constraints
    dropped = re.compile(rf"^({'|'.join(NO_PY311_RELEASE)})==", re.IGNORECASE)
    return "".join(line for line in constraints.splitlines(keepends=True) if not dropped.match(line))


def _interpreter() -> tuple[str, str]:
    """The interpreter the virtualenv is built on (this one's base) and its ``major.minor.micro``."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return (str(base) if base.exists() else sys.executable), platform.python_version()


def venv_key(requirements: bytes, constraints: Constraints, python_version: str) -> str:
    """The digest naming a virtualenv: every input of the install, so a change to any of them builds a new one.

    :param requirements: the bundle's ``requirements.txt``.
    :param constraints: MWAA's constraint files.
    :param python_version: the interpreter's full version.
    """
    payload = json.dumps(
        {
            "recipe": RECIPE_VERSION,
            "python": python_version,
            "platform": platform.machine(),
            "image": IMAGE_PACKAGES,
            "requirements": hashlib.sha256(requirements).hexdigest(),
            "airflow_constraints": hashlib.sha256(constraints.airflow.encode()).hexdigest(),
            "essential_constraints": hashlib.sha256(constraints.essential.encode()).hexdigest(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _run(cmd: list[str], log_path: Path, what: str) -> None:
    with log_path.open("ab") as fh:
        fh.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        fh.flush()
        try:
            proc = subprocess.run(
                cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT, check=False, cwd=log_path.parent
            )
        except subprocess.TimeoutExpired:
            raise MwaaLocalError(f"{what} did not finish in {INSTALL_TIMEOUT:.0f}s; see {log_path}") from None
    if proc.returncode != 0:
        from devstack.stack import tail

        raise MwaaLocalError(
            f"{what} failed (exit code {proc.returncode}); last lines of {log_path}:\n{tail(log_path)}"
        )


def ensure_venv(
    requirements: Path,
    *,
    venvs: Path = VENVS,
    constraints: Constraints | None = None,
    say: Callable[[str], None] = log.info,
) -> Path:
    """The virtualenv for ``requirements``, built the way MWAA installs it unless a complete one exists.

    Concurrent callers wait for each other (a lock file); an interrupted build is discarded and redone.

    :param requirements: the bundle's ``requirements.txt``.
    :param venvs: folder of the cached virtualenvs.
    :param constraints: MWAA's constraint files (default: :func:`load_constraints`).
    :param say: progress messages.
    :return: the virtualenv's folder (``bin/airflow`` inside).
    :raises MwaaLocalError: the install fails (the resolver's message is in ``<venv>/install.log``).
    """
    constraints = constraints or load_constraints()
    text = requirements.read_bytes()
    if mr.constraint_line(text.decode("utf-8")) != mr.AIRFLOW_CONSTRAINTS_URL:
        raise MwaaLocalError(f"{requirements}: the --constraint line must be {mr.AIRFLOW_CONSTRAINTS_URL!r}")
    interpreter, version = _interpreter()
    key = venv_key(text, constraints, version)
    venv = venvs / key
    venvs.mkdir(parents=True, exist_ok=True)
    with (venvs / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / COMPLETE_MARKER).is_file() and (venv / "bin" / "airflow").is_file():
            return venv
        say(f"mwaa-local: building the virtualenv {venv} (Python {version}, MWAA's constraints)")
        started = time.perf_counter()
        shutil.rmtree(venv, ignore_errors=True)
        inputs = venv / "mwaa"
        inputs.mkdir(parents=True)
        airflow_constraints = inputs / f"airflow-constraints-{mr.AIRFLOW_VERSION}.txt"
        airflow_constraints.write_text(for_python(constraints.airflow, version[: version.rindex(".")]))
        essential = inputs / mr.ESSENTIAL_FILE
        essential.write_text(constraints.essential)
        # the bundle's requirements.txt, its --constraint line pointed at the local copy (as MWAA fetches the URL)
        local_requirements = inputs / "requirements.txt"
        local_requirements.write_text(
            text.decode("utf-8").replace(mr.AIRFLOW_CONSTRAINTS_URL, str(airflow_constraints)), encoding="utf-8"
        )
        install_log = venv / "install.log"
        uv = mr._uv()
        python = str(venv / "bin" / "python")
        _run(
            [uv, "venv", "--quiet", "--allow-existing", "--python", interpreter, str(venv)],
            install_log,
            "creating the virtualenv",
        )
        # 1. the image: Airflow and what MWAA preinstalls, under the Airflow constraints
        _run(
            [
                uv,
                "pip",
                "install",
                "--python",
                python,
                "--compile-bytecode",
                "-c",
                str(airflow_constraints),
                *IMAGE_PACKAGES,
            ],
            install_log,
            "installing Airflow as MWAA's image has it",
        )
        # 2. the environment's requirements.txt: pip install --constraint <essential> -r requirements.txt
        _run(
            [
                uv,
                "pip",
                "install",
                "--python",
                python,
                "--compile-bytecode",
                "-c",
                str(essential),
                "-r",
                str(local_requirements),
            ],
            install_log,
            "installing the bundle's requirements.txt under MWAA's constraints",
        )
        _run([uv, "pip", "check", "--python", python], install_log, "checking the installed packages")
        record = {
            "key": key,
            "python": version,
            "constraints": constraints.source,
            "seconds": round(time.perf_counter() - started, 1),
        }
        (venv / COMPLETE_MARKER).write_text(json.dumps(record, indent=2) + "\n")
        say(f"mwaa-local: virtualenv ready in {record['seconds']}s")
    return venv


# ------------------------------------------------------------------------------------- configuration


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that reads CloudFormation's short-form tags (``!Ref X``) as their long form."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def configuration_options(parameters: Mapping[str, str], template: Path = TEMPLATE) -> dict[str, str]:
    """The template's ``AirflowConfigurationOptions`` as the variables MWAA sets (``AIRFLOW__SECTION__KEY``).

    :param parameters: values of the stack parameters the options reference (``{"MlLifecycleEnv": "local"}``).
    :param template: the CloudFormation template.
    :raises MwaaLocalError: the template has no MWAA environment, or an option references something else.
    """
    doc = yaml.load(template.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    environments = [
        r
        for r in (doc.get("Resources") or {}).values()
        if isinstance(r, dict) and r.get("Type") == "AWS::MWAA::Environment"
    ]
    if len(environments) != 1:
        raise MwaaLocalError(f"{template}: expected one AWS::MWAA::Environment, found {len(environments)}")
    options = environments[0].get("Properties", {}).get("AirflowConfigurationOptions") or {}
    env = {}
    for option, value in options.items():
        section, _, key = option.partition(".")
        if not section or not key:
            raise MwaaLocalError(f"{template}: AirflowConfigurationOptions {option!r} is not <section>.<key>")
        if isinstance(value, dict):
            ref = value.get("Ref")
            if len(value) != 1 or ref not in parameters:
                raise MwaaLocalError(
                    f"{template}: AirflowConfigurationOptions {option!r} = {value!r}: only Ref to "
                    f"{sorted(parameters)} can be resolved locally"
                )
            value = parameters[ref]
        env[f"AIRFLOW__{section.upper()}__{key.upper()}"] = str(value)
    return env


def startup_exports(script: Path, env: Mapping[str, str], log_path: Path) -> dict[str, str]:
    """Source ``script`` with ``env`` as MWAA does before a component starts; the variables it sets or changes.

    :param script: ``startup.sh``.
    :param env: the component's variables before the script.
    :param log_path: where the script's output goes (MWAA sends it to the component's log).
    :raises MwaaLocalError: the script fails or runs longer than MWAA's 5 minutes.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as fh:
        fh.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} source {script}\n".encode())
        fh.flush()
        try:
            proc = subprocess.run(
                ["/bin/bash", "-c", 'source "$1" 1>&2 && env -0', "startup.sh", str(script)],
                env=dict(env),
                cwd=script.parent,
                stdout=subprocess.PIPE,
                stderr=fh,
                timeout=STARTUP_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise MwaaLocalError(f"{script} ran longer than {STARTUP_TIMEOUT:.0f}s (MWAA stops it)") from None
    if proc.returncode != 0:
        raise MwaaLocalError(f"{script} failed (exit code {proc.returncode}); see {log_path}")
    after = dict(item.split("=", 1) for item in proc.stdout.decode().split("\0") if "=" in item)
    after.pop("_", None)
    after.pop("SHLVL", None)
    after.pop("PWD", None)
    return {k: v for k, v in after.items() if env.get(k) != v}


def _component_base_env() -> dict[str, str]:
    """The caller's variables a component may keep (locale, home, PATH without this repository's tools)."""
    env = {k: v for k, v in os.environ.items() if k in _KEPT or not k.startswith(_DROPPED_PREFIXES)}
    path = [
        p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and not Path(p).absolute().is_relative_to(ROOT)
    ]
    env["PATH"] = os.pathsep.join(path)
    return env


def _bundle_config(home: Path, ml_env: str) -> dict[str, Any]:
    path = home / "dags" / "include" / "config" / f"{ml_env}.yaml"
    if not path.is_file():
        raise MwaaLocalError(f"the bundle has no {path.relative_to(home)}: environment {ml_env!r} does not exist")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def seed_devstack(stack_info: Any, home: Path, ml_env: str, options: Mapping[str, str]) -> list[str]:
    """Put the devstack's connections into its Secrets Manager, and create the environment's bucket, topic, and
    approval queue with the EventBridge rule that fills it (from the stack's template, :mod:`tools.approval_events`).

    The secrets are named ``<connections_prefix>/<conn id>`` (the template's ``secrets.backend_kwargs``), the conn
    ids are the bundle's config's (``aws.conn_id``, ``snowflake.conn_id``).

    :param stack_info: the running devstack (``devstack.stack.StackInfo``).
    :param home: ``AIRFLOW_HOME`` with the bundle laid out.
    :param ml_env: the environment whose config names the connections, bucket and topic.
    :param options: :func:`configuration_options`.
    :return: the secret names written.
    """
    kwargs = json.loads(options.get("AIRFLOW__SECRETS__BACKEND_KWARGS") or "{}")
    prefix = kwargs.get("connections_prefix")
    if not prefix:
        raise MwaaLocalError("the template's secrets.backend_kwargs has no connections_prefix")
    cfg = _bundle_config(home, ml_env)
    connections = {
        cfg["aws"]["conn_id"]: stack_info.airflow_aws_connection(),
        cfg["snowflake"]["conn_id"]: stack_info.airflow_snowflake_connection(),
    }
    secrets = stack_info.client("secretsmanager")
    names = []
    for conn_id, connection in connections.items():
        name = f"{prefix.rstrip('/')}/{conn_id}"
        value = json.dumps(connection, sort_keys=True)
        try:
            secrets.put_secret_value(SecretId=name, SecretString=value)
        except secrets.exceptions.ResourceNotFoundException:
            secrets.create_secret(Name=name, SecretString=value)
        names.append(name)
    s3 = stack_info.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=cfg["storage"]["bucket"])
    topic = (cfg.get("notifications") or {}).get("sns_topic_arn")
    if topic:
        stack_info.client("sns").create_topic(Name=topic.rsplit(":", 1)[1])
    from ml_lifecycle.config import parse_config
    from tools.approval_events import provision

    path = home / "dags" / "include" / "config" / f"{ml_env}.yaml"
    provision(stack_info, parse_config(path.read_text(encoding="utf-8"), str(path)))
    return names


# ------------------------------------------------------------------------------------------- runtime


class MwaaLocal(AirflowUI):
    """Airflow's four components running the laid-out bundle from its own virtualenv (see the module's doc).

    :param home: ``AIRFLOW_HOME`` (the bundle is laid out in it by :meth:`prepare`).
    :param venv: the virtualenv from :func:`ensure_venv`.
    :param stack_info: the running devstack.
    :param ml_env: the environment (the template's ``MlLifecycleEnv``; ``AIRFLOW_ENV_NAME`` ends with it).
    :param port: the API server's loopback port (``None``: 8080 when free, else any free port).
    :param extra_env: more variables for every component (before ``startup.sh`` runs).
    """

    def __init__(
        self,
        home: Path | str,
        *,
        venv: Path,
        stack_info: Any,
        ml_env: str = "local",
        port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(home, port=port, ml_env=ml_env, catchup=True, extra_env=extra_env, database="postgres")
        self.venv = Path(venv)
        self.stack_info = stack_info
        self.options = configuration_options({"MlLifecycleEnv": ml_env})
        self._startup: dict[str, dict[str, str]] = {}

    @property
    def environment_name(self) -> str:
        """``AIRFLOW_ENV_NAME``: what the MWAA environment is called (the template's ``EnvironmentName``)."""
        return ENVIRONMENT_NAME.format(env=self.ml_env)

    def prepare(self, bundle: Path) -> dict[str, Any]:
        """Check the bundle, lay it out in the home and seed the devstack; the bundle's manifest.

        :param bundle: the bundle folder.
        """
        manifest = check_bundle(bundle)
        lay_out(bundle, self.home)
        seed_devstack(self.stack_info, self.home, self.ml_env, self.options)
        self._startup.clear()
        return manifest

    # ---------------------------------------------------------------- hooks of AirflowUI
    def airflow_command(self) -> list[str]:
        """The virtualenv's ``airflow`` script (``python -m`` would put the working directory on the path)."""
        return [str(self.venv / "bin" / "airflow")]

    @property
    def workdir(self) -> Path:
        """The components run in ``AIRFLOW_HOME``, as on MWAA."""
        return self.home

    def migrated_already(self) -> bool:
        """Never: the bundle's Airflow lives in its own virtualenv, so every start runs ``airflow db migrate``."""
        return False

    def expected_dag_files(self) -> list[Path]:
        """The DAG files of the laid-out bundle."""
        return sorted(p for p in (self.home / "dags").glob("*.py") if not p.name.startswith("_"))

    def environment(self, port: int) -> dict[str, str]:
        """The variables every component starts from, before ``startup.sh``.

        :param port: the API server's port.
        """
        url = f"http://{HOST}:{port}"
        keys = self._secrets()
        devstack = {k: v for k, v in self.stack_info.env().items() if k.startswith("AWS_")}
        env = _component_base_env() | devstack | self.options
        env |= {
            # what MWAA's containers have
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW_ENV_NAME": self.environment_name,
            "AIRFLOW_VERSION": mr.AIRFLOW_VERSION,
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.home / "plugins"),
            # what a single machine needs instead of MWAA's Celery workers, Aurora and IAM sign-in
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.password_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            # PostgreSQL, as MWAA's metadata database (Aurora PostgreSQL): a server of its own on loopback
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url(),
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "PYTHONUNBUFFERED": "1",
            "PATH": os.pathsep.join([str(self.venv / "bin"), _component_base_env()["PATH"]]),
            "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), HOST, "localhost"])),
            "no_proxy": ",".join(filter(None, [os.environ.get("no_proxy"), HOST, "localhost"])),
        }
        env |= self.log_server_environment()
        env |= self.extra_env
        return env

    def component_environment(self, name: str, env: Mapping[str, str]) -> Mapping[str, str]:
        """``env`` with what ``startup.sh`` exports when sourced for this component.

        :param name: the component (``db-migrate`` runs as the scheduler would).
        :param env: what :meth:`environment` returned.
        """
        component = {"db-migrate": "scheduler", "api-server": "webserver", "dag-processor": "dag_processor"}.get(
            name, name
        )
        before = dict(env) | {"MWAA_AIRFLOW_COMPONENT": component}
        if component not in self._startup:
            self._startup[component] = startup_exports(
                self.home / "startup.sh", before, self.log_file(f"startup-{component}")
            )
        return before | self._startup[component]


# ------------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", type=Path, default=DEFAULT_HOME, help="AIRFLOW_HOME (default .mwaa-local/airflow)")
    common.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="the bundle (default dist/mwaa)")
    common.add_argument("--env", default="local", help="the environment (the template's MlLifecycleEnv)")
    parser = argparse.ArgumentParser(
        prog="python -m tools.mwaa_local", description=__doc__.splitlines()[0], parents=[common]
    )
    sub = parser.add_subparsers(dest="command")
    start = sub.add_parser("start", parents=[common], help="lay the bundle out and start Airflow (the default)")
    start.add_argument("--build", action="store_true", help="run `make dist`'s build first")
    start.add_argument("--background", action="store_true", help="start, print the URL and return")
    start.add_argument("--port", type=int, help=f"API server port on {HOST} (default 8080 when free)")
    start.add_argument("--timeout", type=float, default=300.0, help="seconds the start may take")
    sub.add_parser("stop", parents=[common], help="stop the Airflow components (the devstack keeps running)")
    sub.add_parser("status", parents=[common], help="what runs where")
    sub.add_parser("venv", parents=[common], help="build (or find) the virtualenv of the bundle's requirements.txt")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI.

    :param argv: arguments (default ``sys.argv[1:]``).
    :return: the exit code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not {"start", "stop", "status", "venv", "-h", "--help"} & set(argv):
        argv.insert(0, "start")  # the default command
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("snowflake.connector", "botocore", "urllib3", "devstack"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from devstack.stack import StackError

    try:
        return _run_cli(args)
    except (MwaaLocalError, UIError, StackError) as exc:
        print(f"mwaa-local: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mwaa-local: interrupted; Airflow is not running (the devstack may be)", file=sys.stderr)
        return 130


def _run_cli(args: argparse.Namespace) -> int:
    command = args.command
    home = args.home.resolve()
    if command in ("stop", "status"):
        ui = AirflowUI(home)
        if command == "status":
            return _status(ui)
        stopped = ui.stop()
        print(f"stopped: {', '.join(stopped)}" if stopped else "the local MWAA runtime was not running")
        return 0
    bundle = args.bundle.resolve()
    if command == "venv":
        print(ensure_venv(bundle / "requirements.txt", say=print))
        return 0

    t0 = time.perf_counter()
    if args.build:
        from tools.dist import build

        build(bundle)
    running = AirflowUI(home).running()
    if running is not None:
        raise MwaaLocalError(f"it already runs on {running.url}; `python -m tools.mwaa_local stop` stops it first")
    check_bundle(bundle)
    venv = ensure_venv(bundle / "requirements.txt", say=print)
    from devstack.stack import Stack

    print("devstack: starting (or reusing) the local AWS + Snowflake stand-in ...", flush=True)
    stack_info = Stack(None).up()
    runtime = MwaaLocal(home, venv=venv, stack_info=stack_info, ml_env=args.env, port=args.port)
    manifest = runtime.prepare(bundle)
    new_password = runtime.admin_password() if runtime.password_is_new() else None
    print(f"airflow: the bundle of {manifest.get('git_commit') or 'an unknown commit'} in {home}; starting ...")
    info = runtime.start(timeout=args.timeout)
    token = runtime.token(info.url)
    dags, errors = runtime.wait_parsed(token, timeout=120.0, url=info.url)
    print(f"mwaa-local: up in {time.perf_counter() - t0:.1f}s (bundle check, virtualenv, devstack, Airflow)")
    _banner(runtime, info, new_password, dags, errors)
    if errors:
        print("mwaa-local: the bundle has import errors (above); MWAA would show the same", file=sys.stderr)
    if args.background:
        print("running in the background; stop it with `python -m tools.mwaa_local stop`")
        return 1 if errors else 0
    return _foreground(runtime, info) or (1 if errors else 0)


if __name__ == "__main__":
    sys.exit(main())
