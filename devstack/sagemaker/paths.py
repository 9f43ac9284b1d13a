"""Mapping of container paths (``/opt/ml/...``) into a job's sandbox directory."""

from __future__ import annotations

import re
from pathlib import Path

CONTAINER_ROOT = "/opt/ml"

# ``/opt/ml`` as a whole path component, not preceded by a path or word character, so that
# ``--input=/opt/ml/processing/in`` and ``/opt/ml`` are rewritten but ``/x/opt/ml`` and ``/opt/mlx`` are not.
_OPT_ML = re.compile(r"(?<![\w./-])/opt/ml(?=/|$|[^\w.-])")


class PathMapper:
    """Maps ``/opt/ml`` paths to ``<sandbox>/opt/ml`` for the devstack, and for the job where needed.

    The devstack itself always reads and writes the sandbox (:meth:`map_path`, :attr:`root`). What the
    job sees depends on ``namespaced``: inside a private mount namespace the sandbox is bound at
    ``/opt/ml``, so job-visible strings stay as they are; without one (the fallback) every ``/opt/ml``
    path in arguments and environment values is rewritten into the sandbox.

    :param sandbox: the job's sandbox directory; ``<sandbox>/opt/ml`` plays ``/opt/ml``.
    :param namespaced: whether the job runs in a private mount namespace with the sandbox at ``/opt/ml``.
    """

    def __init__(self, sandbox: Path, namespaced: bool = False) -> None:
        self.sandbox = Path(sandbox)
        self.root = self.sandbox / "opt" / "ml"
        self.namespaced = namespaced

    @property
    def job_root(self) -> Path:
        """``/opt/ml`` as the job sees it: the real path when namespaced, else the sandbox's."""
        return Path(CONTAINER_ROOT) if self.namespaced else self.root

    def map_path(self, container_path: str) -> Path:
        """Map one absolute container path under ``/opt/ml`` to its sandbox path (the devstack's view).

        :raises ValueError: when the path is not under ``/opt/ml`` or escapes it with ``..``.
        """
        normalized = container_path.rstrip("/") or "/"
        if normalized != CONTAINER_ROOT and not normalized.startswith(CONTAINER_ROOT + "/"):
            raise ValueError(f"{container_path!r} is not under {CONTAINER_ROOT}")
        relative = normalized[len(CONTAINER_ROOT) :].lstrip("/")
        if any(part == ".." for part in relative.split("/")):
            raise ValueError(f"{container_path!r} must not contain '..'")
        return self.root / relative if relative else self.root

    def job_path(self, host_path: Path) -> str:
        """Return how the job sees a path of its sandbox's ``opt/ml`` tree."""
        if not self.namespaced:
            return str(host_path)
        relative = Path(host_path).relative_to(self.root)
        return str(Path(CONTAINER_ROOT) / relative) if str(relative) != "." else CONTAINER_ROOT

    def rewrite(self, text: str) -> str:
        """Rewrite every ``/opt/ml`` path inside a job-visible string (unchanged when namespaced)."""
        if self.namespaced:
            return text
        return _OPT_ML.sub(lambda _m: str(self.root), text)

    def rewrite_all(self, items: list[str]) -> list[str]:
        """Rewrite every string of a list."""
        return [self.rewrite(item) for item in items]
