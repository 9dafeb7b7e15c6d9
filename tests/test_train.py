"""Training: a tiny overfit learns, fit's bookkeeping, schedule, presets, ensure_checkpoint."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from utils import train
from utils.annotations import AnnotatedImage, AnnotationSet
from utils.checkpoint import load_checkpoint
from utils.dataset import CellDataset
from utils.synth import generate_image
from utils.train.budget import AIM

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
    assert result.kept_epoch == 10  # no validation: the last epoch is kept
    # ... and the counting threshold is chosen on the training image
    assert result.metrics["threshold_photos"] == {"validation": 0, "training": 1}
    assert result.config.score_threshold in [row["threshold"] for row in result.sweep]
    assert "val_map" not in result.metrics
    assert {"loss_bbox_regression", "loss_bbox_ctrness", "lr", "seconds"} <= set(result.history[0])


def test_fit_validates_sweeps_and_saves(data, tmp_path) -> None:
    train_set = AnnotationSet(data.class_names, data.images[:2])
    val_set = AnnotationSet(data.class_names, data.images[2:])
    out = tmp_path / "model.pt"
    result = train.fit(
        train_set,
        val_set,
        replace(
            train.PLAIN, image_size=SIZE, epochs=2, batch_size=2, eval_every=1, gaussian_alpha=0.8
        ),
        pretrained=False,
        progress=False,
        save_to=out,
    )
    assert result.detector.gaussian_alpha == 0.8  # the plan's target width reached the model
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert all(row["val_map"] is not None for row in result.history)
    assert result.kept_epoch == 2  # the plan's default keeps the last weights
    best_row = result.history[result.metrics["best_val_epoch"] - 1]
    assert best_row["val_map"] == max(row["val_map"] for row in result.history)
    thresholds = [row["threshold"] for row in result.sweep]
    assert result.config.score_threshold in thresholds
    assert result.metrics["threshold"] == result.config.score_threshold
    assert result.metrics["threshold_photos"] == {"validation": 1, "training": 2}
    for key in ("val_map", "val_map_50", "val_count_mae", "train_seconds", "parameters"):
        assert key in result.metrics
    assert not result.detector.training
    loaded = load_checkpoint(out)
    assert loaded.config == result.config
    assert loaded.metrics["kept_epoch"] == result.kept_epoch == loaded.extra["kept_epoch"]
    assert loaded.extra["plan"]["keep"] == "last"
    assert loaded.extra["plan"]["gaussian_alpha"] == 0.8
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


def test_presets_keep_17_photos_as_they_were_and_cap_the_clock() -> None:
    """The full plan is 112 epochs (784 steps on the course's photos); the clock only cuts
    longer runs (10 minutes). The fast plan has no clock: the same steps everywhere."""
    full, fast = train.preset(fast=False), train.preset(fast=True)
    assert (full.epochs, full.eval_every, full.minutes) == (112, 8, 10.0)
    assert (fast.epochs, fast.eval_every, fast.minutes) == (30, 5, None)


def test_the_full_plan_trains_on_wider_bumps_than_the_fast_one() -> None:
    """Measured: 0.8 gave better boxes with the full plan's steps but worse fast-plan counts."""
    full, fast = train.preset(fast=False), train.preset(fast=True)
    assert full.gaussian_alpha == 0.8
    assert fast.gaussian_alpha == train.PLAIN.gaussian_alpha == 0.54


def _budget(seconds, steps_per_epoch=100, epochs=64, eval_every=16):
    from utils.train.budget import Budget

    return Budget(seconds, steps_per_epoch, epochs, eval_every, started=0.0)


def test_budget_fits_the_epochs_to_the_minutes(monkeypatch) -> None:
    """Figures, not timings: a step of 0.2 s, a validation of 10 s, 600 s to spend."""
    monkeypatch.setattr("utils.train.budget.time.perf_counter", lambda: 3.0)  # 3 s spent
    budget = _budget(600.0)
    budget.steps = 12
    budget.decide(seconds_per_step=0.2, seconds_per_validation=10.0)
    # (95 % of 600 - 3 - 5 validations x 10 s) / 0.2 = 2585 steps more + 12 done: 25 epochs + 97
    assert AIM == 0.95 and budget.total_steps == 2597 and budget.epochs == 26
    assert budget.steps_in(25) == 100 and budget.steps_in(26) == 97  # the last one stops part-way
    assert budget.eval_every == 6  # still about four validations
    assert budget.record["limited_by"] == "minutes" and budget.record["plan_epochs"] == 64

    small = _budget(600.0, steps_per_epoch=7)  # the course's 17 photos: 448 steps fit
    small.steps = 12
    small.decide(seconds_per_step=0.35, seconds_per_validation=2.0)
    assert (small.epochs, small.eval_every, small.record["limited_by"]) == (64, 16, "epochs")

    starved = _budget(1.0)  # less time than one epoch: stop after the steps already done
    starved.steps = 12
    starved.decide(seconds_per_step=1.0, seconds_per_validation=5.0)
    assert (starved.total_steps, starved.epochs, starved.eval_every) == (12, 1, 1)


def test_budget_shortens_a_run_the_machine_slowed_down(monkeypatch) -> None:
    clock = {"now": 4.0}
    monkeypatch.setattr("utils.train.budget.time.perf_counter", lambda: clock["now"])
    budget = _budget(600.0, epochs=20, eval_every=5)
    budget.steps = 12
    budget.decide(seconds_per_step=0.25, seconds_per_validation=5.0)  # 20 epochs of 100 fit
    assert budget.epochs == 20
    clock["now"] = 300.0
    # 10 epochs in 300 s, then a step takes 0.4 s instead of 0.3: 1,000 more end at 700 s
    assert budget.check(10, seconds_per_step=0.4, validation_seconds=5.0)
    assert budget.total_steps == 1000 + int((AIM * 600 - 300 - 3 * 5) / 0.4)  # 1637
    assert budget.epochs == 17 and budget.record["shortened_after_epoch"] == 10
    assert not budget.check(11, seconds_per_step=0.3, validation_seconds=5.0)  # on time now
    # Heading for 6 % over its budget (300 + 3 x 5 + 1,000 x 0.32 = 635 s): shortened too;
    # before 2026-12-07 only runs heading past 110 % were, and a BCCD run took 624 s of 600
    late = _budget(600.0, epochs=20, eval_every=5)
    late.steps, clock["now"] = 12, 4.0
    late.decide(seconds_per_step=0.25, seconds_per_validation=5.0)
    assert late.total_steps == 2000
    clock["now"] = 300.0
    assert late.check(10, seconds_per_step=0.32, validation_seconds=5.0)
    assert late.total_steps == 1000 + int((AIM * 600 - 300 - 3 * 5) / 0.32)  # 1796


def test_budget_lengthens_a_run_measured_on_a_busy_minute(monkeypatch) -> None:
    """Probe steps of 1 s (another job ran), then 0.25 s: the first half may still grow."""
    clock = {"now": 12.0}
    monkeypatch.setattr("utils.train.budget.time.perf_counter", lambda: clock["now"])
    budget = _budget(600.0, epochs=64, eval_every=16)
    budget.steps = 12
    budget.decide(seconds_per_step=1.0, seconds_per_validation=5.0)
    assert budget.total_steps == 12 + int(AIM * 600 - 12 - 25)  # 545: 6 epochs of 100
    clock["now"] = 112.0  # epoch 1 done in 100 s; now a step takes 0.25 s
    assert budget.check(1, seconds_per_step=0.25, validation_seconds=5.0)
    evaluations = 4  # ceil(5 epochs left / eval_every 2) + 1
    assert budget.total_steps == 100 + int((AIM * 600 - 112 - evaluations * 5) / 0.25)  # 1852
    assert budget.record["lengthened_after_epoch"] == 1 and budget.epochs == 19
    clock["now"] = 400.0  # past half way: no more growing, even if faster still
    assert not budget.check(11, seconds_per_step=0.05, validation_seconds=5.0)
    capped = _budget(600.0, epochs=2, eval_every=1)  # never beyond the plan's epochs
    capped.steps, clock["now"] = 12, 0.0
    capped.decide(seconds_per_step=10.0, seconds_per_validation=0.0)
    clock["now"] = 130.0
    assert capped.check(0, seconds_per_step=0.01, validation_seconds=0.0)
    assert capped.total_steps == 200 and capped.record["limited_by"] == "epochs"
    assert not _budget(None, epochs=20).check(10, 1e6, 1e6)  # no budget, no cut


def test_budget_lengthens_a_run_heading_well_under_its_aim(monkeypatch) -> None:
    """Epochs that speed up after the probe: a run heading for 88 % of its budget in its first
    half grows back to ``AIM``; one heading for 93 % (between the bounds) is left alone."""
    from utils.train.budget import OVERRUN, UNDERRUN

    assert UNDERRUN < AIM < OVERRUN
    clock = {"now": 12.0}
    monkeypatch.setattr("utils.train.budget.time.perf_counter", lambda: clock["now"])

    def run_heading_for(share: float):
        budget = _budget(600.0, epochs=64, eval_every=16)
        budget.steps = 12
        clock["now"] = 12.0
        budget.decide(seconds_per_step=0.2, seconds_per_validation=5.0)
        clock["now"] = 110.0  # 5 epochs of 100 steps done
        evaluations = math.ceil((budget.epochs - 5) / budget.eval_every) + 1
        spent = 110.0 + evaluations * 5.0
        pace = (share * 600 - spent) / (budget.total_steps - 500)
        return budget, budget.check(5, pace, 5.0), spent, pace

    budget, changed, spent, pace = run_heading_for(0.88)
    assert changed and budget.record["lengthened_after_epoch"] == 5
    assert budget.total_steps == 500 + int((AIM * 600 - spent) / pace)
    budget, changed, *_ = run_heading_for(0.93)
    assert not changed and "lengthened_after_epoch" not in budget.record


def test_plain_is_what_fit_does_without_a_plan() -> None:
    """Whole photos, no working scale, 50 epochs: the plan of ``fit(train, val)``."""
    assert (train.PLAIN.epochs, train.PLAIN.crop_size, train.PLAIN.cell_size) == (50, None, None)
    with pytest.raises(TypeError, match="epochs"):
        train.fit([], None, epochs=3)  # the old keyword style is gone: pass a TrainingPlan


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


@pytest.mark.parametrize("keep", ["last", "best"])
def test_fit_keeps_the_weights_its_plan_names(data, monkeypatch, keep) -> None:
    """Validation mAP falling from 0.9 to 0.1: "last" keeps epoch 2's weights, "best" epoch 1's."""
    scores = iter([0.9, 0.1])
    snapshots = []

    def validate(model, inference, val_set, device):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"map": next(scores), "map_50": 0.5, "count_mae": 1.0}

    monkeypatch.setattr(train.fitting, "_validate", validate)
    result = train.fit(
        AnnotationSet(data.class_names, data.images[:2]),
        AnnotationSet(data.class_names, data.images[2:]),
        replace(train.PLAIN, image_size=SIZE, epochs=2, batch_size=2, eval_every=1, keep=keep),
        pretrained=False,
        progress=False,
    )
    kept = {"last": 2, "best": 1}[keep]
    assert result.kept_epoch == result.metrics["kept_epoch"] == kept
    assert result.metrics["best_val_epoch"] == 1
    state = result.detector.state_dict()
    assert all(torch.equal(state[k], v) for k, v in snapshots[kept - 1].items())
    assert not all(torch.equal(state[k], v) for k, v in snapshots[2 - kept].items())


@pytest.mark.parametrize(
    ("n_val", "n_train", "extra"), [(3, 14, 14), (10, 40, 10), (20, 272, 0), (58, 234, 0)]
)
def test_threshold_photos_tops_up_validation_with_training_photos(n_val, n_train, extra) -> None:
    """The threshold is chosen on the validation photos first, then training photos up to 20
    (the CLI's most validation photos: BCCD's 20 alone, not topped up with 28 training ones)."""
    from utils.train.fitting import THRESHOLD_PHOTOS, threshold_photos

    def photos(prefix: str, n: int) -> AnnotationSet:
        boxes = np.zeros((0, 4), np.float32)
        items = [AnnotatedImage(Path(f"{prefix}{i}.png"), 8, 8, boxes, []) for i in range(n)]
        return AnnotationSet(("Microalgae",), items)

    val, train_set = photos("val", n_val), photos("train", n_train)
    chosen = threshold_photos(val, train_set)
    names = [item.image_path.name for item in chosen.images]
    assert THRESHOLD_PHOTOS == 20 and chosen.class_names == ("Microalgae",)
    assert names == [f"val{i}.png" for i in range(n_val)] + [f"train{i}.png" for i in range(extra)]


def test_fit_refuses_an_unknown_keep(data) -> None:
    with pytest.raises(ValueError, match="plan.keep must be one of"):
        train.fit(data, None, replace(train.PLAIN, keep="median"), pretrained=False)


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
    assert result.kept_epoch in (1, 2)
    assert result.kept_epoch == result.metrics["best_val_epoch"]  # stopped: the best, not the last
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


def test_cli_train_with_minutes_and_a_dropped_box(data, tmp_path, capsys) -> None:
    """``train --minutes``: a budget far too small for the plan, so fit stops after its probe
    steps; the decision is in the metrics and the checkpoint; a zero-area box is one warning."""
    import json

    from utils import cli
    from utils.annotations import write_voc
    from utils.train.budget import PROBE_STEPS

    folder = write_voc(data, tmp_path / "voc")
    xml = folder / "cell_0.xml"
    text = xml.read_text()
    start = text.index("<xmax>") + len("<xmax>")
    end = text.index("</xmax>")
    xmin = text[text.index("<xmin>") + len("<xmin>") : text.index("</xmin>")]
    xml.write_text(text[:start] + xmin + text[end:])  # box 1: zero width
    argv = ["train", "--data", folder, "--out", tmp_path / "run", "--size", SIZE]
    argv += ["--minutes", "0.000001", "--val-fraction", "0.34", "--pretrained", "no", "--quiet"]
    assert cli.main([str(a) for a in argv]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cell_0.xml: box 1" in warnings[0], err
    assert "zero or negative area" in warnings[0] and str(tmp_path) not in err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    budget = metrics["budget"]  # 2 photos x 4 crops in batches of 8: one step an epoch
    assert budget["limited_by"] == "minutes" and budget["plan_epochs"] == 1000
    assert len(metrics["history"]) == metrics["epochs"] == budget["epochs"] == PROBE_STEPS
    assert metrics["history"][-1]["val_map"] is not None  # the last epoch is validated
    # and the first: the budget refits on a validation's real cost, not the probe's estimate
    assert metrics["history"][0]["val_map"] is not None
    assert f": {PROBE_STEPS} epochs of 1 steps" in out  # the decision, said in one line
    extra = load_checkpoint(tmp_path / "run" / "model.pt").extra["plan"]
    assert extra["budget"] == budget and extra["epochs"] == PROBE_STEPS

    bad = [str(a) for a in argv[:5]] + ["--minutes", "0"]
    assert cli.main(bad) == 1
    assert "--minutes must be a positive number" in capsys.readouterr().err


def test_the_validation_estimate_discounts_an_untrained_models_post_processing(
    monkeypatch,
) -> None:
    """An untrained heatmap's peaks make post-processing slow once; the estimate caps it.

    Stand-in predictions: 10 ms of graph and 500 ms of post-processing a photo (sleeps, so
    only lower bounds). Capped at a quarter of the graph, a photo counts about 12.5 ms; the
    threshold of 100 ms a photo sits between that and the 510 ms an uncapped estimate counts.
    """
    import time
    from types import SimpleNamespace

    import torch

    from utils.processing import InferenceConfig
    from utils.processing.timing import part
    from utils.train import fitting

    def predict_set(predictor, items):
        for _ in items:
            with part("graph"):
                time.sleep(0.01)
            with part("postprocess"):
                time.sleep(0.5)

    monkeypatch.setattr(fitting.ev, "predict_set", predict_set)
    monkeypatch.setattr("utils.runtime.TorchPredictor", lambda *args, **kwargs: None)
    val_set = SimpleNamespace(images=list(range(10)))
    config = InferenceConfig("centernet_resnet18", ("cell",), 128)
    estimate = fitting._validation_cost(torch.nn.Linear(1, 1), config, val_set, "cpu")
    per_photo = estimate / (1.3 * 10)
    assert 0.0125 <= per_photo < 0.1, per_photo


def test_an_epoch_stops_part_way_when_the_budget_says_so() -> None:
    """The last epoch of a cut run: ``max_steps`` (asked before every step) ends it early."""
    import torch

    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    loader = [([torch.zeros(3, 4, 4)], [{"boxes": torch.zeros(0, 4)}])] * 10
    limit = {"steps": 10}

    def step(model, images, targets):
        limit["steps"] = 4  # the budget decides during the epoch
        opt.step()
        return 1.0, {"part": 1.0}

    row = train.train_one_epoch(model, loader, step, schedule, "cpu", 1, lambda: limit["steps"])
    assert row["steps"] == 4 and row["loss"] == 1.0
    assert train.train_one_epoch(model, loader, step, schedule, "cpu", 2)["steps"] == 10


def test_moving_average_of_the_weights_and_a_fit_that_keeps_it(data, tmp_path) -> None:
    """``plan.ema``: the kept weights are the average, not the last step's."""
    import torch

    model = torch.nn.Linear(1, 1, bias=False)
    from utils.train.loop import averaged_copy

    averaged = averaged_copy(model, decay=0.5)
    for value in (1.0, 3.0, 5.0):
        with torch.no_grad():
            model.weight.fill_(value)
        averaged.update_parameters(model)
    # first update copies; then decay min((1 + n) / (10 + n), 0.5): 1 -> 1 + 2*0.8 -> ...
    expected = 1.0
    for n, value in ((1, 3.0), (2, 5.0)):
        d = min((1 + n) / (10 + n), 0.5)
        expected = expected + (value - expected) * (1 - d)
    assert averaged.module.weight.item() == pytest.approx(expected, rel=1e-6)
    assert averaged.module.weight.item() not in (1.0, 3.0, 5.0)

    out = tmp_path / "ema.pt"
    result = train.fit(
        AnnotationSet(data.class_names, data.images[:2]),
        AnnotationSet(data.class_names, data.images[2:]),
        replace(train.PLAIN, image_size=SIZE, epochs=2, batch_size=2, eval_every=1, ema=0.99),
        pretrained=False,
        progress=False,
        save_to=out,
    )
    assert all(row["val_map"] is not None for row in result.history)
    assert load_checkpoint(out).extra["plan"]["ema"] == 0.99
