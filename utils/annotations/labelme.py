"""labelme's JSON files (one per image, beside it): rectangles, polygons and circles as boxes.

Why: labelme is the desktop tool many microscopy labs draw cells with, and it saves neither VOC
nor COCO. A folder of its files is read as it is: a rectangle is its box, a polygon or a circle
the box around it. A point, a line or a mask is not a box the counter can learn from, so it is an
error that says so (draw a rectangle or polygon around the cell) rather than a cell lost. labelme
shows a photo with an EXIF orientation tag upright, so its points are on the upright photo; its
``imageWidth``/``imageHeight`` decide otherwise (``orientation`` module). As in a VOC folder, an
image without its JSON is an error: labelme writes no file for an image nobody labelled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from .checks import (
    _check_classes,
    _folder_set,
    _image_size,
    _number,
    _unlabelled_images,
    _upright_image,
)
from .data import AnnotatedImage, AnnotationSet
from .orientation import upright_size

BOX_SHAPES = ("rectangle", "polygon", "circle")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None


def is_labelme_file(path: Path) -> bool:
    """A JSON object with labelme's ``shapes`` and ``imagePath``. labelme writes ``shapes``
    among its first keys, so a file whose start lacks it (a COCO file of 100 MB) is not
    parsed here."""
    try:
        with open(path, "rb") as f:
            if b'"shapes"' not in f.read(1 << 16):
                return False
    except OSError:
        return False
    data = _read_json(path)
    return isinstance(data, dict) and "shapes" in data and "imagePath" in data


def is_labelme_folder(folder: str | Path) -> bool:
    """Does ``folder`` hold labelme files (its first JSON file, by name, is one)?"""
    first = next(iter(sorted(Path(folder).glob("*.json"))), None)
    return first is not None and is_labelme_file(first)


def _image_of(json_path: Path, image_path: str) -> Path:
    """labelme stores the image relative to the JSON, with the saving system's separators."""
    relative = json_path.parent / image_path.replace("\\", "/")
    if relative.is_file():
        return relative
    beside = json_path.parent / Path(image_path.replace("\\", "/")).name
    return beside


def _shape_box(shape: object, where: str, problems: list[str]) -> tuple[str, tuple] | None:
    """(label, (x1, y1, x2, y2)) of one shape, or None with the problem noted."""
    if not isinstance(shape, dict):
        problems.append(f"{where} is not an object; re-save the file in labelme")
        return None
    label, kind = shape.get("label"), shape.get("shape_type") or "polygon"  # old files: null
    if not isinstance(label, str) or not label.strip():
        problems.append(f"{where} has no label; name it in labelme")
        return None
    if kind not in BOX_SHAPES:
        problems.append(
            f"{where} ({label}) is a {kind}, not a box: the counter learns from boxes; draw a "
            "rectangle or a polygon around the cell"
        )
        return None
    points = shape.get("points")
    if not isinstance(points, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(_number(v) is not None for v in p)
        for p in points
    ):
        problems.append(f"{where} ({label}): points must be [x, y] pairs of finite numbers")
        return None
    xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
    need = {"rectangle": 2, "circle": 2, "polygon": 3}[kind]
    if len(points) < need:
        problems.append(f"{where} ({label}): a {kind} needs {need} points, it has {len(points)}")
        return None
    if kind == "circle":  # the centre and a point on the circle
        r = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
        return label.strip(), (xs[0] - r, ys[0] - r, xs[0] + r, ys[0] + r)
    return label.strip(), (min(xs), min(ys), max(xs), max(ys))


def _read_file(
    path: Path,
    data: object,
    class_names: Sequence[str] | None,
    problems: list[str],
    dropped: list[str],
) -> AnnotatedImage | None:
    label = path.name
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        problems.append(f"{label}: not a labelme file (no 'shapes' list); re-save it in labelme")
        return None
    if not isinstance(data.get("imagePath"), str) or not data["imagePath"].strip():
        problems.append(f"{label}: missing required field 'imagePath'")
        return None
    image = _image_of(path, data["imagePath"])
    size = _image_size(image, problems, label)
    raw, names = [], []
    for k, shape in enumerate(data["shapes"], start=1):
        found = _shape_box(shape, f"{label}: shape {k}", problems)
        if found is not None:
            names.append(found[0])
            raw.append(found[1])
    _check_classes(names, class_names, label, problems)
    if size is None:
        return None
    width, height, orientation = size
    upright = upright_size(width, height, orientation)
    declared = (
        int(_number(data.get("imageWidth")) or upright[0]),
        int(_number(data.get("imageHeight")) or upright[1]),
    )
    if declared not in (upright, (width, height)):
        problems.append(
            f"{label}: imageWidth x imageHeight say {declared[0]}x{declared[1]} but {image.name} "
            f"is {width}x{height}; the shapes were drawn on another version of the image"
        )
        return None
    on_stored = declared != upright  # a sideways photo labelled as stored
    return _upright_image(image, size, raw, names, on_stored, label, problems, dropped)


def read_labelme(folder: str | Path, class_names: Sequence[str] | None = None) -> AnnotationSet:
    """A folder of labelme JSON files with their images (see the module docstring).

    ``class_names=None`` infers them (sorted); otherwise any other class is an error.
    Raises :class:`AnnotationError` listing every problem found.
    """
    folder = Path(folder)
    contents = {path: _read_json(path) for path in sorted(folder.glob("*.json"))}
    problems: list[str] = []
    dropped: list[str] = []
    images = [_read_file(p, data, class_names, problems, dropped) for p, data in contents.items()]
    labelled = {
        _image_of(p, data["imagePath"]).resolve()
        for p, data in contents.items()
        if isinstance(data, dict) and isinstance(data.get("imagePath"), str)
    }
    _unlabelled_images(
        folder,
        lambda p: p.resolve() in labelled,
        "a labelme file",
        "a file with no shapes",
        problems,
    )
    return _folder_set(images, problems, dropped, folder, class_names)
