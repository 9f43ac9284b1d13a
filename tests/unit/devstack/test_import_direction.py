"""The SageMaker service's imports point one way: ``service.py`` imports its components, never the reverse.

Components type the service as :class:`devstack.sagemaker.service_api.ServiceApi`; an import of
``devstack.sagemaker.service`` from a component (even under ``TYPE_CHECKING``) would close a circle again.
"""

from __future__ import annotations

import ast
from pathlib import Path

DEVSTACK = Path(__file__).resolve().parents[3] / "devstack"
#: the modules that may import the service: its package face, its command line
ENTRY_POINTS = {"sagemaker/__init__.py", "sagemaker/__main__.py", "sagemaker/service.py"}


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_component_imports_the_service_module() -> None:
    offenders = sorted(
        str(path.relative_to(DEVSTACK))
        for path in DEVSTACK.rglob("*.py")
        if str(path.relative_to(DEVSTACK)) not in ENTRY_POINTS
        and "devstack.sagemaker.service" in _imported_modules(path)
    )
    assert offenders == [], f"these modules import devstack.sagemaker.service (use service_api.ServiceApi): {offenders}"


def test_service_api_imports_no_component() -> None:
    components = {p.stem for p in (DEVSTACK / "sagemaker").glob("*.py")} - {
        "awsio",
        "catalogue",
        "faults",
        "store",
        "service_api",
        "__init__",
    }
    imported = {name.rsplit(".", 1)[-1] for name in _imported_modules(DEVSTACK / "sagemaker" / "service_api.py")}
    assert not imported & components
