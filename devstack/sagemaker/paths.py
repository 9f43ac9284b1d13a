"""Mapping of container paths (``/opt/ml/...``) into a job's sandbox directory."""

from __future__ import annotations

import re
from pathlib import Path

CONTAINER_ROOT = "/opt/ml"

# ``/opt/ml`` as a whole path component, not preceded by a path or word character, so that
# ``--input=/opt/ml/processing/in`` and ``/opt/ml`` are rewritten but ``/x/opt/ml`` and ``/opt/mlx`` are not.
_OPT_ML = re.compile(r"(?<![\w./-])/opt/ml(?=/|$|[^\w.-])")


class PathMapper:
    """Rewrites ``/opt/ml`` paths into ``<sandbox>/opt/ml``.

    :param sandbox: the job's sandbox directory; ``<sandbox>/opt/ml`` plays ``/opt/ml``.
    """

    def __init__(self, sandbox: Path) -> None:
        self.sandbox = Path(sandbox)
        self.root = self.sandbox / "opt" / "ml"

    def map_path(self, container_path: str) -> Path:
        """Map one absolute container path under ``/opt/ml`` to its sandbox path.

        :raises ValueError: when the path is not under ``/opt/ml`` or escapes it with ``..``.
        """
        normalized = container_path.rstrip("/") or "/"
        if normalized != CONTAINER_ROOT and not normalized.startswith(CONTAINER_ROOT + "/"):
            raise ValueError(f"{container_path!r} is not under {CONTAINER_ROOT}")
        relative = normalized[len(CONTAINER_ROOT) :].lstrip("/")
        if any(part == ".." for part in relative.split("/")):
            raise ValueError(f"{container_path!r} must not contain '..'")
        return self.root / relative if relative else self.root

    def rewrite(self, text: str) -> str:
        """Rewrite every ``/opt/ml`` path inside a string (an argument, an entrypoint item, a value)."""
        return _OPT_ML.sub(lambda _m: str(self.root), text)

    def rewrite_all(self, items: list[str]) -> list[str]:
        """Rewrite every string of a list."""
        return [self.rewrite(item) for item in items]
