"""Read, write and check box annotations: Pascal VOC (labelImg) and COCO JSON (Label Studio, CVAT).

Every loader returns the same :class:`AnnotationSet`: a list of images with their boxes in
pixels (x1, y1, x2, y2) and class names. Whatever tool you label with, the rest of the course
sees one format.

Validation is strict and *complete*: a loader checks every file, collects every problem it
finds and raises a single :class:`AnnotationError` that lists them all, each naming its file,
so that a learner fixes a folder in one pass instead of one error per run. Nothing is dropped
silently; an image with no boxes is valid (it teaches the model what "no cells" looks like).

Decisions worth knowing:

- A box may stick out of the image by at most ``BOX_TOLERANCE_PX`` (1 px, the usual
  off-by-one of labelling tools); it is then clipped to the image. Further out is an error.
- Boxes of zero or negative width or height are errors.
- An image file in a VOC folder without an XML beside it is an error: an unlabelled image
  must not be mistaken for an image without cells. Save it in labelImg (an empty XML is fine)
  or move it out of the folder.
- VOC coordinates are written as integers, rounded to the nearest pixel, as labelImg does.
"""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from . import atomicio
from .config import display_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
BOX_TOLERANCE_PX = 1.0


class AnnotationError(ValueError):
    """Annotations that cannot be used; the message lists every problem, one file per line."""

    def __init__(self, problems: Sequence[str], source: str | Path | None = None):
        self.problems = list(problems)
        where = f" in {display_path(source)}" if source is not None else ""
        head = f"{len(self.problems)} annotation problem(s){where}:"
        tail = "Fix the files listed above (or remove them from the folder) and load again."
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems), tail]))


@dataclass
class AnnotatedImage:
    """One image file and its boxes (x1, y1, x2, y2 in pixels of that file)."""

    image_path: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.image_path = Path(self.image_path)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = [str(x) for x in self.labels]
        if len(self.labels) != len(self.boxes):
            raise ValueError(
                f"{self.image_path.name}: {len(self.boxes)} boxes but {len(self.labels)} labels"
            )

    def load_image(self) -> Image.Image:
        """The image as PIL RGB."""
        with Image.open(self.image_path) as img:
            return img.convert("RGB")

    @property
    def name(self) -> str:
        return self.image_path.name


@dataclass
class AnnotationSet:
    """Images + boxes + the ordered class names (label id ``i`` is ``class_names[i]``)."""

    class_names: tuple[str, ...]
    images: list[AnnotatedImage]

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> AnnotatedImage:
        return self.images[index]

    def __iter__(self):
        return iter(self.images)

    @property
    def num_boxes(self) -> int:
        return int(sum(len(img.boxes) for img in self.images))

    def label_ids(self, img: AnnotatedImage) -> np.ndarray:
        """0-based class indices of an image's boxes."""
        index = {name: i for i, name in enumerate(self.class_names)}
        try:
            return np.asarray([index[name] for name in img.labels], dtype=np.int64)
        except KeyError as err:
            raise AnnotationError(
                [f"{img.name}: class {err.args[0]!r} is not one of {list(self.class_names)}"]
            ) from None

    def subset(self, indices: Iterable[int]) -> AnnotationSet:
        """A new set with the images at ``indices`` (same class names)."""
        return AnnotationSet(self.class_names, [self.images[i] for i in indices])

    def summary(self) -> str:
        """One line: images, boxes, classes."""
        return f"{len(self)} images, {self.num_boxes} boxes, classes {list(self.class_names)}"


# ---------------------------------------------------------------- checks shared by all readers


def _image_size(path: Path, problems: list[str], label: str) -> tuple[int, int] | None:
    """(width, height) of a readable image, else a problem and None."""
    if not path.is_file():
        problems.append(f"{label}: image file {path.name} is missing; copy it beside the labels")
        return None
    try:
        with Image.open(path) as img:
            img.load()  # decodes: catches truncated and corrupt files, not only bad headers
            return img.size
    except Exception as err:  # PIL raises several types for broken files
        problems.append(
            f"{label}: image {path.name} cannot be read ({type(err).__name__}: {err}); "
            "re-export or replace the file"
        )
        return None


def _check_boxes(
    raw: list[tuple[float, float, float, float]],
    width: int,
    height: int,
    label: str,
    problems: list[str],
) -> np.ndarray:
    """Clip boxes that stick out by <= 1 px; report the others and empty boxes."""
    boxes = np.asarray(raw, dtype=np.float32).reshape(-1, 4)
    tol = BOX_TOLERANCE_PX
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        where = f"{label}: box {i + 1} ({x1:g}, {y1:g}, {x2:g}, {y2:g})"
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            problems.append(f"{where} has a coordinate that is not a finite number; redraw it")
        elif x2 <= x1 or y2 <= y1:
            problems.append(f"{where} has zero or negative area; redraw or delete it")
        elif x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
            problems.append(
                f"{where} lies outside the {width}x{height} image; redraw it inside the image"
            )
    if len(boxes):
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    return boxes


def _check_classes(
    labels: list[str], class_names: Sequence[str] | None, label: str, problems: list[str]
) -> None:
    if class_names is None:
        return
    for name in sorted(set(labels) - set(class_names)):
        problems.append(
            f"{label}: unknown class {name!r}; expected one of {list(class_names)} "
            "(fix the label or pass class_names)"
        )


# ---------------------------------------------------------------- Pascal VOC (labelImg)


def _text(node: ET.Element, path: str) -> str | None:
    child = node.find(path)
    if child is None or child.text is None or not child.text.strip():
        return None
    return child.text.strip()


def _number(value: object) -> float | None:
    """A finite number from XML text or JSON, or None when it is not one.

    NaN and infinity parse as floats but poison training (NaN boxes pass every ``<`` check),
    and JSON ``true`` is not a coordinate.
    """
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _integer(value: object) -> int | None:
    """A COCO id: an integer (or an integral number / digit string), else None."""
    number = _number(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def _kind(value: object) -> str:
    """How to name a wrong value in a message without printing all of it."""
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "an object"
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


def _parse_voc_xml(
    xml_path: Path, class_names: Sequence[str] | None, problems: list[str]
) -> AnnotatedImage | None:
    label = xml_path.name
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        problems.append(f"{label}: not valid XML ({err}); re-save it from the labelling tool")
        return None
    if root.tag != "annotation":
        problems.append(
            f"{label}: root element is <{root.tag}>, expected <annotation> (Pascal VOC)"
        )
        return None
    filename = _text(root, "filename")
    if filename is None:
        problems.append(f"{label}: missing required field <filename>")
        return None
    image_path = xml_path.parent / Path(filename.replace("\\", "/")).name
    if not image_path.is_file():
        other = _text(root, "path")  # labelImg's absolute path: last resort, other machine
        if other and Path(other).is_file():
            image_path = Path(other)
    size = _image_size(image_path, problems, label)

    raw_boxes, labels, ok = [], [], True
    for k, obj in enumerate(root.findall("object"), start=1):
        name = _text(obj, "name")
        coords = [_text(obj, f"bndbox/{tag}") for tag in ("xmin", "ymin", "xmax", "ymax")]
        if name is None:
            problems.append(f"{label}: object {k} is missing required field <name>")
            ok = False
            continue
        if any(c is None for c in coords):
            problems.append(f"{label}: object {k} ({name}) is missing <bndbox> xmin/ymin/xmax/ymax")
            ok = False
            continue
        numbers = [_number(c) for c in coords]
        bad = [tag for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), numbers) if v is None]
        if bad:
            problems.append(
                f"{label}: object {k} ({name}) <bndbox> {'/'.join(bad)} is not a finite number "
                f"(got {', '.join(str(c)[:20] for c in coords)}); redraw the box"
            )
            ok = False
            continue
        raw_boxes.append(tuple(numbers))  # type: ignore[arg-type]
        labels.append(name)
    _check_classes(labels, class_names, label, problems)
    if size is None or not ok:
        return None
    width, height = size
    xml_size = _number(_text(root, "size/width")), _number(_text(root, "size/height"))
    if all(v is not None and v > 0 for v in xml_size):  # labelImg writes 0 when unknown
        xml_w, xml_h = (int(v) for v in xml_size)  # type: ignore[arg-type]
        if (xml_w, xml_h) != (width, height):
            problems.append(
                f"{label}: <size> says {xml_w}x{xml_h} but {image_path.name} is "
                f"{width}x{height}; the boxes were drawn on another version of the image"
            )
            return None
    n_before = len(problems)
    boxes = _check_boxes(raw_boxes, width, height, label, problems)
    if len(problems) > n_before:
        return None
    return AnnotatedImage(image_path, width, height, boxes, labels)


def read_voc(folder: str | Path, class_names: Sequence[str] | None = None) -> AnnotationSet:
    """A folder of labelImg Pascal VOC files (one ``.xml`` per image, images beside them).

    ``class_names=None`` infers them (sorted); otherwise any other class is an error.
    Raises :class:`AnnotationError` listing every problem found.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError([f"{display_path(folder)} is not a folder"], None)
    xml_files = sorted(folder.glob("*.xml"))
    problems: list[str] = []
    if not xml_files:
        problems.append(
            f"{display_path(folder)} holds no .xml files; save labels in Pascal VOC format"
        )
    images = [_parse_voc_xml(p, class_names, problems) for p in xml_files]
    labelled = {p.stem for p in xml_files}
    for img_path in sorted(folder.iterdir()):
        if img_path.suffix.lower() in IMAGE_SUFFIXES and img_path.stem not in labelled:
            problems.append(
                f"{img_path.name}: image without an XML file; label it (an empty XML means "
                "'no cells') or move it out of the folder"
            )
    if problems:
        raise AnnotationError(problems, folder)
    found = [img for img in images if img is not None]
    names = tuple(class_names) if class_names is not None else _sorted_names(found)
    return AnnotationSet(names, found)


def _sorted_names(images: Iterable[AnnotatedImage]) -> tuple[str, ...]:
    return tuple(sorted({name for img in images for name in img.labels}))


def _indent(elem: ET.Element, level: int = 0) -> None:
    """Tab indentation like labelImg's (ET.indent only exists from Python 3.9 with spaces)."""
    pad = "\n" + "\t" * level
    if len(elem):
        if not (elem.text and elem.text.strip()):
            elem.text = pad + "\t"
        for child in elem:
            _indent(child, level + 1)
        if not (child.tail and child.tail.strip()):
            child.tail = pad
    if level and not (elem.tail and elem.tail.strip()):
        elem.tail = pad


def voc_xml(img: AnnotatedImage, folder_name: str = "", filename: str | None = None) -> str:
    """The labelImg XML text of one image (``path`` holds the file name: no machine paths)."""
    filename = filename or img.image_path.name
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder_name
    ET.SubElement(root, "filename").text = filename
    ET.SubElement(root, "path").text = filename
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "Unknown"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(img.width)
    ET.SubElement(size, "height").text = str(img.height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    for box, name in zip(img.boxes.tolist(), img.labels):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        touches = x1 <= 0 or y1 <= 0 or x2 >= img.width or y2 >= img.height
        ET.SubElement(obj, "truncated").text = "1" if touches else "0"
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (x1, y1, x2, y2)):
            ET.SubElement(bnd, tag).text = str(value)
    _indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write_voc(aset: AnnotationSet, folder: str | Path, copy_images: bool = True) -> Path:
    """Write one labelImg XML per image into ``folder`` (and copy the images there)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for img in aset.images:
        target = folder / img.image_path.name
        if copy_images and img.image_path.resolve() != target.resolve():
            shutil.copyfile(img.image_path, target)
        xml = voc_xml(img, folder_name=folder.name)
        atomicio.write_text(folder / f"{img.image_path.stem}.xml", xml)
    return folder


# ---------------------------------------------------------------- COCO JSON (Label Studio, CVAT)


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
    Raises :class:`AnnotationError` listing every problem found.
    """
    json_path = Path(json_path)
    images_dir = Path(images_dir) if images_dir is not None else json_path.parent
    label = json_path.name
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
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
    class_names = tuple(categories[i] for i in sorted(categories))

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
    for image_id, entry in entries.items():
        path = _resolve_coco_image(str(entry["file_name"]), images_dir)
        where = f"{label} ({path.name})"
        size = _image_size(path, problems, where)
        if size is None:
            continue
        width, height = size
        if (
            int(_number(entry.get("width")) or width) != width
            or int(_number(entry.get("height")) or height) != height
        ):
            problems.append(
                f"{where}: JSON says {entry.get('width')}x{entry.get('height')} but the file is "
                f"{width}x{height}; the boxes were drawn on another version of the image"
            )
            continue
        raw, names = per_image[image_id]
        n_before = len(problems)
        boxes = _check_boxes(raw, width, height, where, problems)
        if len(problems) == n_before:
            images.append(AnnotatedImage(path, width, height, boxes, names))
    if problems:
        raise AnnotationError(problems, json_path.parent)
    images.sort(key=lambda img: img.image_path.name)
    return AnnotationSet(class_names, images)


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


# ---------------------------------------------------------------- one entry point


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
