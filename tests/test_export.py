"""ONNX export: checker, metadata round trip, graph summary, parity with PyTorch, ensure_onnx."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from utils import export
from utils.processing import InferenceConfig, preprocess
from utils.runtime import (
    ModelFileError,
    OnnxPredictor,
    OpenVinoPredictor,
    Predictor,
    TorchPredictor,
)

SIZE = 128  # the tiny detector's input size (TINY_SIZE in conftest.py)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (90 + 20 * i, 140, 3), dtype=np.uint8) for i in range(3)]


def test_export_passes_checker_and_keeps_names(tiny_export) -> None:
    path, _, _ = tiny_export
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["boxes", "scores"]
    assert not path.with_name(path.name + ".tmp").exists()


def test_metadata_round_trip(tiny_export) -> None:
    path, _, config = tiny_export
    assert export.read_onnx_config(path) == config
    props = export.metadata(path)
    assert props["torch_version"] == torch.__version__
    assert props[export.VERSION_KEY]


def test_graph_summary_counts_ops(tiny_export) -> None:
    path, _, _ = tiny_export
    summary = export.graph_summary(path)
    assert summary["op_types"]["Conv"] >= 20
    assert "NonMaxSuppression" not in summary["op_types"]  # NMS stays outside the graph
    assert summary["nodes"] == sum(summary["op_types"].values())
    assert summary["inputs"]["images"] == ["batch", 3, SIZE, SIZE]
    anchors = (SIZE // 8) ** 2 + (SIZE // 16) ** 2
    assert summary["outputs"]["boxes"] == ["batch", anchors, 4]
    assert summary["outputs"]["scores"] == ["batch", anchors, 1]
    assert 5 < summary["size_mb"] < 40
    assert summary["file"] == path.name == "model.onnx"  # never this machine's absolute path


def test_parity_torch_vs_onnxruntime_and_openvino(tiny_export, images) -> None:
    path, detector, config = tiny_export
    torch_pred = TorchPredictor(detector, config)
    for other in (OnnxPredictor(path, threads=1), OpenVinoPredictor(path, threads=1)):
        result = export.parity(torch_pred, other, images)
        assert result["boxes_max_abs"] < 1e-3, result
        assert result["scores_max_abs"] < 1e-4, result
        assert result["counts_identical"] == len(images), result
        assert any(row["pytorch"] > 0 for row in result["per_image"]), "test needs non-zero counts"
        assert result["verdict"] == "same model" and result["problems"] == [], result
        assert export.describe_parity(result).startswith("same model: scores differ by at most")


def test_dynamic_batch(tiny_export, images) -> None:
    path, detector, config = tiny_export
    batch, _, _ = preprocess(images, config)
    boxes, scores = OnnxPredictor(path).run(batch)
    ref_boxes, ref_scores = TorchPredictor(detector, config).run(batch)
    assert boxes.shape == ref_boxes.shape and boxes.shape[0] == len(images)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-4)


def test_export_from_checkpoint_file(tmp_path, tiny_detector) -> None:
    from utils.checkpoint import save_checkpoint

    config = InferenceConfig("fcos_resnet18", ("Microalgae",), SIZE, score_threshold=0.3)
    ckpt = save_checkpoint(tmp_path / "model.pt", tiny_detector(), config)
    path = export.export_onnx(ckpt, path=tmp_path / "from_ckpt.onnx")
    assert export.read_onnx_config(path) == config


def test_bare_detector_needs_config(tmp_path, tiny_detector) -> None:
    with pytest.raises(ValueError, match="InferenceConfig"):
        export.export_onnx(tiny_detector(), None, tmp_path / "x.onnx")


def test_parity_detects_a_different_model(tiny_export, images, tmp_path, tiny_detector) -> None:
    path, detector, config = tiny_export
    other = tiny_detector()
    with torch.no_grad():
        other.head.classification_head.cls_logits.bias.fill_(0.0)
    result = export.parity(TorchPredictor(detector, config), TorchPredictor(other, config), images)
    assert result["scores_max_abs"] > 0.01
    assert result["counts_identical"] < len(images)
    assert result["verdict"] == "broken"
    assert set(result["per_image"][0]) == {"image", "pytorch (reference)", "pytorch (other)"}


@pytest.mark.parametrize("mistake", sorted(export.MISTAKES))
def test_a_broken_export_is_called_broken(tiny_export, images, tmp_path, mistake) -> None:
    """Notebook 03's lesson: a classic mistake moves the outputs far above the tolerance."""
    path, detector, config = tiny_export
    broken = export.broken_copy(path, mistake, tmp_path / f"{mistake}.onnx")
    onnx.checker.check_model(onnx.load(str(broken)), full_check=True)
    result = export.parity(TorchPredictor(detector, config), OnnxPredictor(broken), images)
    # the tiny random model's scores sit near its prior; a wrong input still moves them > 100x
    assert result["scores_max_abs"] > 100 * export.SCORE_TOLERANCE, result
    assert result["verdict"] == "broken" and result["problems"], result
    assert export.describe_parity(result).startswith("BROKEN: ")
    assert export.read_onnx_config(path) == config  # the original is untouched


def test_broken_copy_names_the_known_mistakes(tiny_export, tmp_path) -> None:
    with pytest.raises(ValueError, match="bgr"):
        export.broken_copy(tiny_export[0], "upside-down", tmp_path / "x.onnx")


class _Fixed(Predictor):
    """A predictor that returns given raw outputs: parity's arithmetic without a network."""

    runtime = "fixed"

    def __init__(self, scores: list[float], config: InferenceConfig) -> None:
        super().__init__(config)
        self.scores = np.asarray(scores, np.float32).reshape(1, -1, 1)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        anchors = self.scores.shape[1]
        corner = np.arange(anchors, dtype=np.float32)[:, None] * 8
        boxes = np.concatenate([corner, corner, corner + 6, corner + 6], axis=1)[None]
        return boxes, self.scores


PEAKS = [0.9, 0.8, 0.7, 0.004, 0.0, 0.6] + [0.01] * 494  # 500 points, 499 of them peaks


@pytest.mark.parametrize(
    ("other", "verdict", "words"),
    [
        # float32 in another order: every score within 1e-6; a background near-tie flipped
        ([0.9 + 1e-6, 0.8, 0.7, 0.0, 0.004, 0.6] + [0.01] * 494, "same model", "never counted"),
        # bf16-like: scores move by ~1e-2, far above the tolerance
        ([0.91, 0.79, 0.7, 0.004, 0.0, 0.61] + [0.01] * 494, "broken", "scores differ by 1.0e-02"),
        # other peaks altogether: many points kept by one graph only
        ([0.0, 0.8, 0.7, 0.004, 0.5, 0.6] + [0.0, 0.02] * 247, "broken", "one graph only"),
    ],
)
def test_parity_verdict_separates_rounding_near_ties_and_real_differences(other, verdict, words):
    config = InferenceConfig("centernet_resnet18", ("Microalgae",), 32, score_threshold=0.5)
    image = np.zeros((32, 32, 3), np.uint8)
    result = export.parity(_Fixed(PEAKS, config), _Fixed(other, config), [image])
    assert result["verdict"] == verdict, result
    assert words in export.describe_parity(result)


def test_ensure_onnx_keeps_an_existing_file(tiny_export, tmp_path, monkeypatch) -> None:
    from utils import train

    monkeypatch.setattr(train, "ensure_checkpoint", lambda *a, **k: pytest.fail("trained"))
    path, _, _ = tiny_export
    assert export.ensure_onnx(path, checkpoint=tmp_path / "absent.pt") == path


def test_ensure_onnx_exports_from_the_checkpoint(
    tmp_path, monkeypatch, capsys, tiny_detector
) -> None:
    import os

    from utils import train
    from utils.checkpoint import save_checkpoint

    config = InferenceConfig("fcos_resnet18", ("Microalgae",), SIZE)
    ckpt = save_checkpoint(tmp_path / "model.pt", tiny_detector(), config)
    monkeypatch.setattr(train, "ensure_checkpoint", lambda path=None, ask_hub=True: Path(path))
    out = export.ensure_onnx(tmp_path / "model.onnx", checkpoint=ckpt)
    assert out.exists() and export.read_onnx_config(out) == config
    assert "not found" in capsys.readouterr().out
    # Unchanged checkpoint: nothing to do. Newer checkpoint: export again.
    assert export.ensure_onnx(out, checkpoint=ckpt) == out
    assert capsys.readouterr().out == ""
    later = out.stat().st_mtime + 10
    os.utime(ckpt, (later, later))
    export.ensure_onnx(out, checkpoint=ckpt)
    assert "older than" in capsys.readouterr().out


def test_read_config_of_foreign_onnx_says_how_to_reexport(tiny_export, tmp_path) -> None:
    path, _, _ = tiny_export
    model = onnx.load(str(path))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(ModelFileError, match="export_onnx"):
        export.read_onnx_config(bare)
