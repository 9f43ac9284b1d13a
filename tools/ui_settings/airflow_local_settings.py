"""Airflow cluster policy of the local UI (``python -m tools.ui``): DAGs do not catch up on missed schedules.

The DAGs start in the past with ``catchup=True`` so that, on MWAA, unpausing a DAG runs the intervals it
missed. On a laptop that turns the first unpause of ``train_model`` into dozens of weekly runs at once. The
local UI puts this folder on ``PYTHONPATH`` (unless started with ``--catchup``), so Airflow applies
:func:`dag_policy` when it parses a DAG: unpausing then runs the latest interval only, and earlier
intervals are run on purpose with a backfill. Nothing else about the DAGs changes. MWAA never sees this
file: it is not part of the deployed bundle.
"""

from __future__ import annotations

from typing import Any


def dag_policy(dag: Any) -> None:
    """Turn off catchup for every DAG of the local UI.

    :param dag: the DAG being parsed.
    """
    dag.catchup = False
