"""Count a whole archive: the batch logic shared by the plain and the Ray engines.

    rows = count_files(predictor, files, threshold)             # plain: one process
    rows = ray_count(model_path, files, threshold, workers=2)  # Ray Data: an actor pool

Both engines produce the same rows (:data:`COLUMNS`): ``file`` (the path as given),
``count``, ``mean_score`` (mean score of the counted cells, empty when none), ``seconds``
(load + predict of that image) and ``error`` (one sentence; the row of a bad image, never a
failed job). :class:`TableWriter` keeps the output file (CSV or Parquet, by suffix) complete
at every moment: it rewrites it atomically (``utils.atomicio``) every few seconds and at the
end, so an interrupted run loses at most those seconds, and :func:`done_files` lets the next
run skip what is already counted (rows with an error are tried again).

Ray is an optional extra (``pip install ".[scale]"``), imported only by :func:`ray_count`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import atomicio
from .config import display_path

COLUMNS = ("file", "count", "mean_score", "seconds", "error")
SHORT_COLUMNS = ("file", "count", "error")  # the plain `count` output before issue 14
BOXES_KEY = "_boxes"  # internal column: the detections as JSON, for pre-labels; never written
FORMATS = (".csv", ".parquet")
FLUSH_SECONDS = 10.0
RAY_MISSING = (
    "the Ray engine needs Ray Data, an optional extra: pip install \".[scale]\" "
    "(or pip install \"ray[data]\"), or use --engine plain"
)

Row = dict[str, Any]


class BatchError(ValueError):
    """A batch job that cannot start: unknown output format, unreadable previous output."""


# ----------------------------------------------------------------------------- one image


def _one_line(error: BaseException) -> str:
    from .cli import one_line  # the CLI's wording: no machine paths, one line

    return one_line(error)


def _file_size(path: Path) -> tuple[int, int] | None:
    """(width, height) as stored in the file (what a label file's <size> must say)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception:  # the loader's own message is the one to show
        return None


def count_image(
    predictor, path: str | Path, threshold: float, boxes: bool = False, scale: float | None = None
) -> Row:
    """One row for one image; any failure becomes the row's ``error``, never an exception.

    ``scale``: the working scale to count at (default: the model's own; see ``processing``).

    ``boxes=True`` adds :data:`BOXES_KEY`: the boxes in the file's own pixels (the loader
    may have downsized a huge photo), for pre-labels.
    """
    from .images import load_image

    path = Path(path)
    start = time.perf_counter()
    row: Row = {"file": path.as_posix(), "count": None, "mean_score": None, "error": ""}
    try:
        image = load_image(path).image
        detections = predictor.predict(image, threshold, scale)
    except Exception as error:  # not an image, truncated, permission denied, runtime failure
        row.update(seconds=round(time.perf_counter() - start, 4), error=_one_line(error))
        return row
    scores = detections.scores
    row.update(
        count=int(detections.count),
        mean_score=round(float(scores.mean()), 4) if len(scores) else None,
        seconds=round(time.perf_counter() - start, 4),
    )
    if boxes:
        width, height = _file_size(path) or image.size
        scale = max(width, height) / max(image.size)  # 1.0 unless the loader downsized it
        names = detections.class_names or ("object",)
        row[BOXES_KEY] = json.dumps(
            {
                "width": width,
                "height": height,
                "boxes": [[round(float(v) * scale, 2) for v in b] for b in detections.boxes],
                "scores": [round(float(s), 4) for s in scores],
                "labels": [names[int(k)] if int(k) < len(names) else str(int(k))
                           for k in detections.labels],
            }
        )
    return row


def count_files(
    predictor,
    files: Sequence[str | Path],
    threshold: float,
    boxes: bool = False,
    progress: bool = True,
    scale: float | None = None,
) -> Iterator[Row]:
    """The plain engine: rows one image after the other, in this process."""
    from .progress import tqdm

    for path in tqdm(files, desc="count", unit="img", disable=not progress, mininterval=2):
        yield count_image(predictor, path, threshold, boxes, scale)


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


# ----------------------------------------------------------------------------- Ray Data


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the extra installs both; a bare `ray` lacks Data)
    except ImportError as error:
        raise BatchError(RAY_MISSING) from error
    return ray


class RayCounter:
    """The callable class of ``map_batches``: one predictor per Ray actor, loaded once.

    The model travels as a path on one machine, and as bytes when joining a cluster (an
    ``.onnx`` file: no shared disk needed; ``.pt`` and ``.xml`` must be on every node). One ONNX Runtime thread per actor:
    Ray runs one actor per CPU, so more threads would only fight over the same cores.
    """

    def __init__(
        self,
        model: bytes | str,
        threshold: float,
        boxes: bool,
        threads: int = 1,
        scale: float | None = None,
    ):
        from .runtime import OnnxPredictor, load_predictor

        if isinstance(model, bytes):
            self.predictor = OnnxPredictor(model, threads=threads)
        else:
            self.predictor = load_predictor(model, threads=threads)
        self.threshold, self.boxes, self.scale = threshold, boxes, scale

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows = [
            count_image(self.predictor, path, self.threshold, self.boxes, self.scale)
            for path in batch["path"]
        ]
        for row, name in zip(rows, batch["file"]):
            row["file"] = str(name)  # the path as given, not the absolute one a worker reads
        keys = list(COLUMNS) + ([BOXES_KEY] if self.boxes else [])
        return {key: [row.get(key) for row in rows] for key in keys}


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a moment (Python exceptions still propagate)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local Ray quietly.

    Returns True when this call started (or joined) Ray, so the caller shuts it down after.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    import logging

    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {
        "address": address,
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "configure_logging": True,
    }
    if address is None:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray's C++ core writes warnings straight to stderr (a notebook shows them); fatal only.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with _quiet_stderr():  # Ray's C++ core announces its log level on fd 2, below Python
        ray.init(**kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours (one text bar) is the one a notebook keeps
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return True


def stop_ray() -> None:
    ray = _import_ray()
    if ray.is_initialized():
        ray.shutdown()


def ray_count(
    model_path: str | Path,
    files: Sequence[str | Path],
    threshold: float,
    workers: int = 2,
    batch_size: int = 8,
    boxes: bool = False,
    address: str | None = None,
    progress: bool = True,
    scale: float | None = None,
) -> Iterator[Row]:
    """The Ray engine: Ray Data reads the list of files and an actor pool of ``workers``
    predictors counts them in batches of ``batch_size``; rows stream back as they finish
    (in no fixed order). Starts a local Ray unless one runs or ``address`` names a cluster,
    and shuts down what it started.
    """
    ray = _import_ray()
    from .progress import tqdm

    if not files:
        return
    model_path = Path(model_path)
    model: bytes | str = str(model_path.resolve())
    joining = bool(address or os.environ.get("RAY_ADDRESS"))
    if joining and model_path.suffix.lower() == ".onnx":
        model = model_path.read_bytes()  # other nodes may not see this machine's disk
    started = start_ray(address, num_cpus=None)
    try:
        items = [{"file": Path(f).as_posix(), "path": str(Path(f).resolve())} for f in files]
        # Small blocks (a batch or two each) keep both actors busy until the end: with one
        # big block per actor, the faster one would idle while the other finishes.
        blocks = max(1, min(math.ceil(len(items) / batch_size), max(64, 16 * workers)))
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        counted = dataset.map_batches(
            RayCounter,
            fn_constructor_kwargs={
                "model": model,
                "threshold": threshold,
                "boxes": boxes,
                "scale": scale,
            },
            batch_size=batch_size,
            concurrency=min(workers, blocks),  # never more actors than blocks
            num_cpus=1,
            batch_format="numpy",
        )
        bar = tqdm(total=len(items), desc=f"count (Ray, {workers} workers)", unit="img",
                   disable=not progress, mininterval=2)
        with bar:
            for batch in counted.iter_batches(batch_size=None, batch_format="numpy"):
                keys = list(batch)
                for values in zip(*(batch[k] for k in keys)):
                    row = {k: _python(v) for k, v in zip(keys, values)}
                    bar.update(1)
                    yield row
    finally:
        if started:
            stop_ray()


def _python(value: Any) -> Any:
    """NumPy scalars from Ray's batches as plain Python (None for a missing number)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# ----------------------------------------------------------------------------- one job


def model_config(model_path: str | Path):
    """The model's inference config (class names, threshold) without a session for ONNX files:
    the Ray driver only writes rows, the actors hold the predictors."""
    from .runtime import load_predictor

    if Path(model_path).suffix.lower() == ".onnx":
        from .export import read_onnx_config

        return read_onnx_config(model_path)
    return load_predictor(model_path).config


def run(
    model_path: str | Path,
    files: Sequence[str | Path],
    out: str | Path | None = None,
    threshold: float | None = None,
    engine: str = "plain",
    workers: int = 2,
    batch_size: int = 8,
    address: str | None = None,
    boxes: bool = False,
    progress: bool = True,
    on_row: Callable[[Row], None] | None = None,
    scale: float | None = None,
) -> list[Row]:
    """Count ``files`` with ``engine`` into ``out`` (skipping files it already holds).

    Returns the new rows (with :data:`BOXES_KEY` when ``boxes``); the file holds all rows.
    """
    from .runtime import load_predictor

    if engine not in ("plain", "ray"):
        raise BatchError(f"unknown engine {engine!r}; choose plain or ray")
    if engine == "ray":
        _import_ray()  # the clear message before any work
    writer = TableWriter(out, read_table(out) if out is not None else ())
    done = set(writer.rows)
    todo = [f for f in files if Path(f).as_posix() not in done]
    if engine == "plain":
        predictor = load_predictor(model_path)
    if threshold is None:
        threshold = model_config(model_path).score_threshold
    if not 0 <= threshold <= 1:  # also refuses NaN
        raise BatchError(f"threshold must be between 0 and 1, got {threshold}")
    if engine == "plain":
        rows_iter = count_files(predictor, todo, threshold, boxes, progress, scale)
    else:
        rows_iter = ray_count(
            model_path, todo, threshold, workers, batch_size, boxes, address, progress, scale
        )
    new: list[Row] = []
    try:
        for row in rows_iter:
            writer.add(row)
            new.append(row)
            if on_row is not None:
                on_row(row)
    finally:  # interrupted or not: what was counted is kept
        writer.flush()
    new.sort(key=lambda r: r["file"])
    return new


# ----------------------------------------------------------------------------- a time series


def make_time_series(
    folder: str | Path, days: int = 24, size: int = 384, pool: int | None = None, seed: int = 0
) -> list[Path]:
    """A simulated time series: ``day_000.jpg`` ... whose cell counts grow with the day.

    ``utils.synth`` draws each scene from a seed; we draw ``pool`` scenes and name them in
    order of their number of cells, with a little noise, as if a culture grew day by day.
    """
    import numpy as np

    from .synth import generate_image, sample_scene

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    candidates = [int(s) for s in rng.choice(100_000, size=pool or days * 3, replace=False)]
    cells = {s: sum(c.labelled for c in sample_scene(s).cells) for s in candidates}
    ranked = sorted(candidates, key=lambda s: cells[s] + rng.normal(0, 2))
    picks = [ranked[round(i * (len(ranked) - 1) / max(days - 1, 1))] for i in range(days)]
    paths = []
    for day, scene_seed in enumerate(picks):
        path = folder / f"day_{day:03d}.jpg"
        if not path.exists():
            image, _, _ = generate_image(scene_seed, size)
            image.save(path, quality=90)
        paths.append(path)
    return paths


def plot_counts(rows: Sequence[Row], ax=None, title: str = "Cells per photo over time"):
    """Counts in file-name order (a time series named ``day_000`` ...); errors marked in red."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3), dpi=90)
    rows = sorted(rows, key=lambda r: r["file"])
    ok = [(i, r["count"]) for i, r in enumerate(rows) if not r.get("error")]
    ax.plot([i for i, _ in ok], [c for _, c in ok], "o-", ms=3, label="counted")
    bad = [i for i, r in enumerate(rows) if r.get("error")]
    if bad:
        top = max((c for _, c in ok), default=1)
        ax.plot(bad, [0] * len(bad), "x", color="red", label=f"error ({len(bad)})")
        ax.set_ylim(-0.05 * top, 1.1 * top)
    ax.set_xlabel("photo (time order)")
    ax.set_ylabel("cells")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return ax


def cost_estimate(
    seconds_per_image: float, photos: int = 100_000, price_per_vcpu_hour: float = 0.05,
    vcpus: int = 32,
) -> dict[str, float]:
    """CPU hours, money and wall time for ``photos`` at a measured per-image CPU time.

    ``seconds_per_image`` is one image on one thread (what each Ray actor uses); the price is
    an assumption to replace with your provider's (on-demand, per vCPU-hour); ``vcpus`` the
    size of the cluster. Ray's own start-up and the driver are left out.
    """
    cpu_hours = photos * seconds_per_image / 3600
    return {
        "photos": photos,
        "cpu_hours": round(cpu_hours, 2),
        "cost": round(cpu_hours * price_per_vcpu_hour, 2),
        "wall_minutes_on_cluster": round(60 * cpu_hours / vcpus, 1),
    }
