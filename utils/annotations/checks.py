"""Checks shared by every reader: readable images, boxes inside them, known classes, numbers.

A box may stick out of the image by at most ``BOX_TOLERANCE_PX`` (1 px, the usual off-by-one
of labelling tools); it is then clipped to the image. Further out is an error (a box dragged
past the border), and so is a non-finite coordinate. A box of zero or negative width or
height, or wholly outside the image, is dropped and reported in one ``DroppedBoxWarning``
line per folder (a click without a drag in labelImg must not refuse 290 photos).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .orientation import orientation_of, to_upright, upright_size

BOX_TOLERANCE_PX = 1.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _image_size(path: Path, problems: list[str], label: str) -> tuple[int, int, int] | None:
    """(width, height) of a readable image as stored and its EXIF orientation tag
    (``orientation``: 1 when upright as stored), else a problem and None."""
    if not path.is_file():
        problems.append(f"{label}: image file {path.name} is missing; copy it beside the labels")
        return None
    try:
        with Image.open(path) as img:
            img.load()  # decodes: catches truncated and corrupt files, not only bad headers
            return (*img.size, orientation_of(img))
    except Exception as err:  # PIL raises several types for broken files
        problems.append(
            f"{label}: image {path.name} cannot be read ({type(err).__name__}: {err}); "
            "re-export or replace the file"
        )
        return None


def _check_boxes(
    raw: list[tuple[float, float, float, float]],
    width: int,
    height: int,
    label: str,
    problems: list[str],
    dropped: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The usable boxes (clipped to the image) and the indices of ``raw`` they came from.

    A box of zero or negative area (a click without a drag in labelImg) or with nothing
    inside the image is dropped and noted in ``dropped`` (for the one warning line), as
    torchvision and Ultralytics users expect rather than a refused folder; without
    ``dropped`` it is a problem. A box dragged past the border (more than 1 px) or a
    non-finite coordinate is still a problem: the file is broken, not the click.
    """
    boxes = np.asarray(raw, dtype=np.float32).reshape(-1, 4)
    tol = BOX_TOLERANCE_PX
    notes: list[str] = []
    keep: list[int] = []
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        where = f"{label}: box {i + 1} ({x1:g}, {y1:g}, {x2:g}, {y2:g})"
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            problems.append(f"{where} has a coordinate that is not a finite number; redraw it")
        elif x2 <= x1 or y2 <= y1:
            notes.append(f"{where} has zero or negative area")
        elif x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            notes.append(f"{where} lies wholly outside the {width}x{height} image")
        elif x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
            problems.append(
                f"{where} lies outside the {width}x{height} image; redraw it inside the image"
            )
        else:
            keep.append(i)
    if dropped is None:
        problems.extend(f"{note}; redraw or delete it" for note in notes)
    else:
        dropped.extend(notes)
    index = np.asarray(keep, dtype=np.int64)
    boxes = boxes[index]
    if len(boxes):
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    return boxes, index


class DroppedBoxWarning(UserWarning):
    """Boxes dropped while loading: zero or negative area, or wholly outside the image."""


def first_few(items: Sequence[str], shown: int = 5, sep: str = "; ") -> str:
    """The first ``shown`` items and how many more: a warning names a few, not 290."""
    more = f"{sep}and {len(items) - shown} more" if len(items) > shown else ""
    return sep.join(items[:shown]) + more


def warn_dropped(dropped: Sequence[str], source: str, shown: int = 5) -> None:
    """One warning line for a whole folder: how many boxes, and the first few by file and box."""
    if not dropped:
        return
    warnings.warn(
        f"{source}: dropped {len(dropped)} box(es): {first_few(dropped, shown)}",
        DroppedBoxWarning,
        stacklevel=3,
    )


def _check_classes(
    labels: list[str], class_names: Sequence[str] | None, label: str, problems: list[str]
) -> None:
    if class_names is None:
        return
    for name in sorted(set(labels) - set(class_names)):
        problems.append(
            f"{label}: unknown class {name!r}; expected one of {list(class_names)} "
            "(fix the label or pass class_names)"
        )


def _number(value: object) -> float | None:
    """A finite number from XML text or JSON, or None when it is not one.

    NaN and infinity parse as floats but poison training (NaN boxes pass every ``<`` check),
    and JSON ``true`` is not a coordinate.
    """
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _integer(value: object) -> int | None:
    """A COCO id: an integer (or an integral number / digit string), else None."""
    number = _number(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def _kind(value: object) -> str:
    """How to name a wrong value in a message without printing all of it."""
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "an object"
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


def _unlabelled_images(
    folder: Path, labelled: Callable[[Path], bool], kind: str, empty: str, problems: list[str]
) -> None:
    """A problem for each image in ``folder`` without its label file (``kind``): an unlabelled
    photo must not be mistaken for a photo without cells (``empty`` says how to mark one)."""
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and not labelled(path):
            problems.append(
                f"{path.name}: image without {kind}; label it ({empty} means 'no cells') or "
                "move it out of the folder"
            )


def _folder_set(
    images: Sequence[Any], problems: list[str], dropped: list[str], folder: Path, class_names
):
    """The folder's ``AnnotationSet`` (class names sorted unless given), or every problem."""
    from ..config import display_path
    from .data import AnnotationError, AnnotationSet

    if problems:
        raise AnnotationError(problems, folder)
    warn_dropped(dropped, display_path(folder))
    found = [img for img in images if img is not None]
    names = class_names or sorted({name for img in found for name in img.labels})
    return AnnotationSet(tuple(names), found)


def _upright_image(
    path: Path,
    size: tuple[int, int, int],
    raw: list[tuple[float, float, float, float]],
    labels: Sequence[str],
    on_stored: bool,
    where: str,
    problems: list[str],
    dropped: list[str],
):
    """The ``AnnotatedImage`` of a photo (``size``: stored width, height, EXIF orientation) with
    its boxes on the photo upright, or None with the problems noted. The boxes are checked in
    the coordinates they were drawn in: the stored pixels (``on_stored``) or the upright photo."""
    from .data import AnnotatedImage

    width, height, orientation = size
    upright = upright_size(width, height, orientation)
    n_before = len(problems)
    boxes, kept = _check_boxes(
        raw, *((width, height) if on_stored else upright), where, problems, dropped
    )
    if len(problems) > n_before:
        return None
    if on_stored:
        boxes = to_upright(boxes, (width, height), orientation)
    return AnnotatedImage(path, *upright, boxes, [labels[i] for i in kept], orientation)
