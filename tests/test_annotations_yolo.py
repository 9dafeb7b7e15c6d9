"""YOLO text labels: the layouts Roboflow, Ultralytics, CVAT and Label Studio write, read back
with the same boxes, and every broken file named with what to do."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.test_annotations import _image, _same, aset  # noqa: F401 (aset: a fixture)
from utils.annotations import (
    AnnotationError,
    DroppedBoxWarning,
    UnlabelledImageWarning,
    load_annotations,
    read_yolo,
    write_yolo,
)
from utils.annotations.yolo import label_path

# write_yolo stores fractions with 6 decimals: at most 0.5e-6 x 120 px off per coordinate.
ATOL_PX = 1e-3


def _split(tmp_path: Path, lines: dict[str, str], names: str = "Diatom\nMicroalgae\n") -> Path:
    """A Label Studio style export: images/, labels/, classes.txt; ``lines`` per image stem."""
    root = tmp_path / "export"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for stem, text in lines.items():
        _image(root / "images" / f"{stem}.jpg")
        if text is not None:
            (root / "labels" / f"{stem}.txt").write_text(text)
    (root / "classes.txt").write_text(names)
    return root


def test_written_split_reads_back_with_the_same_boxes(tmp_path, aset):  # noqa: F811
    out = write_yolo(aset, tmp_path / "train")
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["a.txt", "b.txt", "empty.txt"]
    assert (out / "labels" / "empty.txt").read_text() == ""  # an image without cells: empty
    _same(aset, load_annotations(out), atol=ATOL_PX)


@pytest.mark.parametrize("layout", ["roboflow", "ultralytics", "cvat", "labelstudio"])
def test_every_tool_layout_is_found_by_load_annotations(tmp_path, aset, layout):  # noqa: F811
    """Names above the split, labels beside or in the swapped folder: one call reads them all."""
    written = write_yolo(aset, tmp_path / "w")
    root = tmp_path / layout
    if layout == "roboflow":  # dataset/data.yaml, dataset/train/{images,labels}
        split = root / "train"
        shutil.copytree(written, split)
        shutil.move(split / "data.yaml", root / "data.yaml")
    elif layout == "ultralytics":  # dataset/images/train, dataset/labels/train, names as a dict
        split = root / "images" / "train"
        shutil.copytree(written / "images", split)
        shutil.copytree(written / "labels", root / "labels" / "train")
        (root / "data.yaml").write_text(
            "path: .\ntrain: images/train\nnames:\n  0: Diatom\n  1: Microalgae\n"
        )
    elif layout == "cvat":  # obj_train_data/ with images and labels side by side, obj.names
        split = root / "obj_train_data"
        split.mkdir(parents=True)
        for f in [*(written / "images").iterdir(), *(written / "labels").iterdir()]:
            shutil.copy(f, split / f.name)
        (root / "obj.names").write_text("Diatom\nMicroalgae\n")
        (root / "train.txt").write_text("obj_train_data/a.jpg\n")
    else:  # images/, labels/, classes.txt and Label Studio's notes.json, which is not COCO
        split = root
        shutil.copytree(written, split)
        (split / "data.yaml").unlink()
        (split / "classes.txt").write_text("Diatom\nMicroalgae\n")
        (split / "notes.json").write_text('{"categories": [], "info": {}}')
    _same(aset, load_annotations(split), atol=ATOL_PX)


def test_the_root_of_a_data_set_and_its_yaml_point_to_a_split(tmp_path, aset):  # noqa: F811
    root = tmp_path / "dataset"
    for name in ("train", "valid"):
        write_yolo(aset, root / name)
    (root / "data.yaml").write_text("train: ../train/images\nnames: [Diatom, Microalgae]\n")
    ultralytics = tmp_path / "ultralytics"  # images/train + labels/train under one root
    shutil.copytree(root / "train" / "images", ultralytics / "images" / "train")
    shutil.copytree(root / "train" / "labels", ultralytics / "labels" / "train")
    (ultralytics / "data.yaml").write_text("train: images/train\nnames: [Diatom, Microalgae]\n")
    for path in (root, root / "data.yaml", ultralytics):
        with pytest.raises(AnnotationError, match="pass one split's folder, e.g. .*train"):
            load_annotations(path)


def test_label_path_swaps_the_last_images_folder_only_when_labels_exist(tmp_path):
    (tmp_path / "images" / "d" / "images").mkdir(parents=True)
    (tmp_path / "images" / "d" / "labels").mkdir()
    photo = tmp_path / "images" / "d" / "images" / "x.jpg"
    assert label_path(photo) == tmp_path / "images" / "d" / "labels" / "x.txt"
    beside = tmp_path / "images" / "solo" / "x.jpg"  # no labels/solo: the label is beside it
    assert label_path(beside) == beside.with_suffix(".txt")


def test_polygons_become_their_box_and_missing_labels_are_empty_with_a_warning(tmp_path):
    root = _split(
        tmp_path,
        {
            "poly": "1 0.1 0.2 0.5 0.1 0.3 0.6\n\n0 0.5 0.5 0.2 0.2\n",  # a polygon, a blank line
            "unlabelled": None,
        },
    )
    with pytest.warns(UnlabelledImageWarning, match="1 image.*unlabelled.jpg"):
        got = read_yolo(root)
    poly, empty = got.images
    np.testing.assert_allclose(poly.boxes[0], [12, 9, 60, 54], atol=ATOL_PX)  # 120 x 90 photo
    assert poly.labels == ["Microalgae", "Diatom"] and len(empty.boxes) == 0


def test_files_saved_by_windows_notepad_read_the_same(tmp_path):
    """A byte-order mark and CRLF line ends (Notepad's UTF-8) change nothing."""
    root = _split(tmp_path, {"a": "x"}, names="")
    (root / "classes.txt").write_bytes(b"\xef\xbb\xbfDiatom\r\nMicroalgae\r\n")
    (root / "labels" / "a.txt").write_bytes(b"\xef\xbb\xbf1 0.5 0.5 0.2 0.2\r\n")
    got = read_yolo(root)
    assert got.class_names == ("Diatom", "Microalgae") and got.images[0].labels == ["Microalgae"]


def test_degenerate_boxes_are_dropped_with_one_warning_naming_file_and_line(tmp_path):
    root = _split(tmp_path, {"a": "0 0.5 0.5 0.0 0.1\n1 0.5 0.5 0.2 0.2\n"})
    with pytest.warns(DroppedBoxWarning, match=r"dropped 1 box.*: labels/a.txt: box 1"):
        got = read_yolo(root)
    assert got.images[0].labels == ["Microalgae"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2 0.5 0.5 0.1 0.1\n", r"a.txt: line 1: class '2' is not an id from 0 to 1"),
        ("0 0.5 0.5 0.1\n", r"a.txt: line 1: 4 values; expected 5"),
        ("0 0.5 0.5 0.1 0.1 0.93\n", r"a.txt: line 1: 6 values.*confidence"),
        ("0 0.5 nan 0.1 0.1\n", r"a.txt: line 1: a value is not a finite number"),
        ("0 60 45 12 9\n", r"a.txt: line 1: coordinates are in pixels"),
        ("0 0.95 0.5 0.3 0.1\n", r"a.txt: box 1 .* lies outside the 120x90 image"),
        (b"\xff\xfe0 0.5\n", r"a.txt: cannot be read as text"),
    ],
)
def test_a_broken_label_line_is_an_error_naming_file_and_line(tmp_path, text, expected):
    root = _split(tmp_path, {"a": "", "b": "0 0.5 0.5 0.1 0.1\n"})
    target = root / "labels" / "a.txt"
    target.write_bytes(text) if isinstance(text, bytes) else target.write_text(text)
    with pytest.raises(AnnotationError, match=expected) as err:
        load_annotations(root)
    assert "b.txt" not in str(err.value)  # only the broken file is named


def test_orphan_labels_shared_labels_and_missing_names_are_errors(tmp_path):
    root = _split(tmp_path, {"a": "0 0.5 0.5 0.1 0.1\n"})
    (root / "labels" / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    _image(root / "images" / "a.png")  # a.jpg and a.png would both read labels/a.txt
    with pytest.raises(AnnotationError) as err:
        read_yolo(root)
    message = str(err.value)
    assert "labels/gone.txt: a label file without its image" in message
    assert "a.jpg, a.png share the label file" in message

    bare = _split(tmp_path / "bare", {"a": "0 0.5 0.5 0.1 0.1\n"})
    (bare / "classes.txt").unlink()
    with pytest.raises(AnnotationError, match="no class names found; put a classes.txt"):
        read_yolo(bare)
    named = load_annotations(bare, class_names=["Cell"])  # the model's names stand in
    assert named.class_names == ("Cell",) and named.images[0].labels == ["Cell"]


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("names: [a, b\n", "not valid YAML"),
        ("nc: 2\n", "needs 'names'"),
        ("names:\n  1: a\n  2: b\n", "names must be numbered 0 to 1"),
        ("nc: 3\nnames: [a, b]\n", "nc is 3 but names lists 2"),
    ],
)
def test_a_broken_data_yaml_is_named(tmp_path, yaml_text, expected):
    root = _split(tmp_path, {"a": "0 0.5 0.5 0.1 0.1\n"})
    (root / "classes.txt").unlink()
    (root / "data.yaml").write_text(yaml_text)
    with pytest.raises(AnnotationError, match=f"data.yaml: {expected}"):
        load_annotations(root)


def test_a_three_class_set_keeps_its_classes_through_yolo(tmp_path):
    """The course's 3-class generated photos, written as YOLO and read back: same counts."""
    from utils.synth_classes import write_mixed_dataset

    write_mixed_dataset(tmp_path / "voc", count=3)
    voc = load_annotations(tmp_path / "voc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing dropped, nothing unlabelled
        back = load_annotations(write_yolo(voc, tmp_path / "yolo"))
    assert len(back.class_names) == 3
    _same(voc, back, atol=ATOL_PX)
    assert back.boxes_per_class() == voc.boxes_per_class()
