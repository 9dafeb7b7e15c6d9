"""Pre-processing on every core: Pillow's bilinear resize and the normalisation, in row bands.

Why: once an INT8 graph runs in about 10 ms, resizing a 640 px photo with Pillow (2.3 ms, one
core) and normalising it (0.4 ms) are a quarter of a call, while the graph's threads sit idle
between calls. Pillow and NumPy release the GIL while they work, so bands of output rows run
side by side in a small thread pool: 1.4 instead of 2.3 ms on 2 cores.

The pixels stay *exactly* Pillow's (and ``web/counter.js``'s port of it): a band is Pillow's
own ``resize`` with a ``box``, whose filter taps may read rows outside the box, so each output
row gets the same taps and weights as in the whole-image resize, provided the band's source
coordinates are exact in floating point. They are when the vertical scale (source rows per
output row) is a fraction with a power-of-two denominator: a 640 x 640 or 640 x 480 photo fitted
into 512 px, 1920 x 1080 or 4032 x 3024 fitted into 512. Other sizes (most working scales of a
tiled model, e.g. BCCD's 0.402) and small images keep the one call they had: the same bytes, no
gain. ``tests/test_bands.py`` checks the bands against the whole resize, byte for byte.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np
from PIL import Image

MIN_BAND_ROWS = 64  # fewer output rows per band: the thread hand-off costs more than it saves
MIN_BAND_PIXELS = 128 * 128  # smaller outputs (thumbnails, tests' tiny images): one call
MAX_BANDS = 4
BILINEAR = Image.Resampling.BILINEAR

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def band_count() -> int:
    """Bands per image, at most ``MAX_BANDS``: ``COURSE_PREPROCESS_BANDS`` if set, else
    ``OMP_NUM_THREADS`` (the course's one thread setting, as for every runtime), else one per
    core. Read at each call, so a test or a server may change it."""
    for name in ("COURSE_PREPROCESS_BANDS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        if not value.isdigit() or int(value) < 1:
            raise ValueError(
                f"{name}={value!r} is not a positive whole number: "
                "set it to 1 to resize on one core, or unset it"
            )
        return min(int(value), MAX_BANDS)
    return max(1, min(os.cpu_count() or 1, MAX_BANDS))


def _executor() -> ThreadPoolExecutor:
    """The shared pool, made on first use (two server threads asking at once make one)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_BANDS, thread_name_prefix="course-bands")
        return _pool


def _forget_pool_in_child() -> None:
    """After a fork: the parent's pool threads, and any lock they held, are not in the child."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork, only spawn
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def row_bands(rows: int, columns: int) -> list[tuple[int, int]]:
    """``[start, stop)`` row ranges that split ``rows`` evenly; one range when not worth it."""
    bands = min(band_count(), rows // MIN_BAND_ROWS)
    if bands < 2 or rows * columns < MIN_BAND_PIXELS:
        return [(0, rows)]
    return [(rows * k // bands, rows * (k + 1) // bands) for k in range(bands)]


def run_bands(work: Callable[[int, int], None], bands: list[tuple[int, int]]) -> None:
    """``work(start, stop)`` for every band: all but the last in the pool, the last here."""
    futures = [_executor().submit(work, start, stop) for start, stop in bands[:-1]]
    work(*bands[-1])  # the calling thread is one of the workers: one hand-off fewer
    for future in futures:
        future.result()  # re-raises a band's error here


def exact_in_bands(source_rows: int, rows: int) -> bool:
    """Whether banding a ``source_rows -> rows`` resize gives Pillow's whole-image bytes."""
    denominator = Fraction(source_rows, rows).denominator
    return denominator & (denominator - 1) == 0  # a power of two


def resize_bilinear(
    image: Image.Image, size: tuple[int, int], out: np.ndarray | None = None
) -> np.ndarray:
    """``image.resize(size, BILINEAR)`` as an ``H x W x 3`` uint8 array, in row bands when exact.

    ``out`` (an ``H x W x 3`` uint8 view, e.g. the top-left of a letterbox canvas) receives
    the pixels without another copy.
    """
    width, height = size
    target = np.empty((height, width, 3), np.uint8) if out is None else out

    def keep(start: int, stop: int, rows: np.ndarray) -> None:
        target[start:stop] = rows

    resize_in_bands(image, size, keep)
    return target


def resize_in_bands(
    image: Image.Image, size: tuple[int, int], then: Callable[[int, int, np.ndarray], None]
) -> None:
    """Resize like :func:`resize_bilinear`, handing each band's rows to ``then(start, stop,
    rows)`` in the thread that made them, while they are in cache: the normalisation then
    needs no uint8 copy of the resized photo."""
    width, height = size
    src_w, src_h = image.size
    bands = row_bands(height, width) if exact_in_bands(src_h, height) else [(0, height)]

    def work(start: int, stop: int) -> None:
        box = (0.0, start * src_h / height, float(src_w), stop * src_h / height)
        then(start, stop, np.asarray(image.resize((width, stop - start), BILINEAR, box=box)))

    run_bands(work, bands)
