"""Pre-labels for review: the counter's boxes written as labelImg XML, COCO JSON or YOLO load back
through ``load_annotations`` with the same boxes, so a person can fix them and retrain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ARCHIVE_THRESHOLD as THRESHOLD  # tens of boxes per photo
from utils import batch, cli
from utils.annotations import load_annotations
from utils.loading import load_predictor
from utils.prelabels import (
    LS_IMAGE_PREFIX,
    prelabel_set,
    read_labelstudio_prelabels,
    write_coco_prelabels,
    write_prelabels,
)
from utils.synth import TEST_SEEDS, generate_image


@pytest.fixture(scope="module")
def model(archive_onnx) -> Path:
    """conftest's archive model (untrained heatmap counter, 128 px, a threshold among its peaks)."""
    return archive_onnx


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("originals")
    paths = []
    for seed, (w, h) in zip(TEST_SEEDS[:3], [(256, 256), (320, 240), (200, 260)]):
        image, _, _ = generate_image(seed, 256)
        path = folder / f"photo_{seed}.jpg"
        image.resize((w, h)).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture()
def photos(originals, tmp_path) -> list[Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in originals:
        shutil.copy(path, folder / path.name)
    return sorted(folder.glob("*.jpg"))


def _rows(model: Path, photos: list[Path]) -> list[dict]:
    predictor = load_predictor(model)
    return [batch.count_image(predictor, p, THRESHOLD, boxes=True) for p in photos]


def _boxes(row: dict, decimals: int = 0) -> np.ndarray:
    """What a label file can hold: the row's boxes clipped to the photo, rounded, not empty."""
    found = json.loads(row[batch.BOXES_KEY])
    boxes = np.asarray(found["boxes"], np.float64).reshape(-1, 4)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, found["width"])
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, found["height"])
    boxes = boxes.round(decimals)
    return boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]


def test_voc_prelabels_load_back_with_the_same_boxes(model, photos) -> None:
    rows = _rows(model, photos)
    assert all(r["count"] > 3 for r in rows)  # something to review on every photo
    message = write_prelabels(rows, ("Microalgae",), "voc")
    assert message.startswith("Wrote 3 Pascal VOC pre-label file(s)")
    aset = load_annotations(photos[0].parent)
    assert [img.name for img in aset] == [p.name for p in photos]
    for img, row in zip(aset, rows):
        assert 0 < len(img.boxes) <= row["count"]
        np.testing.assert_array_equal(img.boxes, _boxes(row).astype(np.float32))
        assert set(img.labels) == {"Microalgae"}
        found = json.loads(row[batch.BOXES_KEY])
        assert (img.width, img.height) == (found["width"], found["height"])


def test_voc_prelabels_never_overwrite_a_persons_labels(model, photos) -> None:
    mine = photos[0].with_suffix(".xml")
    mine.write_text("<annotation>my careful labels</annotation>", "utf-8")
    message = write_prelabels(_rows(model, photos), ("Microalgae",), "voc")
    assert "kept 1 existing XML file(s)" in message
    assert mine.read_text("utf-8") == "<annotation>my careful labels</annotation>"
    assert photos[1].with_suffix(".xml").exists()


def test_coco_prelabels_load_back_and_a_resumed_job_merges(model, photos) -> None:
    rows = _rows(model, photos)
    target = photos[0].parent / "prelabels.json"
    write_coco_prelabels(prelabel_set(rows[:2], ("Microalgae",), whole_pixels=False), target)
    write_coco_prelabels(prelabel_set(rows[2:], ("Microalgae",), whole_pixels=False), target)
    aset = load_annotations(target)  # the second write kept the first two images
    assert [img.name for img in aset] == [p.name for p in photos]
    for img, row in zip(aset, rows):
        np.testing.assert_allclose(img.boxes, _boxes(row, 2), atol=0.006)
        assert (img.width, img.height) == (
            json.loads(row[batch.BOXES_KEY])["width"],
            json.loads(row[batch.BOXES_KEY])["height"],
        )


def test_yolo_prelabels_load_back_and_never_overwrite_a_persons_labels(model, photos) -> None:
    rows = _rows(model, photos)
    mine = photos[2].with_suffix(".txt")
    mine.write_text("0 0.5 0.5 0.1 0.1\n", "utf-8")  # a person's label file: kept as it is
    message = write_prelabels(rows, ("Microalgae",), "yolo")
    assert message.startswith("Wrote 2 YOLO pre-label file(s) and classes.txt")
    assert "kept 1 existing .txt file(s)" in message
    assert mine.read_text("utf-8") == "0 0.5 0.5 0.1 0.1\n"
    aset = load_annotations(photos[0].parent)  # CVAT's YOLO 1.1 layout: beside the images
    assert aset.class_names == ("Microalgae",) and [i.name for i in aset] == [p.name for p in photos]
    for img, row in zip(aset.images[:2], rows[:2]):
        # pixels rounded to 2 decimals, then fractions to 6: at most 0.005 + 0.0003 px apart
        np.testing.assert_allclose(img.boxes, _boxes(row, 2), atol=0.006)


def test_yolo_prelabels_refuse_a_classes_file_with_other_names(model, photos) -> None:
    theirs = photos[0].parent / "classes.txt"
    theirs.write_text("RBC\nWBC\n", "utf-8")
    with pytest.raises(ValueError, match="classes.txt lists other classes than the model's"):
        write_prelabels(_rows(model, photos), ("Microalgae",), "yolo")
    assert not photos[0].with_suffix(".txt").exists()  # refused before writing anything
    assert theirs.read_text("utf-8") == "RBC\nWBC\n"


@pytest.mark.parametrize("kind", ["voc", "yolo"])
def test_prelabels_of_phone_photos_with_an_orientation_tag_sit_on_the_cells(
    model, originals, tmp_path, kind
) -> None:
    """A phone stores a photo sideways (or upside down) and tags it; the loader counts it
    upright. Its pre-labels must load back on the same cells as the upright photo's."""
    from PIL import Image

    from utils.annotations.orientation import ORIENTATION_TAG

    folder = tmp_path / "phone"
    folder.mkdir()
    with Image.open(originals[1]) as img:  # 320 x 240
        upright = img.convert("RGB")
    upright.save(folder / "upright.png")
    for tag, turn in [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_90)]:
        exif = Image.Exif()
        exif[ORIENTATION_TAG] = tag  # the stored pixels turned so that the tag makes them upright
        upright.transpose(turn).save(folder / f"tag{tag}.png", exif=exif)
    files = sorted(folder.glob("*.png"))
    rows = [batch.count_image(load_predictor(model), p, THRESHOLD, boxes=True) for p in files]
    write_prelabels(rows, ("Microalgae",), kind)
    aset = {img.name: img for img in load_annotations(folder)}
    reference = aset["upright.png"]
    assert len(reference.boxes) > 3
    for name in ("tag3.png", "tag6.png"):
        img = aset[name]
        assert (img.width, img.height) == (320, 240) and img.load_image().size == (320, 240)
        np.testing.assert_allclose(img.boxes, reference.boxes, atol=0.01)  # YOLO: 6 decimals


def test_error_rows_get_no_prelabels(model, photos) -> None:
    broken = photos[0].parent / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff truncated")
    rows = _rows(model, [*photos, broken])
    aset = prelabel_set(rows, ("Microalgae",))
    assert len(aset) == 3 and "broken.jpg" not in {img.name for img in aset}


def test_cli_writes_prelabels_that_train_would_read(model, photos, tmp_path, capsys) -> None:
    folder = photos[0].parent
    out = tmp_path / "counts.csv"
    code = cli.main(
        [
            "count",
            "--checkpoint",
            str(model),
            str(folder),
            "--out",
            str(out),
            "--prelabels",
            "coco",
            "--prelabels-out",
            str(folder / "review.json"),
            "--quiet",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "Wrote COCO pre-labels of 3 image(s)" in text
    counted = {Path(r["file"]).name: r["count"] for r in batch.read_table(out)}
    aset = load_annotations(folder / "review.json")
    assert {img.name for img in aset} == set(counted)
    # every counted cell is a box to review, except those wholly in the letterbox padding
    # (an untrained model finds some there); the message says how many were left out
    left_out = sum(counted.values()) - aset.num_boxes
    assert 0 < aset.num_boxes and (left_out == 0 or f"({left_out} box(es) left out" in text)


def test_labelstudio_prelabels_round_trip_in_percent_with_scores(model, photos) -> None:
    rows = _rows(model, photos)
    target = photos[0].parent / "tasks.json"
    write_prelabels(rows[2:], ("Microalgae",), "labelstudio", target)
    message = write_prelabels(rows[:2], ("Microalgae",), "labelstudio", target)  # resumed
    assert message.startswith("Wrote Label Studio pre-annotations of 2 image(s)")
    tasks = json.loads(target.read_text("utf-8"))
    assert [t["data"]["image"] for t in tasks] == [LS_IMAGE_PREFIX + p.name for p in photos]
    first = tasks[0]["predictions"][0]["result"][0]
    assert first["type"] == "rectanglelabels" and 0 <= first["value"]["x"] <= 100
    assert 0 < first["score"] <= 1
    aset = read_labelstudio_prelabels(target, ("Microalgae",))
    for img, row, path in zip(aset, rows, photos):
        assert img.image_path == path
        np.testing.assert_allclose(img.boxes, _boxes(row, 2), atol=0.01)
