"""One entry point: a VOC folder, a COCO ``.json``, or a folder with one COCO json."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import display_path
from .checks import _check_classes
from .coco import read_coco
from .data import AnnotationError, AnnotationSet
from .voc import read_voc


def load_annotations(
    path: str | Path,
    class_names: Sequence[str] | None = None,
    images_dir: str | Path | None = None,
) -> AnnotationSet:
    """Load whatever you labelled: a VOC folder, a COCO ``.json``, or a folder with one COCO json.

    ``images_dir`` is where a COCO file's images are (default: beside the JSON).
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        aset = read_coco(path, images_dir)
    elif path.is_dir():
        if any(path.glob("*.xml")):
            return read_voc(path, class_names)
        jsons = sorted(path.glob("*.json"))
        if len(jsons) == 1:
            aset = read_coco(jsons[0], images_dir)
        elif len(jsons) > 1:
            raise AnnotationError(
                [f"{len(jsons)} JSON files ({', '.join(p.name for p in jsons)}); pass one of them"],
                path,
            )
        else:
            raise AnnotationError(
                ["no Pascal VOC .xml files and no COCO .json file found; export your labels here"],
                path,
            )
    else:
        raise AnnotationError(
            [f"{display_path(path)}: not a folder or a .json file (does it exist?)"]
        )
    if class_names is not None:
        problems: list[str] = []
        for img in aset.images:
            _check_classes(img.labels, class_names, img.name, problems)
        if problems:
            raise AnnotationError(problems, path)
        aset = AnnotationSet(tuple(class_names), aset.images)
    return aset
