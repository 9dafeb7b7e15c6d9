"""VOC / COCO reading, writing and validation: every problem is reported, naming its file."""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.annotations import (
    AnnotatedImage,
    AnnotationError,
    AnnotationSet,
    DroppedBoxWarning,
    load_annotations,
    read_coco,
    read_voc,
    write_coco,
    write_voc,
)


def _image(path: Path, size: tuple[int, int] = (120, 90)) -> Path:
    rng = np.random.default_rng(len(path.name))
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def aset(tmp_path) -> AnnotationSet:
    """Three images, two classes, one image without boxes."""
    src = tmp_path / "src"
    src.mkdir()
    images = [
        AnnotatedImage(
            _image(src / "a.jpg"),
            120,
            90,
            np.array([[10, 12, 40, 30], [60, 5, 118, 88]], np.float32),
            ["Microalgae", "Diatom"],
        ),
        AnnotatedImage(
            _image(src / "b.png"), 120, 90, np.array([[0, 0, 120, 90]], np.float32), ["Diatom"]
        ),
        AnnotatedImage(_image(src / "empty.jpg"), 120, 90),
    ]
    return AnnotationSet(("Diatom", "Microalgae"), images)


def _same(a: AnnotationSet, b: AnnotationSet, atol: float = 0.0) -> None:
    assert a.class_names == b.class_names
    assert [i.image_path.name for i in a.images] == [i.image_path.name for i in b.images]
    for x, y in zip(a.images, b.images):
        assert (x.width, x.height) == (y.width, y.height)
        np.testing.assert_allclose(x.boxes, y.boxes, atol=atol)
        assert x.labels == y.labels


def _voc(tmp_path: Path, aset: AnnotationSet) -> Path:
    return write_voc(aset, tmp_path / "voc")


# ---------------------------------------------------------------- round trips


def test_voc_round_trip_multiclass(tmp_path, aset):
    folder = _voc(tmp_path, aset)
    loaded = read_voc(folder)
    _same(aset, loaded)
    assert loaded.num_boxes == 3 and len(loaded) == 3
    assert loaded.label_ids(loaded.images[0]).tolist() == [1, 0]
    assert loaded.images[2].boxes.shape == (0, 4)  # no boxes is valid


def test_voc_xml_has_labelimg_layout(tmp_path, aset):
    root = ET.parse(_voc(tmp_path, aset) / "a.xml").getroot()
    assert [c.tag for c in root] == [
        "folder",
        "filename",
        "path",
        "source",
        "size",
        "segmented",
        "object",
        "object",
    ]
    assert root.findtext("source/database") == "Unknown"
    assert root.findtext("size/depth") == "3"
    obj = root.find("object")
    assert [c.tag for c in obj] == ["name", "pose", "truncated", "difficult", "bndbox"]
    assert obj.findtext("pose") == "Unspecified"
    assert [c.tag for c in obj.find("bndbox")] == ["xmin", "ymin", "xmax", "ymax"]
    assert obj.findtext("bndbox/xmin") == "10"
    assert not Path(root.findtext("path")).is_absolute()  # no machine paths in data/


def test_voc_writes_integer_pixels_rounded(tmp_path):
    img = AnnotatedImage(_image(tmp_path / "x.jpg"), 120, 90, [[10.4, 10.6, 50.5, 60.49]], ["A"])
    loaded = read_voc(write_voc(AnnotationSet(("A",), [img]), tmp_path / "out"))
    assert loaded.images[0].boxes.tolist() == [[10, 11, 50, 60]]


def test_coco_round_trip_multiclass(tmp_path, aset):
    path = write_coco(aset, tmp_path / "src" / "labels.json")
    data = json.loads(path.read_text())
    assert data["annotations"][0]["bbox"] == [10, 12, 30, 18]  # x, y, width, height
    assert [c["name"] for c in data["categories"]] == ["Diatom", "Microalgae"]
    _same(aset, read_coco(path), atol=0.01)


def test_coco_to_voc_and_back(tmp_path, aset):
    coco = read_coco(write_coco(aset, tmp_path / "src" / "labels.json"))
    _same(aset, read_voc(write_voc(coco, tmp_path / "voc")))


def test_class_names_given_set_the_order(tmp_path, aset):
    loaded = read_voc(_voc(tmp_path, aset), class_names=["Microalgae", "Diatom"])
    assert loaded.class_names == ("Microalgae", "Diatom")
    assert loaded.label_ids(loaded.images[0]).tolist() == [0, 1]


def test_load_annotations_detects_the_format(tmp_path, aset):
    folder = _voc(tmp_path, aset)
    _same(aset, load_annotations(folder))
    json_path = write_coco(aset, tmp_path / "src" / "labels.json")
    _same(aset, load_annotations(json_path), atol=0.01)
    _same(aset, load_annotations(json_path.parent), atol=0.01)


def test_load_annotations_refuses_two_json_files(tmp_path, aset):
    write_coco(aset, tmp_path / "src" / "one.json")
    write_coco(aset, tmp_path / "src" / "two.json")
    with pytest.raises(AnnotationError, match="one.json"):
        load_annotations(tmp_path / "src")


def test_label_studio_style_file_names_are_found(tmp_path, aset):
    path = write_coco(aset, tmp_path / "src" / "result.json")
    data = json.loads(path.read_text())
    for entry in data["images"]:
        entry["file_name"] = f"images/{entry['file_name']}"  # Label Studio's export layout
    path.write_text(json.dumps(data))
    assert len(read_coco(path)) == 3


def test_box_one_pixel_out_is_clipped_not_an_error(tmp_path):
    img = AnnotatedImage(_image(tmp_path / "x.jpg"), 120, 90, [[-0.8, 2, 120.9, 90.5]], ["A"])
    json_path = write_coco(AnnotationSet(("A",), [img]), tmp_path / "c.json")
    assert read_coco(json_path).images[0].boxes.tolist() == [[0, 2, 120, 90]]


# ---------------------------------------------------------------- validation errors


def _error(func, *args) -> str:
    with pytest.raises(AnnotationError) as info:
        func(*args)
    return str(info.value)


def _edit_xml(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


def _coco_edit(tmp_path, aset, edit) -> str:
    path = write_coco(aset, tmp_path / "src" / "labels.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))  # json writes NaN as the NaN token, which json reads back
    return _error(read_coco, path)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        pytest.param(
            lambda f: (f / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png"),
            ("b.xml", "b.png", "cannot be read"),
            id="corrupt-image",
        ),
        pytest.param(lambda f: _truncate(f / "a.jpg"), ("a.jpg",), id="truncated-jpeg"),
        pytest.param(
            lambda f: (f / "a.xml").write_text("<annotation><filename>a.jpg</filename>"),
            ("a.xml", "not valid XML"),
            id="xml-does-not-parse",
        ),
        pytest.param(
            lambda f: (f / "empty.jpg").unlink(),
            ("empty.xml", "empty.jpg is missing"),
            id="missing-image",
        ),
        pytest.param(
            lambda f: _image(f / "forgotten.jpg"),
            ("forgotten.jpg", "without an XML"),
            id="image-without-xml",
        ),
    ],
)
def test_damaged_voc_folder_is_named(tmp_path, aset, damage, words):
    folder = _voc(tmp_path, aset)
    damage(folder)
    message = _error(read_voc, folder)
    assert all(word in message for word in words), message


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        pytest.param("<filename>a.jpg</filename>", "", ("<filename>",), id="missing-filename"),
        pytest.param("<ymax>30</ymax>", "", ("object 1", "ymax"), id="missing-bndbox-field"),
        pytest.param(
            "<xmax>40</xmax>",
            "<xmax>400</xmax>",
            ("outside the 120x90 image",),
            id="box-outside-the-image",
        ),
        pytest.param("<width>120</width>", "<width>240</width>", ("240x90",), id="size-mismatch"),
        *(
            pytest.param(
                "<ymax>30</ymax>",
                f"<ymax>{bad}</ymax>",
                ("object 1", "ymax is not a finite number"),
                id=f"non-finite-{bad}",
            )
            for bad in ("nan", "inf", "-Infinity")
        ),
    ],
)
def test_wrong_voc_xml_is_named(tmp_path, aset, old, new, words):
    folder = _voc(tmp_path, aset)
    _edit_xml(folder / "a.xml", old, new)
    message = _error(read_voc, folder)
    assert "a.xml" in message and all(word in message for word in words), message


# ---------------------------------------------------------------- degenerate boxes: dropped


def _one_warning(func, *args):
    """``func(*args)`` and the one DroppedBoxWarning it raised (exactly one, on one line)."""
    with pytest.warns(DroppedBoxWarning) as caught:
        result = func(*args)
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert "\n" not in message
    return result, message


def _set_first_box(xml: Path, **coords: int) -> None:
    """Give the first object of a labelImg file new <bndbox> coordinates."""
    tree = ET.parse(xml)
    for tag, value in coords.items():
        tree.getroot().find(f"object/bndbox/{tag}").text = str(value)
    tree.write(xml)


@pytest.mark.parametrize(
    ("coords", "words"),
    [
        pytest.param({"ymax": 12}, ("zero or negative area",), id="flat"),
        pytest.param(  # a labelImg click without a drag: xmin == xmax and ymin == ymax
            {"xmax": 10, "ymax": 12},
            ("(10, 12, 10, 12)", "zero or negative area"),
            id="click-without-drag",
        ),
        pytest.param({"ymax": 5}, ("negative area",), id="upside-down"),
        pytest.param(
            {"xmin": 130, "xmax": 150}, ("wholly outside the 120x90 image",), id="wholly-outside"
        ),
    ],
)
def test_degenerate_voc_box_is_dropped_with_one_warning(tmp_path, aset, coords, words):
    folder = _voc(tmp_path, aset)
    _set_first_box(folder / "a.xml", **coords)
    loaded, message = _one_warning(read_voc, folder)
    assert "a.xml: box 1" in message and all(word in message for word in words), message
    first = loaded.images[0]
    assert first.labels == ["Diatom"] and first.boxes.tolist() == [[60, 5, 118, 88]]
    assert loaded.num_boxes == 2 and len(loaded) == 3  # the other images are untouched


def test_dropped_boxes_of_several_files_make_one_line(tmp_path, aset):
    folder = _voc(tmp_path, aset)
    _edit_xml(folder / "a.xml", "<ymax>30</ymax>", "<ymax>12</ymax>")
    _edit_xml(folder / "b.xml", "<xmax>120</xmax>", "<xmax>0</xmax>")
    loaded, message = _one_warning(load_annotations, folder)
    assert "dropped 2 box(es)" in message and "a.xml: box 1" in message
    assert "b.xml: box 1" in message
    assert [len(img.boxes) for img in loaded.images] == [1, 0, 0]


def test_coco_degenerate_box_is_dropped_with_one_warning(tmp_path, aset):
    path = write_coco(aset, tmp_path / "src" / "labels.json")
    data = json.loads(path.read_text())
    data["annotations"][1]["bbox"] = [60, 5, 0, 40]  # zero width
    path.write_text(json.dumps(data))
    loaded, message = _one_warning(read_coco, path)
    assert "labels.json (a.jpg): box 2" in message and "zero or negative area" in message
    assert loaded.images[0].labels == ["Microalgae"] and loaded.num_boxes == 2


def test_clean_folders_warn_nothing(tmp_path, aset):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_voc(_voc(tmp_path, aset)).num_boxes == 3


def test_broken_file_is_still_refused_beside_a_dropped_box(tmp_path, aset):
    folder = _voc(tmp_path, aset)
    _edit_xml(folder / "a.xml", "<ymax>30</ymax>", "<ymax>12</ymax>")  # would be dropped
    (folder / "b.xml").write_text("<annotation><filename>b.png</filename>")  # broken
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before any warning: the error says it all
        message = _error(read_voc, folder)
    assert "b.xml" in message and "not valid XML" in message
    assert "a.xml" not in message  # a degenerate box is not a problem


def test_unknown_class_is_named(tmp_path, aset):
    folder = _voc(tmp_path, aset)
    message = _error(read_voc, folder, ["Microalgae"])
    assert "a.xml" in message and "b.xml" in message and "'Diatom'" in message


def test_all_problems_are_reported_at_once(tmp_path, aset):
    folder = _voc(tmp_path, aset)
    (folder / "a.xml").write_text("broken")
    (folder / "empty.jpg").unlink()
    with pytest.raises(AnnotationError) as info:
        read_voc(folder)
    assert len(info.value.problems) == 2
    assert "a.xml" in str(info.value) and "empty.xml" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "nothing").mkdir()
    assert "no .xml" in _error(read_voc, tmp_path / "nothing")


def test_coco_invalid_json_is_named(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text("{not json")
    message = _error(read_coco, path)
    assert "labels.json" in message and "not valid JSON" in message


def _set(*keys_and_value):
    """An edit that sets ``data[k1][k2]...[kn] = value`` in a COCO dict."""
    *keys, last, value = keys_and_value

    def edit(data: dict) -> None:
        for key in keys:
            data = data[key]
        data[last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        pytest.param(
            lambda d: d["annotations"][1].pop("bbox"),
            ("labels.json", "annotations[1]", "bbox"),
            id="missing-field",
        ),
        pytest.param(
            _set("annotations", 0, "category_id", 99),
            ("labels.json", "unknown class", "99"),
            id="unknown-category",
        ),
        pytest.param(
            _set("annotations", 0, "bbox", [100, 80, 50, 50]),
            ("a.jpg", "outside"),
            id="box-outside",
        ),
        pytest.param(
            _set("annotations", 2, "bbox", [1, 2, "wide", 4]),
            ("labels.json", "annotations[2]", "4 numbers"),
            id="non-numeric-bbox",
        ),
        pytest.param(  # it used to become id 0 silently and shift every class
            _set("categories", 0, "id", "x"),
            ("labels.json", "categories[0].id must be an integer (got 'x')"),
            id="category-id-not-an-integer",
        ),
        pytest.param(
            _set("annotations", 0, "category_id", True),
            ("annotations[0].category_id must be an integer (got True)",),
            id="annotation-id-not-an-integer",
        ),
        *(
            pytest.param(
                _set("annotations", 1, "bbox", [1, bad, 5, 5]),
                ("labels.json", "annotations[1].bbox", "all finite"),
                id=f"non-finite-bbox-{bad}",
            )
            for bad in (float("nan"), float("inf"))
        ),
    ],
)
def test_wrong_coco_json_is_named(tmp_path, aset, edit, words):
    message = _coco_edit(tmp_path, aset, edit)
    assert all(word in message for word in words), message


def test_coco_missing_image_is_named(tmp_path, aset):
    path = write_coco(aset, tmp_path / "src" / "labels.json")
    (tmp_path / "src" / "b.png").unlink()
    message = _error(read_coco, path)
    assert "labels.json" in message and "b.png is missing" in message


def test_coco_image_without_annotations_is_valid(tmp_path, aset):
    path = write_coco(aset, tmp_path / "src" / "labels.json")
    empty = [img for img in read_coco(path).images if img.image_path.name == "empty.jpg"]
    assert len(empty) == 1 and empty[0].labels == []


def test_roboflows_group_category_is_not_a_class(tmp_path, aset):
    """Roboflow's COCO lists the data set's name as category 0, every class's supercategory,
    with no box: dropped in one warning line. A group name that labels boxes stays a class."""
    path = write_coco(aset, tmp_path / "src" / "labels.json")
    data = json.loads(path.read_text())
    for cat in data["categories"]:
        cat["supercategory"] = "cells-xyz"
    data["categories"].insert(0, {"id": 0, "name": "cells-xyz", "supercategory": "none"})
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match=r"'cells-xyz' \(id 0\) .* not a class") as caught:
        loaded = read_coco(path)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert loaded.class_names == aset.class_names and loaded.num_boxes == aset.num_boxes
    data["annotations"][0]["category_id"] = 0  # now it labels a box: a class like any other
    path.write_text(json.dumps(data))
    assert read_coco(path).class_names == ("cells-xyz", *aset.class_names)


def test_load_annotations_of_nothing_is_an_error(tmp_path):
    assert "not a folder" in _error(load_annotations, tmp_path / "nope")


def test_load_annotations_takes_an_images_dir_for_coco(tmp_path, aset):
    json_path = write_coco(aset, tmp_path / "elsewhere" / "labels.json")
    with pytest.raises(AnnotationError, match="a.jpg is missing"):
        load_annotations(json_path)
    _same(aset, load_annotations(json_path, images_dir=tmp_path / "src"), atol=0.01)


def test_voc_size_zero_means_unknown(tmp_path, aset):
    folder = _voc(tmp_path, aset)
    _edit_xml(folder / "a.xml", "<width>120</width>", "<width>0</width>")
    assert len(read_voc(folder)) == 3


# ---------------------------------------------------------------- types and finite numbers


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("width", [120], "images[0].width must be a positive number of pixels (got a list)"),
        ("width", "abc", "images[0].width must be a positive number of pixels (got 'abc')"),
        ("id", float("nan"), "images[0].id must be an integer (got nan)"),
        ("id", 1.5, "images[0].id must be an integer (got 1.5)"),
        ("file_name", 7, "images[0].file_name must be a non-empty string (got 7)"),
    ],
)
def test_coco_image_field_types_are_named(tmp_path, aset, field, value, expected):
    message = _coco_edit(tmp_path, aset, _set("images", 0, field, value))
    assert "labels.json" in message and expected in message
    assert "Traceback" not in message


def test_class_names_that_differ_only_in_case_are_warned_about(tmp_path, aset) -> None:
    aset.images[0].labels = ["Diatom", "diatom "]  # a labelling typo: two classes
    folder = write_voc(
        AnnotationSet(("Diatom", "Microalgae", "diatom "), aset.images), tmp_path / "v"
    )
    with pytest.warns(UserWarning, match=r"'Diatom' and 'diatom' differ only in case or spaces"):
        loaded = load_annotations(folder)
    assert loaded.class_names == ("Diatom", "diatom")  # nothing merged behind the learner's back


def test_summary_counts_the_boxes_of_each_class(aset) -> None:
    assert (
        aset.summary()
        == "3 images, 3 boxes, classes ['Diatom', 'Microalgae'] (2 Diatom, 1 Microalgae)"
    )
    one = AnnotationSet(("Diatom",), [aset.images[1]])
    assert one.summary() == "1 images, 1 boxes, classes ['Diatom']"  # one class: as before
