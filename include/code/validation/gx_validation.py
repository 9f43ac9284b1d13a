"""Validate a Parquet dataset against a Great Expectations 1.x suite in bounded memory.

This file is the one validation core. It runs in two places, unchanged:

- inside a SageMaker Processing job, as the sibling module of ``validate.py`` (the job's entrypoint);
- in the Airflow worker, loaded by file path by ``DataValidationOperator`` (mode ``worker``).

It depends only on the standard library, pyarrow, pandas, great_expectations and ``common/contract.py``
(shipped in the component's archive), never on the ``ml_lifecycle`` package, so the container needs nothing
but this folder.

How a suite is evaluated over data larger than memory
------------------------------------------------------
The dataset is read one record batch at a time (``batch_rows`` rows; Parquet row groups are read lazily).
Each expectation of the suite falls into one of three groups:

``per-batch`` (row-wise "map" expectations: not-null, between, in-set, regex, ...)
    GX runs them on every batch; element, missing and unexpected counts are summed across batches and
    ``mostly`` is applied to the totals exactly as GX does (``(nonmissing - unexpected) / nonmissing``),
    so the verdict equals one GX run over the whole dataset.
``schema`` (table columns, column existence, column types)
    GX runs them on every batch; the expectation passes only if it passes on every batch.
``exact-streaming`` (expectations over the whole dataset: row count, uniqueness, mean/min/max/sum/stdev,
distinct-value sets, unique-value counts)
    computed here with streaming aggregates. Uniqueness is exact without holding all keys in memory: keys
    are hash-partitioned into Arrow files on local disk while streaming, then each partition (about
    ``rows_per_partition`` keys) is counted on its own.

An expectation that fits none of these (median, quantiles, distributional tests, or a ``row_condition`` on a
whole-dataset expectation) is refused with an error naming it, rather than being evaluated per batch and
reported with a verdict that could be wrong.
"""

from __future__ import annotations

import datetime as dt
import html
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

# pyarrow 25.0.0's bundled mimalloc crashes or corrupts its heap when libarrow was first loaded on a thread
# that has exited and another thread then allocates (apache/arrow#50471); Arrow reads its pool choice once,
# when libarrow loads, so choose the system allocator before anything imports pyarrow, unless the
# environment chose. The ml_lifecycle package does the same in the Airflow worker.
if "pyarrow.lib" not in sys.modules and not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
SAMPLE_SIZE = 20
ROWS_PER_PARTITION = 2_000_000
MAX_DISTINCT_VALUES = 100_000

SCHEMA_TYPES = frozenset(
    {
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
        "expect_column_to_exist",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
    }
)


def _load_common() -> ModuleType:
    """``common/contract.py``: beside this file in a shipped archive, ``include/code/common/`` in a checkout."""
    here = Path(__file__).resolve().parent
    for path in (here / "common" / "contract.py", here.parent / "common" / "contract.py"):
        if path.is_file():
            spec = importlib.util.spec_from_file_location(f"{__name__}_common", path)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    raise ImportError(f"common/contract.py is missing beside {here}; code_package ships it in every component")


common = _load_common()


class SuiteError(ValueError):
    """The suite cannot be evaluated exactly in batches; the message names the expectation."""


class DatasetTypeError(ValueError):
    """A column cannot be read in the dataset contract's types; the message names the file and column."""


class ValidationTimeoutError(TimeoutError):
    """The validation ran past its deadline; carries how far it got.

    :param message: what happened
    :param progress: ``rows``, ``batches``, ``elapsed_seconds`` and ``stage`` when the deadline passed
    """

    def __init__(self, message: str, progress: dict[str, Any]) -> None:
        super().__init__(message)
        self.progress = progress


# ---------------------------------------------------------------------------------------------- helpers


def _jsonable(value: Any) -> Any:
    """Plain JSON values (numpy scalars, timestamps and sets turned into numbers, strings and lists)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        return _jsonable(item())
    isoformat = getattr(value, "isoformat", None)  # pandas Timestamp
    if callable(isoformat):
        return isoformat()
    return str(value)


def _within(value: Any, kwargs: dict[str, Any]) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None and (value <= low if kwargs.get("strict_min") else value < low):
        return False
    return not (high is not None and (value >= high if kwargs.get("strict_max") else value > high))


def _columns_of(config: dict[str, Any]) -> list[str]:
    kwargs = config.get("kwargs", {})
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    return [kwargs[k] for k in ("column_A", "column_B") if k in kwargs]


# ----------------------------------------------------------------------------- exact streaming evaluators


class _Evaluator:
    """An expectation over the whole dataset, fed batch by batch."""

    def __init__(self, config: dict[str, Any], workdir: str, total_rows: int | None) -> None:
        self.config = config
        self.kwargs = config.get("kwargs", {})

    def update(self, frame: Any) -> None:
        raise NotImplementedError

    def finish(self) -> tuple[bool, dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release temporary files."""

    def _column(self, frame: Any) -> Any:
        column = self.kwargs.get("column")
        if column not in frame.columns:
            raise KeyError(f"column {column!r} is not in the dataset (columns: {list(frame.columns)})")
        return frame[column]


class _RowCount(_Evaluator):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.rows = 0

    def update(self, frame: Any) -> None:
        self.rows += len(frame)

    def finish(self) -> tuple[bool, dict[str, Any]]:
        if self.config["type"] == "expect_table_row_count_to_equal":
            success = self.rows == self.kwargs.get("value")
        else:
            success = _within(self.rows, self.kwargs)
        return success, {"observed_value": self.rows}


class _ColumnMoments(_Evaluator):
    """mean / min / max / sum / stdev of a column's non-null values (Chan's parallel variance)."""

    STATISTIC = {
        "expect_column_mean_to_be_between": "mean",
        "expect_column_min_to_be_between": "min",
        "expect_column_max_to_be_between": "max",
        "expect_column_sum_to_be_between": "sum",
        "expect_column_stdev_to_be_between": "stdev",
    }

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.statistic = self.STATISTIC[self.config["type"]]
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.total = 0.0
        self.low: Any = None
        self.high: Any = None

    def update(self, frame: Any) -> None:
        values = self._column(frame).dropna()
        if values.empty:
            return
        if self.statistic in {"min", "max"}:
            low, high = values.min(), values.max()
            self.low = low if self.low is None or low < self.low else self.low
            self.high = high if self.high is None or high > self.high else self.high
            self.count += len(values)
            return
        numbers = values.astype("float64")
        n, batch_mean = len(numbers), float(numbers.mean())
        batch_m2 = float(((numbers - batch_mean) ** 2).sum())
        total_n = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total_n
        self.m2 += batch_m2 + delta * delta * self.count * n / total_n
        self.total += float(numbers.sum())
        self.count = total_n

    def finish(self) -> tuple[bool, dict[str, Any]]:
        observed: Any
        if self.count == 0:
            observed = None
        elif self.statistic == "mean":
            observed = self.mean
        elif self.statistic == "sum":
            observed = self.total
        elif self.statistic == "stdev":
            observed = math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else None
        else:
            observed = self.low if self.statistic == "min" else self.high
        return _within(observed, self.kwargs), {"observed_value": _jsonable(observed)}


class _DistinctValues(_Evaluator):
    """The set of distinct non-null values of a (low-cardinality) column."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.values: set[Any] = set()

    def update(self, frame: Any) -> None:
        self.values.update(_jsonable(v) for v in self._column(frame).dropna().unique())
        if len(self.values) > MAX_DISTINCT_VALUES:
            raise SuiteError(
                f"{self.config['type']} on column {self.kwargs.get('column')!r}: more than {MAX_DISTINCT_VALUES}"
                " distinct values; this expectation is meant for categorical columns"
            )

    def finish(self) -> tuple[bool, dict[str, Any]]:
        expected = {_jsonable(v) for v in self.kwargs.get("value_set") or []}
        kind = self.config["type"]
        if kind == "expect_column_distinct_values_to_be_in_set":
            success = self.values <= expected
        elif kind == "expect_column_distinct_values_to_contain_set":
            success = expected <= self.values
        else:
            success = self.values == expected
        result = {
            "observed_value": _jsonable(self.values),
            "details": {
                "value_counts_unexpected": _jsonable(self.values - expected),
                "missing_from_observed": _jsonable(expected - self.values),
            },
        }
        return success, result


class _KeyCounter(_Evaluator):
    """Exact duplicate / distinct counts of one or more key columns, spilled to disk by hash partition."""

    def __init__(self, config: dict[str, Any], workdir: str, total_rows: int | None) -> None:
        super().__init__(config, workdir, total_rows)
        self.columns = _columns_of(config)
        self.partitions = max(1, math.ceil((total_rows or 16 * ROWS_PER_PARTITION) / ROWS_PER_PARTITION))
        self.dir = tempfile.mkdtemp(prefix="keys-", dir=workdir)
        self.writers: dict[int, Any] = {}
        self.sinks: dict[int, Any] = {}
        self.schema: Any = None
        self.element_count = 0
        self.missing_count = 0

    def update(self, frame: Any) -> None:
        import pandas as pd
        import pyarrow as pa

        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise KeyError(f"column(s) {missing} not in the dataset (columns: {list(frame.columns)})")
        keys = frame[self.columns]
        self.element_count += len(keys)
        absent = keys.isna().all(axis=1)
        keys = keys[~absent]
        self.missing_count += int(absent.sum())
        if keys.empty:
            return
        buckets = pd.util.hash_pandas_object(keys, index=False).to_numpy() % self.partitions
        table = pa.Table.from_pandas(keys, preserve_index=False).replace_schema_metadata(None)
        if self.schema is None:
            self.schema = table.schema
        table = table.cast(self.schema)
        for bucket in sorted(set(buckets.tolist())):
            part = table.filter(pa.array(buckets == bucket))
            if bucket not in self.writers:
                self.sinks[bucket] = pa.OSFile(os.path.join(self.dir, f"{bucket}.arrow"), "wb")
                self.writers[bucket] = pa.ipc.new_stream(self.sinks[bucket], self.schema)
            self.writers[bucket].write_table(part)

    def _counts(self) -> Iterator[Any]:
        import pyarrow as pa

        for bucket in sorted(self.writers):
            self.writers[bucket].close()
            self.sinks[bucket].close()
        self.writers.clear()
        for name in sorted(os.listdir(self.dir)):
            path = os.path.join(self.dir, name)
            with pa.memory_map(path) as source:
                table = pa.ipc.open_stream(source).read_all()
            yield table.group_by(self.columns).aggregate([([], "count_all")])
            os.remove(path)

    def finish(self) -> tuple[bool, dict[str, Any]]:
        import pyarrow.compute as pc

        distinct = duplicated_rows = 0
        samples: list[dict[str, Any]] = []
        for counts in self._counts():
            distinct += counts.num_rows
            repeated = counts.filter(pc.greater(counts["count_all"], 1))
            duplicated_rows += int(pc.sum(repeated["count_all"]).as_py() or 0)
            for row in repeated.slice(0, SAMPLE_SIZE - len(samples)).to_pylist():
                count = row.pop("count_all")
                value = row[self.columns[0]] if len(self.columns) == 1 else row
                samples.append({"value": _jsonable(value), "count": count})
        nonmissing = self.element_count - self.missing_count
        kind = self.config["type"]
        if kind == "expect_column_unique_value_count_to_be_between":
            return _within(distinct, self.kwargs), {"observed_value": distinct}
        if kind == "expect_column_proportion_of_unique_values_to_be_between":
            proportion = distinct / nonmissing if nonmissing else None
            return _within(proportion, self.kwargs), {"observed_value": proportion}
        mostly = float(self.kwargs.get("mostly", 1.0))
        success = nonmissing == 0 or (nonmissing - duplicated_rows) / nonmissing >= mostly
        percent = 100.0 * duplicated_rows / nonmissing if nonmissing else 0.0
        return success, {
            "element_count": self.element_count,
            "missing_count": self.missing_count,
            "unexpected_count": duplicated_rows,
            "unexpected_percent": percent,
            "distinct_count": distinct,
            "partial_unexpected_list": [s["value"] for s in samples],
            "partial_unexpected_counts": samples,
        }

    def close(self) -> None:
        import shutil

        for bucket in list(self.writers):
            self.writers.pop(bucket).close()
            self.sinks.pop(bucket).close()
        shutil.rmtree(self.dir, ignore_errors=True)


EXACT_EVALUATORS: dict[str, type[_Evaluator]] = {
    "expect_table_row_count_to_be_between": _RowCount,
    "expect_table_row_count_to_equal": _RowCount,
    "expect_column_values_to_be_unique": _KeyCounter,
    "expect_compound_columns_to_be_unique": _KeyCounter,
    "expect_column_unique_value_count_to_be_between": _KeyCounter,
    "expect_column_proportion_of_unique_values_to_be_between": _KeyCounter,
    "expect_column_distinct_values_to_be_in_set": _DistinctValues,
    "expect_column_distinct_values_to_contain_set": _DistinctValues,
    "expect_column_distinct_values_to_equal_set": _DistinctValues,
    **dict.fromkeys(_ColumnMoments.STATISTIC, _ColumnMoments),
}


# ------------------------------------------------------------------------------------------------ the plan


def load_suite(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an ExpectationSuite JSON document (GX 1.x: ``name`` + ``expectations[{type, kwargs, meta}]``).

    :raises SuiteError: not JSON, or not shaped like a suite
    """
    try:
        suite = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read the expectation suite: {exc}") from None
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise SuiteError(f"{path}: an expectation suite needs a list under 'expectations'")
    for index, config in enumerate(suite["expectations"]):
        if not isinstance(config, dict) or not isinstance(config.get("type"), str):
            raise SuiteError(f"{path}: expectations[{index}] has no 'type'")
    return suite


def classify(config: dict[str, Any]) -> str:
    """``per-batch``, ``schema`` or ``exact-streaming`` for one expectation configuration.

    :raises SuiteError: unknown to GX, or needing the whole dataset without an exact batched evaluation
    """
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.registry import get_expectation_impl

    kind = config["type"]
    kwargs = config.get("kwargs", {})
    if kind in EXACT_EVALUATORS:
        if kwargs.get("row_condition"):
            raise SuiteError(f"{kind}: a row_condition is not supported on a whole-dataset expectation")
        return "exact-streaming"
    if kind in SCHEMA_TYPES:
        return "schema"
    try:
        impl = get_expectation_impl(kind)
    except Exception as exc:
        raise SuiteError(f"{kind}: not an expectation known to great_expectations ({exc})") from None
    if issubclass(impl, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation):
        return "per-batch"
    raise SuiteError(
        f"{kind} (columns {_columns_of(config)}) needs the whole dataset at once and has no exact batched "
        "evaluation here; express it with row-wise, row-count, uniqueness or mean/min/max/sum/stdev expectations"
    )


def _gx_suite(gx: Any, name: str, indexed: list[tuple[int, dict[str, Any]]]) -> Any:
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    expectations = []
    for index, config in indexed:
        meta = {**(config.get("meta") or {}), "_index": index}
        try:
            configuration = ExpectationConfiguration(type=config["type"], kwargs=config.get("kwargs", {}), meta=meta)
            expectations.append(configuration.to_domain_obj())
        except Exception as exc:
            raise SuiteError(f"expectations[{index}] {config['type']}: invalid configuration: {exc}") from None
    return gx.ExpectationSuite(name=name, expectations=expectations)


def _gx_batch_definition(gx: Any) -> Any:
    context = gx.get_context(mode="ephemeral")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no progress bars in task logs
    source = context.data_sources.add_pandas("ml_lifecycle")
    return source.add_dataframe_asset("batch").add_batch_definition_whole_dataframe("whole")


def iter_frames(paths: Iterable[str], batch_rows: int) -> Iterator[Any]:
    """pandas frames of at most ``batch_rows`` rows, read lazily from Parquet files in order.

    Decimal columns (an unloaded dataset) are typed as stream mode writes them (``common.conform_decimals``).

    :raises DatasetTypeError: a decimal column has a value outside ``int64``; names the file and column
    """
    import pyarrow.parquet as pq

    for path in paths:
        # closed before the next file is asked for (the caller may delete it then); one reader thread,
        # so the batch in flight is the only data held
        with pq.ParquetFile(path, memory_map=False) as parquet:
            for batch in parquet.iter_batches(batch_size=batch_rows, use_threads=False):
                try:
                    batch = common.conform_decimals(batch, DatasetTypeError)
                except DatasetTypeError as exc:
                    raise DatasetTypeError(f"{Path(path).name}: {exc}") from None
                yield batch.to_pandas(use_threads=False)


class _MapTotals:
    """Counts of a row-wise expectation summed over batches."""

    def __init__(self) -> None:
        self.element_count = 0
        self.missing_count = 0
        self.unexpected_count = 0
        self.samples: list[Any] = []
        self.sample_counts: dict[str, dict[str, Any]] = {}
        self.failure: dict[str, Any] | None = None

    def add(self, result: dict[str, Any]) -> None:
        if result["exception_info"].get("raised_exception"):
            self.failure = self.failure or result["exception_info"]
            return
        body = result.get("result") or {}
        self.element_count += int(body.get("element_count") or 0)
        self.missing_count += int(body.get("missing_count") or 0)
        self.unexpected_count += int(body.get("unexpected_count") or 0)
        room = SAMPLE_SIZE - len(self.samples)
        if room > 0:
            self.samples.extend(_jsonable(body.get("partial_unexpected_list") or [])[:room])
        for item in body.get("partial_unexpected_counts") or []:
            key = json.dumps(_jsonable(item.get("value")), sort_keys=True)
            if key in self.sample_counts:
                self.sample_counts[key]["count"] += int(item.get("count") or 0)
            elif len(self.sample_counts) < SAMPLE_SIZE:
                self.sample_counts[key] = {"value": _jsonable(item.get("value")), "count": int(item.get("count") or 0)}

    def verdict(self, kwargs: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        nonmissing = self.element_count - self.missing_count
        mostly = float(kwargs.get("mostly", 1.0))
        success = nonmissing == 0 or (nonmissing - self.unexpected_count) / nonmissing >= mostly
        return success, {
            "element_count": self.element_count,
            "missing_count": self.missing_count,
            "missing_percent": 100.0 * self.missing_count / self.element_count if self.element_count else None,
            "unexpected_count": self.unexpected_count,
            "unexpected_percent": 100.0 * self.unexpected_count / nonmissing if nonmissing else 0.0,
            "unexpected_percent_total": 100.0 * self.unexpected_count / self.element_count
            if self.element_count
            else 0.0,
            "partial_unexpected_list": self.samples,
            "partial_unexpected_counts": sorted(self.sample_counts.values(), key=lambda c: -c["count"]),
        }


def _entry(config: dict[str, Any], success: bool, result: dict[str, Any], how: str, **extra: Any) -> dict[str, Any]:
    exception = extra.pop("exception", None)
    return {
        "success": bool(success),
        "expectation_config": {
            "type": config["type"],
            "kwargs": _jsonable(config.get("kwargs", {})),
            "meta": _jsonable(config.get("meta") or {}),
        },
        "result": _jsonable(result),
        "exception_info": {
            "raised_exception": exception is not None,
            "exception_message": exception,
            "exception_traceback": None,
        },
        "meta": {"evaluation": how, **extra},
    }


def validate_files(
    paths: Iterable[str],
    suite: dict[str, Any],
    *,
    batch_rows: int = 100_000,
    total_rows: int | None = None,
    dataset_uri: str | None = None,
    empty_frame: Any = None,
    workdir: str | None = None,
    deadline: float | None = None,
    clock_start: float | None = None,
) -> dict[str, Any]:
    """Validate the Parquet files ``paths`` (read in order, one batch at a time) against ``suite``.

    :param paths: local Parquet files; may be a generator that fetches each file when asked
    :param suite: the suite document (:func:`load_suite`)
    :param batch_rows: rows per batch handed to GX
    :param total_rows: the dataset's row count if known (sizes the uniqueness partitions)
    :param dataset_uri: recorded in the result
    :param empty_frame: a zero-row frame with the dataset's columns, validated when there are no rows at all
    :param workdir: where the uniqueness partitions are spilled (a temporary directory by default)
    :param deadline: ``time.monotonic()`` value after which no further batch is started
    :param clock_start: ``time.monotonic()`` value the budget behind ``deadline`` was started at (by default
        when this call starts); the elapsed time a :class:`ValidationTimeoutError` reports counts from it, so
        it is measured on the same clock as the budget and exceeds the budget it ran past
    :return: GX's validation-result document (``success``, ``results``, ``statistics``, ``suite_name``,
        ``meta``) for the whole dataset, plus ``summary`` (see :func:`summarize`)
    :raises SuiteError: the suite cannot be evaluated exactly in batches
    :raises ValidationTimeoutError: ``deadline`` passed before the last batch was validated
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    if clock_start is None:
        clock_start = time.monotonic()
    rows = batches = 0

    def check_deadline(stage: str) -> None:
        now = time.monotonic()
        if deadline is not None and now > deadline:
            # rounded up, so a report over budget never shows a figure at or under the budget
            elapsed = math.ceil((now - clock_start) * 100) / 100
            progress = {"rows": rows, "batches": batches, "elapsed_seconds": elapsed, "stage": stage}
            raise ValidationTimeoutError(
                f"validation ran past its deadline after {elapsed} s ({stage}; {rows} rows in {batches} batches "
                "validated)",
                progress,
            )

    import great_expectations as gx

    expectations = suite["expectations"]
    groups = {index: classify(config) for index, config in enumerate(expectations)}
    suite_name = str(suite.get("name") or "suite")
    batch_indexed = [(i, c) for i, c in enumerate(expectations) if groups[i] in {"per-batch", "schema"}]
    gx_suite = _gx_suite(gx, suite_name, batch_indexed) if batch_indexed else None
    batch_definition = _gx_batch_definition(gx) if batch_indexed else None
    started = dt.datetime.now(dt.UTC)
    check_deadline("setting up Great Expectations")

    with tempfile.TemporaryDirectory(prefix="gx-validation-", dir=workdir) as scratch:
        evaluators = {
            i: EXACT_EVALUATORS[c["type"]](c, scratch, total_rows)
            for i, c in enumerate(expectations)
            if groups[i] == "exact-streaming"
        }
        errors: dict[int, str] = {}
        totals = {i: _MapTotals() for i, _ in batch_indexed if groups[i] == "per-batch"}
        schema_results: dict[int, list[dict[str, Any]]] = {i: [] for i, _ in batch_indexed if groups[i] == "schema"}
        try:
            frames = iter_frames(paths, batch_rows)
            for frame in _at_least_one(frames, empty_frame):
                check_deadline(f"before batch {batches + 1}")
                batches += 1
                rows += len(frame)
                if gx_suite is not None:
                    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
                    outcome = batch.validate(gx_suite, result_format=RESULT_FORMAT).to_json_dict()
                    for result in outcome["results"]:
                        index = int(result["expectation_config"]["meta"]["_index"])
                        if index in totals:
                            totals[index].add(result)
                        else:
                            schema_results[index].append(result)
                for index, evaluator in evaluators.items():
                    if index in errors:
                        continue
                    try:
                        evaluator.update(frame)
                    except (KeyError, TypeError, ValueError) as exc:
                        if isinstance(exc, SuiteError):
                            raise
                        errors[index] = f"{type(exc).__name__}: {exc}"

            results: list[dict[str, Any]] = []
            for index, config in enumerate(expectations):
                group = groups[index]
                if group == "exact-streaming":
                    if index in errors:
                        results.append(_entry(config, False, {}, group, exception=errors[index]))
                        continue
                    success, body = evaluators[index].finish()
                    results.append(_entry(config, success, body, group, batches=batches))
                elif group == "per-batch":
                    tally = totals[index]
                    if tally.failure is not None:
                        message = tally.failure.get("exception_message")
                        results.append(_entry(config, False, {}, group, exception=message))
                        continue
                    success, body = tally.verdict(config.get("kwargs", {}))
                    results.append(_entry(config, success, body, group, batches=batches))
                else:
                    per_batch = schema_results[index]
                    failing = [r for r in per_batch if not r["success"]]
                    chosen = (failing or per_batch or [{}])[0]
                    info = chosen.get("exception_info") or {}
                    exception = info.get("exception_message") if info.get("raised_exception") else None
                    results.append(
                        _entry(
                            config,
                            bool(per_batch) and not failing,
                            chosen.get("result") or {},
                            group,
                            batches=batches,
                            failing_batches=len(failing),
                            exception=exception,
                        )
                    )
        finally:
            for evaluator in evaluators.values():
                evaluator.close()

    successful = sum(1 for r in results if r["success"])
    document: dict[str, Any] = {
        "success": successful == len(results),
        "results": results,
        "suite_name": suite_name,
        "suite_parameters": {},
        "statistics": {
            "evaluated_expectations": len(results),
            "successful_expectations": successful,
            "unsuccessful_expectations": len(results) - successful,
            "success_percent": 100.0 * successful / len(results) if results else 100.0,
        },
        "meta": {
            "great_expectations_version": gx.__version__,
            "dataset_uri": dataset_uri,
            "row_count": rows,
            "batches": batches,
            "batch_rows": batch_rows,
            "validation_started_at": started.isoformat(timespec="seconds"),
            "validation_finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    }
    document["summary"] = summarize(document)
    return document


def _at_least_one(frames: Iterator[Any], empty_frame: Any) -> Iterator[Any]:
    seen = False
    for frame in frames:
        seen = True
        yield frame
    if not seen and empty_frame is not None:
        yield empty_frame


def _observed(result: dict[str, Any]) -> Any:
    body = result.get("result") or {}
    if "observed_value" in body:
        return body["observed_value"]
    if "unexpected_count" in body:
        considered = (body.get("element_count") or 0) - (body.get("missing_count") or 0)
        percent = body.get("unexpected_percent") or 0
        return f"{body['unexpected_count']} of {considered} values unexpected ({percent:.3g}%)"
    message = (result.get("exception_info") or {}).get("exception_message")
    return f"error: {message}" if message else None


def summarize(document: dict[str, Any]) -> dict[str, Any]:
    """The small summary pushed to XCom: verdict, counts, and one line of evidence per failed expectation."""
    failed = []
    for result in document["results"]:
        if result["success"]:
            continue
        config = result["expectation_config"]
        body = result.get("result") or {}
        columns = _columns_of(config)
        failed.append(
            {
                "type": config["type"],
                "column": columns[0] if len(columns) == 1 else (columns or None),
                "observed": _observed(result),
                "unexpected_count": body.get("unexpected_count"),
                "sample": (body.get("partial_unexpected_list") or [])[:5],
            }
        )
    stats = document["statistics"]
    return {
        "success": document["success"],
        "suite_name": document["suite_name"],
        "dataset_uri": document["meta"].get("dataset_uri"),
        "row_count": document["meta"]["row_count"],
        "evaluated_expectations": stats["evaluated_expectations"],
        "successful_expectations": stats["successful_expectations"],
        "unsuccessful_expectations": stats["unsuccessful_expectations"],
        "failed": failed,
    }


# -------------------------------------------------------------------------------------------------- report


def _cell(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > 400:
        text = text[:400] + " ..."
    return html.escape(text)


def render_html(document: dict[str, Any]) -> str:
    """A self-contained HTML report: verdict, dataset, and every expectation with its evidence."""
    summary = document["summary"]
    meta = document["meta"]
    verdict = "PASSED" if document["success"] else "FAILED"
    rows = []
    for result in document["results"]:
        config = result["expectation_config"]
        body = result.get("result") or {}
        kwargs = {k: v for k, v in config["kwargs"].items() if k not in {"column", "column_list", "batch_id"}}
        columns = _columns_of(config)
        samples = body.get("partial_unexpected_counts") or body.get("partial_unexpected_list")
        status = "pass" if result["success"] else "fail"
        rows.append(
            f'<tr class="{status}"><td>{status.upper()}</td><td>{_cell(config["type"])}</td>'
            f"<td>{_cell(', '.join(columns))}</td><td>{_cell(kwargs)}</td><td>{_cell(_observed(result))}</td>"
            f"<td>{_cell(samples)}</td><td>{_cell(result['meta'].get('evaluation'))}</td></tr>"
        )
    facts = [
        ("Suite", document["suite_name"]),
        ("Dataset", meta.get("dataset_uri")),
        ("Rows", meta.get("row_count")),
        ("Batches", f"{meta.get('batches')} of up to {meta.get('batch_rows')} rows"),
        (
            "Expectations",
            f"{summary['evaluated_expectations']} evaluated, {summary['successful_expectations']} passed, "
            f"{summary['unsuccessful_expectations']} failed",
        ),
        ("Validated", f"{meta.get('validation_started_at')} to {meta.get('validation_finished_at')}"),
        ("Great Expectations", meta.get("great_expectations_version")),
    ]
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in facts)
    title = f"Data validation {verdict}: {html.escape(document['suite_name'])}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
h1 {{ font-size: 1.4em; }} .verdict-PASSED {{ color: #1a7f37; }} .verdict-FAILED {{ color: #cf222e; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; font-size: 0.9em; }}
tr.fail td {{ background: #ffebe9; }} tr.pass td:first-child {{ color: #1a7f37; }}
tr.fail td:first-child {{ color: #cf222e; font-weight: bold; }}
</style></head>
<body>
<h1 class="verdict-{verdict}">{title}</h1>
<table>{fact_rows}</table>
<table>
<tr><th>Status</th><th>Expectation</th><th>Column(s)</th><th>Arguments</th><th>Observed</th>
<th>Sample unexpected values</th><th>Evaluated</th></tr>
{"".join(rows)}
</table>
</body></html>
"""


def write_report(document: dict[str, Any], output_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Write ``validation_result.json`` and ``validation_report.html`` into ``output_dir``."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    result_path = folder / RESULT_NAME
    docs_path = folder / DOCS_NAME
    result_path.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    docs_path.write_text(render_html(document), encoding="utf-8")
    return {"result": str(result_path), "docs": str(docs_path)}


RESULT_NAME = "validation_result.json"
DOCS_NAME = "validation_report.html"
