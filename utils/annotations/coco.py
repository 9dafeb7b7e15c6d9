"""COCO detection JSON (Label Studio, CVAT): read and write; ``bbox`` is x, y, width, height."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from .. import atomicio
from .checks import _image_size, _integer, _kind, _number, _upright_image, warn_dropped
from .data import AnnotatedImage, AnnotationError, AnnotationSet
from .orientation import upright_size


def _resolve_coco_image(file_name: str, images_dir: Path) -> Path:
    """Label Studio writes ``images/x.jpg`` or upload paths; CVAT the bare name. Try both."""
    rel = Path(file_name.replace("\\", "/"))
    for candidate in (images_dir / rel, images_dir / rel.name, images_dir / "images" / rel.name):
        if candidate.is_file():
            return candidate
    return images_dir / rel


def read_coco(json_path: str | Path, images_dir: str | Path | None = None) -> AnnotationSet:
    """A COCO detection JSON (``bbox`` is x, y, width, height); images under ``images_dir``.

    ``images_dir`` defaults to the JSON's folder. Class names follow the category ids.
    Degenerate boxes are dropped with one ``DroppedBoxWarning`` (``checks._check_boxes``).
    Raises :class:`AnnotationError` listing every problem found.
    """
    json_path = Path(json_path)
    images_dir = Path(images_dir) if images_dir is not None else json_path.parent
    label = json_path.name
    try:
        data = json.loads(json_path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise AnnotationError([f"{label}: file not found"], json_path.parent) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnnotationError(
            [f"{label}: not valid JSON ({err}); re-export it from the labelling tool"]
        ) from None
    problems: list[str] = []
    if not isinstance(data, dict):
        raise AnnotationError([f"{label}: expected a COCO object with 'images' at the top"])
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            problems.append(f"{label}: missing required field '{key}' (a list)")
    if problems:
        raise AnnotationError(problems)

    categories: dict[int, str] = {}
    parents = {c.get("supercategory") for c in data["categories"] if isinstance(c, dict)}
    for k, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            problems.append(f"{label}: categories[{k}] is missing required field 'id' or 'name'")
        elif _integer(cat["id"]) is None:
            problems.append(
                f"{label}: categories[{k}].id must be an integer (got {_kind(cat['id'])})"
            )
        elif not isinstance(cat["name"], str) or not cat["name"].strip():
            problems.append(f"{label}: categories[{k}].name must be a non-empty string")
        else:
            categories[_integer(cat["id"])] = cat["name"]  # type: ignore[index]

    entries: dict[int, dict] = {}
    for k, entry in enumerate(data["images"]):
        missing = [f for f in ("id", "file_name") if not isinstance(entry, dict) or f not in entry]
        if missing:
            problems.append(f"{label}: images[{k}] is missing required field(s) {missing}")
            continue
        bad = _bad_image_entry(entry)
        if bad:
            problems.append(f"{label}: images[{k}].{bad}")
        else:
            entries[_integer(entry["id"])] = entry  # type: ignore[index]

    per_image: dict[int, tuple[list, list]] = {i: ([], []) for i in entries}
    for k, ann in enumerate(data["annotations"]):
        missing = [
            f
            for f in ("image_id", "category_id", "bbox")
            if not isinstance(ann, dict) or f not in ann
        ]
        if missing:
            problems.append(f"{label}: annotations[{k}] is missing required field(s) {missing}")
            continue
        image_id, cat_id, bbox = (
            _integer(ann["image_id"]),
            _integer(ann["category_id"]),
            ann["bbox"],
        )
        if image_id is None or cat_id is None:
            field_name = "image_id" if image_id is None else "category_id"
            problems.append(
                f"{label}: annotations[{k}].{field_name} must be an integer "
                f"(got {_kind(ann[field_name])})"
            )
            continue
        if not isinstance(bbox, list) or len(bbox) != 4 or any(_number(v) is None for v in bbox):
            problems.append(
                f"{label}: annotations[{k}].bbox must be 4 numbers [x, y, width, height], all finite "
                f"(got {_kind(bbox) if not isinstance(bbox, list) else _bbox_text(bbox)})"
            )
            continue
        if image_id not in per_image:
            problems.append(f"{label}: annotations[{k}] refers to unknown image_id {image_id}")
            continue
        if cat_id not in categories:
            problems.append(
                f"{label}: annotations[{k}] has unknown class (category_id {cat_id}); "
                f"known ids {sorted(categories)}"
            )
            continue
        x, y, w, h = (float(v) for v in bbox)
        per_image[image_id][0].append((x, y, x + w, y + h))
        per_image[image_id][1].append(categories[cat_id])

    images: list[AnnotatedImage] = []
    dropped: list[str] = []
    for image_id, entry in entries.items():
        path = _resolve_coco_image(str(entry["file_name"]), images_dir)
        where = f"{label} ({path.name})"
        size = _image_size(path, problems, where)
        if size is None:
            continue
        width, height, orientation = size
        upright = upright_size(width, height, orientation)  # Label Studio and CVAT label on it
        declared = (
            int(_number(entry.get("width")) or upright[0]),
            int(_number(entry.get("height")) or upright[1]),
        )
        if declared not in (upright, (width, height)):
            turned = f" ({upright[0]}x{upright[1]} upright)" if upright != (width, height) else ""
            problems.append(
                f"{where}: JSON says {entry.get('width')}x{entry.get('height')} but the file is "
                f"{width}x{height}{turned}; the boxes were drawn on another version of the image"
            )
            continue
        on_stored = declared != upright  # a sideways photo labelled as stored
        raw, names = per_image[image_id]
        found = _upright_image(path, size, raw, names, on_stored, where, problems, dropped)
        if found is not None:
            images.append(found)
    if problems:
        raise AnnotationError(problems, json_path.parent)
    warn_dropped(dropped, label)
    images.sort(key=lambda img: img.image_path.name)
    return AnnotationSet(_class_names(categories, parents, images, label), images)


def _class_names(
    categories: dict[int, str], parents: set, images: list[AnnotatedImage], label: str
) -> tuple[str, ...]:
    """The category names in id order, less a group name that labels no box.

    Roboflow's COCO export lists the data set's own name as category 0, the supercategory of
    the real classes, with no box: trained as a class it would be a heatmap channel that never
    fires and a class of 0 in every count. It is dropped, in one warning line.
    """
    used = {name for img in images for name in img.labels}
    groups = {i: name for i, name in categories.items() if name in parents and name not in used}
    for i, name in groups.items():
        warnings.warn(
            f"{label}: category {name!r} (id {i}) is the other categories' supercategory and "
            "labels no box (Roboflow writes one): not a class",
            UserWarning,
            stacklevel=3,
        )
    return tuple(categories[i] for i in sorted(categories) if i not in groups)


def _bad_image_entry(entry: dict) -> str | None:
    """What is wrong with a COCO ``images`` entry's fields (named), or None."""
    if _integer(entry["id"]) is None:
        return f"id must be an integer (got {_kind(entry['id'])})"
    if not isinstance(entry["file_name"], str) or not entry["file_name"].strip():
        return f"file_name must be a non-empty string (got {_kind(entry['file_name'])})"
    for key in ("width", "height"):  # optional; 0 or null means unknown (Label Studio)
        value = entry.get(key)
        if value not in (None, 0) and (_number(value) is None or _number(value) < 0):
            return f"{key} must be a positive number of pixels (got {_kind(value)})"
    return None


def _bbox_text(bbox: list) -> str:
    return "[" + ", ".join(_kind(v) for v in bbox[:4]) + (", ...]" if len(bbox) > 4 else "]")


def write_coco(aset: AnnotationSet, json_path: str | Path) -> Path:
    """Write a COCO detection JSON (category ids 1..C in ``class_names`` order).

    ``file_name`` is relative to the JSON's folder when the image lies below it, else the
    bare file name (copy the images beside the JSON then).
    """
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    cat_ids = {name: i + 1 for i, name in enumerate(aset.class_names)}
    images, annotations = [], []
    base = json_path.parent.resolve()
    for image_id, img in enumerate(aset.images, start=1):
        try:
            file_name = img.image_path.resolve().relative_to(base).as_posix()
        except ValueError:
            file_name = img.image_path.name
        images.append(
            {"id": image_id, "file_name": file_name, "width": img.width, "height": img.height}
        )
        for box, name in zip(img.boxes.tolist(), img.labels):
            x1, y1, x2, y2 = box
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat_ids[name],
                    "bbox": [round(x1, 2), round(y1, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                }
            )
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in cat_ids.items()],
        "info": {"description": "written by utils.annotations.write_coco"},
    }
    atomicio.write_text(json_path, json.dumps(data, indent=1))
    return json_path
