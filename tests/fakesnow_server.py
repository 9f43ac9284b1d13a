"""fakesnow's in-thread Snowflake server, as a function every test can call.

``fakesnow.server()`` imports its submodule ``fakesnow.server`` when it runs, and from then on the package's
``server`` attribute is that submodule, not the function: a second ``fakesnow.server()`` in one process
raises ``TypeError: 'module' object is not callable``. Test modules are imported (collected) before any test
runs, so taking the function here, at import, keeps it for the whole session.
"""

from __future__ import annotations

import types

import fakesnow

if isinstance(fakesnow.server, types.ModuleType):  # pragma: no cover - only when imported after a first call
    raise ImportError("import tests.fakesnow_server before anything starts a fakesnow server")

start = fakesnow.server
