"""The synthetic microscope data: determinism, realism of the boxes, the committed data/."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from utils import config, synth
from utils.annotations import read_voc


def test_same_seed_same_image_and_boxes():
    a_img, a_boxes, a_labels = synth.generate_image(7, size=160)
    b_img, b_boxes, b_labels = synth.generate_image(7, size=160)
    assert np.array_equal(np.asarray(a_img), np.asarray(b_img))
    assert np.array_equal(a_boxes, b_boxes)
    assert a_labels == b_labels == [synth.CLASS_NAME] * len(a_boxes)


def test_different_seeds_differ():
    a_img, a_boxes, _ = synth.generate_image(1, size=160)
    b_img, b_boxes, _ = synth.generate_image(2, size=160)
    assert not np.array_equal(np.asarray(a_img), np.asarray(b_img))
    assert a_boxes.shape != b_boxes.shape or not np.allclose(a_boxes, b_boxes)


def test_boxes_are_the_same_in_relative_terms_at_any_size():
    _, small, _ = synth.generate_image(3, size=200)
    big = synth.scene_boxes(synth.sample_scene(3), 800)[0]
    assert small.dtype == np.float32 and small.shape[1] == 4
    np.testing.assert_allclose(small / 200, big / 800, atol=1e-5)


def test_image_is_square_rgb_of_the_requested_size():
    image, _, _ = synth.generate_image(0, size=96)
    assert image.size == (96, 96) and image.mode == "RGB"


@pytest.fixture(scope="module")
def scenes():
    return [synth.sample_scene(seed) for seed in range(12)]


def test_box_statistics_match_the_real_profile(scenes):
    boxes = np.concatenate([synth.scene_boxes(s, 1)[0] for s in scenes])
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    ratio = np.maximum(w, h) / np.minimum(w, h)
    real_w, real_h = synth.REAL_PROFILE["width_pct"], synth.REAL_PROFILE["height_pct"]
    for values, real in ((w, real_w), (h, real_h)):
        p5, p50, p95 = np.percentile(values, [5, 50, 95])
        assert 0.6 * real[0] < p5 < 1.5 * real[0]
        assert 0.8 * real[2] < p50 < 1.2 * real[2]
        assert 0.8 * real[4] < p95 < 1.2 * real[4]
    assert 1.5 < np.median(ratio) < 3.0
    assert 3.5 < np.percentile(ratio, 95) < 7.0


def test_cell_counts_are_in_the_real_range(scenes):
    counts = [len(s.cells) for s in scenes]
    low, _, high = synth.REAL_PROFILE["counts_range"]
    assert all(low <= c <= high for c in counts)
    assert 50 <= np.median(counts) <= 95


def test_cells_lie_inside_the_image_and_the_field_of_view(scenes):
    for scene in scenes:
        cx, cy = scene.centre
        assert 0.0 < cx - scene.radius and cx + scene.radius < 1.0
        for cell in scene.cells:
            dist = np.hypot(cell.outline[:, 0] - cx, cell.outline[:, 1] - cy)
            assert dist.max() < scene.radius
        boxes = synth.scene_boxes(scene, 640)[0]
        assert (boxes >= 0).all() and (boxes <= 640).all()
        assert ((boxes[:, 2:] - boxes[:, :2]) > 0).all()


def test_boxes_are_tight_around_the_drawn_outline(scenes):
    cell = scenes[0].cells[0]
    box = cell.box
    assert box[0] == cell.outline[:, 0].min() and box[3] == cell.outline[:, 1].max()


def test_cells_are_visible_at_the_training_size():
    """Every labelled cell is darker than the field around it at 384 px (learnable task)."""
    image, boxes, _ = synth.generate_image(11, size=384)
    gray = np.asarray(image.convert("L"), np.float32)
    field = np.median(gray[150:230, 150:230])
    visible = 0
    for x1, y1, x2, y2 in boxes.astype(int):
        patch = gray[y1 : y2 + 1, x1 : x2 + 1]
        visible += patch.min() < field - 20
    assert visible >= 0.97 * len(boxes)


def test_outside_the_field_is_black_and_the_field_is_bright():
    image, _, _ = synth.generate_image(4, size=200)
    gray = np.asarray(image.convert("L"), np.float32)
    assert gray[:6, :6].mean() < 20 and gray[-6:, -6:].mean() < 20
    assert gray[90:110, 90:110].mean() > 120


def test_unlabeled_prob_leaves_only_faint_cells_without_boxes():
    full = synth.sample_scene(5)
    partial = synth.sample_scene(5, unlabeled_prob=1.0)
    faint = sum(c.blur > 0 for c in partial.cells)
    assert faint > 0
    assert len(synth.scene_boxes(partial, 640)[0]) == len(partial.cells) - faint
    assert len(synth.scene_boxes(full, 640)[0]) == len(full.cells)


def test_write_dataset_round_trips_through_voc(tmp_path):
    aset = synth.write_dataset(tmp_path, seeds=[0, 1], size=128)
    loaded = read_voc(tmp_path)
    assert [p.name for p in sorted(tmp_path.glob("*.jpg"))] == [
        "microalgae_000.jpg",
        "microalgae_001.jpg",
    ]
    assert loaded.class_names == (synth.CLASS_NAME,)
    for written, read in zip(aset.images, loaded.images):
        assert np.abs(written.boxes - read.boxes).max() <= 0.5 + 1e-4


def test_ensure_course_data_generates_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(synth, "TRAIN_SEEDS", (0, 1))
    monkeypatch.setattr(synth, "TEST_SEEDS", (1000,))
    monkeypatch.setattr(synth, "DEFAULT_SIZE", 96)
    synth.ensure_course_data(tmp_path)
    assert "Generated" in capsys.readouterr().out
    assert len(list((tmp_path / "train").glob("*.jpg"))) == 2
    assert len(list((tmp_path / "test").glob("*.xml"))) == 1
    synth.ensure_course_data(tmp_path)
    assert capsys.readouterr().out == ""


def test_cli_writes_train_and_test(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "TRAIN_SEEDS", (3,))
    monkeypatch.setattr(synth, "TEST_SEEDS", (4,))
    synth.main(["--out", str(tmp_path), "--size", "64"])
    with Image.open(tmp_path / "train" / "microalgae_000.jpg") as img:
        assert img.size == (64, 64)
    assert (tmp_path / "test" / "microalgae_000.xml").is_file()


@pytest.mark.parametrize(
    ("sub", "seeds"), [("train", synth.TRAIN_SEEDS), ("test", synth.TEST_SEEDS)]
)
def test_committed_data_is_what_the_generator_makes(sub, seeds):
    folder = config.data_dir() / sub
    assert folder.is_dir(), (
        f"data/{sub} is missing: it is committed; regenerate it with `make data`"
    )
    aset = read_voc(folder)
    assert len(aset) == len(seeds)
    for img, seed in zip(aset.images, seeds):
        assert (img.width, img.height) == (synth.DEFAULT_SIZE, synth.DEFAULT_SIZE)
        expected, _ = synth.scene_boxes(synth.sample_scene(seed), synth.DEFAULT_SIZE)
        np.testing.assert_array_equal(img.boxes, np.round(expected))


def test_committed_pixels_match_the_generator_loosely():
    path = config.train_dir() / "microalgae_000.jpg"
    assert path.is_file(), "data/train is missing: it is committed; regenerate it with `make data`"
    fresh = np.asarray(synth.generate_image(synth.TRAIN_SEEDS[0])[0], np.float32)
    with Image.open(path) as img:
        stored = np.asarray(img.convert("RGB"), np.float32)
    assert np.abs(fresh - stored).mean() < 4.0  # JPEG noise and Pillow versions, not a new scene


def test_cli_writes_a_flat_folder_of_photos_at_any_size(tmp_path, capsys):
    from utils.annotations import load_annotations

    synth.main(["--out", str(tmp_path / "archive"), "--images", "2", "--size", "300"])
    aset = load_annotations(tmp_path / "archive")
    assert len(aset) == 2 and {(i.width, i.height) for i in aset.images} == {(300, 300)}
    assert "Wrote 2 photos" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        synth.main(["--out", str(tmp_path / "x"), "--size", "20"])
