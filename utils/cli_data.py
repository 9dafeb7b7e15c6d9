"""``python -m utils train``'s photos: which train and which validate.

    python -m utils train --data dataset --out runs/a                 # its train/ and valid/
    python -m utils train --data dataset/train --val dataset/valid --out runs/a
    python -m utils train --data my_photos --out runs/a               # a fifth held back
    python -m utils train --data roboflow_export.zip --out runs/a     # unpacked beside it

A data set exported with its own splits (Roboflow, Ultralytics: ``annotations.splits``) trains
on its train split and validates on its validation split; a single folder holds back a fifth of
its photos (at most 20) to validate on, or none with ``--val-fraction 0``. Kept out of
``utils/cli.py`` (which stays under the 500-line limit); ``cli.cmd_train`` calls
:func:`training_sets`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from pathlib import Path

from .config import display_path


class DataError(ValueError):
    """``--data`` / ``--val`` / ``--val-fraction`` asked for something that cannot be done."""


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """``train``'s ``--data``, ``--val`` and ``--val-fraction``."""
    parser.add_argument(
        "--data",
        required=True,
        help="VOC/labelme/YOLO folder or COCO .json; or a data set's root with its own "
        "train/ and valid/ (Roboflow, Ultralytics): trains on train, validates on valid; "
        "or a .zip of either, unpacked beside it",
    )
    parser.add_argument(
        "--val",
        help="labelled folder (or COCO .json) to validate and choose the counting threshold on, "
        "instead of photos held back from --data",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        help="held back to validate (default: 0.2, at most 20 photos); 0: train on every image, "
        "no validation (docs/real_data.md)",
    )


def load_labelled(path: str | Path):
    """``load_annotations(path)``, its warnings printed as one ``warning:`` line each."""
    from .annotations import DroppedBoxWarning, load_annotations

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DroppedBoxWarning)
        aset = load_annotations(path)
    for warning in caught:  # one line each, without the source line Python would add
        print(f"warning: {warning.message}", file=sys.stderr)
    return aset


def unpacked(path: Path) -> Path:
    """A ``.zip`` (Roboflow's download, an upload to Colab) unpacked into the folder beside it
    named after it, once; any other path as it is.

    An existing folder of that name is used as it is (said in one line), so a second run does
    not unpack again and nothing already there is overwritten.
    """
    if path.suffix.lower() != ".zip" or not path.is_file():
        return path
    import zipfile

    folder = path.with_suffix("")
    if folder.exists():
        print(f"{display_path(path)}: using {display_path(folder)}, unpacked before")
        return folder
    part = folder.with_name(folder.name + ".unpacking")  # renamed once whole
    try:
        with zipfile.ZipFile(path) as archive:
            if damaged := archive.testzip():  # checked before anything is written
                raise zipfile.BadZipFile(f"{damaged} inside it is damaged")
            shutil.rmtree(part, ignore_errors=True)  # what an interrupted run left
            archive.extractall(part)  # zipfile drops absolute paths and ".." from names
    except (zipfile.BadZipFile, EOFError) as error:
        raise DataError(
            f"{display_path(path)} is not a readable .zip ({error}); download it again, or unpack "
            "it yourself and pass the folder"
        ) from error
    part.rename(folder)
    print(f"{display_path(path)}: unpacked into {display_path(folder)}")
    return folder


def _shown(path: Path, root: Path) -> str:
    """A split as learners see it: below its data set's root (``dataset/train``), even when
    the root lies outside the course folder (where ``display_path`` keeps only a name)."""
    try:
        return f"{display_path(root)}/{path.relative_to(root).as_posix()}"
    except ValueError:  # a split listed outside the root, or --val elsewhere
        return display_path(path)


def _where(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The training folder and the validation folder (None: split from the training one)."""
    from .annotations.splits import find_splits

    val = unpacked(Path(args.val)) if args.val else None
    if val is not None and args.val_fraction is not None:
        raise DataError("--val and --val-fraction both choose the validation photos: give one")
    data = unpacked(Path(args.data))
    splits = find_splits(data)
    if splits is None:
        return data, val
    if val is None and args.val_fraction is None:
        val = splits.val
    chosen = (
        f"validating on {_shown(val, splits.root)}" if val else "validating on photos held back"
    )
    if val is None and args.val_fraction is None:
        chosen += " from it (no validation split found)"
    elif val is None:
        chosen += " by --val-fraction"
    test = f"; {_shown(splits.test, splits.root)} is left for evaluate" if splits.test else ""
    print(
        f"{display_path(splits.root)}: a data set with its own splits; training on "
        f"{_shown(splits.train, splits.root)}, {chosen}{test}."
    )
    return splits.train, val


def training_sets(args: argparse.Namespace):
    """(training photos, validation photos or None, a summary of the photos read) as ``--data``,
    ``--val`` and ``--val-fraction`` ask; every problem is a :class:`DataError` (or an
    ``AnnotationError`` naming the file)."""
    from .annotations import AnnotationSet
    from .dataset import split_or_all

    data, val_path = _where(args)
    aset = load_labelled(data)
    if val_path is None:
        if len(aset) < 2:
            raise DataError(f"{display_path(data)} holds {len(aset)} image(s); need at least 2")
        train, val = split_or_all(aset, args.val_fraction, args.seed)  # val None: fraction 0
        return train, val, aset.summary()
    if len(aset) < 1:
        raise DataError(f"{display_path(data)} holds no images to train on")
    val = load_labelled(val_path)
    if len(val) < 1:
        raise DataError(f"{display_path(val_path)} holds no images to validate on")
    unknown = sorted({n for img in val.images for n in img.labels} - set(aset.class_names))
    if unknown:
        raise DataError(
            f"{display_path(val_path)}: classes {unknown} are not among the training photos' "
            f"classes {list(aset.class_names)}; label them in {display_path(data)} too, or "
            "validate on photos of the training classes"
        )
    val = AnnotationSet(aset.class_names, val.images)  # scored in the model's class order
    return aset, val, f"{aset.summary()}; validation: {val.summary()}"


def held_out_set(path: str | Path):
    """``evaluate``'s photos: a labelled folder, or a data set's test split when ``path`` is its
    root (or the ``.zip`` of it), said in one line on stderr (stdout's first line is JSON)."""
    from .annotations.splits import find_splits

    data = unpacked(Path(path))
    splits = find_splits(data)
    if splits is None:
        return load_labelled(data)
    if splits.test is None:
        raise DataError(
            f"{display_path(data)} is a data set without a test split: pass the folder to "
            f"evaluate on, e.g. {_shown(splits.val or splits.train, splits.root)}"
        )
    print(
        f"{display_path(data)}: evaluating on its test split, {_shown(splits.test, splits.root)}",
        file=sys.stderr,
    )
    return load_labelled(splits.test)
