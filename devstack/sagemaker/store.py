"""JSON persistence of the service's resources under ``<state-dir>/state/``.

Every resource kind (training jobs, processing jobs, models, ...) is one JSON file mapping a resource
name to its record. Writes are atomic (temporary file + rename) and serialised by one lock, so the
state survives a restart or a crash between writes.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Store:
    """Thread-safe, file-backed dictionaries of resource records.

    :param state_dir: the service's state directory; records live in ``state_dir/state/<kind>.json``.
    """

    def __init__(self, state_dir: Path) -> None:
        self._dir = Path(state_dir) / "state"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._data: dict[str, dict[str, dict[str, Any]]] = {}
        self._dirty: set[str] = set()
        for path in sorted(self._dir.glob("*.json")):
            try:
                self._data[path.stem] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise RuntimeError(f"Cannot read the devstack SageMaker state file {path}: {exc}") from exc

    @property
    def lock(self) -> threading.RLock:
        """The lock that guards every record; hold it to read-modify-write several records."""
        return self._lock

    def kinds(self) -> list[str]:
        """Return the resource kinds that have records."""
        with self._lock:
            return list(self._data)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """Return a deep copy of one record, or None."""
        with self._lock:
            record = self._data.get(kind, {}).get(name)
            return copy.deepcopy(record) if record is not None else None

    def exists(self, kind: str, name: str) -> bool:
        """Return whether a record exists."""
        with self._lock:
            return name in self._data.get(kind, {})

    def values(self, kind: str) -> list[dict[str, Any]]:
        """Return deep copies of every record of a kind."""
        with self._lock:
            return copy.deepcopy(list(self._data.get(kind, {}).values()))

    def put(self, kind: str, name: str, record: dict[str, Any]) -> None:
        """Create or replace a record and persist it."""
        with self._lock:
            self._data.setdefault(kind, {})[name] = copy.deepcopy(record)
            self._flush(kind)

    def insert_new(self, kind: str, name: str, record: dict[str, Any]) -> bool:
        """Create a record only if the name is free; return whether it was created."""
        with self._lock:
            if name in self._data.get(kind, {}):
                return False
            self.put(kind, name, record)
            return True

    def delete(self, kind: str, name: str) -> bool:
        """Delete a record; return whether it existed."""
        with self._lock:
            existed = self._data.get(kind, {}).pop(name, None) is not None
            if existed:
                self._flush(kind)
            return existed

    def update(self, kind: str, name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply ``change`` to a record in place under the lock, persist it and return a copy.

        :raises KeyError: when the record does not exist.
        """
        with self._lock:
            record = self._data[kind][name]
            change(record)
            self._flush(kind)
            return copy.deepcopy(record)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold the lock across several operations."""
        with self._lock:
            yield

    def _flush(self, kind: str) -> None:
        path = self._dir / f"{kind}.json"
        payload = json.dumps(self._data.get(kind, {}), indent=1, sort_keys=True, default=str)
        fd, tmp = tempfile.mkstemp(prefix=f".{kind}.", dir=self._dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
