"""One entry point for every label format: VOC, labelme, COCO (a file or a folder), a YOLO split."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from ..config import display_path
from .checks import _check_classes
from .coco import read_coco
from .data import AnnotationError, AnnotationSet
from .labelme import is_labelme_file, is_labelme_folder, read_labelme
from .voc import read_voc
from .yolo import is_yolo_folder, read_yolo, split_hint


def load_annotations(
    path: str | Path,
    class_names: Sequence[str] | None = None,
    images_dir: str | Path | None = None,
) -> AnnotationSet:
    """Load whatever you labelled: a VOC folder (labelImg), a labelme folder, a COCO ``.json`` or
    a folder with one, or one split of a YOLO data set (``annotations.yolo``: Roboflow,
    Ultralytics, CVAT).

    ``images_dir`` is where a COCO file's images are (default: beside the JSON).
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        if is_labelme_file(path):
            raise AnnotationError(
                [f"{path.name} is one labelme file: pass its folder, {display_path(path.parent)}"]
            )
        aset = read_coco(path, images_dir)
    elif path.is_dir():
        if any(path.glob("*.xml")):
            return _with_classes(read_voc(path, class_names), None, path)
        if is_labelme_folder(path):  # before COCO: a folder of per-image JSON files
            return _with_classes(read_labelme(path, class_names), None, path)
        if is_yolo_folder(path):  # before the JSON: Label Studio's YOLO export holds notes.json
            aset = read_yolo(path, class_names)
            return _with_classes(aset, class_names, path)
        jsons = sorted(path.glob("*.json"))
        if len(jsons) == 1:
            aset = read_coco(jsons[0], images_dir)
        elif len(jsons) > 1:
            raise AnnotationError(
                [f"{len(jsons)} JSON files ({', '.join(p.name for p in jsons)}); pass one of them"],
                path,
            )
        elif hint := split_hint(path):
            raise AnnotationError([hint], path)
        else:
            raise AnnotationError(
                [
                    "no Pascal VOC .xml files, labelme or COCO .json files and no YOLO labels "
                    "found; export your labels here"
                ],
                path,
            )
    elif path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        hint = split_hint(path.parent, f"{path.name} describes a YOLO data set")
        raise AnnotationError(
            [hint or f"{path.name} describes a whole YOLO data set: pass one split's folder"]
        )
    else:
        raise AnnotationError(
            [f"{display_path(path)}: not a folder or a .json file (does it exist?)"]
        )
    return _with_classes(aset, class_names, path)


def warn_similar_names(aset: AnnotationSet, source: str | Path) -> None:
    """One warning when class names differ only in case or spaces ('RBC' and 'rbc'): they
    train as separate classes, which a labelling typo rarely means."""
    groups: dict[str, list[str]] = {}
    for name in aset.class_names:
        groups.setdefault(" ".join(name.casefold().split()), []).append(name)
    similar = [names for names in groups.values() if len(names) > 1]
    if similar:
        listed = "; ".join(" and ".join(repr(n) for n in names) for names in similar)
        warnings.warn(
            f"{display_path(source)}: class names {listed} differ only in case or spaces and "
            "train as separate classes; rename them alike in the labels to merge them",
            UserWarning,
            stacklevel=3,
        )


def _with_classes(
    aset: AnnotationSet, class_names: Sequence[str] | None, path: Path
) -> AnnotationSet:
    """``aset`` with ``class_names`` in their order, refusing a class they do not list."""
    warn_similar_names(aset, path)
    if class_names is not None:
        problems: list[str] = []
        for img in aset.images:
            _check_classes(img.labels, class_names, img.name, problems)
        if problems:
            raise AnnotationError(problems, path)
        aset = AnnotationSet(tuple(class_names), aset.images)
    return aset
