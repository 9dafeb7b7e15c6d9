"""Detectors by name, and the exported core that every runtime runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.numerics import gap_threshold, spread_scores
from utils.model import MODELS, DetectorCore, build_model, count_parameters
from utils.processing import InferenceConfig, letterbox, postprocess_one, preprocess
from utils.runtime import TorchPredictor


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.uniform(0, 255, (150, 120, 3))).astype(np.uint8)


TORCHVISION_MODELS = sorted(n for n in MODELS if not n.startswith("centernet"))


def test_default_is_the_heatmap_counter() -> None:
    from utils.centernet import CenterNet

    assert isinstance(build_model(pretrained=False), CenterNet)
    assert set(TORCHVISION_MODELS) == {"fcos_resnet18", "retinanet_resnet18"}


@pytest.mark.parametrize("name", TORCHVISION_MODELS)
def test_core_plus_shared_postprocess_equals_torchvision(name: str, image: np.ndarray) -> None:
    """Our graph + NumPy post-processing must reproduce torchvision's own eval output."""
    torch.manual_seed(0)
    size = 128
    detector = build_model(name, image_size=size, pretrained=False).eval()
    detector.score_thresh = 0.001  # untrained RetinaNet scores sit near its 0.01 prior
    config = InferenceConfig(
        name, ("cell",), size, score_threshold=0.001, min_score=0.001, nms_iou=0.6
    )
    dets = TorchPredictor(detector, config).predict(image)
    boxed, scale = letterbox(image, size)
    tensor = torch.from_numpy(np.array(boxed)).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        ref = detector([tensor])[0]
    cells = ref["labels"].numpy() == 1  # torchvision also scores its unused background slot 0
    ref_boxes = (ref["boxes"].numpy()[cells] / scale).clip(0, [120, 150, 120, 150])
    ref_scores = ref["scores"].numpy()[cells]
    top = min(len(ref_scores), 50)
    assert dets.count >= top > 0
    np.testing.assert_allclose(dets.scores[:top], ref_scores[:top], rtol=1e-4, atol=1e-6)
    # Equal scores may come out in either order: match each box to its nearest reference.
    gaps = np.abs(dets.boxes[:top, None, :] - ref_boxes[None, :top, :]).max(axis=2)
    assert gaps.min(axis=1).max() < 1e-2


@pytest.mark.parametrize(
    "name, anchors",
    [
        ("fcos_resnet18", (64 // 8) ** 2 + (64 // 16) ** 2),  # a point per location on P3, P4
        ("centernet_resnet18", (64 // 4) ** 2),  # a point per stride-4 location
        ("centernet_resnet18_s2", (64 // 2) ** 2),  # a point per stride-2 location (default)
    ],
)
def test_core_output_shapes_and_dynamic_batch(name: str, anchors: int) -> None:
    detector = build_model(name, image_size=64, pretrained=False).eval()
    core = DetectorCore(detector, 64).eval()
    boxes, scores = core(torch.zeros(3, 3, 64, 64))
    assert boxes.shape == (3, anchors, 4) and scores.shape == (3, anchors, 1)
    assert float(scores.detach().min()) >= 0 and float(scores.detach().max()) <= 1


def test_build_model_rejects_bad_names_and_sizes() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vfnet", pretrained=False)
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model(image_size=100, pretrained=False)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_is_small_and_batchnorm_trainable(name: str) -> None:
    detector = build_model(name, pretrained=False)
    assert 500_000 < count_parameters(detector) < 6_000_000
    norms = [m for m in detector.modules() if "BatchNorm" in type(m).__name__]
    assert norms and all(type(m) is torch.nn.BatchNorm2d for m in norms)


def test_offline_fallback_prints_one_sentence(capsys, monkeypatch) -> None:
    from torchvision.models import ResNet18_Weights

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    build_model(pretrained="auto", image_size=64)
    out = capsys.readouterr().out
    assert "random weights" in out and out.count("\n") == 1
    with pytest.raises(RuntimeError, match="could not download"):
        build_model(pretrained=True, image_size=64)


@pytest.mark.parametrize("name", ["fcos_resnet18", "centernet_resnet18", "centernet_resnet18_s2"])
def test_batch_predictions_equal_single_predictions(name: str, image: np.ndarray) -> None:
    torch.manual_seed(1)
    detector = build_model(name, image_size=64, pretrained=False).eval()
    spread_scores(detector)  # untrained scores all sit within ~1e-3 of the head's prior
    config = InferenceConfig(name, ("cell",), 64, min_score=0.0)
    predictor = TorchPredictor(detector, config)
    # A batch of 2 may run other kernels than a batch of 1: count in a gap of the scores.
    threshold = gap_threshold(predictor.predict(image, 0.0).scores, keep=20)
    config = dataclasses.replace(config, score_threshold=threshold)
    predictor = TorchPredictor(detector, config)
    single = predictor.predict(image)
    assert single.count > 3
    batch = predictor.predict_batch([image, image[:, ::-1]])
    np.testing.assert_allclose(batch[0].boxes, single.boxes, atol=1e-3)
    assert batch[0].count == single.count
    x, scales, sizes = preprocess([image], config)
    boxes, scores = predictor.run(x)
    assert postprocess_one(boxes[0], scores[0], config, scales[0], sizes[0]).count == single.count
