"""The output table: CSV or Parquet by suffix, rewritten atomically, read back to resume.

A model of several classes adds one ``count_<class>`` column per class after ``count``
(``rows.columns_for``); every function here takes the columns it writes.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .. import atomicio
from ..config import display_path
from .rows import COLUMNS, BatchError, Row

FORMATS = (".csv", ".parquet")
FLUSH_SECONDS = 10.0


# ----------------------------------------------------------------------------- output table


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise BatchError(
            f"{display_path(path)}: unknown output format {suffix or '(no suffix)'!r}; "
            f"name the file .csv or .parquet"
        )
    return suffix


def _kind(name: str) -> Callable[[Any], Any] | None:
    """The type of a numeric column (``count_<class>`` counts like ``count``); None for text."""
    if name == "count" or name.startswith("count_"):
        return int
    return float if name in ("mean_score", "seconds") else None


def _clean(row: Row, columns: Sequence[str] = COLUMNS) -> Row:
    """A row with exactly ``columns`` and their types (internal keys dropped).

    Ray's NumPy batches turn a column of counts with one missing value into floats.
    """
    clean = {name: row.get(name) for name in columns}
    for name in columns:
        kind, value = _kind(name), clean[name]
        if kind is not None:
            clean[name] = None if value is None or value == "" or value != value else kind(value)
    clean["file"] = str(clean["file"])
    clean["error"] = str(clean["error"] or "")
    return clean


def csv_text(rows: Iterable[Row], columns: Sequence[str] = COLUMNS) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return text.getvalue()


def table(rows: Sequence[Row]) -> str:
    """The rows as aligned text for a notebook, files shown by ``display_path``."""

    def cell(value: Any) -> str:
        return "" if value is None else str(value)

    lines = [f"{'file':<44} {'count':>5} {'mean_score':>10} {'seconds':>7}  error"]
    for r in rows:
        lines.append(
            f"{display_path(r['file']):<44} {cell(r['count']):>5} {cell(r['mean_score']):>10} "
            f"{cell(r['seconds']):>7}  {r['error']}"
        )
    return "\n".join(lines)


def _arrow_table(rows: Sequence[Row], columns: Sequence[str] = COLUMNS):
    import pyarrow as pa

    types = {int: pa.int64(), float: pa.float64(), None: pa.string()}
    schema = pa.schema([(name, types[_kind(name)]) for name in columns])
    return pa.Table.from_pylist([_clean(r, columns) for r in rows], schema=schema)


def write_table(path: str | Path, rows: Sequence[Row], columns: Sequence[str] = COLUMNS) -> Path:
    """The rows as CSV or Parquet (by suffix), atomically: a reader never sees half a file."""
    path = Path(path)
    if output_format(path) == ".csv":
        return atomicio.write_text(path, csv_text(rows, columns))
    import pyarrow.parquet as pq

    table = _arrow_table(rows, columns)
    with atomicio.atomic_path(path, ".parquet") as tmp:
        pq.write_table(table, tmp)
    return path


def read_table(path: str | Path) -> list[Row]:
    """The rows of a previous run's output (CSV or Parquet), with the columns it has (per-class
    counts included); [] if there is none yet."""
    path = Path(path)
    kind = output_format(path)
    if not path.exists():
        return []
    try:
        if kind == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        else:
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
    except Exception as error:
        raise BatchError(
            f"{display_path(path)} exists but cannot be read as a previous output "
            f"({type(error).__name__}); move it away or choose another --out"
        ) from error
    if rows and "file" not in rows[0]:
        raise BatchError(
            f"{display_path(path)} has no 'file' column: it is not a count output; "
            "move it away or choose another --out"
        )
    columns = columns_for_keys(list(rows[0]) if rows else [])
    return [_clean(r, columns) for r in rows]


def columns_for_keys(keys: Sequence[str]) -> tuple[str, ...]:
    """:data:`COLUMNS` with the ``count_<class>`` among ``keys`` after ``count``, in their order."""
    per_class = [k for k in keys if k.startswith("count_")]
    return (*COLUMNS[:2], *dict.fromkeys(per_class), *COLUMNS[2:])


class TableWriter:
    """Collects rows and keeps ``path`` complete: an atomic rewrite every ``flush_seconds``.

    Starts from the previous run's rows that succeeded; a new row for the same file
    replaces the old one. Without a path it only collects (for printing at the end).
    ``columns``: what it writes (``rows.columns_for(class_names)``).
    """

    def __init__(
        self,
        path: str | Path | None,
        previous: Iterable[Row] = (),
        flush_seconds=FLUSH_SECONDS,
        columns: Sequence[str] = COLUMNS,
    ):
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            output_format(self.path)
        self.columns = tuple(columns)
        self.rows: dict[str, Row] = {
            r["file"]: _clean(r, self.columns) for r in previous if not r.get("error")
        }
        self.flush_seconds = flush_seconds
        self._last = time.monotonic()
        self.added = 0

    def add(self, row: Row) -> None:
        self.rows[row["file"]] = _clean(row, self.columns)
        self.added += 1
        if self.path is not None and time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def sorted_rows(self) -> list[Row]:
        return [self.rows[name] for name in sorted(self.rows)]

    def flush(self) -> Path | None:
        self._last = time.monotonic()
        if self.path is None:
            return None
        return write_table(self.path, self.sorted_rows(), self.columns)


def summary(rows: Sequence[Row]) -> dict[str, Any]:
    """Totals for one line of output: images, cells, errors, seconds per image (mean, median),
    and ``cells_by_class`` when the rows count several classes."""
    ok = [r for r in rows if not r.get("error")]
    seconds = [r["seconds"] for r in ok if r.get("seconds") is not None]
    per_class = [k for k in columns_for_keys(list(rows[0]) if rows else []) if k.startswith("count_")]
    by_class = {k.removeprefix("count_"): sum(r.get(k) or 0 for r in ok) for k in per_class}
    return {
        **({"cells_by_class": by_class} if by_class else {}),
        "images": len(rows),
        "counted": len(ok),
        "errors": len(rows) - len(ok),
        "cells": int(sum(r["count"] for r in ok)),
        "seconds_per_image": (sum(seconds) / len(seconds)) if seconds else math.nan,
        # the median: a few slow photos (a warming-up actor, a busy machine) do not move it
        "median_seconds_per_image": statistics.median(seconds) if seconds else math.nan,
    }
