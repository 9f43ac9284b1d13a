"""Export the late ground truth that arrived in a window from Snowflake to S3, in SageMaker's layout.

Fraud outcomes arrive days after the transaction (``snowflake.labels_table``, e.g. ``FRAUD_DB.RAW.FRAUD_LABELS``:
``TRANSACTION_ID``, ``IS_FRAUD``, ``LABELED_AT``). Monitoring joins them to the captured inferences by
``InferenceId`` (the transaction id the endpoint's callers send). This operator writes them where a ground-truth
reader expects them (SageMaker Model Monitor's ground-truth layout, contracts §1.2):

    <labels_uri>/yyyy/mm/dd/hh/labels-<yyyymmddhh>.jsonl      (the hour the labels arrived)

one line per label::

    {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "<transaction id>"},
     "eventVersion": "0", "attributes": {"customer_segment": "student"}}

``attributes`` carries the query's attribute columns (the bias facet); Model Monitor ignores the key.

The window is one of arrival time, in whole hours: ``[arrived_from, arrived_until)`` with both ends floored to the
hour and the end capped at the current hour (a label whose ``LABELED_AT`` is later has not arrived). For a
lookback window of inferences ``[lookback_start, interval_end)`` the arrival window is the same: a label of an
inference made in the window arrives after the inference. Each arrival hour's object holds every label that
arrived in that hour, whatever the window, so overlapping windows write the same objects and a rerun of a window
rewrites the same objects (objects of the window's hours that the query no longer yields are deleted).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from contextlib import closing
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from ml_lifecycle.operators.warehouse import SnowflakeQueryToS3Base, parse_instant

if TYPE_CHECKING:
    from airflow.sdk import Context

#: the query's first three output columns; every later column is an attribute
LABEL_COLUMNS = ("transaction_id", "is_fraud", "labeled_at")
OBJECT_PREFIX = "labels-"
_HOUR = dt.timedelta(hours=1)


class LabelsQueryError(ValueError):
    """The labels query does not return what a ground-truth line needs; the message names the problem."""


def floor_hour(value: dt.datetime) -> dt.datetime:
    """``value`` with minutes, seconds and microseconds dropped."""
    return value.replace(minute=0, second=0, microsecond=0)


def hour_key(prefix_key: str, hour: dt.datetime) -> str:
    """``<prefix_key>yyyy/mm/dd/hh/labels-<yyyymmddhh>.jsonl`` for the arrival hour ``hour``."""
    return f"{prefix_key}{hour:%Y/%m/%d/%H}/{OBJECT_PREFIX}{hour:%Y%m%d%H}.jsonl"


def ground_truth_line(transaction_id: str, is_fraud: int, attributes: dict[str, Any]) -> str:
    """One SageMaker ground-truth record (JSON, no newline); ``attributes`` without ``None`` values."""
    record: dict[str, Any] = {
        "groundTruthData": {"data": str(int(is_fraud)), "encoding": "CSV"},
        "eventMetadata": {"eventId": str(transaction_id)},
        "eventVersion": "0",
        "attributes": {name: str(value) for name, value in attributes.items() if value is not None},
    }
    return json.dumps(record, separators=(",", ":"))


def group_by_hour(
    rows: Sequence[Sequence[Any]], columns: Sequence[str]
) -> tuple[dict[dt.datetime, list[str]], dict[str, int]]:
    """Ground-truth lines per arrival hour, and counts (``labels``, ``fraud``, ``duplicates`` dropped).

    A transaction id seen twice (a duplicated transaction joined to its label) keeps its first row.

    :raises LabelsQueryError: the columns do not start with ``transaction_id, is_fraud, labeled_at``, or a row
        has an empty id, a label other than 0/1 or no arrival time
    """
    if tuple(columns[:3]) != LABEL_COLUMNS:
        raise LabelsQueryError(f"the labels query returns {list(columns)}; it must start with {list(LABEL_COLUMNS)}")
    attribute_names = list(columns[3:])
    by_hour: dict[dt.datetime, list[str]] = {}
    seen: set[str] = set()
    counts = {"labels": 0, "fraud": 0, "duplicates": 0}
    for row in rows:
        transaction_id, label, labeled_at = row[0], row[1], row[2]
        if not transaction_id:
            raise LabelsQueryError("a label row has an empty transaction_id")
        if label not in (0, 1, True, False):
            raise LabelsQueryError(f"transaction {transaction_id}: is_fraud must be 0 or 1, got {label!r}")
        if not isinstance(labeled_at, dt.datetime):
            raise LabelsQueryError(f"transaction {transaction_id}: labeled_at is {labeled_at!r}, not a timestamp")
        if transaction_id in seen:
            counts["duplicates"] += 1
            continue
        seen.add(transaction_id)
        if labeled_at.tzinfo is not None:
            labeled_at = labeled_at.astimezone(dt.UTC).replace(tzinfo=None)
        attributes = dict(zip(attribute_names, row[3:], strict=True))
        by_hour.setdefault(floor_hour(labeled_at), []).append(ground_truth_line(transaction_id, int(label), attributes))
        counts["labels"] += 1
        counts["fraud"] += int(label)
    return by_hour, counts


class LabelsToS3Operator(SnowflakeQueryToS3Base):
    """Write the labels that arrived in ``[arrived_from, arrived_until)`` to S3 as ground-truth jsonl per hour.

    Returns (XCom) ``{"labels_uri", "arrived_from", "arrived_until", "labels", "fraud", "objects", "hours",
    "removed", "duplicates"}``: the prefix (pass it to the monitoring job as its ``labels/`` input), the window
    actually exported (whole hours, ISO UTC), the labels written and how many are fraud, the objects written
    (one per arrival hour with labels), the hours of the window, stale objects deleted and duplicate
    transaction ids dropped. A window in which no label arrived writes nothing and returns ``labels: 0``; it is
    not an error (monitoring reports ``no_labels``).

    :param snowflake_conn_id: Airflow connection for Snowflake
    :param aws_conn_id: Airflow connection for AWS (S3)
    :param arrived_from: first instant of the arrival window (templated; datetime or ISO string; floored to the
        hour). For monitoring: the lookback start of the inferences.
    :param arrived_until: end of the arrival window, exclusive (templated; floored to the hour and capped at the
        current hour). For monitoring: the interval's end.
    :param labels_uri: destination prefix, e.g. ``s3://<bucket>/monitoring/<endpoint>/labels/`` (templated)
    :param sql_path: the labels query, relative to ``include/`` (``%(arrived_from)s`` / ``%(arrived_until)s``)
    :param source_name: what the query reads, for messages (e.g. ``FRAUD_DB.RAW.FRAUD_LABELS``)
    :param kms_key_id: KMS key for server-side encryption of the written objects
    """

    template_fields: Sequence[str] = aws_template_fields("arrived_from", "arrived_until", "labels_uri", "sql_path")

    def __init__(
        self,
        *,
        arrived_from: str | dt.datetime,
        arrived_until: str | dt.datetime,
        labels_uri: str,
        sql_path: str = "sql/labels_export.sql",
        **kwargs: Any,
    ) -> None:
        super().__init__(sql_path=sql_path, **kwargs)
        self.arrived_from = arrived_from
        self.arrived_until = arrived_until
        self.labels_uri = labels_uri

    def now(self) -> dt.datetime:
        """The current time, naive UTC (labels after it have not arrived)."""
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def window(self) -> tuple[dt.datetime, dt.datetime]:
        """The arrival window in whole hours, its end capped at the current hour.

        :raises ValueError: the window is empty or inverted; the message names both ends
        """
        start = floor_hour(parse_instant("arrived_from", self.arrived_from))
        end = floor_hour(parse_instant("arrived_until", self.arrived_until))
        if not start < end:
            raise ValueError(
                f"empty or inverted arrival window [{start.isoformat()}, {end.isoformat()}) (whole hours): "
                "arrived_from must be at least an hour before arrived_until"
            )
        current_hour = floor_hour(self.now())
        if end > current_hour:
            self.log.info("Labels after %s have not arrived yet: the window ends there", current_hour.isoformat())
            end = max(start, current_hour)
        return start, end

    def query(self, start: dt.datetime, end: dt.datetime) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run the labels query for the window; return its lowercase column names and rows."""
        sql_text = self.read_sql()
        params = {
            "arrived_from": start.strftime("%Y-%m-%d %H:%M:%S"),
            "arrived_until": end.strftime("%Y-%m-%d %H:%M:%S"),
        }
        conn = self.get_snowflake_hook().get_conn()
        try:
            with closing(conn.cursor()) as cursor:
                cursor.execute(sql_text, params)
                self.log.info("Snowflake query id %s", getattr(cursor, "sfqid", None))
                columns = [str(d[0]).lower() for d in cursor.description]
                rows = [tuple(r) for r in cursor.fetchall()]
        finally:
            conn.close()
        return columns, rows

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.common.compat.sdk import AirflowFailException

        from ml_lifecycle.data.s3 import as_prefix, delete_keys, iter_objects, split_s3_uri

        prefix = as_prefix(self.labels_uri)
        bucket, key_prefix = split_s3_uri(prefix)
        start, end = self.window()
        source = self.source
        by_hour: dict[dt.datetime, list[str]] = {}
        counts = {"labels": 0, "fraud": 0, "duplicates": 0}
        if start < end:
            columns, rows = self.query(start, end)
            try:
                by_hour, counts = group_by_hour(rows, columns)
            except LabelsQueryError as exc:
                raise AirflowFailException(f"{self.sql_path} on {source}: {exc}") from None
        client = self.hook.conn
        written = set()
        for hour in sorted(by_hour):
            key = hour_key(key_prefix, hour)
            body = ("\n".join(by_hour[hour]) + "\n").encode("utf-8")
            client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/jsonl", **self._put_args)
            written.add(key)
        # objects of the window's hours that this export did not write (a label withdrawn, a re-seeded table)
        stale = []
        for obj in iter_objects(client, prefix):
            hour = _hour_of(obj["Key"][len(key_prefix) :])
            if hour is not None and start <= hour < end and obj["Key"] not in written:
                stale.append(obj["Key"])
        removed = delete_keys(client, bucket, stale)
        hours = int((end - start) / _HOUR)
        self.log.info(
            "Exported %d label(s) (%d fraud) that arrived in [%s, %s) from %s to %s: %d object(s) over %d hour(s)%s",
            counts["labels"],
            counts["fraud"],
            start.isoformat(),
            end.isoformat(),
            source,
            prefix,
            len(written),
            hours,
            f"; removed {removed} stale object(s)" if removed else "",
        )
        if counts["duplicates"]:
            self.log.warning("Dropped %d duplicate transaction id(s) from the labels", counts["duplicates"])
        return {
            "labels_uri": prefix,
            "arrived_from": start.isoformat() + "Z",
            "arrived_until": end.isoformat() + "Z",
            "labels": counts["labels"],
            "fraud": counts["fraud"],
            "objects": len(written),
            "hours": hours,
            "removed": removed,
            "duplicates": counts["duplicates"],
        }


def _hour_of(relative_key: str) -> dt.datetime | None:
    """The arrival hour of ``yyyy/mm/dd/hh/labels-<yyyymmddhh>.jsonl`` (``None`` for any other key)."""
    parts = relative_key.split("/")
    if len(parts) != 5 or not parts[4].startswith(OBJECT_PREFIX) or not parts[4].endswith(".jsonl"):
        return None
    try:
        hour = dt.datetime.strptime("/".join(parts[:4]), "%Y/%m/%d/%H")
    except ValueError:
        return None
    return hour if parts[4] == f"{OBJECT_PREFIX}{hour:%Y%m%d%H}.jsonl" else None
