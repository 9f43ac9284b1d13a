"""Give a job's container command a private view of ``/opt/ml`` (and, for network isolation, no network).

SageMaker mounts the job's storage at ``/opt/ml`` inside the container, so user code may hard-code
``/opt/ml/processing/input/data.csv`` or ``/opt/ml/model``. Locally every job gets a private mount
namespace (``unshare --mount``, available to root) in which its sandbox's ``opt/ml`` is bind-mounted at
``/opt/ml``: the command, and any process it starts, sees the real path, and no other job or the host
does. The namespace dies with the last process in it, so a killed job leaves no mount behind.

In the same namespace the job's image environment is overlaid (``overlayfs``, the job's writes go to its
sandbox), so ``pip install`` inside one job changes neither the cached environment nor any other job,
as a container's writes change neither its image nor other containers. A job with network isolation
also gets a network namespace of its own with no interface up: no outbound call leaves it, as on
SageMaker ("can't make any outbound network calls, even to other AWS services such as Amazon S3").

Where namespaces are unavailable (not root, no ``unshare``), :func:`available` is False and callers fall
back to rewriting ``/opt/ml`` inside arguments and environment values (:class:`~devstack.sagemaker.paths.PathMapper`),
with a warning in the job's log.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack.sagemaker.paths import PathMapper

log = logging.getLogger(__name__)

CONTAINER_ROOT = "/opt/ml"
#: Set to ``0`` to force the rewriting fallback (e.g. to test it on a machine that has namespaces).
ENV_SWITCH = "DEVSTACK_NAMESPACES"

FALLBACK_WARNING = (
    "WARNING devstack: private mount namespaces are unavailable here (needs root and unshare); /opt/ml is "
    "emulated by rewriting /opt/ml paths in arguments and environment values only. Code that opens a "
    "hard-coded /opt/ml path will not find it, as it would on SageMaker."
)


@dataclass(frozen=True)
class Overlay:
    """A directory shown copy-on-write inside the namespace.

    :param lower: the read-only directory (a cached image environment).
    :param upper: where the job's changes go (inside the job's sandbox).
    :param work: overlayfs's work directory (same file system as ``upper``).
    """

    lower: Path
    upper: Path
    work: Path


@dataclass
class Confinement:
    """How to start one container command.

    :param opt_ml: the sandbox directory bound at ``/opt/ml``.
    :param cwd: the working directory inside the namespace.
    :param overlays: directories shown copy-on-write.
    :param network: False for network isolation (a network namespace with no interface up).
    """

    opt_ml: Path
    cwd: str
    overlays: list[Overlay] = field(default_factory=list)
    network: bool = True

    def wrap(self, argv: list[str]) -> list[str]:
        """Return ``argv`` started inside a private mount (and network) namespace.

        ``unshare`` creates the namespaces and runs a small launcher (the base interpreter, isolated mode,
        standard library only) that mounts, changes directory and then replaces itself with the command;
        a shell would drop environment variables whose names are not identifiers (``SM_HP_LEARNING-RATE``).

        :param argv: the container command.
        """
        mounts = [["--bind", str(self.opt_ml), CONTAINER_ROOT]]
        for overlay in self.overlays:
            for path in (overlay.lower, overlay.upper, overlay.work):
                if any(ch in str(path) for ch in ",:"):
                    raise ValueError(f"{path} cannot be overlaid: overlayfs paths must not contain ',' or ':'")
            options = f"lowerdir={overlay.lower},upperdir={overlay.upper},workdir={overlay.work}"
            mounts.append(["-t", "overlay", "overlay", "-o", options, str(overlay.lower)])
        flags = ["--mount", "--propagation", "private"]
        if not self.network:
            # A fresh network namespace has only a loopback interface, and it is down: nothing is reachable.
            flags.append("--net")
        plan = json.dumps({"mount": _mount(), "mounts": mounts, "cwd": self.cwd})
        return [_unshare(), *flags, "--", LAUNCHER_PYTHON, "-I", "-S", "-c", _LAUNCHER, plan, *argv]

    def prepare(self) -> None:
        """Create the directories the namespace needs (the upper/work directories of each overlay)."""
        for overlay in self.overlays:
            overlay.upper.mkdir(parents=True, exist_ok=True)
            overlay.work.mkdir(parents=True, exist_ok=True)


#: Runs inside the new namespaces: mount, chdir, exec the command (argv after the plan).
_LAUNCHER = """
import json, os, subprocess, sys
plan = json.loads(sys.argv[1])
for args in plan["mounts"]:
    done = subprocess.run([plan["mount"], *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write("devstack: cannot mount " + " ".join(args) + ": " + done.stderr)
        sys.exit(126)
os.chdir(plan["cwd"])
command = sys.argv[2:]
try:
    os.execvp(command[0], command)
except OSError as exc:
    sys.stderr.write(f"exec {command[0]}: {exc}\\n")
    sys.exit(127)
"""
#: The interpreter that runs the launcher (the base interpreter: only its standard library is used).
LAUNCHER_PYTHON = os.path.realpath(sys.executable)


def _mount() -> str:
    return shutil.which("mount") or "/usr/bin/mount"


def _unshare() -> str:
    return shutil.which("unshare") or "/usr/bin/unshare"


@functools.cache
def _probe() -> bool:
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return False
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        Path(CONTAINER_ROOT).mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    probe = f"mount --bind / {CONTAINER_ROOT} && mount -t tmpfs none {CONTAINER_ROOT}"
    try:
        result = subprocess.run(
            [_unshare(), "--mount", "--propagation", "private", "--net", "--", "/bin/sh", "-c", probe],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if result.returncode != 0:
        log.warning(
            "Private mount namespaces are unavailable (%s); jobs fall back to /opt/ml rewriting",
            result.stderr.decode(errors="replace").strip(),
        )
        return False
    return True


@functools.cache
def _probe_overlay() -> bool:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="devstack-overlay-probe-") as tmp:
        base = Path(tmp)
        overlay = Overlay(base / "lower", base / "upper", base / "work")
        overlay.lower.mkdir()
        Confinement(base, "/", [overlay]).prepare()
        options = f"lowerdir={overlay.lower},upperdir={overlay.upper},workdir={overlay.work}"
        try:
            result = subprocess.run(
                [
                    _unshare(),
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "/bin/sh",
                    "-c",
                    f"mount -t overlay overlay -o {shlex.quote(options)} {shlex.quote(str(overlay.lower))}",
                ],
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0


def confinement_for(mapper: PathMapper, cwd: str, env_dir: Path | None, network: bool) -> Confinement | None:
    """How a job's or model server's command is confined: None in the rewriting fallback (no namespaces).

    :param mapper: the sandbox (namespaced or not).
    :param cwd: the working directory as the command sees it.
    :param env_dir: the image environment, overlaid copy-on-write when overlayfs is available.
    :param network: False under network isolation.
    """
    if not mapper.namespaced:
        return None
    overlays = []
    if env_dir is not None and overlay_available():
        layer = mapper.sandbox / "image-layer"
        overlays.append(Overlay(env_dir, layer / "upper", layer / "work"))
    confinement = Confinement(mapper.root, cwd, overlays, network)
    confinement.prepare()
    return confinement


def available() -> bool:
    """Whether jobs get private mount and network namespaces on this machine (probed once)."""
    return _probe()


def overlay_available() -> bool:
    """Whether overlayfs can be mounted inside a private namespace (probed once)."""
    return available() and _probe_overlay()


def reset_probe() -> None:
    """Forget the probe results (tests switch :data:`ENV_SWITCH`)."""
    _probe.cache_clear()
    _probe_overlay.cache_clear()
