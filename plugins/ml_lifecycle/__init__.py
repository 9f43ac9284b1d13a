"""Operators, hooks, triggers and configuration for running the ML lifecycle on SageMaker and Snowflake."""

from __future__ import annotations

from ml_lifecycle.native import select_arrow_memory_pool

__version__ = "0.1.0"

# before anything in this process loads pyarrow: see ml_lifecycle.native and docs/data-path.md
select_arrow_memory_pool()
