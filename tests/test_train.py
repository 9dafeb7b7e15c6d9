"""Training: a tiny overfit learns, fit's bookkeeping, schedule, presets, ensure_checkpoint."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from utils import train
from utils.annotations import AnnotatedImage, AnnotationSet
from utils.checkpoint import load_checkpoint
from utils.dataset import CellDataset
from utils.synth import generate_image

SIZE = 128


def tiny_set(folder: Path, seeds=(0, 1, 2), size: int = SIZE) -> AnnotationSet:
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for seed in seeds:
        image, boxes, labels = generate_image(seed, size)
        path = folder / f"cell_{seed}.png"
        image.save(path)
        items.append(AnnotatedImage(path, size, size, boxes, labels))
    return AnnotationSet(("Microalgae",), items)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> AnnotationSet:
    return tiny_set(tmp_path_factory.mktemp("tiny"))


def test_tiny_overfit_loss_decreases(data) -> None:
    """FCOS, one image, no augmentation, ten steps: the loss must fall clearly.

    (The default heatmap model has its own overfit test in test_centernet.py.)
    """
    one = CellDataset(AnnotationSet(data.class_names, data.images[:1]), SIZE, train=False)
    result = train.fit(
        one,
        None,
        replace(
            train.PLAIN,
            model_name="fcos_resnet18",
            image_size=SIZE,
            epochs=10,
            batch_size=1,
            lr=1e-3,
        ),
        pretrained=False,
        progress=False,
    )
    losses = [row["loss"] for row in result.history]
    cls = [row["loss_classification"] for row in result.history]
    assert len(losses) == 10 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3]), losses
    assert np.mean(cls[-3:]) < 0.5 * cls[0], cls
    # A too-short warm-up once left FCOS's ReLU box regression dead: GIoU loss stuck at 1.0.
    regression = [row["loss_bbox_regression"] for row in result.history]
    assert regression[-1] < 0.99, regression
    assert result.best_epoch == 10  # no validation: the last epoch is kept
    assert result.config.score_threshold == 0.5
    assert {"loss_bbox_regression", "loss_bbox_ctrness", "lr", "seconds"} <= set(result.history[0])


def test_fit_validates_sweeps_and_saves(data, tmp_path) -> None:
    train_set = AnnotationSet(data.class_names, data.images[:2])
    val_set = AnnotationSet(data.class_names, data.images[2:])
    out = tmp_path / "model.pt"
    result = train.fit(
        train_set,
        val_set,
        replace(train.PLAIN, image_size=SIZE, epochs=2, batch_size=2, eval_every=1),
        pretrained=False,
        progress=False,
        save_to=out,
    )
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert all(row["val_map"] is not None for row in result.history)
    assert result.best_epoch in (1, 2)
    best_row = result.history[result.best_epoch - 1]
    assert best_row["val_map"] == max(row["val_map"] for row in result.history)
    thresholds = [row["threshold"] for row in result.sweep]
    assert result.config.score_threshold in thresholds
    assert result.metrics["threshold"] == result.config.score_threshold
    for key in ("val_map", "val_map_50", "val_count_mae", "train_seconds", "parameters"):
        assert key in result.metrics
    assert not result.detector.training
    loaded = load_checkpoint(out)
    assert loaded.config == result.config
    assert loaded.metrics["best_epoch"] == result.best_epoch
    image = val_set[0].load_image()
    a = result.predictor().predict(image, 0.05)
    b = loaded.predictor().predict(image, 0.05)
    assert a.count == b.count
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_sgd_and_bad_arguments(data) -> None:
    result = train.fit(
        AnnotationSet(data.class_names, data.images[:1]),
        None,
        replace(train.PLAIN, image_size=SIZE, epochs=1, batch_size=1, lr=0.01, optimizer="sgd"),
        pretrained=False,
        progress=False,
    )
    assert math.isfinite(result.history[0]["loss"])
    with pytest.raises(ValueError, match="optimizer"):
        train.make_optimizer(result.detector, "adam-ish", 1e-3)
    with pytest.raises(ValueError, match="epochs"):
        train.fit(data, None, replace(train.PLAIN, epochs=0))


def test_warmup_cosine_schedule() -> None:
    factor = train.warmup_cosine(total_steps=100, warmup_steps=10, floor=0.01)
    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.505, abs=1e-3)
    assert factor(100) == pytest.approx(0.01)
    values = [factor(s) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_presets() -> None:
    fast, full = train.preset(fast=True), train.preset(fast=False)
    assert fast.epochs < full.epochs
    assert fast.image_size % 32 == 0 and full.image_size % 32 == 0
    assert fast.cell_size and fast.crop_size  # the course trains on crops at the working scale


def test_old_keyword_style_maps_onto_the_plan() -> None:
    """``fit(train, val, epochs=3, ...)`` (before plans) still works, with a warning."""
    fast = train.preset(fast=True)
    with pytest.warns(DeprecationWarning, match="TrainingPlan"):
        assert train.plan_from(None, fast.kwargs()) == fast
    with pytest.warns(DeprecationWarning):
        assert train.plan_from(None, {"epochs": 3}) == replace(train.PLAIN, epochs=3)
    assert train.plan_from(None, {}) is train.PLAIN
    # what fit(train, val) without a plan always did: whole photos, no working scale
    assert (train.PLAIN.epochs, train.PLAIN.crop_size, train.PLAIN.cell_size) == (50, None, None)
    with pytest.raises(TypeError, match="nonsense"):
        train.plan_from(None, {"nonsense": 1})


def test_lr_find(data) -> None:
    lrs, losses = train.lr_find(
        data,
        replace(train.PLAIN, image_size=SIZE, batch_size=2),
        steps=6,
        start_lr=1e-5,
        end_lr=1e-2,
        pretrained=False,
        progress=False,
    )
    assert 1 < len(lrs) == len(losses) <= 6
    assert all(b > a for a, b in zip(lrs, lrs[1:]))
    assert lrs[0] == pytest.approx(1e-5)
    assert train.plot_lr_find(lrs, losses) is not None


def test_ensure_checkpoint(tmp_path, monkeypatch, capsys) -> None:
    existing = tmp_path / "model.pt"
    existing.write_bytes(b"x")
    assert train.ensure_checkpoint(existing) == existing
    assert capsys.readouterr().out == ""

    calls = []

    def fake_training(fast, save_to, progress=True):
        calls.append((fast, Path(save_to)))
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        Path(save_to).write_bytes(b"trained")

    monkeypatch.setattr(train.ensure, "train_course_model", fake_training)
    missing = tmp_path / "new" / "model.pt"
    assert train.ensure_checkpoint(missing) == missing
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "fast mode" in out
    assert calls == [(True, missing)]


def test_interrupt_keeps_the_best_weights_and_returns(data, monkeypatch, capsys) -> None:
    """A stop button (KeyboardInterrupt) mid-training still returns a usable result."""
    real = train.train_one_epoch

    def stop_at_third(*args, **kwargs):
        if kwargs.get("epoch", args[5] if len(args) > 5 else None) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train.fitting, "train_one_epoch", stop_at_third)  # where fit looks it up
    result = train.fit(
        AnnotationSet(data.class_names, data.images[:2]),
        AnnotationSet(data.class_names, data.images[2:]),
        replace(train.PLAIN, image_size=SIZE, epochs=5, batch_size=2, eval_every=1),
        pretrained=False,
        progress=False,
    )
    assert "stopped by you after 2 of 5 epochs" in capsys.readouterr().out
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert result.metrics["interrupted"] is True and result.metrics["epochs_run"] == 2
    assert result.best_epoch in (1, 2)
    assert result.sweep and result.config.score_threshold in [r["threshold"] for r in result.sweep]
    assert not result.detector.training


def test_ensure_checkpoint_takes_the_learners_hub_model(tmp_path, monkeypatch, capsys) -> None:
    """A fresh runtime gets the model notebook 04 pushed instead of training (one line says so)."""
    from utils import handoff

    target = tmp_path / "model.pt"

    def fetched(checkpoint=None, onnx=None, verbose=True):
        Path(checkpoint).write_bytes(b"from the hub")
        return handoff.Handoff(
            "me/counter",
            "Using your model from the Hub: me/counter",
            {"checkpoint": Path(checkpoint)},
        )

    monkeypatch.setattr(handoff, "fetch_own_model", fetched)
    monkeypatch.setattr(train.ensure, "train_course_model", lambda **k: pytest.fail("trained"))
    assert train.ensure_checkpoint(target) == target
    assert target.read_bytes() == b"from the hub"
    assert capsys.readouterr().out == "Using your model from the Hub: me/counter\n"
