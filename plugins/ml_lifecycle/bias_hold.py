"""The bias hold: after monitoring finds bias on the endpoint, no model is approved automatically until a person is.

Monitoring writes the hold when a bias check of the served model breaches (``write_hold``); ``train_model``'s
registration reads it (``read_hold``) and registers its model ``PendingManualApproval`` with the hold's reason
instead of ``Approved``, so a person decides; that person's approval in ``train_model``'s ``approve`` task clears
it (``clear_hold``). A rejection keeps it: the next model is held as well.

The hold is one S3 object per endpoint, ``s3://<bucket>/<monitoring prefix>/<endpoint>/bias-hold.json``::

    {"version": 1, "endpoint": "fraud-detector", "reason": "...", "created_at": "2026-03-01T10:00:00Z",
     "interval": {"start": "...", "end": "..."}, "facet": "customer_segment",
     "breaches": [{"facet_value": "student", "metric": "RD", "value": 0.41, "threshold": 0.2}],
     "report_uri": "s3://.../summary.json"}

A marker in S3 rather than a registry tag or an Airflow Variable: monitoring and training run in different DAGs
(and may run in different Airflow environments reading one account), S3 is what both already write, and the
marker survives a redeployment of Airflow. Writing it again replaces it (the newest breach is the reason).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

HOLD_FILE = "bias-hold.json"
VERSION = 1


class BiasHoldError(ValueError):
    """The hold object exists but cannot be read; the message names it."""


def hold_uri(cfg: Config, endpoint: str) -> str:
    """``s3://<bucket>/<monitoring prefix>/<endpoint>/bias-hold.json``."""
    if not endpoint or "/" in endpoint:
        raise ValueError(f"endpoint {endpoint!r} is not an endpoint name")
    return cfg.storage.uri("monitoring", endpoint, HOLD_FILE)


def describe(hold: dict[str, Any]) -> str:
    """The hold's reason as an approval description: what breached, where, and how it is cleared."""
    breaches = hold.get("breaches") or []
    found = ", ".join(
        f"{b.get('metric')} {b.get('value')} for {b.get('facet_value')} (threshold {b.get('threshold')})"
        for b in breaches[:5]
    )
    more = f" and {len(breaches) - 5} more" if len(breaches) > 5 else ""
    interval = hold.get("interval") or {}
    when = f" in {interval.get('start')}..{interval.get('end')}" if interval else ""
    return (
        f"Held for manual approval: monitoring found bias on endpoint {hold.get('endpoint')}{when}"
        f" ({hold.get('facet') or 'facet'}: {found or hold.get('reason') or 'see the report'}{more})."
        f" Report: {hold.get('report_uri') or '-'}. A person's approval clears the hold ({hold.get('uri')})."
    )


def write_hold(
    client: Any,
    cfg: Config,
    endpoint: str,
    *,
    reason: str,
    breaches: Sequence[dict[str, Any]] = (),
    facet: str | None = None,
    interval: dict[str, str] | None = None,
    report_uri: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Write (or replace) the endpoint's hold; return the document written.

    :param client: an S3 client.
    :param reason: one line on why (e.g. ``bias breach: RD 0.41 > 0.2 for student``).
    :param breaches: the bias breaches (``facet_value``, ``metric``, ``value``, ``threshold``).
    :param facet: the facet the breaches are on.
    :param interval: the monitored interval (``start``, ``end``, ISO).
    :param report_uri: the monitoring report the breach is in.
    :param now: the time written as ``created_at`` (default: now, UTC).
    """
    from ml_lifecycle.data.s3 import put_json

    if not reason.strip():
        raise ValueError("a bias hold needs a reason")
    uri = hold_uri(cfg, endpoint)
    created = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    document = {
        "version": VERSION,
        "endpoint": endpoint,
        "reason": reason,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "interval": dict(interval) if interval else None,
        "facet": facet,
        "breaches": [dict(b) for b in breaches],
        "report_uri": report_uri,
    }
    put_json(client, uri, document, **cfg.storage.encryption())
    return {**document, "uri": uri}


def read_hold(client: Any, cfg: Config, endpoint: str) -> dict[str, Any] | None:
    """The endpoint's hold (with its ``uri``), or ``None`` when there is none.

    :raises BiasHoldError: the object exists but is not a hold document (a hold nobody can read must not
        silently let a model through)
    """
    from ml_lifecycle.data.s3 import get_json_or_none

    uri = hold_uri(cfg, endpoint)
    try:
        document = get_json_or_none(client, uri)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BiasHoldError(f"{uri} is not JSON ({exc}); fix or delete it") from None
    if document is None:
        return None
    if not isinstance(document, dict) or document.get("version") != VERSION or not document.get("reason"):
        raise BiasHoldError(f"{uri} is not a bias hold (version {VERSION} with a reason); fix or delete it")
    return {**document, "uri": uri}


def clear_hold(client: Any, cfg: Config, endpoint: str) -> dict[str, Any] | None:
    """Delete the endpoint's hold; return the hold cleared, or ``None`` when there was none."""
    from ml_lifecycle.data.s3 import split_s3_uri

    try:
        hold = read_hold(client, cfg, endpoint)
    except BiasHoldError:
        hold = {"uri": hold_uri(cfg, endpoint), "reason": "unreadable"}
    if hold is None:
        return None
    bucket, key = split_s3_uri(hold["uri"])
    client.delete_object(Bucket=bucket, Key=key)
    return hold
