"""Pretrain the heatmap counter on generated three-class scenes: the offline ImageNet stand-in.

ImageNet weights need a download; this run needs nothing but the course's code. It trains on
photos from :func:`utils.synth_classes.write_mixed_dataset` (needles, round cells, specks) and
writes an ordinary course checkpoint whose trunk, FPN and box head a later run can start from
(``python -m utils train --pretrained FILE.pt``, see :mod:`utils.warmstart`); the package ships
one such start (``--pretrained scenes``). Measured in docs/real_data.md: tighter boxes, and much
better ones after few steps, but counts no better, so it is not the default. It trains the
default model (the stride-2 heatmap since 2026-12-07); the shipped start was trained at stride 4
and starts either (``utils.warmstart``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..centernet import GAUSSIAN_ALPHA
from ..synth_classes import write_mixed_dataset
from .fitting import TrainResult, fit
from .plan import preset

TRAIN_SEED, VAL_SEED = 20000, 30000  # away from the other generated sets' seeds
VAL_PHOTOS = 8


def pretrain(
    out: str | Path,
    photos: int = 240,
    epochs: int = 12,
    seed: int = 0,
    scenes: str | Path | None = None,
    val_photos: int = VAL_PHOTOS,
    progress: bool = True,
) -> TrainResult:
    """Generate ``photos`` scenes (+ ``val_photos`` to validate) and train on them; saves ``out``.

    Scenes go to ``scenes`` (default: ``scenes/`` beside ``out``) and are kept, so the data
    behind the weights can be looked at; the same seeds always give the same photos. The
    plan is the full preset without its clock (``epochs`` fixed, validation every 4), from
    random weights: the point is a start that needs no download. Fewer ``val_photos`` only
    shorten tests.
    """
    if photos < 1 or val_photos < 1:
        raise ValueError(f"need at least 1 photo and 1 validation photo, got {photos}/{val_photos}")
    out = Path(out)
    folder = Path(scenes) if scenes is not None else out.parent / "scenes"
    train = write_mixed_dataset(folder / "train", count=photos, first_seed=TRAIN_SEED)
    val = write_mixed_dataset(folder / "val", count=val_photos, first_seed=VAL_SEED)
    plan = replace(preset(False), minutes=None, epochs=epochs, eval_every=4)
    plan = replace(plan, gaussian_alpha=GAUSSIAN_ALPHA)  # what the shipped start was trained with
    return fit(train, val, plan, seed=seed, pretrained=False, save_to=out, progress=progress)
