"""Pre-processing on every core: Pillow's bilinear resize and the normalisation, in row bands.

Why: once an INT8 graph runs in about 10 ms, resizing a 640 px photo with Pillow (2.3 ms, one
core) and normalising it (0.4 ms) are a quarter of a call, while the graph's threads sit idle
between calls. Pillow and NumPy release the GIL while they work, so bands of output rows run
side by side in a small thread pool: 1.4 instead of 2.3 ms on 2 cores.

The pixels stay *exactly* Pillow's (and ``web/counter.js``'s port of it): a band is Pillow's
own ``resize`` with a ``box``, whose filter taps may read rows outside the box, so each output
row gets the same taps and weights as in the whole-image resize, provided the band's source
coordinates are exact in floating point. They are when the vertical scale (source rows per
output row) is a fraction with a power-of-two denominator (640 -> 512, 1920 -> 288,
4032 -> 384: almost every camera size); otherwise, and for small images, one call does it all.
``tests/test_processing.py`` checks the bands against the whole resize, byte for byte.
"""

from __future__ import annotations

import os
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
_pool_pid = -1


def band_count() -> int:
    """Bands per image: one per core, at most ``MAX_BANDS``; ``COURSE_PREPROCESS_BANDS`` overrides."""
    value = os.environ.get("COURSE_PREPROCESS_BANDS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(
                f"COURSE_PREPROCESS_BANDS={value!r} is not a positive whole number: "
                "set it to 1 to resize on one core, or unset it"
            )
        return min(int(value), MAX_BANDS)
    return max(1, min(os.cpu_count() or 1, MAX_BANDS))


def _executor() -> ThreadPoolExecutor:
    """The shared pool, made again in a forked child (a parent's pool threads do not exist there)."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(MAX_BANDS, thread_name_prefix="course-bands")
        _pool_pid = os.getpid()
    return _pool


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
