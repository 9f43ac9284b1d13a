"""Hooks that extend the Airflow providers where the project needs behaviour they lack."""

from __future__ import annotations
