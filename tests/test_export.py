"""ONNX export: checker, metadata round trip, graph summary, parity with PyTorch, ensure_onnx."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from utils import export
from utils.processing import InferenceConfig, preprocess
from utils.runtime import ModelFileError, OnnxPredictor, OpenVinoPredictor, TorchPredictor

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
