"""Photos with an EXIF orientation tag: every reader puts the boxes on the cells of the photo
turned upright, whichever coordinates its format stores, and the VOC writer turns them back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.conftest import ROOT
from utils.annotations import (
    AnnotatedImage,
    AnnotationError,
    AnnotationSet,
    load_annotations,
    read_voc,
    voc_xml,
    write_yolo,
)
from utils.annotations.orientation import ORIENTATION_TAG, to_stored, to_upright, upright_size

STORED = (60, 40)  # width, height of the pixels as stored
BOX = (10, 6, 31, 17)  # a white rectangle on the stored pixels (x2, y2 exclusive)


def _photo(path: Path, orientation: int) -> Path:
    """A black photo with one white rectangle at ``BOX`` on its stored pixels, tagged."""
    pixels = np.zeros((STORED[1], STORED[0], 3), np.uint8)
    x1, y1, x2, y2 = BOX
    pixels[y1:y2, x1:x2] = 255
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    Image.fromarray(pixels).save(path, exif=exif)  # PNG: lossless, keeps the tag
    return path


def _white_box(image: Image.Image) -> list[float]:
    """The white rectangle's box (x2, y2 exclusive) on a picture, as Pillow turned it."""
    ys, xs = np.nonzero(np.asarray(image.convert("L")) > 128)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_box_mapping_follows_pillows_exif_transpose(tmp_path, orientation):
    with Image.open(_photo(tmp_path / "p.png", orientation)) as img:
        upright = ImageOps.exif_transpose(img)
    assert upright.size == upright_size(*STORED, orientation)
    mapped = to_upright(np.array([BOX]), STORED, orientation)
    assert mapped[0].tolist() == _white_box(upright)
    assert to_stored(mapped, upright.size, orientation)[0].tolist() == list(BOX)


def _voc(folder: Path, name: str, size: tuple[int, int], box) -> None:
    (folder / Path(name).with_suffix(".xml")).write_text(
        voc_xml(AnnotatedImage(folder / name, *size, np.array([box], np.float32), ["Cell"]))
    )


def _on_the_rectangle(img: AnnotatedImage) -> None:
    """The loaded picture is upright and its box sits exactly on the white rectangle."""
    picture = img.load_image()
    assert picture.size == (img.width, img.height)
    assert img.boxes[0].tolist() == _white_box(picture)


@pytest.mark.parametrize("orientation", [3, 6, 8, 5])
def test_voc_boxes_on_the_stored_pixels_as_labelimg_draws_them(tmp_path, orientation):
    _photo(tmp_path / "p.png", orientation)
    _voc(tmp_path, "p.png", STORED, BOX)  # labelImg: <size> and boxes as stored
    (img,) = read_voc(tmp_path).images
    assert img.orientation == orientation
    _on_the_rectangle(img)


def test_voc_from_a_tool_that_turned_the_photo_upright(tmp_path):
    _photo(tmp_path / "p.png", 6)
    upright = upright_size(*STORED, 6)
    _voc(tmp_path, "p.png", upright, to_upright(np.array([BOX]), STORED, 6)[0])
    _on_the_rectangle(read_voc(tmp_path).images[0])


@pytest.mark.parametrize("orientation", [3, 6])
def test_voc_written_for_a_tagged_photo_is_what_labelimg_shows_and_reads_back(
    tmp_path, orientation
):
    _photo(tmp_path / "p.png", orientation)
    _voc(tmp_path, "p.png", STORED, BOX)
    (img,) = read_voc(tmp_path).images
    text = voc_xml(img)  # written from the upright boxes
    root = ET.fromstring(text)
    assert (int(root.findtext("size/width")), int(root.findtext("size/height"))) == STORED
    corners = [int(root.findtext(f"object/bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")]
    assert corners == list(BOX)
    (tmp_path / "p.xml").write_text(text)
    back = read_voc(tmp_path).images[0]
    np.testing.assert_array_equal(back.boxes, img.boxes)


def _coco(tmp_path: Path, size: tuple[int, int], box) -> Path:
    x1, y1, x2, y2 = (float(v) for v in box)
    data = {
        "images": [{"id": 1, "file_name": "p.png", "width": size[0], "height": size[1]}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1]}
        ],
        "categories": [{"id": 1, "name": "Cell"}],
    }
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("orientation", [3, 6])
def test_coco_boxes_on_the_upright_photo_as_label_studio_draws_them(tmp_path, orientation):
    _photo(tmp_path / "p.png", orientation)
    upright = upright_size(*STORED, orientation)
    path = _coco(tmp_path, upright, to_upright(np.array([BOX]), STORED, orientation)[0])
    _on_the_rectangle(load_annotations(path).images[0])


def test_coco_of_a_sideways_photo_labelled_as_stored_and_a_wrong_size(tmp_path):
    _photo(tmp_path / "p.png", 6)
    _on_the_rectangle(load_annotations(_coco(tmp_path, STORED, BOX)).images[0])
    with pytest.raises(AnnotationError, match=r"file is 60x40 \(40x60 upright\)"):
        load_annotations(_coco(tmp_path, (100, 100), BOX))


@pytest.mark.parametrize("orientation", [3, 6])
def test_yolo_fractions_are_of_the_upright_photo(tmp_path, orientation):
    _photo(tmp_path / "p.png", orientation)
    upright = upright_size(*STORED, orientation)
    box = to_upright(np.array([BOX]), STORED, orientation)
    tagged = AnnotatedImage(tmp_path / "p.png", *upright, box, ["Cell"], orientation)
    split = write_yolo(AnnotationSet(("Cell",), [tagged]), tmp_path / "yolo")
    (img,) = load_annotations(split).images
    assert img.orientation == orientation
    np.testing.assert_allclose(img.boxes, box, atol=1e-3)
    picture = img.load_image()
    assert img.boxes[0].round().tolist() == _white_box(picture)


def test_training_sees_the_pixels_the_app_serves_for_every_kind_of_upload(tmp_path):
    """A labelled 16-bit camera TIFF, a tagged phone photo, a transparent PNG or a palette GIF
    trains on the same RGB pixels the app and ``count`` compute from it (a 16-bit TIFF through
    Pillow's ``convert("RGB")`` alone was white all over)."""
    from utils.images import load_image, write_odd_uploads

    photo = ROOT / "data" / "test" / "microalgae_000.jpg"
    files = write_odd_uploads(tmp_path / "odd", photo, huge_side=900)
    usable = [
        p
        for p in files.values()
        if p.stem in ("phone_rotated", "camera_16bit", "cutout", "palette", "huge")
    ]
    assert len(usable) == 5
    folder = tmp_path / "labelled"
    folder.mkdir()
    for path in usable:
        (folder / path.name).write_bytes(path.read_bytes())
        with Image.open(path) as img:
            stored = img.size
        labelled = AnnotatedImage(folder / path.name, *stored, np.array([[5, 5, 40, 30]]), ["Cell"])
        (folder / f"{path.stem}.xml").write_text(voc_xml(labelled))
    for img in read_voc(folder).images:
        served = np.asarray(load_image(img.image_path).image)
        trained = np.asarray(img.load_image())
        assert trained.shape == (img.height, img.width, 3)
        np.testing.assert_array_equal(trained, served, err_msg=img.name)
        assert trained.std() > 10, img.name  # a photo, not a blank frame
