"""Training: ``fit`` a detector on a few labelled images, then choose the counting threshold.

The talk trained IceVision's VFNet with ``fine_tune(10, 1e-3, freeze_epochs=1)``. Here the
same idea is written out in plain PyTorch so every step is visible and maintained:

* AdamW (or SGD with momentum), linear warm-up then cosine decay, gradient clipping at 10
  (a detector's first steps from random weights produce large gradients);
* automatic GPU + mixed precision (float16 autocast + gradient scaling) when CUDA is there;
* a wall-clock budget (``plan.minutes``, 10 in the full plan): the first steps are timed and the
  run gets the steps that fit, never more than the plan's epochs;
* validation mAP every few epochs (the curve of notebook 02); the last weights are kept, or
  the best validated ones with ``plan.keep == "best"`` (see :func:`fit` for why);
* afterwards a threshold sweep on the validation images, topped up with training images to
  20 (``fitting.threshold_photos``), picks the counting threshold,
  which goes into the model's :class:`~utils.processing.InferenceConfig`.

One module per part, imported in this order: ``plan`` (:class:`TrainingPlan`, :func:`preset`,
``PLAIN``), ``budget`` (the steps that fit ``plan.minutes``), ``loop`` (set-up shared with
``lr_find``, one step, ``train_one_epoch``, schedule, precision), ``fitting`` (:func:`fit`, :class:`TrainResult`), ``range_test`` (``lr_find``) and ``ensure``
(``ensure_checkpoint``: the course's model when a notebook needs one).
"""

from __future__ import annotations

from .ensure import ensure_checkpoint, train_course_model
from .fitting import TrainResult, fit
from .loop import (
    make_optimizer,
    pick_precision,
    set_up,
    to_device,
    train_one_epoch,
    train_step,
    warmup_cosine,
)
from .plan import DEFAULT_MODEL, PLAIN, TrainingPlan, preset
from .range_test import lr_find, plot_lr_find

__all__ = [
    "DEFAULT_MODEL",
    "PLAIN",
    "TrainResult",
    "TrainingPlan",
    "ensure_checkpoint",
    "fit",
    "lr_find",
    "make_optimizer",
    "pick_precision",
    "plot_lr_find",
    "preset",
    "set_up",
    "to_device",
    "train_course_model",
    "train_one_epoch",
    "train_step",
    "warmup_cosine",
]
