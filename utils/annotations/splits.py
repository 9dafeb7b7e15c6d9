"""A data set's own splits: the train, validation and test folders below an export's root.

Exported data sets come split: Roboflow's exports (YOLO, COCO and Pascal VOC alike) hold
``train/``, ``valid/`` and ``test/``; an Ultralytics data set ``images/train`` and
``images/val`` beside ``labels/``. ``python -m utils train --data ROOT`` trains on the train
split and validates on the data set's own validation split (``cli_data``), instead of holding
back photos that the labeller meant for training. Each split is then read by
``load_annotations`` like any labelled folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .yolo import holds_photos, is_yolo_folder

TRAIN = ("train", "training", "trainval")  # trainval: Pascal VOC's name for train + val
VALIDATION = ("valid", "val", "validation")
TEST = ("test", "testing")


@dataclass(frozen=True)
class Splits:
    """Where a data set's splits are; ``val`` and ``test`` are None when it has none."""

    root: Path
    train: Path
    val: Path | None
    test: Path | None


def holds_labels(folder: Path) -> bool:
    """Does ``folder`` hold labels ``load_annotations`` reads as one set (VOC, JSON, YOLO)?"""
    return any(folder.glob("*.xml")) or any(folder.glob("*.json")) or is_yolo_folder(folder)


def is_one_split(folder: Path) -> bool:
    """A folder of labelled photos itself (photos here or in its ``images/``, or label files)."""
    return holds_photos(folder) or any(folder.glob("*.xml")) or any(folder.glob("*.json"))


def _listed(root: Path, yaml_file: Path | None, key: str) -> Path | None:
    """The split a ``data.yaml`` lists under ``key``, where it exists with labels.

    Tried below the file's ``path:`` and beside the file, and without leading ``../`` (Roboflow
    writes ``../train/images``, relative to a folder the download does not have); a split's
    ``images`` folder stands for the split.
    """
    if yaml_file is None:
        return None
    import yaml

    try:
        meta = yaml.safe_load(yaml_file.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the split's own reading reports a broken data.yaml
    listed = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(listed, str):
        return None
    base = root / str(meta.get("path") or ".")
    stripped = listed
    while stripped.startswith("../"):
        stripped = stripped[3:]
    for candidate in (base / listed, root / listed, root / stripped):
        if candidate.name == "images" and (candidate.parent / "labels").is_dir():
            candidate = candidate.parent
        if candidate.is_dir() and holds_labels(candidate):
            return candidate.resolve() if ".." in candidate.parts else candidate
    return None


def find_splits(path: str | Path) -> Splits | None:
    """The splits below a data set's root (or beside its ``data.yaml``): those its
    ``data.yaml`` lists, else the folders named ``train``, ``valid``... (Roboflow's
    ``train/``, Ultralytics' ``images/train``). None when ``path`` is one split itself or no
    training split with labels is found.
    """
    path = Path(path)
    is_yaml = path.is_file() and path.suffix.lower() in (".yaml", ".yml")
    root = path.parent if is_yaml else path
    if not root.is_dir() or is_one_split(root):
        return None
    yamls = [root / "data.yaml", *sorted(root.glob("*.yaml")), *sorted(root.glob("*.yml"))]
    yaml_file = path if is_yaml else next((p for p in yamls if p.is_file()), None)

    def first(key: str, names: tuple[str, ...]) -> Path | None:
        if (listed := _listed(root, yaml_file, key)) is not None:
            return listed
        for base in (root, root / "images"):
            for name in names:
                folder = base / name
                if folder.is_dir() and holds_labels(folder):
                    return folder
        return None

    train = first("train", TRAIN)
    if train is None:
        return None
    return Splits(root, train, first("val", VALIDATION), first("test", TEST))
