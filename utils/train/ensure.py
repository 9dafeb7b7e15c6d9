"""The course's model when a notebook needs one: trained on ``data/train`` or fetched."""

from __future__ import annotations

from pathlib import Path

from .. import config as course_config
from .fitting import fit
from .plan import preset


def train_course_model(fast: bool = True, save_to: str | Path | None = None, progress: bool = True):
    """Train on ``data/train`` (regenerated if missing) with the fast or full plan."""
    from ..annotations import load_annotations
    from ..dataset import split
    from ..synth import ensure_course_data

    ensure_course_data()
    train, val = split(load_annotations(course_config.train_dir()), val_fraction=0.2, seed=0)
    return fit(train, val, preset(fast), save_to=save_to, progress=progress)


def ensure_checkpoint(path: str | Path | None = None, ask_hub: bool = True) -> Path:
    """``artifacts/model.pt`` from notebook 02; if missing, the learner's own model from the Hub
    (``utils.handoff``: what notebook 04 pushed), else one trained now in fast mode.

    One line says which. ``ask_hub=False`` when the caller already asked the Hub.
    """
    path = Path(path) if path is not None else course_config.checkpoint_path()
    if path.is_file():
        return path
    if ask_hub:
        from ..handoff import fetch_own_model

        handoff = fetch_own_model(checkpoint=path, verbose=False)
        if handoff.checkpoint:
            print(handoff.message)
            return path
    print("No checkpoint from notebook 02 yet: training one in fast mode (about a minute)...")
    train_course_model(fast=True, save_to=path)
    return path
