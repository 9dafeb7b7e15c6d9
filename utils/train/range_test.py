"""Leslie Smith's learning-rate range test, on the same set-up as ``fit``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..progress import tqdm
from .loop import make_optimizer, scale_settings, set_up, to_device, train_step
from .plan import PLAIN, TrainingPlan


def lr_find(
    train_set,
    plan: TrainingPlan | None = None,
    *,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    steps: int = 40,
    seed: int = 0,
    device: str | None = None,
    pretrained: bool | str = "auto",
    progress: bool = True,
) -> tuple[list[float], list[float]]:
    """Raise the LR exponentially each step on a fresh model, record the smoothed loss.

    ``plan`` (default ``PLAIN``: whole photos) sets the model, input size, batch size, crops
    and working scale: the batches ``fit`` would train on. Nothing is kept; stops once the
    smoothed loss explodes. Pick an LR about ten times below the minimum of the curve, where
    it still falls steeply.
    """
    plan = PLAIN if plan is None else plan
    tiling = scale_settings(train_set, plan.image_size, plan.cell_size)
    run = set_up(
        train_set, plan, seed, device, pretrained, scale=tiling.get("scale"), channels_last=False
    )
    model = run.model
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
            batches = iter(run.loader)
            images, targets = next(batches)
        images, targets = to_device(images, targets, run.device)
        loss, _ = train_step(model, images, targets, opt, None, "fp32", plan.grad_clip)
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
