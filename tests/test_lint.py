"""The code base is ruff-clean (lint and format), so CI holds every change to the same style."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.parametrize(
    "args",
    [pytest.param(["check", "."], id="lint"), pytest.param(["format", "--check", "."], id="format")],
)
def test_ruff_is_clean(args):
    proc = subprocess.run([str(RUFF), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
