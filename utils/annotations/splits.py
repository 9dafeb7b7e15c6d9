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


def find_splits(path: str | Path) -> Splits | None:
    """The splits below a data set's root (or beside its ``data.yaml``), found by their folder
    names; None when ``path`` is one split itself or has no ``train`` folder with labels.

    Folder names, not the paths a ``data.yaml`` lists: Roboflow writes ``../train/images``
    there, relative to a folder the download does not have.
    """
    path = Path(path)
    is_yaml = path.is_file() and path.suffix.lower() in (".yaml", ".yml")
    root = path.parent if is_yaml else path
    if not root.is_dir() or is_one_split(root):
        return None

    def first(names: tuple[str, ...]) -> Path | None:
        for base in (root, root / "images"):  # Roboflow's train/, Ultralytics' images/train
            for name in names:
                folder = base / name
                if folder.is_dir() and holds_labels(folder):
                    return folder
        return None

    train = first(TRAIN)
    return None if train is None else Splits(root, train, first(VALIDATION), first(TEST))
