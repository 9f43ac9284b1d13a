"""Triggers of the ML lifecycle (run in the triggerer). Import each from its module."""

from __future__ import annotations
