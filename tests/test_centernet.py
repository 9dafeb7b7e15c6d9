"""The centre-heatmap detector: its targets, its peak decoding, that it learns, that it exports."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from utils import export
from utils.centernet import FLIPS, STRIDE, CenterNet, build_targets, location_centres
from utils.model import DetectorCore, build_model
from utils.processing import InferenceConfig
from utils.runtime import OnnxPredictor, OpenVinoPredictor, TorchPredictor

SIZE = 128


def one_target(boxes, labels=None) -> dict[str, torch.Tensor]:
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = torch.ones(len(boxes), dtype=torch.int64) if labels is None else torch.tensor(labels)
    return {"boxes": boxes, "labels": labels}


def test_targets_put_a_peak_of_one_on_each_cell_centre() -> None:
    # A thin vertical needle (3 px wide) and a squarish cell, far apart.
    target = one_target([[10, 10, 13, 40], [60, 60, 80, 76]])
    heat, boxes, weight = build_targets([target], 1, (32, 32), "cpu")
    assert heat.shape == (1, 1, 32, 32)
    peaks = (heat[0, 0] == 1).nonzero().tolist()
    # centres (11.5, 25) and (70, 68) fall in locations (x=2, y=6) and (x=17, y=17)
    assert sorted(peaks) == [[6, 2], [17, 17]]
    assert heat.max() == 1 and heat.min() >= 0
    # the needle's bump is taller than wide, like the needle
    row, col = heat[0, 0, 6, :], heat[0, 0, :, 2]
    assert (col > 0.3).sum() > (row > 0.3).sum()
    # every location that regresses a box regresses one of the two, and each cell weighs log(area)
    near = weight[0] > 0
    assert {tuple(b) for b in boxes[0][near].tolist()} == {(10, 10, 13, 40), (60, 60, 80, 76)}
    needle = near & (boxes[0][..., 0] == 10)
    assert weight[0][needle].sum().item() == pytest.approx(math.log(3 * 30), rel=1e-4)


def test_a_wider_alpha_widens_the_bump_but_keeps_its_peak() -> None:
    target = one_target([[40, 40, 80, 80]])  # a 40 px cell: 10 heatmap points across
    narrow, _, _ = build_targets([target], 1, (32, 32), "cpu")
    wide, _, _ = build_targets([target], 1, (32, 32), "cpu", alpha=0.8)
    assert narrow.max() == wide.max() == 1
    assert (wide > 0.3).sum() > (narrow > 0.3).sum()
    assert torch.all(wide >= narrow - 1e-6)  # the same Gaussian, only wider


def test_stride_2_gives_cells_that_share_a_stride_4_point_a_peak_each() -> None:
    """Two touching cells whose centres (x 8.5 and 11.5) fall in the same stride-4 point get
    one peak between them at stride 4 (one would go uncounted), two at stride 2."""
    target = one_target([[4, 4, 13, 13], [7, 4, 16, 13]])
    four, _, _ = build_targets([target], 1, (8, 8), "cpu", stride=4)
    two, boxes, weight = build_targets([target], 1, (16, 16), "cpu", stride=2)
    assert (four == 1).nonzero().tolist() == [[0, 0, 2, 2]]
    assert sorted((two == 1).nonzero().tolist()) == [[0, 0, 4, 4], [0, 0, 4, 5]]
    # each peak regresses its own cell's box
    assert boxes[0, 4, 4].tolist() == [4, 4, 13, 13] and boxes[0, 4, 5].tolist() == [7, 4, 16, 13]
    assert weight[0, 4, 4] > 0 and weight[0, 4, 5] > 0


def test_a_stride_other_than_2_or_4_is_refused() -> None:
    with pytest.raises(ValueError, match="stride must be 2 or 4, got 8"):
        CenterNet(1, stride=8)


def test_targets_of_an_empty_image_are_zero() -> None:
    heat, _, weight = build_targets([one_target([])], 1, (16, 16), "cpu")
    assert heat.sum() == 0 and weight.sum() == 0


@pytest.mark.parametrize("stride", [4, 2])
def test_decode_keeps_only_local_maxima(stride: int) -> None:
    torch.manual_seed(0)
    model = CenterNet(1, stride=stride).eval()
    batch = torch.randn(2, 3, SIZE, SIZE)
    boxes, scores = model.decode(batch)
    side = SIZE // stride
    assert boxes.shape == (2, side * side, 4) and scores.shape == (2, side * side, 1)
    logits, _ = model.raw(batch)
    heat = torch.sigmoid(logits)[0, 0]
    peaks = scores[0, :, 0].reshape(side, side)
    kept = peaks > 0
    assert kept.any() and (~kept).any()
    assert torch.equal(peaks[kept], heat[kept])
    # a kept location is at least as high as its eight neighbours
    padded = torch.nn.functional.pad(heat, (1, 1, 1, 1), value=-1.0)
    for y, x in kept.nonzero().tolist()[:50]:
        assert heat[y, x] >= padded[y : y + 3, x : x + 3].max()
    # boxes surround their location's centre
    centres = location_centres(side, side, stride=stride)
    assert torch.all(boxes[0, :, 0] <= centres[:, 0]) and torch.all(boxes[0, :, 2] >= centres[:, 0])


@pytest.mark.parametrize("stride", [4, 2])
def test_training_mode_returns_named_losses(stride: int) -> None:
    torch.manual_seed(0)
    model = CenterNet(1, stride=stride).train()
    losses = model([torch.rand(3, 64, 64)], [one_target([[5, 5, 20, 30]])])
    assert set(losses) == {"heatmap", "box_giou"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    with pytest.raises(ValueError, match="targets"):
        model([torch.rand(3, 64, 64)])


def test_tiny_overfit_counts_the_training_image(tmp_path) -> None:
    """One 256 px image, no augmentation: the loss falls and the count comes out right."""
    from utils import train
    from utils.annotations import AnnotatedImage, AnnotationSet
    from utils.dataset import CellDataset
    from utils.synth import generate_image

    image, boxes, labels = generate_image(3, 256)
    path = tmp_path / "cells.png"
    image.save(path)
    aset = AnnotationSet(("Microalgae",), [AnnotatedImage(path, 256, 256, boxes, labels)])
    result = train.fit(
        CellDataset(aset, 256, train=False),
        None,
        replace(
            train.PLAIN,
            model_name="centernet_resnet18",
            image_size=256,
            epochs=60,
            batch_size=1,
            lr=2e-3,
        ),
        pretrained=False,
        progress=False,
    )
    losses = [row["loss"] for row in result.history]
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5]), losses
    assert {"loss_heatmap", "loss_box_giou"} <= set(result.history[0])
    count = result.predictor().predict(image, threshold=0.3).count
    assert abs(count - len(boxes)) <= max(1, round(0.05 * len(boxes))), (count, len(boxes))


@pytest.fixture(scope="module", params=["centernet_resnet18_s2", "centernet_resnet18"])
def exported(tmp_path_factory, request):
    """Both heatmap counters exported: the default at stride 2 and the stride-4 one."""
    torch.manual_seed(0)
    detector = build_model(request.param, 1, SIZE, pretrained=False).eval()
    with torch.no_grad():  # scores around 0.5, so counts are non-zero and could differ
        detector.heatmap[-1].bias.fill_(0.0)
    config = InferenceConfig(request.param, ("Microalgae",), SIZE, score_threshold=0.5)
    path = export.export_onnx(detector, config, tmp_path_factory.mktemp("cn") / "cn.onnx")
    return path, detector, config


def test_export_parity_with_onnxruntime_and_openvino(exported) -> None:
    path, detector, config = exported
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (90 + 20 * i, 140, 3), dtype=np.uint8) for i in range(3)]
    torch_pred = TorchPredictor(detector, config)
    assert isinstance(torch_pred.core, DetectorCore)
    for other in (OnnxPredictor(path, threads=1), OpenVinoPredictor(path, threads=1)):
        result = export.parity(torch_pred, other, images)
        assert result["boxes_max_abs"] < 1e-3, result
        assert result["scores_max_abs"] < 1e-4, result
        assert result["counts_identical"] == len(images), result
        assert all(row["pytorch"] > 0 for row in result["per_image"]), result
    summary = export.graph_summary(path)
    assert summary["outputs"]["scores"] == ["batch", (SIZE // detector.stride) ** 2, 1]
    assert {"MaxPool", "Equal", "Where"} <= set(summary["op_types"])  # peak finding in the graph
    assert "NonMaxSuppression" not in summary["op_types"]


@pytest.mark.parametrize("stride", [4, 2])
def test_flip_tta_is_equivariant_and_averages_four_views(stride: int) -> None:
    """With flips, a mirrored photo gives the mirrored heatmap and boxes (sides swapped back)."""
    torch.manual_seed(0)
    model = CenterNet(2, stride=stride).eval()
    batch = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        logits, distances = model.raw_flipped(batch)
        plain_logits, _ = model.raw(batch)
        for dims, sides in FLIPS:
            mirrored_logits, mirrored_distances = model.raw_flipped(batch.flip(dims))
            torch.testing.assert_close(mirrored_logits.flip(dims), logits, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(
                mirrored_distances.flip(dims)[:, sides], distances, atol=1e-3, rtol=1e-4
            )
    # not the plain view: an untrained network is far from flip-invariant
    assert (logits - plain_logits).abs().max() > 1e-2


def test_flip_tta_puts_each_views_sides_back_on_the_photos_sides() -> None:
    """A stand-in network that measures one bright square exactly from any view: the average
    of its four views must be the plain view's distances (a wrong side order breaks this)."""
    model = CenterNet(1).eval()
    side = SIZE // STRIDE
    centres = location_centres(side, side).T.reshape(2, side, side)

    def exact(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ys, xs = torch.nonzero(batch[0, 0] > 0.5, as_tuple=True)
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        cx, cy = centres[0], centres[1]
        distances = torch.stack([cx - x1, cy - y1, x2 - cx, y2 - cy]).unsqueeze(0).float()
        return torch.zeros(1, 1, side, side), distances

    model.raw = exact
    batch = torch.zeros(1, 3, SIZE, SIZE)
    batch[..., 10:30, 40:90] = 1.0  # wide, near the top left: every flip moves it
    torch.testing.assert_close(model.raw_flipped(batch)[1], exact(batch)[1])


def test_flip_tta_exports_the_same_counts_to_every_runtime(exported, tmp_path) -> None:
    path, detector, config = exported
    flipped = replace(config, flip_tta=True)
    onnx_path = export.export_onnx(detector, flipped, tmp_path / "flips.onnx")
    assert OnnxPredictor(onnx_path, threads=1).config.flip_tta
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (100 + 30 * i, 150, 3), dtype=np.uint8) for i in range(2)]
    torch_flipped = TorchPredictor(detector, flipped)
    for other in (OnnxPredictor(onnx_path, threads=1), OpenVinoPredictor(onnx_path, threads=1)):
        result = export.parity(torch_flipped, other, images)
        assert result["scores_max_abs"] < 1e-4 and result["boxes_max_abs"] < 1e-3, result
        assert result["counts_identical"] == len(images), result
    # and the flips change what is counted (else the option would do nothing)
    plain = TorchPredictor(detector, config).run(np.zeros((1, 3, SIZE, SIZE), np.float32) + 0.3)
    averaged = torch_flipped.run(np.zeros((1, 3, SIZE, SIZE), np.float32) + 0.3)
    assert np.abs(plain[1] - averaged[1]).max() > 1e-3
    with pytest.raises(ValueError, match="flip_tta"):
        DetectorCore(build_model("fcos_resnet18", 1, SIZE, pretrained=False), SIZE, flips=True)
