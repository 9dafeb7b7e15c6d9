"""One archive job: count what the output file does not hold yet, with either engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import display_path
from .ray_engine import ClusterError, _import_ray, ray_count
from .rows import BatchError, Row, columns_for, count_files
from .table import TableWriter, read_table

# ----------------------------------------------------------------------------- one job


def model_config(model_path: str | Path):
    """The model's inference config (class names, threshold) without a session for ONNX files:
    the Ray driver only writes rows, the actors hold the predictors."""
    from ..loading import load_predictor

    if Path(model_path).suffix.lower() == ".onnx":
        from ..export import read_onnx_config

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

    Returns the new rows (with :data:`BOXES_KEY` when ``boxes``); the file holds all rows,
    with one ``count_<class>`` column per class when the model has several.
    """
    from ..loading import load_predictor

    if engine not in ("plain", "ray"):
        raise BatchError(f"unknown engine {engine!r}; choose plain or ray")
    if engine == "ray":
        _import_ray()  # the clear message before any work
    predictor = load_predictor(model_path) if engine == "plain" else None
    config = predictor.config if predictor is not None else model_config(model_path)
    columns = columns_for(config.class_names)
    writer = TableWriter(out, read_table(out) if out is not None else (), columns=columns)
    done = set(writer.rows)
    todo = [f for f in files if Path(f).as_posix() not in done]
    if threshold is None:
        threshold = config.score_threshold
    if not 0 <= threshold <= 1:  # also refuses NaN
        raise BatchError(f"threshold must be between 0 and 1, got {threshold}")
    if predictor is not None:
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
    except ClusterError as error:
        raise ClusterError(_resume_hint(error, out, len(new), len(todo))) from error
    finally:  # interrupted or not: what was counted is kept
        writer.flush()
    new.sort(key=lambda r: r["file"])
    return new


def _resume_hint(error: ClusterError, out: str | Path | None, done: int, todo: int) -> str:
    """The error, what was kept and what to do next: a rerun skips what is saved."""
    if out is None:
        return f"{error}; {done} of {todo} photos were counted, none saved (no output file)"
    return (
        f"{error}; the {done} photos counted before it are saved in {display_path(out)}: "
        f"run the same command again to count the other {todo - done}"
    )
