"""Drawing boxes (PIL only), matching predictions to labels, and the dataset figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from PIL import Image, ImageDraw

from utils import viz
from utils.annotations import AnnotatedImage, AnnotationSet
from utils.processing import Detections, to_rgb_array

GRAY = (128, 128, 128)


def _gray(w: int = 200, h: int = 150) -> Image.Image:
    return Image.new("RGB", (w, h), GRAY)


def test_draw_detections_marks_the_box_edges_only():
    image = _gray()
    out = viz.draw_detections(image, [[20, 30, 80, 100]], color=(255, 0, 0), width=2)
    assert out.size == image.size and out is not image
    arr = np.asarray(out)
    assert tuple(arr[30, 50]) == (255, 0, 0)  # top edge
    assert tuple(arr[60, 20]) == (255, 0, 0)  # left edge
    assert tuple(arr[60, 50]) == GRAY  # inside stays untouched
    assert tuple(arr[140, 190]) == GRAY  # far away too
    assert tuple(np.asarray(image)[30, 50]) == GRAY  # the input is not modified


def test_draw_detections_accepts_arrays_scores_and_labels():
    arr = np.full((150, 200, 3), 128, np.uint8)
    out = viz.draw_detections(arr, np.array([[50, 60, 90, 100]]), scores=[0.87], labels=["cell"])
    drawn = np.asarray(out)
    assert out.size == (200, 150)
    assert (drawn[40:60, 50:120] != 128).any()  # the score tag above the box


def test_no_boxes_returns_an_unchanged_copy():
    image = _gray()
    out = viz.draw_detections(image, np.zeros((0, 4)))
    assert np.array_equal(np.asarray(out), np.asarray(image))


def test_hidden_boxes_still_mark_each_object():
    out = viz.draw_detections(_gray(), [[20, 30, 80, 100]], show_boxes=False, color=(0, 255, 0))
    arr = np.asarray(out)
    assert tuple(arr[65, 50]) == (0, 255, 0)  # a dot at the centre
    assert tuple(arr[30, 50]) == GRAY  # no box edge


def test_draw_uses_detections_and_threshold():
    dets = Detections(
        boxes=np.array([[10, 10, 50, 50], [100, 60, 150, 120]], np.float32),
        scores=np.array([0.9, 0.2], np.float32),
        labels=np.array([0, 0]),
        class_names=("Microalgae",),
    )
    out = np.asarray(viz.draw(_gray(), dets, threshold=0.5, color=(255, 0, 0), show_scores=False))
    assert tuple(out[10, 30]) == (255, 0, 0)
    assert tuple(out[60, 125]) == GRAY  # below the threshold: not drawn


def test_match_boxes_counts_hits_false_positives_and_misses():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32)
    pred = np.array([[1, 1, 10, 10], [21, 20, 31, 30], [80, 80, 90, 90], [0, 0, 10, 11]])
    matched, false_pos, missed = viz.match_boxes(gt, pred, scores=[0.9, 0.8, 0.7, 0.6])
    assert matched.tolist() == [0, 1]
    assert false_pos.tolist() == [2, 3]  # the duplicate of a found cell counts as false
    assert missed.tolist() == [2]


def test_compare_colours_each_kind():
    gt = np.array([[10, 10, 40, 40], [100, 100, 140, 140]], np.float32)
    pred = np.array([[11, 10, 40, 41], [150, 20, 190, 60]], np.float32)
    out = viz.compare(_gray(200, 160), gt, pred, width=1)
    arr = np.asarray(out)
    hex_rgb = lambda c: tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))  # noqa: E731
    assert tuple(arr[25, 11]) == hex_rgb(viz.MATCH_COLOR)
    assert tuple(arr[40, 150]) == hex_rgb(viz.FALSE_COLOR)
    assert tuple(arr[120, 100]) == hex_rgb(viz.MISSED_COLOR)
    assert out.info["matched"] == 1 and out.info["false_positives"] == 1
    assert out.info["missed"] == 1


@pytest.fixture
def small_set(tmp_path) -> AnnotationSet:
    images = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        _gray(64, 64).save(path)
        boxes = np.array([[5, 5, 15, 25], [30, 30, 50, 40]][: i + 1], np.float32)
        images.append(AnnotatedImage(path, 64, 64, boxes, ["Microalgae"] * len(boxes)))
    return AnnotationSet(("Microalgae",), images)


def test_box_stats_are_fractions_of_the_image(small_set):
    stats = viz.box_stats(small_set)
    assert stats["counts"].tolist() == [1, 2, 2]
    np.testing.assert_allclose(stats["width"][:2], [10 / 64, 10 / 64])
    np.testing.assert_allclose(stats["ratio"][:2], [2.0, 2.0])


def test_figures_are_made(small_set):
    grid = viz.show_grid(small_set, n=3, cols=2)
    assert len([ax for ax in grid.axes if ax.images]) == 3
    stats = viz.plot_dataset_stats(small_set)
    assert len(stats.axes) == 4
    pairs = viz.show_grid([(np.zeros((32, 32, 3), np.uint8), [[1, 1, 9, 9]])], n=1, cols=1)
    assert len(pairs.axes) == 1


def test_to_pil_accepts_dataset_tensors():
    import torch

    chw = torch.zeros(3, 8, 10)
    chw[0] = 1.0  # pure red
    image = viz.to_pil(chw)
    assert image.size == (10, 8) and image.getpixel((0, 0)) == (255, 0, 0)
    assert viz.to_pil(np.zeros((8, 10, 3), np.uint8)).size == (10, 8)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_to_pil_of_a_pil_image_is_an_rgb_copy_with_the_array_paths_pixels(mode):
    rgba = np.random.default_rng(3).integers(0, 256, (9, 11, 4), dtype=np.uint8)
    photo = Image.fromarray(rgba, "RGBA").convert(mode)
    copy = viz.to_pil(photo)
    assert copy.mode == "RGB" and copy is not photo
    # the same pixels as the array path of to_pil (what every PIL image took before)
    via_array = viz.to_pil(to_rgb_array(photo))
    np.testing.assert_array_equal(np.asarray(copy), np.asarray(via_array))
    ImageDraw.Draw(copy).rectangle((0, 0, 10, 8), fill=(1, 2, 3))  # drawing on the copy ...
    assert np.asarray(photo.convert("RGB"))[0, 0].tolist() != [1, 2, 3]  # ... spares the photo


def test_describe_boxes_puts_this_set_next_to_the_real_photos(small_set):
    text = viz.describe_boxes(small_set)
    assert "width / image, real" in text and "0.052" in text
    assert "cells per image: 1-2" in text


def test_show_augmentations_draws_n_panels(small_set):
    from utils.dataset import CellDataset

    fig = viz.show_augmentations(CellDataset(small_set, 32, train=True), index=1, n=4, cols=2)
    assert len([ax for ax in fig.axes if ax.images]) == 4


def test_show_image_and_jpeg_switch_outside_ipython():
    fig = viz.show_image(np.zeros((20, 40, 3), np.uint8), title="x")
    width, height = fig.get_size_inches()
    assert abs(width / height - 2.0) < 0.01
    viz.use_jpeg_figures()  # plain Python: nothing to switch, no error


# Machado et al. (2009) matrices, severity 1.0, applied in linear RGB.
_CVD = {
    "protanopia": [
        [0.152286, 1.052583, -0.204868],
        [0.114503, 0.786281, 0.099216],
        [-0.003882, -0.048116, 1.051998],
    ],
    "deuteranopia": [
        [0.367322, 0.860646, -0.227968],
        [0.280085, 0.672501, 0.047413],
        [-0.011820, 0.042940, 0.968881],
    ],
    "tritanopia": [
        [1.255528, -0.076749, -0.178779],
        [-0.078411, 0.930809, 0.147602],
        [0.004733, 0.691367, 0.303900],
    ],
}


def _seen(hex_color: str, matrix) -> np.ndarray:
    rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], np.float64) / 255
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return np.clip(np.asarray(matrix) @ linear, 0, 1)


def _lab(linear: np.ndarray) -> np.ndarray:
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = xyz @ linear / np.array([0.9505, 1.0, 1.089])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _min_delta_e(colors: list[str], matrix) -> float:
    """Smallest CIELAB distance (Delta E 1976) between two of ``colors`` as a viewer sees them."""
    seen = [_lab(_seen(c, matrix)) for c in colors]
    return min(
        float(np.linalg.norm(seen[i] - seen[j]))
        for i in range(len(seen))
        for j in range(i + 1, len(seen))
    )


def test_correct_false_missed_stay_apart_for_colour_blind_readers():
    colors = [viz.MATCH_COLOR, viz.FALSE_COLOR, viz.MISSED_COLOR]
    for name, matrix in {"normal vision": np.eye(3), **_CVD}.items():
        assert _min_delta_e(colors, matrix) > 30, f"two box colours look alike with {name}"
    # what the check is for: the old green / red / amber trio fails it (protanopia: ~20)
    assert _min_delta_e(["#2ee86b", "#ff2a6d", "#ffb000"], _CVD["protanopia"]) < 30


def test_compare_legend_says_what_each_colour_means():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    legend = dict(viz.compare_legend(0.5))
    assert set(legend) == {viz.MATCH_COLOR, viz.FALSE_COLOR, viz.MISSED_COLOR}
    assert "matched to a labelled cell" in legend[viz.MATCH_COLOR]
    assert "matched to no labelled cell" in legend[viz.FALSE_COLOR]
    assert "loose box on a real cell" in legend[viz.FALSE_COLOR]
    assert "labelled cell that no detection matched" in legend[viz.MISSED_COLOR]
    assert all("IoU >= 0.5" in text for text in legend.values())
    fig, _ = plt.subplots()
    viz.add_compare_legend(fig, 0.5)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == [text for _, text in viz.compare_legend(0.5)]
    plt.close(fig)


# ---------------------------------------------------------------- readable score tags


def _row_of_boxes(n: int, gap: int = 40) -> np.ndarray:
    """``n`` small boxes on one row, ``gap`` px apart, low enough for a tag above each."""
    return np.array([[10 + i * gap, 60, 30 + i * gap, 90] for i in range(n)], np.float32)


def _tag_pixels(out: Image.Image, boxes: np.ndarray) -> int:
    """Pixels in the strips above the boxes that are no longer the grey background."""
    arr = np.asarray(out)
    strip = arr[40:58, int(boxes[0, 0]) : int(boxes[-1, 2])]
    return int((strip != GRAY).any(axis=-1).sum())


def test_score_tags_are_drawn_for_a_few_boxes():
    boxes = _row_of_boxes(3, gap=60)
    out = viz.draw_detections(_gray(220, 120), boxes, scores=[0.9, 0.8, 0.7])
    assert _tag_pixels(out, boxes) > 0
    assert out.info["labels_hidden"] == 0


def test_score_tags_are_left_out_above_the_limit():
    n = viz.MAX_SCORE_LABELS + 1
    boxes = _row_of_boxes(n)
    image = _gray(40 * n + 40, 120)
    out = viz.draw_detections(image, boxes, scores=np.linspace(0.9, 0.3, n))
    assert _tag_pixels(out, boxes) == 0  # boxes only: no tag covers the cells
    assert out.info["labels_hidden"] == n
    assert viz.labels_note(n).startswith("Score tags are left out")
    assert viz.labels_note(viz.MAX_SCORE_LABELS) == ""
    unlimited = viz.draw_detections(image, boxes, scores=np.linspace(0.9, 0.3, n), max_labels=None)
    assert _tag_pixels(unlimited, boxes) > 0


def test_overlapping_tags_keep_the_best_score_only():
    boxes = np.array([[50, 60, 90, 100], [52, 61, 92, 101]], np.float32)  # one cell, two boxes
    out = viz.draw_detections(_gray(), boxes, scores=[0.4, 0.9], color=(255, 0, 0))
    assert out.info["labels_hidden"] == 1
    alone = viz.draw_detections(_gray(), boxes[1:], scores=[0.9], color=(255, 0, 0))
    tag = (slice(40, 60), slice(45, 100))  # the 0.9 tag is drawn where it is drawn alone
    assert np.array_equal(np.asarray(out)[tag][..., 1:], np.asarray(alone)[tag][..., 1:])


# ---------------------------------------------------------------- the training curves


def _training_result(evaluations: int):
    from types import SimpleNamespace

    history = []
    for epoch in range(1, 31):
        row = {"epoch": epoch, "loss": 3.0 / epoch, "loss_heatmap": 2.0 / epoch, "val_map": None}
        if epoch % (30 // evaluations) == 0:
            row.update(val_map=0.3 + epoch / 100, val_map_50=0.6 + epoch / 100, val_count_mae=9.0)
        history.append(row)
    config = SimpleNamespace(score_threshold=0.275)
    return SimpleNamespace(
        history=history, kept_epoch=30, config=config, metrics={"val_count_mae": 2.33}
    )


def _texts(fig) -> str:
    return "\n".join(t.get_text() for ax in fig.axes for t in [*ax.texts, ax.title])


def test_training_plot_names_the_chosen_threshold_not_the_training_one():
    fig = viz.plot_training(_training_result(evaluations=2))
    text = _texts(fig)
    assert "count MAE 2.33 cells" in text and "chosen threshold 0.275" in text
    assert "9.00" not in text and "0.5" not in text  # the count error at 0.5 is not shown
    assert "only 2 point(s), at epoch(s) 15, 30" in text
    val_ax = fig.axes[1]
    assert [len(line.get_xdata()) for line in val_ax.get_lines()[:2]] == [2, 2]


def test_training_plot_with_enough_points_has_no_warning():
    text = _texts(viz.plot_training(_training_result(evaluations=10)))
    assert "only" not in text and "Validation: 10 evaluation(s)" in text


def test_describe_boxes_gives_the_median_cell_in_pixels(small_set):
    # boxes of 10 x 20 and 20 x 10 px: a square of the same area has a side of 14 px
    assert "median cell: 14 px (the side of a square of the same area) in these 64 px photos" in (
        viz.describe_boxes(small_set)
    )
