"""The shared pre/post-processing path: letterbox, normalisation, NMS, rescaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import nms as torch_nms

from tests.numerics import crowd_then_cells
from utils.processing import (
    Detections,
    InferenceConfig,
    letterbox,
    nms,
    normalize,
    postprocess_one,
    preprocess,
    to_rgb_array,
)

CONFIG = InferenceConfig("fcos_resnet18", ("Microalgae",), 64, score_threshold=0.5, nms_iou=0.5)


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 50, (n, 2))
    wh = rng.uniform(2, 20, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed,n", [(0, 0), (1, 1), (2, 200), (3, 200), (4, 700)])
def test_nms_matches_torchvision(seed: int, n: int) -> None:
    """700 boxes span several blocks of the IoU matrix; 0 and 1 box are the edge cases."""
    rng = np.random.default_rng(seed)
    boxes, scores = random_boxes(rng, n), rng.uniform(0, 1, n).astype(np.float32)
    for iou in (0.3, 0.5, 0.7):
        expected = torch_nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
        np.testing.assert_array_equal(nms(boxes, scores, iou), expected)


def test_nms_looks_at_the_best_4_x_limit_candidates_only() -> None:
    """With all candidates NMS would keep the crowd's best copy and 9 cells; among the best
    40 (4 x limit 10) there are only copies: 1 box. With a trained model (a few hundred
    candidates, few overlapping) both give the same; this bounds the work of a bad one."""
    boxes, scores = crowd_then_cells()
    everything = nms(boxes, scores, 0.5)
    assert len(everything) == 301 and everything[0] == 0 and list(everything[1:4]) == [100, 101, 102]
    assert list(nms(boxes, scores, 0.5, top=40)) == [0]
    assert list(nms(boxes, scores, 0.5, top=101)) == [0, 100]  # the first cell is in the top 101
    config = InferenceConfig("centernet_resnet18_s2", ("cell",), 1024, max_detections=10)
    scores2d = scores[:, None]
    dets = postprocess_one(boxes, scores2d, config, 1.0, (1024, 1024), threshold=0.1)
    assert dets.count == 1 and dets.scores[0] == np.float32(0.99)
    wider = InferenceConfig("centernet_resnet18_s2", ("cell",), 1024, max_detections=200)
    assert postprocess_one(boxes, scores2d, wider, 1.0, (1024, 1024), threshold=0.1).count == 200


def test_letterbox_keeps_aspect_and_pads_bottom_right() -> None:
    image = Image.new("RGB", (200, 100), (255, 255, 255))
    boxed, scale = letterbox(image, 64)
    assert boxed.size == (64, 64) and scale == pytest.approx(0.32)
    array = np.asarray(boxed)
    assert array[:31, :, :].min() == 255  # the image, resized to 64 x 32
    assert array[33:, :, :].max() == 0  # black padding below


def test_to_rgb_array_accepts_gray_rgba_and_rejects_garbage() -> None:
    assert to_rgb_array(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert to_rgb_array(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)
    assert to_rgb_array(Image.new("L", (6, 5))).shape == (5, 6, 3)
    with pytest.raises(ValueError, match="uint8"):
        to_rgb_array(np.zeros((5, 6, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        to_rgb_array(np.zeros((5, 6, 2), np.uint8))


def test_preprocess_normalises_with_config_mean_std() -> None:
    image = np.full((32, 32, 3), 255, np.uint8)
    batch, scales, sizes = preprocess([image, image], CONFIG)
    assert batch.shape == (2, 3, 64, 64) and batch.dtype == np.float32
    expected = (1.0 - np.array(CONFIG.mean)) / np.array(CONFIG.std)
    np.testing.assert_allclose(batch[0, :, 0, 0], expected, rtol=1e-6)
    assert scales == [2.0, 2.0] and sizes == [(32, 32), (32, 32)]


def test_uint8_pixels_are_the_bytes_the_normalised_batch_standardises() -> None:
    """``pixels="uint8"`` (an OpenVINO IR that standardises inside) gets the same resize and
    padding: standardising its bytes gives the float batch exactly."""
    rng = np.random.default_rng(2)
    photo = Image.fromarray(rng.integers(0, 256, (47, 83, 3), dtype=np.uint8))
    floats, scales, sizes = preprocess([photo], CONFIG)
    pixels, scales_u8, sizes_u8 = preprocess([photo], CONFIG, "uint8")
    assert pixels.shape == (1, 64, 64, 3) and pixels.dtype == np.uint8
    assert (scales_u8, sizes_u8) == (scales, sizes)
    assert not pixels[0, 36:].any() and pixels[0, :36].any()  # 83 x 47 -> 64 x 36, black below
    np.testing.assert_array_equal(normalize(pixels[0], CONFIG), floats[0])
    with pytest.raises(ValueError, match="pixels must be one of"):
        preprocess([photo], CONFIG, "float16")


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_preprocess_pil_path_equals_array_path(mode: str) -> None:
    """A PIL photo skips the array round trip; the batch must be the same numbers exactly."""
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (47, 83, 4), dtype=np.uint8)
    photo = Image.fromarray(rgba, "RGBA").convert(mode)
    from_pil, scales_pil, sizes_pil = preprocess([photo, photo], CONFIG)
    from_array, scales_array, sizes_array = preprocess([to_rgb_array(photo)] * 2, CONFIG)
    np.testing.assert_array_equal(from_pil, from_array)
    assert scales_pil == scales_array and sizes_pil == sizes_array == [(83, 47)] * 2


def test_postprocess_thresholds_suppresses_and_rescales() -> None:
    boxes = np.array(
        [[10, 10, 20, 20], [11, 11, 21, 21], [40, 40, 50, 60], [0, 0, 5, 5]], np.float32
    )
    scores = np.array([[0.9], [0.8], [0.7], [0.2]], np.float32)
    dets = postprocess_one(boxes, scores, CONFIG, scale=0.5, original_size=(128, 100))
    assert dets.count == 2  # the overlapping 0.8 is suppressed, the 0.2 is below threshold
    np.testing.assert_allclose(dets.boxes[0], [20, 20, 40, 40])
    np.testing.assert_allclose(dets.boxes[1], [80, 80, 100, 100])  # y2 clipped to 100
    assert postprocess_one(boxes, scores, CONFIG, 0.5, (128, 100), threshold=0.1).count == 3


def test_postprocess_keeps_overlapping_boxes_of_different_classes() -> None:
    config = InferenceConfig("m", ("a", "b"), 64, score_threshold=0.5)
    boxes = np.array([[10, 10, 20, 20]], np.float32)
    scores = np.array([[0.9, 0.8]], np.float32)
    dets = postprocess_one(boxes, scores, config, 1.0, (64, 64))
    assert sorted(dets.labels.tolist()) == [0, 1]
    assert {r["label"] for r in dets.to_records()} == {"a", "b"}


def test_inference_config_round_trip_and_missing_fields() -> None:
    assert InferenceConfig.from_dict(CONFIG.to_dict()) == CONFIG
    with pytest.raises(ValueError, match="image_size"):
        InferenceConfig.from_dict({"model_name": "m", "class_names": ["a"]})


def test_detections_above_filters() -> None:
    dets = Detections(
        np.zeros((3, 4), np.float32), np.array([0.1, 0.5, 0.9], np.float32), np.zeros(3, np.int64)
    )
    assert dets.above(0.5).count == 2 and dets.count == 3
