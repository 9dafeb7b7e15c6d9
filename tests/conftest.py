"""Fixtures shared by several test files: the small models they count with, the held-out
pictures, the Gradio app server and a child-process environment without torch.

The session set-up (the local Hub, ``HF_ENDPOINT``, fast mode) lives in the repository's
``conftest.py``, which pytest loads first. Imports of torch, ONNX and the course modules stay
inside the fixtures, so collecting a test file that needs none of them stays fast.

The models are built once per session: each file used to export its own copy of the same
seeded detector.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.numerics import PARITY_TOLERANCE, gap_threshold, margin, spread_scores

ROOT = Path(__file__).resolve().parents[1]
TINY_SIZE = 128  # the tiny exported detector's input size (test_edge, test_export, test_runtime)
COUNTING_CANDIDATES = 60  # raw scores of the first held-out photo that the counting model keeps


@pytest.fixture(scope="session")
def untrained_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, untrained 320 px model with the default counting path (the app's tests)."""
    import torch

    from utils.export import export_onnx
    from utils.model import build_model
    from utils.processing import InferenceConfig

    path = tmp_path_factory.getbasetemp() / "untrained_fcos.onnx"
    torch.manual_seed(0)
    model = build_model(pretrained=False, image_size=320).eval()
    config = InferenceConfig("fcos_resnet18", ("Microalgae",), 320, score_threshold=0.5)
    return export_onnx(model, config, path=path)


@pytest.fixture(scope="session")
def held_out_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two held-out images if the course data is there, else two synthetic pictures."""
    held_out = sorted((ROOT / "data" / "test").glob("*.jpg"))[:2]
    if held_out:
        return held_out
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for seed in (0, 1):
        array = (np.random.default_rng(seed).random((240, 320, 3)) * 255).astype(np.uint8)
        paths.append(folder / f"random_{seed}.jpg")
        Image.fromarray(array).save(paths[-1], quality=92)
    return paths


@pytest.fixture(scope="module")
def predictor(untrained_onnx):
    """The app tests' model: the untrained 320 px ONNX file on 2 threads (a test file that
    counts with another model defines its own ``predictor``)."""
    from utils.loading import load_predictor

    return load_predictor(untrained_onnx, threads=2)


@pytest.fixture(scope="module")
def images(held_out_images):
    """The photos the app serves as examples (a test file may define its own ``images``)."""
    return held_out_images


@pytest.fixture(scope="module")
def server(predictor, images):
    """The Gradio app of the test file's ``predictor`` and ``images`` on 127.0.0.1: its URL."""
    from utils import app

    url, close = app.launch_in_background(predictor, examples=images)
    try:
        yield url
    finally:
        close()


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the test file (2 CPUs); shut down after, whatever happened."""
    import ray

    from utils import batch

    started = batch.start_ray(num_cpus=2)
    yield
    if started:
        batch.stop_ray()
    assert not ray.is_initialized()


@pytest.fixture(scope="session")
def no_torch_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a child process in which ``import torch`` fails, as on a Space without
    torch installed (a ``sitecustomize`` blocks torch and torchvision, and openvino, which the
    Space's requirements leave out too: its runtime choice sees ONNX Runtime only)."""
    site = tmp_path_factory.mktemp("no_torch")
    (site / "sitecustomize.py").write_text(
        "import sys\nfor _name in ('torch', 'torchvision', 'openvino'):\n"
        "    sys.modules[_name] = None\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), GRADIO_ANALYTICS_ENABLED="False")
    return env


def build_tiny_detector():
    """An untrained FCOS whose scores straddle 0.5, so counts are non-zero and can differ."""
    import torch

    from utils.model import build_model

    torch.manual_seed(0)
    detector = build_model("fcos_resnet18", 1, TINY_SIZE, pretrained=False)
    with torch.no_grad():
        detector.head.classification_head.cls_logits.bias.fill_(1.5)
    return detector.eval()


@pytest.fixture(scope="session")
def tiny_detector():
    """:func:`build_tiny_detector` as a fixture: call it for a fresh copy to change."""
    return build_tiny_detector


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory):
    """(ONNX path, torch detector, config) of the tiny detector, exported once. Read-only:
    a test that changes the detector builds its own with ``tiny_detector()``."""
    from utils.export import export_onnx
    from utils.processing import InferenceConfig

    detector = build_tiny_detector()
    config = InferenceConfig("fcos_resnet18", ("Microalgae",), TINY_SIZE, score_threshold=0.55)
    path = export_onnx(detector, config, tmp_path_factory.mktemp("tiny") / "model.onnx")
    return path, detector, config


@pytest.fixture(scope="session")
def counting_candidates() -> int:
    return COUNTING_CANDIDATES


@pytest.fixture(scope="session")
def counting_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, untrained 128 px model whose stored threshold keeps ``COUNTING_CANDIDATES``
    raw scores of the first held-out photo (test_web, test_space).

    The model's scores are spread (tests/numerics.spread_scores) and the threshold is the
    middle of a gap among them near rank ``COUNTING_CANDIDATES`` (tests/numerics.gap_threshold),
    so the browser and Python agree unless a score differs by more than PARITY_TOLERANCE. It
    is off the slider's 0.01 grid on purpose: the page must count at exactly this value.
    """
    import dataclasses

    import onnxruntime
    import torch

    from utils.export import export_onnx
    from utils.images import load_image
    from utils.model import build_model
    from utils.processing import InferenceConfig, preprocess

    path = tmp_path_factory.mktemp("counting_model") / "untrained_128.onnx"
    size = TINY_SIZE
    torch.manual_seed(0)
    detector = spread_scores(build_model(pretrained=False, image_size=size).eval())
    config = InferenceConfig("untrained", ("Microalgae",), size, score_threshold=0.5, min_score=0)
    export_onnx(detector, config, path=path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    photo = load_image(sorted((ROOT / "data" / "test").glob("*.jpg"))[0]).image
    batch = preprocess([photo], config)[0]
    scores = session.run(None, {session.get_inputs()[0].name: batch})[1].ravel()
    threshold = round(gap_threshold(scores, keep=COUNTING_CANDIDATES), 5)
    assert margin(scores, threshold) > PARITY_TOLERANCE and round(threshold, 2) != threshold
    config = dataclasses.replace(config, score_threshold=threshold, min_score=threshold / 2)
    return export_onnx(detector, config, path=path)


# In the middle of a 2.4e-3 gap among the archive model's peak scores on the photos of
# test_batch and test_prelabels (tests/numerics.py: no score within PARITY_TOLERANCE; 17-33
# boxes per photo); test_batch asserts the margin.
ARCHIVE_THRESHOLD = 0.2774


@pytest.fixture(scope="session")
def archive_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive job's model (test_batch, test_prelabels): an untrained heatmap counter at
    128 px with spread scores (tests/numerics.spread_scores) and a threshold in a gap of them,
    so two engines agree on every count unless one computes a score wrong by > 1e-3."""
    import torch

    from utils import export
    from utils.model import build_model
    from utils.processing import InferenceConfig

    torch.manual_seed(0)
    detector = spread_scores(build_model("centernet_resnet18", 1, 128, pretrained=False).eval())
    config = InferenceConfig(
        "centernet_resnet18", ("Microalgae",), 128, score_threshold=ARCHIVE_THRESHOLD
    )
    return export.export_onnx(detector, config, tmp_path_factory.mktemp("archive") / "model.onnx")


# Three classes (issue 19): utils.synth_classes's photos and an untrained three-class counter.
MULTICLASS_PHOTOS = 4


@pytest.fixture(scope="session")
def multiclass_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four generated three-class photos of 256 px (needles, round cells, specks) with their
    labelImg VOC files and a COCO ``annotations.json`` beside them (utils.synth_classes)."""
    from utils.synth_classes import write_mixed_dataset

    folder = tmp_path_factory.mktemp("multiclass_photos")
    aset = write_mixed_dataset(folder, count=MULTICLASS_PHOTOS, coco=True)
    return [img.image_path for img in aset.images]


@pytest.fixture(scope="session")
def multiclass_onnx(tmp_path_factory: pytest.TempPathFactory, multiclass_photos) -> Path:
    """An untrained three-class heatmap counter at 128 px whose stored threshold keeps boxes of
    every class on ``multiclass_photos``, in a gap of its scores (all classes together).

    The scores are spread (tests/numerics.spread_scores), then each class's heatmap bias is
    shifted so that its 30th best peak on the photos scores 0.4: at random weights one class
    would otherwise score ten times another and no threshold would keep all three.
    """
    import dataclasses

    import onnx
    import onnxruntime
    import torch

    from utils.export import export_onnx, set_metadata
    from utils.images import load_image
    from utils.model import build_model
    from utils.processing import InferenceConfig, preprocess
    from utils.synth_classes import CLASS_NAMES

    torch.manual_seed(0)
    detector = spread_scores(build_model("centernet_resnet18", 3, TINY_SIZE, pretrained=False))
    detector.eval()
    config = InferenceConfig("centernet_resnet18", CLASS_NAMES, TINY_SIZE, min_score=0.2)
    batch = np.concatenate([preprocess([load_image(p).image], config)[0] for p in multiclass_photos])
    with torch.no_grad():
        _, peaks = detector.decode(torch.from_numpy(batch))
        kth = peaks.reshape(-1, len(CLASS_NAMES)).topk(30, dim=0).values[-1]
        detector.heatmap[-1].bias.add_(torch.logit(torch.tensor(0.4)) - torch.logit(kth))
    path = export_onnx(detector, config, tmp_path_factory.mktemp("multiclass") / "model.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores = session.run(None, {session.get_inputs()[0].name: batch})[1].reshape(-1, 3)
    threshold = round(gap_threshold(scores.ravel(), keep=12 * len(multiclass_photos)), 5)
    assert margin(scores, threshold) > PARITY_TOLERANCE, threshold
    assert (scores >= threshold).sum(0).min() >= len(multiclass_photos), "a class kept too few"
    model = onnx.load(str(path))
    set_metadata(model, dataclasses.replace(config, score_threshold=threshold))
    onnx.save(model, str(path))
    return path
