"""Pre-labels for review: the counter's boxes as label files a person corrects, then retrains on.

    aset = prelabel_set(rows, class_names)       # rows of utils.batch with their boxes
    write_voc_prelabels(aset)                    # labelImg: one XML next to each image
    write_coco_prelabels(aset, "photos/prelabels.json")   # Label Studio / CVAT import, COCO

Written with the public writers of ``utils.annotations`` (``voc_xml``, ``write_coco``), so
``load_annotations`` reads them back with the same boxes (whole pixels in VOC, as labelImg
stores them; two decimals in COCO). A reviewer opens the folder in labelImg, fixes the
misses, and ``python -m utils train --data <folder>`` retrains on the corrected labels.

An existing XML file next to an image is never overwritten: it may be a person's labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from . import atomicio
from .annotations import AnnotatedImage, AnnotationSet, load_annotations, voc_xml, write_coco
from .batch import BOXES_KEY, Row
from .config import display_path

FORMATS = ("voc", "coco")


def _rounded(
    boxes: np.ndarray, width: int, height: int, whole: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes clipped to the image, rounded as the format stores them, empty ones dropped."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    boxes = np.round(boxes) if whole else np.round(boxes, 2)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep].astype(np.float32), keep


def prelabel_image(row: Row, whole_pixels: bool = True) -> AnnotatedImage | None:
    """One counted image as an ``AnnotatedImage`` (None for an error row or no boxes kept)."""
    if row.get("error") or not row.get(BOXES_KEY):
        return None
    found = json.loads(row[BOXES_KEY])
    width, height = int(found["width"]), int(found["height"])
    boxes, keep = _rounded(np.asarray(found["boxes"]), width, height, whole_pixels)
    labels = [name for name, kept in zip(found["labels"], keep.tolist()) if kept]
    return AnnotatedImage(Path(row["file"]), width, height, boxes, labels)


def prelabel_set(
    rows: Iterable[Row], class_names: Sequence[str], whole_pixels: bool = True
) -> AnnotationSet:
    """The rows that have boxes (see ``utils.batch.count_image(boxes=True)``) as a set."""
    images = [img for row in rows if (img := prelabel_image(row, whole_pixels)) is not None]
    return AnnotationSet(tuple(class_names), sorted(images, key=lambda i: i.image_path))


def write_voc_prelabels(aset: AnnotationSet, overwrite: bool = False) -> tuple[list[Path], list[Path]]:
    """One labelImg XML next to each image; returns (written, kept because one existed)."""
    written, kept = [], []
    for img in aset.images:
        target = img.image_path.with_suffix(".xml")
        if target.exists() and not overwrite:
            kept.append(target)
            continue
        atomicio.write_text(target, voc_xml(img, folder_name=img.image_path.parent.name))
        written.append(target)
    return written, kept


def write_coco_prelabels(aset: AnnotationSet, json_path: str | Path, merge: bool = True) -> Path:
    """One COCO JSON (Label Studio and CVAT import it); ``merge`` keeps the images a previous
    run wrote there and that this run did not count again (a resumed job)."""
    json_path = Path(json_path)
    images = {img.image_path.resolve(): img for img in aset.images}
    if merge and json_path.exists():
        try:
            before = load_annotations(json_path)
        except ValueError as error:
            raise ValueError(
                f"{display_path(json_path)} exists and cannot be merged ({error}); "
                "move it away or write the pre-labels elsewhere"
            ) from error
        for img in before.images:
            images.setdefault(img.image_path.resolve(), img)
    merged = AnnotationSet(aset.class_names, [images[k] for k in sorted(images)])
    return write_coco(merged, json_path)


def write_prelabels(
    rows: Iterable[Row], class_names: Sequence[str], kind: str, json_path: str | Path | None = None
) -> str:
    """Write pre-labels of ``kind`` (voc or coco) and return one sentence saying where."""
    if kind not in FORMATS:
        raise ValueError(f"unknown pre-label format {kind!r}; choose one of {list(FORMATS)}")
    rows = list(rows)
    aset = prelabel_set(rows, class_names, whole_pixels=kind == "voc")
    found = sum(len(json.loads(r[BOXES_KEY])["boxes"]) for r in rows if r.get(BOXES_KEY))
    dropped = found - aset.num_boxes
    note = (
        f" ({dropped} box(es) left out: empty once clipped to the photo, e.g. in the padding)"
        if dropped
        else ""
    )
    if kind == "voc":
        written, kept = write_voc_prelabels(aset)
        text = f"Wrote {len(written)} Pascal VOC pre-label file(s) next to the images{note}"
        if kept:
            text += f"; kept {len(kept)} existing XML file(s) (delete them to pre-label again)"
        return text + "."
    if json_path is None:
        raise ValueError("COCO pre-labels need a JSON file name (--prelabels-out)")
    path = write_coco_prelabels(aset, json_path)
    return f"Wrote COCO pre-labels of {len(aset)} image(s) to {display_path(path)}{note}."
