"""Image environments: the libraries a SageMaker image gives a job, as a cached virtualenv built with uv.

Each image the devstack knows maps to an :class:`EnvironmentSpec`: the image's framework version and main
libraries pinned as the image pins them (as far as wheels exist for the local Python; every substitution
is stated in the spec and in ``docs/devstack-sagemaker.md``), plus ``pip`` so code that installs packages
itself works. The devstack emulates the toolkit behaviour around the job (``SM_*`` variables,
hyperparameters as arguments, the built-in XGBoost algorithm, the inference handler contract); what the
job imports comes from the environment only, never from the devstack's own virtualenv.

Environments are content-addressed: the folder name carries a digest of the spec and of the interpreter
(``<cache>/sagemaker-scikit-learn-1.2-1-<digest>``), so a changed spec is a new environment and an
unchanged one is reused across jobs and stack restarts. The cache lives in ``$DEVSTACK_IMAGE_CACHE``,
else ``<repository>/.devstack/images`` (outside any test session's temporary state, so a CI run builds
each environment at most once). A build runs under a file lock: concurrent first uses build once, the
others wait and reuse it. A half-built folder (a crash mid-build) has no completion marker and is rebuilt.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: Environment variable naming the cache folder.
CACHE_ENV = "DEVSTACK_IMAGE_CACHE"
#: Environment variable naming the uv binary (default: ``uv`` next to the service's interpreter, else PATH).
UV_ENV = "DEVSTACK_UV"
#: The file that marks a completely built environment; it records the spec and the installed packages.
MARKER = ".devstack-environment.json"
#: Bump to rebuild every environment when the build procedure itself changes (2: bytecode compiled at install).
BUILD_FORMAT = 2
#: uv's install flags: compile every module's bytecode at install, as pip does when an image is built. Without
#: it each job compiles what it imports from source (and, with PYTHONDONTWRITEBYTECODE, again in every job):
#: importing Evidently took 15 s instead of 6 s.
INSTALL_FLAGS = ("--compile-bytecode",)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


class EnvironmentBuildError(Exception):
    """An environment could not be built; the message names the image and uv's error."""


@dataclass(frozen=True)
class EnvironmentSpec:
    """What one image's environment contains.

    :param image: a name for logs and the folder, e.g. ``sagemaker-scikit-learn:1.2-1``.
    :param requirements: pinned requirement lines installed with uv (what the image ships).
    :param substitutions: each deviation from the image, in words (``pandas 1.5.3 for 1.1.3: ...``).
    :param exclude_newer: resolve unpinned dependencies as the index stood on this date (the image's build).
    :param toolkit: ``sklearn``, ``xgboost`` or ``None``: which framework toolkit the devstack emulates.
    :param entrypoint: the image's ENTRYPOINT (own images), used by processing jobs that set none.
    :param source: where the spec comes from (the catalogue, or a Dockerfile of the repository).
    :param extra_requirements: installed on top, in a second step (an own image's ``pip install`` layers).
    :param environment: variables the image sets (an own image's ``ENV`` lines).
    """

    image: str
    requirements: tuple[str, ...]
    substitutions: tuple[str, ...] = ()
    exclude_newer: str | None = None
    toolkit: str | None = None
    entrypoint: tuple[str, ...] = ()
    source: str = "catalogue"
    extra_requirements: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()

    def digest(self, python_version: str) -> str:
        """The content address: a digest of what is installed and of the interpreter it is built on."""
        payload = {
            "format": BUILD_FORMAT,
            "python": python_version,
            "requirements": sorted(self.requirements),
            "exclude_newer": self.exclude_newer,
            "extra_requirements": list(self.extra_requirements),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def slug(self) -> str:
        """A folder-name-safe form of :attr:`image`."""
        return "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in self.image).strip("-")


def default_cache_dir() -> Path:
    """``$DEVSTACK_IMAGE_CACHE``, else ``<repository>/.devstack/images``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).resolve() if configured else REPOSITORY_ROOT / ".devstack" / "images"


def find_uv(python: str | None = None) -> str:
    """Locate uv: ``$DEVSTACK_UV``, next to the interpreter (a uv-managed venv), the repository's tools, PATH.

    :raises EnvironmentBuildError: when there is none.
    """
    configured = os.environ.get(UV_ENV)
    candidates = [configured] if configured else []
    for interpreter in filter(None, [python, sys.executable]):
        candidates.append(str(Path(interpreter).parent / "uv"))
    candidates += [str(REPOSITORY_ROOT / ".venv" / "bin" / "uv"), str(REPOSITORY_ROOT / ".tools" / "bin" / "uv")]
    candidates.append(shutil.which("uv") or "")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise EnvironmentBuildError(
        "uv is needed to build image environments and was not found (set DEVSTACK_UV or run make setup)"
    )


def base_interpreter(python: str) -> str:
    """The real interpreter behind ``python`` (a venv's ``bin/python`` resolves to its base)."""
    return os.path.realpath(python)


def python_version(python: str) -> str:
    """``major.minor.micro`` of an interpreter."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return ".".join(map(str, sys.version_info[:3]))
    out = subprocess.run(
        [python, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


class EnvironmentCache:
    """Builds and hands out image environments.

    :param root: the cache folder (default :func:`default_cache_dir`).
    :param python: the interpreter environments are built on (default: the service's).
    """

    def __init__(self, root: Path | None = None, python: str | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()
        self.python = base_interpreter(python or sys.executable)
        self._python_version: str | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @property
    def python_version(self) -> str:
        """The interpreter's version (part of every digest)."""
        if self._python_version is None:
            self._python_version = python_version(self.python)
        return self._python_version

    def path_for(self, spec: EnvironmentSpec) -> Path:
        """The folder of ``spec``'s environment (built or not)."""
        return self.root / f"{spec.slug}-{spec.digest(self.python_version)}"

    def is_built(self, spec: EnvironmentSpec) -> bool:
        """Whether the environment is complete in the cache."""
        return (self.path_for(spec) / MARKER).is_file()

    def interpreter(self, env: Path) -> Path:
        """The environment's ``python``."""
        return env / "bin" / "python"

    def ensure(self, spec: EnvironmentSpec, progress: Callable[[str], None] | None = None) -> Path:
        """Return the environment of ``spec``, building it first if needed (once, under a lock).

        :param spec: the environment.
        :param progress: called with each progress line of a build (for the job's log stream).
        :raises EnvironmentBuildError: when uv cannot build it.
        """
        target = self.path_for(spec)
        if (target / MARKER).is_file():
            return target
        say = progress or (lambda _line: None)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock(target.name):
            if (target / MARKER).is_file():
                say(f"Environment of {spec.image} was built meanwhile by another job; using it")
                return target
            self._build(spec, target, say)
        return target

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        # A thread lock for jobs of this process, and a file lock for other processes (two devstacks).
        with self._locks_guard:
            thread_lock = self._locks.setdefault(name, threading.Lock())
        with thread_lock, open(self.root / f"{name}.lock", "w", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _build(self, spec: EnvironmentSpec, target: Path, say: Callable[[str], None]) -> None:
        started = time.monotonic()
        if target.exists():
            say(f"Removing an incomplete environment at {target}")
            shutil.rmtree(target)
        uv = find_uv(self.python)
        say(f"Building the environment of {spec.image} with uv ({len(spec.requirements)} pinned packages)")
        for line in spec.substitutions:
            say(f"  substitution: {line}")
        self._run([uv, "venv", "--quiet", "--python", self.python, str(target)], spec, say)
        requirements = target / "devstack-requirements.txt"
        requirements.write_text("\n".join(spec.requirements) + "\n", encoding="utf-8")
        install = [
            uv,
            "pip",
            "install",
            *INSTALL_FLAGS,
            "--python",
            str(self.interpreter(target)),
            "-r",
            str(requirements),
        ]
        if spec.exclude_newer:
            install += ["--exclude-newer", spec.exclude_newer]
        self._run(install, spec, say)
        if spec.extra_requirements:
            say(f"Installing the image's own layers: {' '.join(spec.extra_requirements)}")
            extra = target / "devstack-extra-requirements.txt"
            extra.write_text("\n".join(spec.extra_requirements) + "\n", encoding="utf-8")
            self._run(
                [uv, "pip", "install", *INSTALL_FLAGS, "--python", str(self.interpreter(target)), "-r", str(extra)],
                spec,
                say,
            )
        frozen = self._run([uv, "pip", "freeze", "--python", str(self.interpreter(target))], spec, lambda _l: None)
        seconds = round(time.monotonic() - started, 1)
        marker = {
            "image": spec.image,
            "source": spec.source,
            "requirements": list(spec.requirements),
            "extra_requirements": list(spec.extra_requirements),
            "substitutions": list(spec.substitutions),
            "exclude_newer": spec.exclude_newer,
            "python": self.python_version,
            "installed": frozen.splitlines(),
            "build_seconds": seconds,
        }
        (target / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
        say(f"Environment of {spec.image} ready in {seconds} s: {target.name}")

    def _run(self, argv: list[str], spec: EnvironmentSpec, say: Callable[[str], None]) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "UV_PYTHON")}
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        lines = []
        for line in process.stdout or ():
            line = line.rstrip("\n")
            lines.append(line)
            say(f"  {line}")
        code = process.wait()
        if code != 0:
            tail = "\n".join(lines[-15:])
            raise EnvironmentBuildError(f"uv could not build the environment of {spec.image} (exit {code}): {tail}")
        return "\n".join(lines)

    def describe(self, spec: EnvironmentSpec) -> dict[str, object] | None:
        """The completion marker of a built environment (spec, installed packages, build time), or None."""
        marker = self.path_for(spec) / MARKER
        if not marker.is_file():
            return None
        return json.loads(marker.read_text(encoding="utf-8"))
