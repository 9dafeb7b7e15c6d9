"""labelme folders: rectangles, polygons and circles read as boxes; other shapes and broken files
are errors naming file and shape; a photo with an EXIF tag gets its boxes on the cells."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_annotations import _image, _same, aset  # noqa: F401 (aset: a fixture)
from tests.test_orientation import BOX, STORED, _photo, _white_box
from utils.annotations import AnnotationError, load_annotations
from utils.annotations.orientation import to_upright, upright_size


def _shape(label: str, points, kind: str | None = "rectangle") -> dict:
    return {"label": label, "points": points, "group_id": None, "shape_type": kind, "flags": {}}


def _write(folder: Path, image: str, shapes: list, size=(120, 90), image_path=None) -> Path:
    path = folder / f"{Path(image).stem}.json"
    data = {
        "version": "5.5.0",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path or image,
        "imageData": None,
        "imageHeight": size[1],
        "imageWidth": size[0],
    }
    path.write_text(json.dumps(data))
    return path


def test_a_labelme_folder_reads_with_the_same_boxes(tmp_path, aset):  # noqa: F811
    folder = tmp_path / "lm"
    folder.mkdir()
    for img in aset.images:
        (folder / img.name).write_bytes(img.image_path.read_bytes())
        shapes = [
            _shape(name, [[x2, y2], [x1, y1]])  # labelme keeps the drag's order: any corner
            for (x1, y1, x2, y2), name in zip(img.boxes.tolist(), img.labels)
        ]
        _write(folder, img.name, shapes)
    _same(aset, load_annotations(folder))


def test_polygons_and_circles_become_their_boxes_old_files_have_no_shape_type(tmp_path):
    folder = tmp_path / "lm"
    folder.mkdir()
    _image(folder / "a.jpg")
    shapes = [
        _shape("Diatom", [[10, 20], [40, 12], [30, 50]], None),  # labelme 3: shape_type null
        _shape("Diatom", [[60, 45], [60, 55]], "circle"),  # centre, a point on the circle
    ]
    _write(folder, "a.jpg", shapes, image_path="..\\lm\\a.jpg")  # saved on Windows
    (img,) = load_annotations(folder).images
    np.testing.assert_allclose(img.boxes, [[10, 12, 40, 50], [50, 35, 70, 55]])


@pytest.mark.parametrize(
    "shape, expected",
    [
        (_shape("Diatom", [[5, 5]], "point"), r"shape 1 \(Diatom\) is a point, not a box"),
        (_shape("Diatom", [[5, 5], [9, 9]], "line"), r"shape 1 \(Diatom\) is a line, not a box"),
        (_shape("", [[5, 5], [9, 9]]), "shape 1 has no label"),
        (_shape("Diatom", [[5, "x"], [9, 9]]), r"\(Diatom\): points must be .x, y. pairs"),
        (_shape("Diatom", [[5, 5], [9, 9]], "polygon"), r"\(Diatom\): a polygon needs 3 points"),
        (_shape("Diatom", [[5, 5], [300, 9]]), r"box 1 .* lies outside the 120x90 image"),
    ],
)
def test_a_shape_that_is_not_a_usable_box_is_an_error_naming_file_and_shape(
    tmp_path, shape, expected
):
    folder = tmp_path / "lm"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        _image(folder / name)
    _write(folder, "a.jpg", [shape])
    _write(folder, "b.jpg", [_shape("Diatom", [[5, 5], [20, 20]])])
    with pytest.raises(AnnotationError, match=f"a.json: (shape 1 )?{expected}") as err:
        load_annotations(folder)
    assert "b.json" not in str(err.value)


def test_broken_files_missing_images_and_unlabelled_images_are_errors(tmp_path):
    folder = tmp_path / "lm"
    folder.mkdir()
    for name in ("a.jpg", "c.jpg", "d.jpg"):
        _image(folder / name)
    _write(folder, "a.jpg", [])  # no shapes: a photo without cells, fine
    _write(folder, "gone.jpg", [])  # its image is missing
    _write(folder, "c.jpg", [], size=(640, 480))  # drawn on another version of the photo
    (folder / "z.json").write_text("{not json")
    with pytest.raises(AnnotationError) as err:
        load_annotations(folder)
    message = str(err.value)
    assert "gone.json: image file gone.jpg is missing" in message
    assert "c.json: imageWidth x imageHeight say 640x480 but c.jpg is 120x90" in message
    assert "z.json: not a labelme file" in message
    assert "d.jpg: image without a labelme file" in message
    assert "a.json" not in message
    with pytest.raises(AnnotationError, match="a.json is one labelme file: pass its folder"):
        load_annotations(folder / "a.json")


@pytest.mark.parametrize("orientation", [3, 6])
def test_labelme_draws_on_the_upright_photo(tmp_path, orientation):
    folder = tmp_path / "lm"
    folder.mkdir()
    _photo(folder / "p.png", orientation)
    upright = upright_size(*STORED, orientation)
    x1, y1, x2, y2 = to_upright(np.array([BOX]), STORED, orientation)[0].tolist()
    _write(folder, "p.png", [_shape("Cell", [[x1, y1], [x2, y2]])], size=upright)
    (img,) = load_annotations(folder).images
    assert img.boxes[0].tolist() == _white_box(img.load_image())
    assert img.orientation == orientation and (img.width, img.height) == upright
