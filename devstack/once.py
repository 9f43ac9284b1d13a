"""Process-wide, idempotent installation of the devstack's changes to moto (:func:`once`)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable


def once(install: Callable[[], None]) -> Callable[[], None]:
    """Wrap ``install`` so that it runs at most once per process, however many threads call it.

    A call that raises leaves it to be run again by the next call.
    """
    lock = threading.Lock()
    done = False

    @functools.wraps(install)
    def run() -> None:
        nonlocal done
        with lock:
            if not done:
                install()
                done = True

    return run
