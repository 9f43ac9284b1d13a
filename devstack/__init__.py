"""A local stand-in for AWS and Snowflake, so the DAGs run end to end on one machine.

``python -m devstack up|down|status|seed|env``; see ``docs/devstack.md``. Nothing here is deployed to
MWAA, and the ``ml_lifecycle`` package never imports it.
"""

from __future__ import annotations
