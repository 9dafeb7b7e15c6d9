"""Pascal VOC (labelImg): one XML per image, images beside them; read and write.

An image file in a VOC folder without an XML beside it is an error: an unlabelled image must
not be mistaken for an image without cells. VOC coordinates are written as integers, rounded
to the nearest pixel, as labelImg does.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from .. import atomicio
from ..config import display_path
from .checks import (
    _check_classes,
    _folder_set,
    _image_size,
    _number,
    _unlabelled_images,
    _upright_image,
)
from .data import AnnotatedImage, AnnotationError, AnnotationSet
from .orientation import to_stored, upright_size


def _text(node: ET.Element, path: str) -> str | None:
    child = node.find(path)
    if child is None or child.text is None or not child.text.strip():
        return None
    return child.text.strip()


def _parse_voc_xml(
    xml_path: Path, class_names: Sequence[str] | None, problems: list[str], dropped: list[str]
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
    width, height, orientation = size
    upright = upright_size(width, height, orientation)
    on_stored = True  # labelImg draws on the pixels as stored, ignoring an EXIF orientation tag
    xml_size = _number(_text(root, "size/width")), _number(_text(root, "size/height"))
    if all(v is not None and v > 0 for v in xml_size):  # labelImg writes 0 when unknown
        declared = tuple(int(v) for v in xml_size)  # type: ignore[arg-type]
        if declared == upright != (width, height):
            on_stored = False  # a tool that turned the photo upright wrote this file
        elif declared != (width, height):
            problems.append(
                f"{label}: <size> says {declared[0]}x{declared[1]} but {image_path.name} is "
                f"{width}x{height}; the boxes were drawn on another version of the image"
            )
            return None
    return _upright_image(image_path, size, raw_boxes, labels, on_stored, label, problems, dropped)


def read_voc(folder: str | Path, class_names: Sequence[str] | None = None) -> AnnotationSet:
    """A folder of labelImg Pascal VOC files (one ``.xml`` per image, images beside them).

    ``class_names=None`` infers them (sorted); otherwise any other class is an error.
    Degenerate boxes are dropped with one ``DroppedBoxWarning`` (``checks._check_boxes``).
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
    dropped: list[str] = []
    images = [_parse_voc_xml(p, class_names, problems, dropped) for p in xml_files]
    labelled = {p.stem for p in xml_files}
    _unlabelled_images(
        folder, lambda p: p.stem in labelled, "an XML file", "an empty XML", problems
    )
    return _folder_set(images, problems, dropped, folder, class_names)


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
    """The labelImg XML text of one image (``path`` holds the file name: no machine paths).

    The boxes and ``<size>`` are on the pixels as stored, as labelImg shows them, also for a
    photo with an EXIF orientation tag (``annotations.orientation``).
    """
    filename = filename or img.image_path.name
    stored = upright_size(img.width, img.height, img.orientation)  # a quarter turn swaps back
    stored_boxes = to_stored(img.boxes, (img.width, img.height), img.orientation)
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder_name
    ET.SubElement(root, "filename").text = filename
    ET.SubElement(root, "path").text = filename
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "Unknown"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(stored[0])
    ET.SubElement(size, "height").text = str(stored[1])
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    for box, name in zip(stored_boxes.tolist(), img.labels):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        touches = x1 <= 0 or y1 <= 0 or x2 >= stored[0] or y2 >= stored[1]
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
