"""Data-path helpers: S3 access, Parquet part writing, dataset manifests and Snowflake unload SQL.

These modules import pyarrow at module level; operators import them inside ``execute`` only.
"""

from __future__ import annotations
