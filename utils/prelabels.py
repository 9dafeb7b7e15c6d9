"""Pre-labels for review: the counter's boxes as label files a person corrects, then retrains on.

    aset = prelabel_set(rows, class_names)       # rows of utils.batch with their boxes
    write_voc_prelabels(aset)                    # labelImg: one XML next to each image
    write_coco_prelabels(aset, "photos/prelabels.json")   # Label Studio / CVAT import, COCO
    write_labelstudio_prelabels(rows, names, "photos/tasks.json")  # Label Studio predictions
    write_yolo_prelabels(aset)                   # YOLO: a .txt next to each image, classes.txt

Written with the public writers of ``utils.annotations`` (``voc_xml``, ``write_coco``), so
``load_annotations`` reads them back with the same boxes (whole pixels in VOC, as labelImg
stores them; two decimals in COCO). A reviewer opens the folder in labelImg, fixes the
misses, and ``python -m utils train --data <folder>`` retrains on the corrected labels.

An existing XML (or YOLO ``.txt``) file next to an image is never overwritten: it may be a
person's labels. YOLO pre-labels are CVAT's "YOLO 1.1" layout (labels beside the images, the
class names in ``classes.txt``), which ``load_annotations`` reads back.

Several classes: each box keeps its class name (``<name>`` in VOC, its category in COCO, its
``rectanglelabels`` in Label Studio) and the COCO categories are the model's classes in its
order, so a reviewed folder retrains a model with the same classes. The sentence that
:func:`write_prelabels` returns counts the boxes of each class.

Label Studio's own pre-annotation format (tasks with ``predictions``, boxes in percent of the
image, each with its score) has no reader in ``utils.annotations``: reviewed tasks come back as
COCO or VOC from Label Studio's export. :func:`read_labelstudio_prelabels` reads our file back
for the round-trip test. Images are referenced as ``/data/local-files/?d=<path relative to the
JSON's folder>``: start Label Studio with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<that folder>``, and a "Rectangle labels" project whose
control is named ``label`` and image ``image`` (the object-detection template).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from . import atomicio
from .annotations import AnnotatedImage, AnnotationSet, load_annotations, voc_xml, write_coco
from .annotations.yolo import read_names_file, yolo_lines
from .batch import BOXES_KEY, Row
from .config import display_path

FORMATS = ("voc", "coco", "labelstudio", "yolo")
LS_IMAGE_PREFIX = "/data/local-files/?d="  # Label Studio's local-files storage (see below)


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
    orientation = int(found.get("orientation", 1))  # boxes upright; voc_xml turns them back
    return AnnotatedImage(Path(row["file"]), width, height, boxes, labels, orientation)


def prelabel_set(
    rows: Iterable[Row], class_names: Sequence[str], whole_pixels: bool = True
) -> AnnotationSet:
    """The rows that have boxes (see ``utils.batch.count_image(boxes=True)``) as a set."""
    images = [img for row in rows if (img := prelabel_image(row, whole_pixels)) is not None]
    return AnnotationSet(tuple(class_names), sorted(images, key=lambda i: i.image_path))


def _write_beside(
    aset: AnnotationSet, suffix: str, text_of, overwrite: bool = False
) -> tuple[list[Path], list[Path]]:
    """A label file (``suffix``) next to each image; returns (written, kept because one existed:
    it may be a person's labels)."""
    written, kept = [], []
    for img in aset.images:
        target = img.image_path.with_suffix(suffix)
        if target.exists() and not overwrite:
            kept.append(target)
            continue
        atomicio.write_text(target, text_of(img))
        written.append(target)
    return written, kept


def write_voc_prelabels(aset: AnnotationSet, overwrite: bool = False) -> tuple[list[Path], list[Path]]:
    """One labelImg XML next to each image; returns (written, kept because one existed)."""
    return _write_beside(
        aset, ".xml", lambda img: voc_xml(img, folder_name=img.image_path.parent.name), overwrite
    )


def write_yolo_prelabels(aset: AnnotationSet) -> tuple[list[Path], list[Path]]:
    """A YOLO ``.txt`` next to each image and ``classes.txt`` in each folder (the model's classes
    in id order); returns (written, kept because one existed). A ``classes.txt`` that lists
    other names is refused before anything is written: the ids would mean other classes."""
    names = "".join(f"{name}\n" for name in aset.class_names)
    folders = sorted({img.image_path.parent for img in aset.images})
    for folder in folders:
        existing = folder / "classes.txt"
        if existing.is_file() and read_names_file(existing, []) != list(aset.class_names):
            raise ValueError(
                f"{display_path(existing)} lists other classes than the model's "
                f"{list(aset.class_names)}; move it away or write the pre-labels elsewhere"
            )
    written, kept = _write_beside(aset, ".txt", lambda img: yolo_lines(img, aset.class_names))
    for folder in folders:
        atomicio.write_text(folder / "classes.txt", names)
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


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.name


def labelstudio_tasks(rows: Iterable[Row], json_folder: str | Path) -> list[dict]:
    """Label Studio tasks, one per counted image, its boxes as scored predictions."""
    tasks = []
    for row in sorted((r for r in rows if r.get(BOXES_KEY) and not r.get("error")),
                      key=lambda r: r["file"]):
        found = json.loads(row[BOXES_KEY])
        width, height = int(found["width"]), int(found["height"])
        boxes, keep = _rounded(np.asarray(found["boxes"]), width, height, whole=False)
        named = [(lab, s) for lab, s, k in zip(found["labels"], found["scores"], keep.tolist()) if k]
        kept = [(box, lab, s) for box, (lab, s) in zip(boxes.tolist(), named)]
        result = [
            {
                "id": f"b{k}",
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "score": score,
                "value": {
                    "x": 100 * x1 / width,
                    "y": 100 * y1 / height,
                    "width": 100 * (x2 - x1) / width,
                    "height": 100 * (y2 - y1) / height,
                    "rotation": 0,
                    "rectanglelabels": [label],
                },
            }
            for k, ((x1, y1, x2, y2), label, score) in enumerate(kept)
        ]
        image = LS_IMAGE_PREFIX + _relative(Path(row["file"]), Path(json_folder))
        tasks.append(
            {
                "data": {"image": image},
                "predictions": [
                    {"model_version": "utils.prelabels", "score": row.get("mean_score") or 0.0,
                     "result": result}
                ],
            }
        )
    return tasks


def write_labelstudio_prelabels(
    rows: Iterable[Row], json_path: str | Path, merge: bool = True
) -> Path:
    """Label Studio's pre-annotation JSON (import it in the project's Import dialog);
    ``merge`` keeps the tasks of images a previous run wrote and this one did not count."""
    json_path = Path(json_path)
    tasks = labelstudio_tasks(rows, json_path.parent)
    if merge and json_path.exists():
        try:
            before = json.loads(json_path.read_text(encoding="utf-8"))
            new = {t["data"]["image"] for t in tasks}
            tasks = [t for t in before if t["data"]["image"] not in new] + tasks
            tasks.sort(key=lambda t: t["data"]["image"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{display_path(json_path)} exists and is not our Label Studio file "
                f"({type(error).__name__}); move it away or write the pre-labels elsewhere"
            ) from error
    return atomicio.write_text(json_path, json.dumps(tasks, indent=1) + "\n")


def read_labelstudio_prelabels(json_path: str | Path, class_names: Sequence[str]) -> AnnotationSet:
    """Our Label Studio file back as boxes in pixels (images beside the JSON, as written)."""
    json_path = Path(json_path)
    images = []
    for task in json.loads(json_path.read_text(encoding="utf-8")):
        relative = task["data"]["image"].removeprefix(LS_IMAGE_PREFIX)
        boxes, labels, size = [], [], (0, 0)
        for item in task["predictions"][0]["result"]:
            w, h = item["original_width"], item["original_height"]
            v = item["value"]
            x1, y1 = v["x"] * w / 100, v["y"] * h / 100
            boxes.append((x1, y1, x1 + v["width"] * w / 100, y1 + v["height"] * h / 100))
            labels.append(v["rectanglelabels"][0])
            size = (w, h)
        images.append(AnnotatedImage(json_path.parent / relative, *size, boxes, labels))
    return AnnotationSet(tuple(class_names), images)


def write_prelabels(
    rows: Iterable[Row], class_names: Sequence[str], kind: str, json_path: str | Path | None = None
) -> str:
    """Write pre-labels of ``kind`` (``FORMATS``) and return one sentence saying where."""
    if kind not in FORMATS:
        raise ValueError(f"unknown pre-label format {kind!r}; choose one of {list(FORMATS)}")
    rows = list(rows)
    aset = prelabel_set(rows, class_names, whole_pixels=kind == "voc")  # YOLO: fractions
    found = sum(len(json.loads(r[BOXES_KEY])["boxes"]) for r in rows if r.get(BOXES_KEY))
    dropped = found - aset.num_boxes
    note = (
        f" ({dropped} box(es) left out: empty once clipped to the photo, e.g. in the padding)"
        if dropped
        else ""
    )
    if len(aset.class_names) > 1:
        note = f" ({', '.join(f'{n} {k}' for k, n in aset.boxes_per_class().items())}){note}"
    if kind in ("voc", "yolo"):
        voc = kind == "voc"
        written, kept = write_voc_prelabels(aset) if voc else write_yolo_prelabels(aset)
        what = "Pascal VOC pre-label file(s)" if voc else "YOLO pre-label file(s) and classes.txt"
        text = f"Wrote {len(written)} {what} next to the images{note}"
        if kept:
            kind_of = "XML" if voc else ".txt"
            text += f"; kept {len(kept)} existing {kind_of} file(s) (delete them to pre-label anew)"
        return text + "."
    if json_path is None:
        raise ValueError(f"{kind} pre-labels need a JSON file name (--prelabels-out)")
    if kind == "labelstudio":
        path = write_labelstudio_prelabels(rows, json_path)
        return (
            f"Wrote Label Studio pre-annotations of {len(aset)} image(s) to "
            f"{display_path(path)}{note}."
        )
    path = write_coco_prelabels(aset, json_path)
    return f"Wrote COCO pre-labels of {len(aset)} image(s) to {display_path(path)}{note}."
