"""Predictors on every runtime: load_predictor dispatch and a clear ModelFileError per bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from utils import edge
from utils.checkpoint import save_checkpoint
from utils.loading import load_predictor
from utils.processing import InferenceConfig
from utils.runtime import (
    ModelFileError,
    OnnxPredictor,
    OpenVinoPredictor,
    TorchPredictor,
)

SIZE = 128  # the tiny detector's input size (TINY_SIZE in conftest.py)


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_export) -> dict[str, Path]:
    """The tiny detector of conftest.py as a checkpoint, an ONNX file and an OpenVINO IR."""
    onnx_file, detector, config = tiny_export
    root = tmp_path_factory.mktemp("runtime")
    return {
        "pt": save_checkpoint(root / "model.pt", detector, config),
        "onnx": onnx_file,
        "xml": edge.to_openvino(onnx_file, root / "model.xml"),
    }


@pytest.fixture(scope="module")
def image() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))


def test_load_predictor_dispatches_on_suffix(files) -> None:
    assert isinstance(load_predictor(files["pt"]), TorchPredictor)
    assert isinstance(load_predictor(files["onnx"]), OnnxPredictor)
    assert isinstance(load_predictor(files["onnx"], runtime="openvino"), OpenVinoPredictor)
    assert isinstance(load_predictor(files["xml"]), OpenVinoPredictor)


def test_same_predictor_api_same_counts_on_every_runtime(files, image) -> None:
    predictors = [load_predictor(files[k]) for k in ("pt", "onnx", "xml")]
    detections = [p.predict(image) for p in predictors]
    counts = {d.count for d in detections}
    assert len(counts) == 1 and counts.pop() > 0
    for det in detections[1:]:
        np.testing.assert_allclose(det.boxes, detections[0].boxes, atol=1e-2)
    assert all(p.config.image_size == SIZE for p in predictors)


def test_threads_are_set(files) -> None:
    predictor = OnnxPredictor(files["onnx"], threads=2)
    assert predictor.session.get_session_options().intra_op_num_threads == 2
    ov = OpenVinoPredictor(files["xml"], threads=2)
    assert ov.compiled.get_property("INFERENCE_NUM_THREADS") == 2
    assert str(ov.compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")


def test_openvino_fixes_a_dynamic_batch_at_one_and_runs_tiles_one_at_a_time(files, image) -> None:
    """OpenVINO fuses the decoding's element-wise ops only for static shapes, so the predictor
    compiles the IR (and an ONNX file) for one photo; a batch of two gives what each gives alone,
    bit for bit, and a model that is already static is left as it is."""
    import openvino as ov

    from utils.runtime import fix_batch_at_one

    for predictor in (OpenVinoPredictor(files["xml"]), OpenVinoPredictor(files["onnx"])):
        assert predictor.one_at_a_time
        assert predictor.compiled.input(0).get_partial_shape().is_static
        assert predictor.compiled.input(0).get_shape()[0] == 1
        batch, _, _ = predictor.prepare([image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
        boxes, scores = predictor.run(batch)
        assert boxes.shape[0] == scores.shape[0] == 2
        for i in range(2):
            alone_boxes, alone_scores = predictor.run(batch[i : i + 1])
            np.testing.assert_array_equal(boxes[i : i + 1], alone_boxes)
            np.testing.assert_array_equal(scores[i : i + 1], alone_scores)
    model = ov.Core().read_model(str(files["xml"]))
    assert fix_batch_at_one(model) and not fix_batch_at_one(model)  # the second time: static


def test_onnx_predictor_from_bytes(files, image) -> None:
    predictor = OnnxPredictor(files["onnx"].read_bytes())
    assert predictor.predict(image).count == OnnxPredictor(files["onnx"]).predict(image).count


def test_unknown_runtime_and_suffix(files, tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown runtime"):
        load_predictor(files["onnx"], runtime="tensorflow")
    weird = tmp_path / "model.tflite"
    weird.write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"\.pt .*\.onnx .*\.xml"):
        load_predictor(weird)
    with pytest.raises(ModelFileError, match="export it to ONNX"):
        load_predictor(files["pt"], runtime="onnxruntime")


# --------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="no model file at .*nothing.onnx.*notebook 03"):
        OnnxPredictor(tmp_path / "nothing.onnx")
    with pytest.raises(ModelFileError, match="no model file"):
        load_predictor(tmp_path / "nothing.onnx", runtime="openvino")


def test_empty_file(tmp_path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        OnnxPredictor(empty)


@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_truncated_onnx(files, tmp_path, fraction) -> None:
    data = files["onnx"].read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        OnnxPredictor(cut)
    with pytest.raises(ModelFileError, match="truncated|corrupt"):
        OpenVinoPredictor(cut)


def test_jpeg_renamed_to_onnx(tmp_path, image) -> None:
    fake = tmp_path / "photo.onnx"
    image.save(fake, format="JPEG")
    with pytest.raises(ModelFileError, match="not an ONNX model: it looks like a JPEG image"):
        OnnxPredictor(fake)
    with pytest.raises(ModelFileError, match="JPEG"):
        load_predictor(fake, runtime="openvino")


def test_checkpoint_renamed_to_onnx(files, tmp_path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(files["pt"].read_bytes())
    with pytest.raises(ModelFileError, match="zip archive .*PyTorch"):
        OnnxPredictor(fake)


def test_git_lfs_pointer(tmp_path) -> None:
    pointer = tmp_path / "model.onnx"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n")
    with pytest.raises(ModelFileError, match="git lfs pull"):
        OnnxPredictor(pointer)


def test_onnx_without_metadata_says_how_to_reexport(files, tmp_path) -> None:
    model = onnx.load(str(files["onnx"]))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    for make in (OnnxPredictor, OpenVinoPredictor):
        with pytest.raises(
            ModelFileError, match="without this course's inference config.*export_onnx"
        ):
            make(bare)
    config = InferenceConfig("fcos_resnet18", ("Microalgae",), SIZE)
    assert OnnxPredictor(bare, config=config).config == config  # explicit config still works


def test_ir_without_bin(files, tmp_path) -> None:
    xml = tmp_path / "lonely.xml"
    xml.write_bytes(files["xml"].read_bytes())
    with pytest.raises(ModelFileError, match=r"no weights file .*lonely\.bin"):
        OpenVinoPredictor(xml)


def test_messages_never_show_absolute_paths(tmp_path) -> None:
    with pytest.raises(ModelFileError) as info:
        OnnxPredictor(tmp_path / "deep" / "missing.onnx")
    assert str(tmp_path) not in str(info.value)
