"""Readers for the analyzer's ``dataset_format`` values: CSV, JSON Lines, Parquet and endpoint capture."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

from devstack.monitor_analyzer.stats import Dataset


class NoDataError(Exception):
    """The input holds no record to analyse."""


def _files(root: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    paths = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    if suffixes:
        paths = [p for p in paths if p.name.endswith(suffixes)]
    return paths


def read_csv(root: Path, header: bool) -> Dataset:
    """Every CSV file under ``root``; with a header the first line of each file names the columns."""
    columns: list[str] | None = None
    rows: list[list[Any]] = []
    for path in _files(root):
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            for number, row in enumerate(reader):
                if not row:
                    continue
                if header and number == 0:
                    if columns is None:
                        columns = [c.strip() for c in row]
                    continue
                rows.append([None if cell == "" else cell for cell in row])
    if columns is None:
        width = max((len(r) for r in rows), default=0)
        columns = [f"_c{i}" for i in range(width)]
    return Dataset(columns, rows)


def _flatten(record: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(record, dict):
        out: dict[str, Any] = {}
        for key, value in record.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                out.update(_flatten(value, name))
            else:
                out[name] = value
        return out
    return {prefix or "_c0": record}


def _from_records(records: list[dict[str, Any]]) -> Dataset:
    columns: list[str] = []
    seen: set[str] = set()
    for record in records:
        for key in record:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    return Dataset(columns, [[record.get(c) for c in columns] for record in records])


def read_json_lines(root: Path) -> Dataset:
    """Every JSON Lines file under ``root``: one object per line, nested objects flattened with dots."""
    records = []
    for path in _files(root):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(_flatten(json.loads(line)))
    return _from_records(records)


def read_parquet(root: Path) -> Dataset:
    """Every Parquet file under ``root``."""
    import pandas as pd

    frames = [pd.read_parquet(p) for p in _files(root)]
    if not frames:
        return Dataset([], [])
    frame = pd.concat(frames, ignore_index=True)
    rows = [[None if _is_nan(v) else v for v in row] for row in frame.astype(object).itertuples(index=False)]
    return Dataset([str(c) for c in frame.columns], rows)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


# -- endpoint capture -------------------------------------------------------------------------------


def _decode(payload: dict[str, Any]) -> list[list[tuple[str | None, Any]]]:
    """Rows of (name or None, value) from one captured input or output."""
    data = payload.get("data", "")
    encoding = payload.get("encoding", "")
    if encoding == "BASE64":
        raw = base64.b64decode(data)
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            return []
        media = (payload.get("observedContentType") or "").split(";")[0].strip().lower()
        encoding = "JSON" if "json" in media else "CSV"
    if encoding == "JSON":
        parsed = json.loads(data)
        if isinstance(parsed, dict):
            for key in ("instances", "predictions", "inputs", "outputs"):
                if isinstance(parsed.get(key), list):
                    parsed = parsed[key]
                    break
        items = parsed if isinstance(parsed, list) else [parsed]
        if items and not isinstance(items[0], dict | list):
            items = [items]  # one row of scalars
        rows = []
        for item in items:
            if isinstance(item, dict):
                rows.append(list(_flatten(item).items()))
            elif isinstance(item, list):
                rows.append([(None, v) for v in item])
            else:
                rows.append([(None, item)])
        return rows
    return [[(None, cell) for cell in row] for row in csv.reader(io.StringIO(data)) if row]


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_capture(
    root: Path,
    index_names: list[str],
    start: dt.datetime | None,
    end: dt.datetime | None,
    names: list[str] | None = None,
) -> Dataset:
    """Captured records under ``root`` whose inference time is in ``[start, end)``.

    Each record gives one row per instance: the output columns first, then the input columns (the
    ``output_columns_position: START`` convention of the baseline). Unnamed (CSV) columns take the baseline's
    names by position when ``names`` is given, else ``_c0``, ``_c1``, ...
    """
    use_output = "endpointOutput" in index_names
    use_input = "endpointInput" in index_names
    rows: list[list[tuple[str | None, Any]]] = []
    for path in _files(root, (".jsonl", ".json")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            metadata = record.get("eventMetadata", {})
            if metadata.get("invocationSource") == "ShadowExperiment":
                continue
            when = metadata.get("inferenceTime")
            if when and (start or end):
                moment = _parse_time(when)
                if (start and moment < start) or (end and moment >= end):
                    continue
            data = record.get("captureData", {})
            outputs = _decode(data["endpointOutput"]) if use_output and "endpointOutput" in data else []
            inputs = _decode(data["endpointInput"]) if use_input and "endpointInput" in data else []
            count = max(len(outputs), len(inputs))
            for i in range(count):
                out_part = outputs[i] if i < len(outputs) else (outputs[0] if len(outputs) == 1 else [])
                in_part = inputs[i] if i < len(inputs) else (inputs[0] if len(inputs) == 1 else [])
                rows.append(out_part + in_part)
    if not rows:
        raise NoDataError("Job inputs had no data")
    width = max(len(r) for r in rows)
    columns: list[str] = []
    for position in range(width):
        named = next((r[position][0] for r in rows if position < len(r) and r[position][0]), None)
        if named is None:
            named = names[position] if names and position < len(names) else f"_c{position}"
        columns.append(named)
    return Dataset(columns, [[cell[1] for cell in row] + [None] * (width - len(row)) for row in rows])
