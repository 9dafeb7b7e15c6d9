"""The output table: CSV or Parquet by suffix, rewritten atomically, read back to resume."""

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


def _clean(row: Row) -> Row:
    """A row with exactly :data:`COLUMNS` and their types (internal keys dropped).

    Ray's NumPy batches turn a column of counts with one missing value into floats.
    """
    clean = {name: row.get(name) for name in COLUMNS}
    for name, kind in (("count", int), ("mean_score", float), ("seconds", float)):
        value = clean[name]
        clean[name] = None if value is None or value != value else kind(value)
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


def _arrow_table(rows: Sequence[Row]):
    import pyarrow as pa

    schema = pa.schema(
        [
            ("file", pa.string()),
            ("count", pa.int64()),
            ("mean_score", pa.float64()),
            ("seconds", pa.float64()),
            ("error", pa.string()),
        ]
    )
    return pa.Table.from_pylist([_clean(r) for r in rows], schema=schema)


def write_table(path: str | Path, rows: Sequence[Row]) -> Path:
    """The rows as CSV or Parquet (by suffix), atomically: a reader never sees half a file."""
    path = Path(path)
    if output_format(path) == ".csv":
        return atomicio.write_text(path, csv_text(rows))
    import pyarrow.parquet as pq

    table = _arrow_table(rows)
    with atomicio.atomic_path(path, ".parquet") as tmp:
        pq.write_table(table, tmp)
    return path


def _number(text: str, kind: Callable[[str], Any]) -> Any:
    return kind(text) if text not in ("", None) else None


def read_table(path: str | Path) -> list[Row]:
    """The rows of a previous run's output (CSV or Parquet); [] if there is none yet."""
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
            for row in rows:
                row["count"] = _number(row.get("count", ""), int)
                row["mean_score"] = _number(row.get("mean_score", ""), float)
                row["seconds"] = _number(row.get("seconds", ""), float)
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
    return [_clean(r) for r in rows]


def done_files(rows: Iterable[Row]) -> set[str]:
    """Files already counted (an error row does not count: the next run tries it again)."""
    return {r["file"] for r in rows if not r.get("error") and r.get("count") is not None}


class TableWriter:
    """Collects rows and keeps ``path`` complete: an atomic rewrite every ``flush_seconds``.

    Starts from the previous run's rows that succeeded; a new row for the same file
    replaces the old one. Without a path it only collects (for printing at the end).
    """

    def __init__(
        self, path: str | Path | None, previous: Iterable[Row] = (), flush_seconds=FLUSH_SECONDS
    ):
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            output_format(self.path)
        self.rows: dict[str, Row] = {r["file"]: _clean(r) for r in previous if not r.get("error")}
        self.flush_seconds = flush_seconds
        self._last = time.monotonic()
        self.added = 0

    def add(self, row: Row) -> None:
        self.rows[row["file"]] = _clean(row)
        self.added += 1
        if self.path is not None and time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def sorted_rows(self) -> list[Row]:
        return [self.rows[name] for name in sorted(self.rows)]

    def flush(self) -> Path | None:
        self._last = time.monotonic()
        if self.path is None:
            return None
        return write_table(self.path, self.sorted_rows())


def summary(rows: Sequence[Row]) -> dict[str, Any]:
    """Totals for one line of output: images, cells, errors, seconds per image (mean, median)."""
    ok = [r for r in rows if not r.get("error")]
    seconds = [r["seconds"] for r in ok if r.get("seconds") is not None]
    return {
        "images": len(rows),
        "counted": len(ok),
        "errors": len(rows) - len(ok),
        "cells": int(sum(r["count"] for r in ok)),
        "seconds_per_image": (sum(seconds) / len(seconds)) if seconds else math.nan,
        # the median: a few slow photos (a warming-up actor, a busy machine) do not move it
        "median_seconds_per_image": statistics.median(seconds) if seconds else math.nan,
    }
