"""Operators of the ML lifecycle. Import each from its module; this package imports nothing on purpose."""

from __future__ import annotations
