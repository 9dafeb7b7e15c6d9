"""YOLO text labels (Roboflow, Ultralytics, CVAT, Label Studio): read one split, write one.

Why: most public data sets of hundreds of photos (BCCD on Roboflow among them) come as YOLO
text files, one ``.txt`` per image with a line ``class x_center y_center width height`` in
fractions of the image. A learner passes one split's folder; the layouts the tools write all
work:

- Roboflow: ``dataset/train/images/*.jpg`` + ``dataset/train/labels/*.txt``, ``dataset/data.yaml``
  -> ``--data dataset/train``;
- Ultralytics: ``dataset/images/train`` + ``dataset/labels/train``
  -> ``--data dataset/images/train``;
- Label Studio: ``images/`` + ``labels/`` + ``classes.txt`` -> the export's folder;
- CVAT "YOLO 1.1": ``obj_train_data/`` (images and ``.txt`` side by side), ``obj.names`` above it.

Class names come from the nearest ``data.yaml`` (``names``, a list or ``{id: name}``),
``classes.txt`` or ``obj.names`` in the folder or up to two folders above it. A label file's
path is the image's with its last ``images`` folder replaced by ``labels`` (Ultralytics' rule),
else the image's own folder. An image without a label file holds no objects (the format's
convention), said in one warning line; a label file without its image is an error, as is a
class id the names do not list or coordinates in pixels instead of fractions. A polygon line
(Ultralytics' segmentation labels) counts as the box around it.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

from .. import atomicio
from ..config import display_path
from .checks import (
    IMAGE_SUFFIXES,
    _image_size,
    _integer,
    _number,
    _upright_image,
    first_few,
    warn_dropped,
)
from .data import AnnotatedImage, AnnotationError, AnnotationSet
from .orientation import upright_size

NAME_FILES = ("data.yaml", "data.yml", "dataset.yaml", "classes.txt", "obj.names")
# Text files in a label folder that are not labels: names and the tools' image lists.
NOT_LABELS = {"classes.txt", "obj.names", "train.txt", "val.txt", "valid.txt", "test.txt"}
# A coordinate above this is pixels, not a fraction (a box may stick out by BOX_TOLERANCE_PX).
MAX_FRACTION = 1.5


class UnlabelledImageWarning(UserWarning):
    """Images without a label file, read as images with no objects (the YOLO convention)."""


def label_path(image: Path) -> Path:
    """Where an image's label file is: its last ``images`` folder swapped for ``labels`` when
    that ``labels`` folder exists (Ultralytics' rule), else beside the image."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            swapped = Path(*parts).with_suffix(".txt")
            if swapped.parent.is_dir():
                return swapped
            break
    return image.with_suffix(".txt")


def _images_folder(folder: Path) -> Path:
    return folder / "images" if (folder / "images").is_dir() else folder


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def holds_photos(folder: Path) -> bool:
    """Are there photos in ``folder`` itself or in its ``images/`` (one split, not a root)?"""
    images = _images_folder(folder)
    return images.is_dir() and bool(_image_files(images))


def is_yolo_folder(folder: str | Path) -> bool:
    """Does ``folder`` look like one split of a YOLO data set (see the module docstring)?"""
    folder = Path(folder)
    if (folder / "labels").is_dir() and (folder / "images").is_dir():
        return True
    if folder.parent.name == "images" and (folder.parent.parent / "labels" / folder.name).is_dir():
        return True
    stems = {p.stem for p in _image_files(folder)} if folder.is_dir() else set()
    return any(p.stem in stems for p in folder.glob("*.txt") if p.name not in NOT_LABELS)


def yolo_splits(folder: str | Path) -> list[str]:
    """The split folders below a YOLO data set's root (``train``, ``valid``, ``images/train``...),
    so that an error can say which one to pass."""
    folder = Path(folder)
    found = [p for p in sorted(folder.iterdir()) if p.is_dir() and is_yolo_folder(p)]
    if (folder / "images").is_dir():
        found += [
            p for p in sorted((folder / "images").iterdir()) if p.is_dir() and is_yolo_folder(p)
        ]
    return [p.relative_to(folder).as_posix() for p in found]


def split_hint(root: Path, what: str = "a YOLO data set") -> str | None:
    """What to pass instead of a YOLO data set's root (or its ``data.yaml``): one split."""
    splits = yolo_splits(root)
    if not splits:
        return None
    return (
        f"{what} with the splits {', '.join(splits)}: pass one split's folder, "
        f"e.g. {display_path(root)}/{splits[0]}"
    )


def read_names_file(path: Path, problems: list[str]) -> list[str] | None:
    """Class names from a ``data.yaml`` (``names``: list or ``{id: name}``) or a names file."""
    where = display_path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        problems.append(f"{where}: cannot be read ({err})")
        return None
    if path.suffix.lower() not in (".yaml", ".yml"):
        return [line.strip() for line in text.splitlines() if line.strip()]
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        problems.append(f"{where}: not valid YAML ({str(err).splitlines()[0]}); re-export it")
        return None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        ids = [_integer(k) for k in names]
        if None in ids or sorted(ids) != list(range(len(names))):  # type: ignore[type-var]
            problems.append(f"{where}: names must be numbered 0 to {len(names) - 1}")
            return None
        by_id = {_integer(k): name for k, name in names.items()}
        names = [by_id[i] for i in range(len(by_id))]
    if not isinstance(names, list) or not names or not all(str(n).strip() for n in names):
        problems.append(f"{where}: needs 'names', the class names in id order (a list)")
        return None
    if isinstance(data.get("nc"), int) and data["nc"] != len(names):
        problems.append(f"{where}: nc is {data['nc']} but names lists {len(names)} classes")
        return None
    return [str(n).strip() for n in names]


def names_file(folder: Path) -> Path | None:
    """The nearest names file in ``folder`` or up to two folders above it."""
    for level in (folder, folder.parent, folder.parent.parent):
        for name in NAME_FILES:
            if (level / name).is_file():
                return level / name
    return None


def find_names(folder: Path, problems: list[str]) -> list[str] | None:
    """The class names from :func:`names_file`, or a problem that says where to put them."""
    found = names_file(folder)
    if found is not None:
        return read_names_file(found, problems)
    problems.append(
        f"{display_path(folder)}: no class names found; put a classes.txt (one name per line, "
        "in id order) or the data set's data.yaml in this folder or the one above"
    )
    return None


def _parse_line(tokens: list[str], n_classes: int, where: str, problems: list[str]):
    """(class id, x1, y1, x2, y2) in fractions, or None with the problem noted."""
    if len(tokens) == 6:
        problems.append(
            f"{where}: 6 values; a label has 5 (class x_center y_center width "
            "height): the 6th looks like a prediction's confidence, remove it"
        )
        return None
    if len(tokens) != 5 and (len(tokens) < 7 or len(tokens) % 2 == 0):
        problems.append(
            f"{where}: {len(tokens)} values; expected 5 (class x_center y_center "
            "width height) or a polygon (class x1 y1 x2 y2 x3 y3 ...)"
        )
        return None
    cls, values = _integer(tokens[0]), [_number(t) for t in tokens[1:]]
    if cls is None or not 0 <= cls < n_classes:
        problems.append(
            f"{where}: class {tokens[0]!r} is not an id from 0 to {n_classes - 1} "
            "(the names file lists the classes in id order)"
        )
        return None
    if any(v is None for v in values):
        problems.append(f"{where}: a value is not a finite number ({' '.join(tokens)[:60]})")
        return None
    if max(abs(v) for v in values) > MAX_FRACTION:  # type: ignore[arg-type]
        problems.append(
            f"{where}: coordinates are in pixels ({' '.join(tokens)[:60]}); YOLO "
            "labels are fractions of the image's width and height: export as YOLO"
        )
        return None
    if len(values) == 4:
        cx, cy, w, h = values
        return cls, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2  # type: ignore[operator]
    xs, ys = values[0::2], values[1::2]
    return cls, min(xs), min(ys), max(xs), max(ys)  # type: ignore[type-var]


def _shown(path: Path, folder: Path) -> str:
    """A file as a message names it: from the split folder (``labels/a.txt``), or from the data
    set's root for Ultralytics' layout (``labels/train/a.txt``)."""
    for base in (folder, folder.parent.parent):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return display_path(path)


def _read_image(
    image: Path, names: Sequence[str], folder: Path, problems: list[str], dropped: list[str]
) -> AnnotatedImage | None:
    """One image and its label file (None when it has problems); missing file: no objects."""
    label = label_path(image)
    shown = _shown(label, folder)
    size = _image_size(image, problems, _shown(image, folder))
    if size is None:
        return None
    width, height = upright_size(*size)  # fractions of the photo upright (Ultralytics' rule)
    lines: list[str] = []
    if label.is_file():
        try:
            lines = label.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"{shown}: cannot be read as text ({err}); re-export it")
            return None
    n_before = len(problems)
    raw, labels = [], []
    for k, line in enumerate(lines, start=1):
        if line.strip():
            parsed = _parse_line(line.split(), len(names), f"{shown}: line {k}", problems)
            if parsed is not None:
                cls, x1, y1, x2, y2 = parsed
                raw.append((x1 * width, y1 * height, x2 * width, y2 * height))
                labels.append(names[cls])
    if len(problems) > n_before:
        return None
    return _upright_image(image, size, raw, labels, False, shown, problems, dropped)


def read_yolo(folder: str | Path, class_names: Sequence[str] | None = None) -> AnnotationSet:
    """One split of a YOLO data set (see the module docstring for the layouts).

    ``class_names`` stand in for a missing names file (ids index them). Degenerate boxes are
    dropped with one ``DroppedBoxWarning``; images without a label file are read as empty with
    one ``UnlabelledImageWarning``. Raises :class:`AnnotationError` listing every problem.
    """
    folder = Path(folder)
    problems: list[str] = []
    if class_names is not None and names_file(folder) is None:
        names: list[str] | None = list(class_names)
    else:
        names = find_names(folder, problems)
    images = _image_files(_images_folder(folder))
    if not images and (hint := split_hint(folder)):  # Ultralytics' root: images/train, ...
        problems = [hint]
    elif not images:
        problems.append(f"{display_path(_images_folder(folder))}: no images found")
    if problems or names is None:
        raise AnnotationError(problems, folder)
    by_label: dict[Path, list[Path]] = {}
    for image in images:
        by_label.setdefault(label_path(image), []).append(image)
    for label, shared in by_label.items():
        if len(shared) > 1:
            problems.append(
                f"{', '.join(p.name for p in shared)} share the label file "
                f"{_shown(label, folder)}; rename all but one"
            )
    for label in sorted({p.parent for p in by_label}):
        for txt in sorted(label.glob("*.txt")) if label.is_dir() else []:
            if txt.name not in NOT_LABELS and txt not in by_label:
                problems.append(
                    f"{_shown(txt, folder)}: a label file without its image; copy "
                    "the image in or delete the label"
                )
    dropped: list[str] = []
    found = [_read_image(image, names, folder, problems, dropped) for image in images]
    if problems:
        raise AnnotationError(problems, folder)
    warn_dropped(dropped, display_path(folder))
    unlabelled = [image.name for image in images if not label_path(image).is_file()]
    if unlabelled:
        warnings.warn(
            f"{display_path(folder)}: {len(unlabelled)} image(s) without a label file, "
            f"read as images with no objects: {first_few(unlabelled, sep=', ')}",
            UnlabelledImageWarning,
            stacklevel=3,
        )
    return AnnotationSet(tuple(names), [img for img in found if img is not None])


def yolo_lines(img: AnnotatedImage, class_names: Sequence[str]) -> str:
    """An image's label file: ``class x_center y_center width height``, 6 decimals (under a
    thousandth of a pixel on a 640 px photo)."""
    index = {name: i for i, name in enumerate(class_names)}
    lines = []
    for (x1, y1, x2, y2), name in zip(img.boxes.tolist(), img.labels):
        cx, cy = (x1 + x2) / 2 / img.width, (y1 + y2) / 2 / img.height
        w, h = (x2 - x1) / img.width, (y2 - y1) / img.height
        lines.append(f"{index[name]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "".join(line + "\n" for line in lines)


def write_yolo(aset: AnnotationSet, folder: str | Path, copy_images: bool = True) -> Path:
    """``folder/images``, ``folder/labels`` (one ``.txt`` per image, empty when it has no boxes)
    and ``folder/data.yaml`` with the class names: the split layout Roboflow exports."""
    import yaml

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    for img in aset.images:
        target = folder / "images" / img.image_path.name
        if copy_images and img.image_path.resolve() != target.resolve():
            shutil.copyfile(img.image_path, target)
        atomicio.write_text(label_path(target), yolo_lines(img, aset.class_names))
    meta = {"nc": len(aset.class_names), "names": list(aset.class_names)}
    atomicio.write_text(folder / "data.yaml", yaml.safe_dump(meta, sort_keys=False))
    return folder
