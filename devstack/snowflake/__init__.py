"""The Snowflake side of the devstack: fakesnow server launcher and the synthetic-history seeder."""

from __future__ import annotations
