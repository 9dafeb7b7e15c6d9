"""What a training run is: :class:`TrainingPlan`, the course's presets and fit's plain default."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .. import config as course_config
from ..centernet import GAUSSIAN_ALPHA, WIDE_GAUSSIAN_ALPHA
from ..dataset import TARGET_CELL_PX
from ..model import DEFAULT_MODEL

DEFAULT_IMAGE_SIZE = 512  # the network's square input (and the tile size when counting)


@dataclass(frozen=True)
class TrainingPlan:
    """Every knob of a training run; ``fit(train, val, plan)`` follows it.

    The fields that differ between a full run and a quick one (``COURSE_FAST=1``) are set by
    :func:`preset`; change one with ``dataclasses.replace(plan, epochs=3)``.
    """

    epochs: int
    image_size: int = DEFAULT_IMAGE_SIZE
    batch_size: int = 8
    lr: float = 2e-3
    warmup_epochs: float = 1.0
    eval_every: int = 5
    model_name: str = DEFAULT_MODEL
    # Random square crops of the photo at its working scale (dataset.py); smaller when most
    # photos are smaller than this at that scale (dataset.fitted_crop_size).
    crop_size: int | None = 256
    repeats: int = 4  # crops per image per epoch
    # The median cell's side in working pixels: sets the working scale from the training
    # boxes (dataset.working_scale), so 640 px and 2,800 px photos both train and count at
    # the cell size the model wants. None: every photo resized whole to image_size.
    cell_size: float | None = TARGET_CELL_PX
    optimizer: str = "adamw"  # or "sgd" (momentum 0.9)
    weight_decay: float | None = None  # None: 1e-4
    grad_clip: float = 10.0  # a detector's first steps from random weights have large gradients
    # Wall-clock budget of ``fit`` (training + validations): the epochs are cut to what fits,
    # measured on the first steps (``train/budget.py``); ``epochs`` stays the most it may do.
    minutes: float | None = None
    # Validate, keep and save a moving average of the weights (loop.averaged_copy) instead of
    # the last step's; the most the average's decay may reach. None: the raw weights.
    ema: float | None = None
    # Width of the heatmap counter's training bumps (sigma = alpha * box side / 6). The full plan
    # uses the wider 0.8: better boxes with its steps (synthetic and BCCD), but on the fast
    # plan's 210 steps it counted worse on all 3 seeds (docs/model_choice.md).
    gaussian_alpha: float = GAUSSIAN_ALPHA
    # Which weights a finished run keeps: "last" (the end of the cosine schedule) or "best" (the
    # best validation mAP). "best" picked by 3 validation photos is noise: on 17 real blood-cell
    # photos it kept epoch 44 of 112 and scored test mAP 0.351 against the last weights' 0.472
    # (docs/real_data.md); on the course's photos and on BCCD's 58 the best was the last anyway.
    # A run stopped by the user keeps its best validated weights either way.
    keep: str = "last"

    def kwargs(self) -> dict[str, Any]:
        """The plan as a dict (reports, the checkpoint's ``extra``)."""
        return asdict(self)


# What ``fit(train, val)`` without a plan has always done: whole photos resized to the input,
# no working scale, 50 epochs.
PLAIN = TrainingPlan(epochs=50, crop_size=None, repeats=1, cell_size=None)


# The full plan's clock: about 10 minutes on a 2-core CPU whatever the number of photos.
# The fast plan has none: tests, CI and nbval run it, and there the same steps on every machine
# matter more than the minutes (a busy machine cut its 210 steps and its mAP@.5 fell to 0.71).
FULL_MINUTES = 10.0
# The full plan's most epochs: 112 (784 steps on the course's 17 photos) against the 64 it had
# until 2026-12-06: count error 1.28-1.48 % instead of 1.96-2.58 % on three seeds, mAP 0.73
# instead of 0.68, for 140-147 s of training instead of 87-94 s (``python -m utils.bench train
# --epochs 112 --seeds 0 1 2``, 2-core AMD EPYC). Large data sets stop at ``FULL_MINUTES`` first.
FULL_EPOCHS = 112


def preset(fast: bool | None = None) -> TrainingPlan:
    """Full mode: about 3 min of training on a 2-core CPU; fast mode: about 45 s.

    Both train the heatmap counter on 256 px crops of 512 px photos, 8 crops a step: 210 steps
    (fast, 40-43 s here) or 784 (full, 161-168 s here with the stride-2 heatmap; 140-147 s
    at stride 4) on the course's 17 photos. With more photos the same epochs would take
    longer, so ``minutes`` caps the full run at 10 min: 290 photos get the steps that fit.
    The fast plan keeps its fixed steps (same run on every machine, as tests need). See
    ``docs/model_choice.md`` for how these were chosen. Validation every 5 (fast) or 8 (full)
    epochs: 6 or 14 points on the curve of notebook 02. Every 4 until 2026-12-07: its 28
    validations of 0.5 s each (3 photos, then the mAP) took about 15 s of the full plan's
    172-194 s on an Intel Xeon. Validation never changes the weights; 14 points still draw the
    curve.
    """
    if fast is None:
        fast = course_config.fast_mode(verbose=False)
    if fast:
        return TrainingPlan(epochs=30, eval_every=5)
    return TrainingPlan(
        epochs=FULL_EPOCHS, eval_every=8, minutes=FULL_MINUTES, gaussian_alpha=WIDE_GAUSSIAN_ALPHA
    )
