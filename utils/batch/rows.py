"""One image -> one row (``COLUMNS``): what both engines compute, and the row of a bad image."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config import one_line
from ..images import load_image
from ..progress import tqdm

COLUMNS = ("file", "count", "mean_score", "seconds", "error")
SHORT_COLUMNS = ("file", "count", "error")  # the plain `count` output before issue 14
BOXES_KEY = "_boxes"  # internal column: the detections as JSON, for pre-labels; never written

Row = dict[str, Any]


def class_columns(class_names: Sequence[str]) -> tuple[str, ...]:
    """``count_<class>`` for each class of a model of several classes; none for one class."""
    return tuple(f"count_{name}" for name in class_names) if len(class_names) > 1 else ()


def columns_for(class_names: Sequence[str]) -> tuple[str, ...]:
    """The table's columns: :data:`COLUMNS`, with one count per class after ``count`` when
    the model has several (``count`` stays the total)."""
    return (*COLUMNS[:2], *class_columns(class_names), *COLUMNS[2:])


class BatchError(ValueError):
    """A batch job that cannot start: unknown output format, unreadable previous output."""


# ----------------------------------------------------------------------------- one image


def _file_size(path: Path) -> tuple[int, int, int] | None:
    """(width, height) of the photo upright at full size, and its EXIF orientation tag: the
    loader turns a tagged photo upright, so the boxes are on that (``annotations.orientation``;
    the VOC pre-labels turn them back onto the stored pixels that labelImg shows)."""
    from PIL import Image

    from ..annotations.orientation import orientation_of, upright_size

    try:
        with Image.open(path) as img:
            orientation = orientation_of(img)
            return (*upright_size(*img.size, orientation), orientation)
    except Exception:  # the loader's own message is the one to show
        return None


def count_image(
    predictor, path: str | Path, threshold: float, boxes: bool = False, scale: float | None = None
) -> Row:
    """One row for one image; any failure becomes the row's ``error``, never an exception.

    ``scale``: the working scale to count at (default: the model's own; see ``processing``).

    ``boxes=True`` adds :data:`BOXES_KEY`: the boxes in the full-size photo's pixels, upright
    (the loader may have downsized a huge photo), and its EXIF orientation tag, for pre-labels.
    """

    path = Path(path)
    start = time.perf_counter()
    row: Row = {"file": path.as_posix(), "count": None, "mean_score": None, "error": ""}
    row.update(dict.fromkeys(class_columns(predictor.config.class_names)))  # None if it fails
    try:
        image = load_image(path).image
        detections = predictor.predict(image, threshold, scale)
    except Exception as error:  # not an image, truncated, permission denied, runtime failure
        row.update(seconds=round(time.perf_counter() - start, 4), error=one_line(error))
        return row
    scores = detections.scores
    row.update(
        count=int(detections.count),
        mean_score=round(float(scores.mean()), 4) if len(scores) else None,
        seconds=round(time.perf_counter() - start, 4),
    )
    if len(detections.class_names) > 1:
        row.update({f"count_{k}": n for k, n in detections.counts_by_class().items()})
    if boxes:
        width, height, orientation = _file_size(path) or (*image.size, 1)
        scale = max(width, height) / max(image.size)  # 1.0 unless the loader downsized it
        row[BOXES_KEY] = json.dumps(
            {
                "width": width,
                "height": height,
                "orientation": orientation,
                "boxes": [[round(float(v) * scale, 2) for v in b] for b in detections.boxes],
                "scores": [round(float(s), 4) for s in scores],
                "labels": detections.label_names(),
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

    for path in tqdm(files, desc="count", unit="img", disable=not progress, mininterval=2):
        yield count_image(predictor, path, threshold, boxes, scale)
