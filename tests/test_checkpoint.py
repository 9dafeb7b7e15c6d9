"""The checkpoint format: round trip, and a clear CheckpointError for every bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from utils import checkpoint as ck
from utils.model import build_model
from utils.processing import InferenceConfig, preprocess
from utils.runtime import TorchPredictor

SIZE = 128


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, torch.nn.Module, InferenceConfig]:
    torch.manual_seed(1)
    detector = build_model("fcos_resnet18", 1, SIZE, pretrained=False)
    # Non-default BatchNorm statistics, so a round trip that forgot buffers would show.
    with torch.no_grad():
        for module in detector.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    detector.eval()
    config = InferenceConfig("fcos_resnet18", ("Microalgae",), SIZE, score_threshold=0.42)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    history = [{"epoch": 1, "loss": np.float32(2.5), "val_map": None}]
    ck.save_checkpoint(path, detector, config, {"val_map": np.float64(0.5)}, history)
    return path, detector, config


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (150, 170, 3), dtype=np.uint8)


def _raw(predictor, image):
    batch, _, _ = preprocess([image], predictor.config)
    return predictor.run(batch)


def test_round_trip_same_predictions(saved, image) -> None:
    path, detector, config = saved
    before = TorchPredictor(detector, config)
    loaded = ck.load_checkpoint(path)
    assert loaded.config == config
    assert not loaded.detector.training
    after = loaded.predictor()
    boxes_a, scores_a = _raw(before, image)
    boxes_b, scores_b = _raw(after, image)
    np.testing.assert_allclose(boxes_a, boxes_b, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(scores_a, scores_b, rtol=1e-5, atol=1e-6)
    # A fresh model differs, so the comparison above can fail.
    fresh = TorchPredictor(build_model("fcos_resnet18", 1, SIZE, pretrained=False).eval(), config)
    assert not np.allclose(_raw(fresh, image)[1], scores_a, atol=1e-4)
    a = before.predict(image, threshold=0.05)
    b = ck.predictor(path).predict(image, threshold=0.05)
    assert a.count == b.count and np.allclose(a.scores, b.scores, atol=1e-6)


def test_metadata_round_trip(saved) -> None:
    path, _, _ = saved
    loaded = ck.load_checkpoint(path)
    assert loaded.metrics == {"val_map": 0.5}
    assert loaded.history == [{"epoch": 1, "loss": 2.5, "val_map": None}]
    assert loaded.config.score_threshold == pytest.approx(0.42)
    assert set(loaded.versions) == {"torch", "torchvision", "utils"}
    assert loaded.versions["torch"] == str(torch.__version__)
    payload = torch.load(path, weights_only=True)  # only plain types inside
    assert payload["format"] == ck.FORMAT and payload["config"]["image_size"] == SIZE


def _expect(path: Path, *words: str) -> str:
    with pytest.raises(ck.CheckpointError) as info:
        ck.load_checkpoint(path)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert str(path.parent) not in message  # no absolute paths of this machine
    return message


def test_missing_file(tmp_path) -> None:
    _expect(tmp_path / "nothing.pt", "no checkpoint", "nothing.pt")


def test_random_bytes(tmp_path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _expect(path, "not a PyTorch checkpoint", "noise.pt")


def test_truncated_file(saved, tmp_path) -> None:
    data = saved[0].read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    _expect(path, "cut.pt")


def test_onnx_file_by_suffix_and_by_content(tmp_path) -> None:
    fake_onnx = b"\x08\x08\x12\x07pytorch\x1a\x052.6.0" + bytes(64)
    (tmp_path / "model.onnx").write_bytes(fake_onnx)
    _expect(tmp_path / "model.onnx", "ONNX")
    (tmp_path / "renamed.pt").write_bytes(fake_onnx)
    _expect(tmp_path / "renamed.pt", "ONNX")


def test_other_pytorch_files(saved, tmp_path) -> None:
    plain_state = tmp_path / "state.pt"
    torch.save(saved[1].state_dict(), plain_state)
    _expect(plain_state, "not a course checkpoint")
    pickled = tmp_path / "pickled.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    _expect(pickled, "pickled")


def test_wrong_version_and_missing_keys(saved, tmp_path) -> None:
    payload = torch.load(saved[0], weights_only=True)
    newer = tmp_path / "newer.pt"
    torch.save({**payload, "format_version": ck.FORMAT_VERSION + 1}, newer)
    _expect(newer, "version")
    partial = tmp_path / "partial.pt"
    torch.save({k: v for k, v in payload.items() if k != "state_dict"}, partial)
    _expect(partial, "state_dict")
    broken = tmp_path / "broken_config.pt"
    torch.save({**payload, "config": {"image_size": SIZE}}, broken)
    _expect(broken, "config")


def test_weights_of_another_model(saved, tmp_path) -> None:
    payload = torch.load(saved[0], weights_only=True)
    other = tmp_path / "other.pt"
    config = {**payload["config"], "model_name": "retinanet_resnet18"}
    torch.save({**payload, "config": config}, other)
    _expect(other, "retinanet_resnet18")
