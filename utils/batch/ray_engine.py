"""The Ray engine: Ray Data reads the file list, an actor pool of predictors counts it.

Ray is an optional extra (``pip install ".[scale]"``), imported only here, inside functions.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .rows import BOXES_KEY, COLUMNS, BatchError, Row, class_columns, count_image

RAY_MISSING = (
    'the Ray engine needs Ray Data, an optional extra: pip install ".[scale]" '
    '(or pip install "ray[data]"), or use --engine plain'
)


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
        from ..runtime import OnnxPredictor, load_predictor

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
        keys += class_columns(self.predictor.config.class_names)  # one count per class if several
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
    from ..progress import tqdm

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
        bar = tqdm(
            total=len(items),
            desc=f"count (Ray, {workers} workers)",
            unit="img",
            disable=not progress,
            mininterval=2,
        )
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
