"""Operators, hooks, triggers and configuration for running the ML lifecycle on SageMaker and Snowflake."""

from __future__ import annotations

__version__ = "0.1.0"
