"""Training: ``fit`` a detector on a few labelled images, then choose the counting threshold.

The talk trained IceVision's VFNet with ``fine_tune(10, 1e-3, freeze_epochs=1)``. Here the
same idea is written out in plain PyTorch so every step is visible and maintained:

* AdamW (or SGD with momentum), linear warm-up then cosine decay, gradient clipping at 10
  (a detector's first steps from random weights produce large gradients);
* automatic GPU + mixed precision (float16 autocast + gradient scaling) when CUDA is there;
* validation mAP every few epochs; the weights with the best validation mAP@[.5:.95]
  are kept (see :func:`fit` for why mAP and not count error);
* afterwards a threshold sweep on the validation images picks the counting threshold,
  which goes into the model's :class:`~utils.processing.InferenceConfig`.
"""

from __future__ import annotations

import copy
import functools
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import config as course_config
from . import evaluate as ev
from .dataset import TARGET_CELL_PX
from .processing import InferenceConfig
from .progress import tqdm

DEFAULT_MODEL = "centernet_resnet18"
MIN_WARMUP_STEPS = 20


@dataclass(frozen=True)
class TrainingPlan:
    """The knobs that differ between a full run and a quick one (``COURSE_FAST=1``)."""

    epochs: int
    image_size: int = 512
    batch_size: int = 8
    lr: float = 2e-3
    warmup_epochs: float = 1.0
    eval_every: int = 5
    model_name: str = DEFAULT_MODEL
    crop_size: int | None = 256  # random crops of the photo at its working scale (dataset.py)
    repeats: int = 4  # crops per image per epoch
    # The median cell's side in working pixels: sets the working scale from the training
    # boxes (dataset.working_scale), so 640 px and 2,800 px photos both train and count at
    # the cell size the model wants. None: every photo resized whole to image_size.
    cell_size: float | None = TARGET_CELL_PX

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`fit`."""
        return asdict(self)


def preset(fast: bool | None = None) -> TrainingPlan:
    """Full mode: about 3 min of training on a 2-core laptop CPU; fast mode: about 1.3 min.

    Both train the heatmap counter on 256 px crops of 512 px photos, 8 crops a step: 210 steps
    (fast) or 448 (full). See ``docs/model_choice.md`` for how these were chosen.
    """
    if fast is None:
        fast = course_config.fast_mode(verbose=False)
    if fast:
        return TrainingPlan(epochs=30, eval_every=15)
    return TrainingPlan(epochs=64, eval_every=16)


@dataclass
class TrainResult:
    """What :func:`fit` returns: the best detector, its inference config and the story of the run."""

    detector: nn.Module
    config: InferenceConfig
    history: list[dict[str, Any]]
    best_epoch: int
    metrics: dict[str, Any]
    sweep: list[dict[str, float]] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)

    def predictor(self, device: str = "cpu"):
        """A ``runtime.TorchPredictor`` for the trained detector (same path as every runtime)."""
        from .runtime import TorchPredictor

        return TorchPredictor(self.detector, self.config, device=device)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the checkpoint (default ``artifacts/model.pt``)."""
        from .checkpoint import save_checkpoint

        path = Path(path) if path is not None else course_config.checkpoint_path()
        return save_checkpoint(
            path,
            self.detector,
            self.config,
            self.metrics,
            self.history,
            extra={"plan": self.plan, "sweep": self.sweep, "best_epoch": self.best_epoch},
        )


# ----------------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> None:
    """Same seed, same run (on the CPU; GPU kernels may still differ in the last digits)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(device: str | None = None) -> torch.device:
    """``cuda`` when available, else ``cpu`` (or whatever is asked for)."""
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _as_dataset(
    data,
    image_size: int,
    train: bool,
    class_names: Sequence[str] | None,
    crop_size: int | None = None,
    repeats: int = 1,
    scale: float | None = None,
):
    from .dataset import CellDataset

    if isinstance(data, CellDataset):
        return data
    return CellDataset(
        data,
        image_size,
        train=train,
        class_names=class_names,
        crop_size=crop_size,
        repeats=repeats,
        scale=scale,
    )


def scale_settings(train_set, image_size: int, cell_size: float | None) -> dict[str, Any]:
    """The working scale and tile overlap for ``InferenceConfig``, from the training boxes."""
    from .dataset import CellDataset, tile_overlap, working_scale

    if cell_size is None:
        return {}
    aset = train_set.aset if isinstance(train_set, CellDataset) else train_set
    scale = working_scale(aset, cell_size)
    return {
        "scale": round(scale, 6),
        "tile_overlap": tile_overlap(aset, scale, image_size),
        "cell_size": float(cell_size),
    }


def pick_precision(device: torch.device, precision: str = "auto") -> str:
    """``fp16`` on CUDA, ``bf16`` on a CPU that computes bfloat16 natively, else ``fp32``.

    Mixed precision keeps the weights in float32 and runs the convolutions in 16 bits. On a
    CPU with AVX512-BF16 or AMX (recent Xeon and EPYC) it made a training step 2.7x faster
    here (measured on one core); on CPUs without it bfloat16 is emulated and slower, so it stays off.
    """
    if precision != "auto":
        if precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"unknown precision {precision!r}; use auto, fp32, bf16 or fp16")
        return precision
    if device.type == "cuda":
        return "fp16"
    native = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return "bf16" if device.type == "cpu" and native else "fp32"


AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _to_device(images, targets, device: torch.device):
    # Plain tensors: torchvision's detectors do arithmetic on boxes that should not re-wrap.
    images = [img.as_subclass(torch.Tensor).to(device, non_blocking=True) for img in images]
    targets = [
        {k: v.as_subclass(torch.Tensor).to(device, non_blocking=True) for k, v in t.items()}
        for t in targets
    ]
    return images, targets


def warmup_cosine(total_steps: int, warmup_steps: int, floor: float = 0.01):
    """Multiplier of the base learning rate per step: linear warm-up, then cosine to ``floor``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(
    model: nn.Module, name: str, lr: float, weight_decay: float | None = None
) -> torch.optim.Optimizer:
    """AdamW (default: forgiving from random weights) or SGD with momentum 0.9."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(
            params, lr=lr, weight_decay=1e-4 if weight_decay is None else weight_decay
        )
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=0.9, weight_decay=1e-4 if weight_decay is None else weight_decay
        )
    raise ValueError(f"unknown optimizer {name!r}; use 'adamw' or 'sgd'")


def _train_step(
    model, images, targets, optimizer, scaler=None, precision: str = "fp32", grad_clip: float = 10.0
):
    device_type = images[0].device.type
    dtype = AUTOCAST_DTYPES.get(precision)
    with torch.autocast(device_type=device_type, dtype=dtype, enabled=dtype is not None):
        losses = model(images, targets)
        loss = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    return float(loss.detach()), {k: float(v.detach()) for k, v in losses.items()}


def train_one_epoch(model, loader, step, schedule, device, epoch: int):
    """One pass over ``loader``: a step per batch, the schedule advanced, mean losses returned.

    No progress bar of its own: ``fit``'s one bar per epoch (with the loss) is enough, and a
    second, nested bar fills a saved notebook with a line per update.
    """
    model.train()
    started = time.perf_counter()
    sums: dict[str, float] = {}
    seen = 0
    for images, targets in loader:
        images, targets = _to_device(images, targets, device)
        loss, parts = step(model, images, targets)
        if not math.isfinite(loss):
            lr = schedule.optimizer.param_groups[0]["lr"]
            raise FloatingPointError(
                f"loss became {loss} at epoch {epoch}: lower the learning rate (now {lr:g})"
            )
        schedule.step()
        n = len(images)
        seen += n
        sums["loss"] = sums.get("loss", 0.0) + loss * n
        for key, value in parts.items():
            sums[f"loss_{key}"] = sums.get(f"loss_{key}", 0.0) + value * n
    row: dict[str, Any] = {"epoch": epoch, **{k: v / max(seen, 1) for k, v in sums.items()}}
    row["seconds"] = time.perf_counter() - started
    return row


def _regression_stuck(model, row: dict[str, Any], past_warmup: bool) -> bool:
    """FCOS's ReLU box regression died (GIoU loss pinned at 1.0) after the warm-up."""
    from torchvision.models.detection import FCOS

    return isinstance(model, FCOS) and past_warmup and row.get("loss_bbox_regression", 0) >= 0.999


def _validate(model, inference: InferenceConfig, val_set, device) -> dict[str, Any]:
    from .runtime import TorchPredictor

    predictor = TorchPredictor(model, inference, device=str(device))
    metrics = ev.evaluate(predictor, val_set, threshold=0.5)
    model.train()  # the predictor's core shares the modules and put them in eval mode
    return metrics


# ----------------------------------------------------------------------------- fit


def fit(
    train_set,
    val_set=None,
    model_name: str = DEFAULT_MODEL,
    image_size: int = TrainingPlan.image_size,
    epochs: int = 50,
    batch_size: int = TrainingPlan.batch_size,
    lr: float = TrainingPlan.lr,
    optimizer: str = "adamw",
    weight_decay: float | None = None,
    warmup_epochs: float = 1.0,
    grad_clip: float = 10.0,
    eval_every: int = 5,
    crop_size: int | None = None,
    repeats: int = 1,
    cell_size: float | None = None,
    precision: str = "auto",
    seed: int = 0,
    device: str | None = None,
    pretrained: bool | str = "auto",
    class_names: Sequence[str] | None = None,
    save_to: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model_name`` on ``train_set`` and pick the counting threshold on ``val_set``.

    ``train_set``/``val_set``: ``AnnotationSet`` (or a ready ``CellDataset`` for training).
    Validation runs every ``eval_every`` epochs and after the last one, through the same
    ``TorchPredictor`` path that serves the model.

    The weights kept are those with the best validation **mAP@[.5:.95]**, not the best
    count error: with a handful of validation images the count error at a fixed threshold
    moves in whole cells and ties often, and the counting threshold is chosen afterwards
    anyway. mAP rewards ranking true cells above debris *and* placing boxes tightly, which
    is what a later threshold needs to count well. Without ``val_set`` the last epoch is
    kept and the counting threshold stays at 0.5.
    """
    from .dataset import make_loader
    from .model import build_model, count_parameters

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    names = tuple(
        class_names or getattr(train_set, "class_names", None) or course_config.CLASS_NAMES
    )
    seed_everything(seed)
    device_ = pick_device(device)
    precision = pick_precision(device_, precision)
    tiling = scale_settings(train_set, image_size, cell_size)
    if tiling and progress:
        print(
            f"Working scale {tiling['scale']:.3g}: the median cell becomes {cell_size:g} px; "
            f"photos are counted in {image_size} px tiles overlapping by {tiling['tile_overlap']} px."
        )
    dataset = _as_dataset(
        train_set, image_size, True, names, crop_size, repeats, tiling.get("scale")
    )
    loader = make_loader(dataset, batch_size=batch_size, shuffle=True, seed=seed)
    model = build_model(model_name, len(names), image_size, pretrained=pretrained)
    # channels_last: the layout oneDNN's CPU convolutions are fastest in (~1.7x per step here).
    model = model.to(device_, memory_format=torch.channels_last)
    inference = InferenceConfig(
        model_name=model_name, class_names=names, image_size=image_size, **tiling
    )

    opt = make_optimizer(model, optimizer, lr, weight_decay)
    steps_per_epoch = len(loader)
    total = epochs * steps_per_epoch
    # At least MIN_WARMUP_STEPS: Adam's first full-size steps from random weights can push
    # FCOS's ReLU box-regression outputs below zero everywhere, where they never recover
    # (the GIoU loss then sits at exactly 1.0 and mAP at 0). A gentle ramp prevents it.
    warmup = max(MIN_WARMUP_STEPS, round(warmup_epochs * steps_per_epoch))
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, warmup))
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    history: list[dict[str, Any]] = []
    best_state, best_epoch, best_score = None, 0, -1.0
    warned, interrupted = False, False
    started = time.perf_counter()
    epoch_bar = tqdm(range(1, epochs + 1), desc="epochs", unit="epoch", disable=not progress)
    step = functools.partial(
        _train_step, optimizer=opt, scaler=scaler, precision=precision, grad_clip=grad_clip
    )
    try:
        for epoch in epoch_bar:
            row = train_one_epoch(model, loader, step, schedule, device_, epoch)
            row["lr"] = opt.param_groups[0]["lr"]
            row.update(val_map=None, val_map_50=None, val_count_mae=None)
            if val_set is not None and (epoch % eval_every == 0 or epoch == epochs):
                metrics = _validate(model, inference, val_set, device_)
                row.update(
                    val_map=metrics["map"],
                    val_map_50=metrics["map_50"],
                    val_count_mae=metrics["count_mae"],
                )
                if metrics["map"] > best_score:
                    best_score, best_epoch = metrics["map"], epoch
                    best_state = copy.deepcopy(
                        {k: v.detach().cpu() for k, v in model.state_dict().items()}
                    )
            history.append(row)
            if not warned and _regression_stuck(model, row, epoch * steps_per_epoch > warmup):
                warned = True
                print(
                    f"Warning: box regression is stuck (loss {row['loss_bbox_regression']:.3f}) "
                    f"at epoch {epoch}: restart with a lower lr or a longer warm-up."
                )
            epoch_bar.set_postfix(
                loss=f"{row['loss']:.3f}",
                **({"val_mAP": f"{row['val_map']:.3f}"} if row["val_map"] is not None else {}),
            )
    except KeyboardInterrupt:
        # "Stop now" from a notebook's stop button or Ctrl-C: keep what was learnt so far and
        # return a normal result, so the next cells (curves, evaluation, saving) still run.
        interrupted = True
        kept = (
            f"the best validated weights (epoch {best_epoch})" if best_state else "the last weights"
        )
        print(f"Training stopped by you after {len(history)} of {epochs} epochs: keeping {kept}.")
    epoch_bar.close()
    train_seconds = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = len(history)
    model.eval()

    metrics: dict[str, Any] = {
        "model_name": model_name,
        "image_size": image_size,
        "epochs": epochs,
        "epochs_run": len(history),
        "interrupted": interrupted,
        "best_epoch": best_epoch,
        "train_images": len(dataset.aset),
        "train_samples_per_epoch": len(dataset),
        "train_seconds": round(train_seconds, 1),
        "seconds_per_epoch": round(train_seconds / max(1, len(history)), 2),
        "parameters": count_parameters(model),
        "device": str(device_),
        "precision": precision,
    }
    sweep: list[dict[str, float]] = []
    if val_set is not None:
        from .runtime import TorchPredictor

        predictor = TorchPredictor(model, inference, device=str(device_))
        detections = ev.predict_set(predictor, val_set)
        sweep = ev.threshold_sweep(predictor, val_set, detections=detections)
        inference = replace(inference, score_threshold=ev.best_threshold(sweep))
        predictor.config = inference
        val = ev.evaluate(predictor, val_set, detections=detections)
        metrics.update(
            val_images=val["images"],
            val_map=val["map"],
            val_map_50=val["map_50"],
            val_map_75=val["map_75"],
            val_count_mae=val["count_mae"],
            val_count_mape=val["count_mape"],
            threshold=inference.score_threshold,
        )
    plan = {
        "model_name": model_name,
        "image_size": image_size,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": optimizer,
        "warmup_epochs": warmup_epochs,
        "grad_clip": grad_clip,
        "crop_size": crop_size,
        "repeats": repeats,
        "cell_size": cell_size,
        "scale": tiling.get("scale"),
        "precision": precision,
        "seed": seed,
    }
    result = TrainResult(model, inference, history, best_epoch, metrics, sweep, plan)
    if save_to is not None:
        result.save(save_to)
    return result


# ----------------------------------------------------------------------------- LR finder


def lr_find(
    train_set,
    model_name: str = DEFAULT_MODEL,
    image_size: int = TrainingPlan.image_size,
    batch_size: int = TrainingPlan.batch_size,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    steps: int = 40,
    seed: int = 0,
    device: str | None = None,
    pretrained: bool | str = "auto",
    progress: bool = True,
) -> tuple[list[float], list[float]]:
    """Leslie Smith's range test: raise the LR exponentially each step, record the loss.

    Runs on a fresh model (nothing is kept); stops once the smoothed loss explodes. Pick an
    LR about ten times below the minimum of the curve, where it still falls steeply.
    """
    from .dataset import make_loader
    from .model import build_model

    names = tuple(getattr(train_set, "class_names", None) or course_config.CLASS_NAMES)
    seed_everything(seed)
    device_ = pick_device(device)
    dataset = _as_dataset(train_set, image_size, train=True, class_names=names)
    loader = make_loader(dataset, batch_size=batch_size, shuffle=True, seed=seed)
    model = build_model(model_name, len(names), image_size, pretrained=pretrained).to(device_)
    model.train()
    opt = make_optimizer(model, "adamw", start_lr)
    gamma = (end_lr / start_lr) ** (1 / max(1, steps - 1))
    lrs, losses = [], []
    smooth, best = None, math.inf
    batches = iter(())
    for step in tqdm(range(steps), desc="lr_find", unit="step", disable=not progress):
        lr = start_lr * gamma**step
        for group in opt.param_groups:
            group["lr"] = lr
        try:
            images, targets = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, targets = next(batches)
        images, targets = _to_device(images, targets, device_)
        loss, _ = _train_step(model, images, targets, opt, None, "fp32", 10.0)
        if not math.isfinite(loss):
            break
        smooth = loss if smooth is None else 0.7 * smooth + 0.3 * loss
        lrs.append(lr)
        losses.append(smooth)
        best = min(best, smooth)
        if smooth > 4 * best and step > 5:
            break
    return lrs, losses


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], ax=None):
    """Loss vs learning rate (log scale), with the steepest descent marked."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=80)
    else:
        fig = ax.figure
    ax.plot(lrs, losses)
    if len(losses) > 3:
        slopes = np.gradient(np.asarray(losses), np.log10(np.asarray(lrs)))
        steep = int(np.argmin(slopes))
        ax.axvline(lrs[steep], color="red", lw=1, label=f"steepest {lrs[steep]:.1e}")
        ax.legend(fontsize=8)
    ax.set(xscale="log", xlabel="learning rate", ylabel="loss (smoothed)", title="LR finder")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- ensure


def train_course_model(fast: bool = True, save_to: str | Path | None = None, progress: bool = True):
    """Train on ``data/train`` (regenerated if missing) with the fast or full plan."""
    from .annotations import load_annotations
    from .dataset import split
    from .synth import ensure_course_data

    ensure_course_data()
    train, val = split(load_annotations(course_config.train_dir()), val_fraction=0.2, seed=0)
    return fit(train, val, **preset(fast).kwargs(), save_to=save_to, progress=progress)


def ensure_checkpoint(path: str | Path | None = None, ask_hub: bool = True) -> Path:
    """``artifacts/model.pt`` from notebook 02; if missing, the learner's own model from the Hub
    (``utils.handoff``: what notebook 04 pushed), else one trained now in fast mode.

    One line says which. ``ask_hub=False`` when the caller already asked the Hub.
    """
    path = Path(path) if path is not None else course_config.checkpoint_path()
    if path.is_file():
        return path
    if ask_hub:
        from .handoff import fetch_own_model

        handoff = fetch_own_model(checkpoint=path, verbose=False)
        if handoff.checkpoint:
            print(handoff.message)
            return path
    print("No checkpoint from notebook 02 yet: training one in fast mode (about a minute)...")
    train_course_model(fast=True, save_to=path)
    return path
