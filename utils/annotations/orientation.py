"""Photos with an EXIF orientation tag: boxes on the photo as stored, or on the photo upright.

Why: a phone stores a portrait photo's pixels sideways and sets the tag; viewers, browsers,
Label Studio, CVAT, Ultralytics and the course's app and ``count`` turn it upright, but labelImg
shows the pixels as stored. The same box is then written in two coordinate systems, and a
mismatch trains on boxes that sit beside the cells (a 180-degree tag keeps the width and
height, so no size check catches it). The course keeps every box **on the upright photo**, as
its app counts it: ``AnnotatedImage.orientation`` records the tag, its ``width``/``height`` and
boxes are upright, and ``load_image`` turns the pixels upright. Readers convert what a format
stores: Pascal VOC's boxes are on the stored pixels (labelImg's convention; a ``<size>`` that
equals the upright size says otherwise), COCO's and YOLO's on the upright photo (a COCO
``width``/``height`` equal to the stored size of a sideways photo says otherwise). The VOC
writer stores boxes on the stored pixels again, so labelImg draws them on the cells.

The mapping follows Pillow's ``ImageOps.exif_transpose`` (``tests/test_orientation.py`` draws
a box, turns the picture with Pillow and finds the box where these functions put it).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ORIENTATION_TAG = 0x0112
# Tags that swap width and height (a quarter turn, with or without a mirror).
QUARTER_TURNS = (5, 6, 7, 8)


def orientation_of(img: Image.Image) -> int:
    """The EXIF orientation tag of an open image: 1 (upright as stored) when absent or odd."""
    try:
        value = int(img.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # an unreadable EXIF block: the pixels are used as stored
        return 1
    return value if 1 <= value <= 8 else 1


def upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) of the upright photo, from the stored size."""
    return (height, width) if orientation in QUARTER_TURNS else (width, height)


def _map_points(x: np.ndarray, y: np.ndarray, w: int, h: int, orientation: int):
    """Stored pixel coordinates -> upright ones (stored size ``w`` x ``h``)."""
    return {
        1: (x, y),
        2: (w - x, y),  # mirrored left-right
        3: (w - x, h - y),  # turned 180 degrees
        4: (x, h - y),  # mirrored top-bottom
        5: (y, x),  # transposed
        6: (h - y, x),  # stored turned a quarter anticlockwise: turn it clockwise
        7: (h - y, w - x),  # transversed
        8: (y, w - x),  # stored turned a quarter clockwise
    }[orientation]


def _inverse(orientation: int) -> int:
    """The tag whose mapping undoes ``orientation``'s (6 and 8 swap; the others undo
    themselves)."""
    return {6: 8, 8: 6}.get(orientation, orientation)


def _mapped(boxes: np.ndarray, w: int, h: int, orientation: int) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if orientation == 1 or not len(boxes):
        return boxes
    x1, y1 = _map_points(boxes[:, 0], boxes[:, 1], w, h, orientation)
    x2, y2 = _map_points(boxes[:, 2], boxes[:, 3], w, h, orientation)
    return np.stack(
        [np.minimum(x1, x2), np.minimum(y1, y2), np.maximum(x1, x2), np.maximum(y1, y2)], axis=1
    ).astype(np.float32)


def to_upright(boxes: np.ndarray, stored: tuple[int, int], orientation: int) -> np.ndarray:
    """Boxes on the stored pixels (``stored`` = width, height) -> boxes on the upright photo."""
    return _mapped(boxes, *stored, orientation)


def to_stored(boxes: np.ndarray, upright: tuple[int, int], orientation: int) -> np.ndarray:
    """Boxes on the upright photo (``upright`` = width, height) -> boxes on the stored pixels."""
    return _mapped(boxes, *upright, _inverse(orientation))
