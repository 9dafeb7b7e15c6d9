"""Start the heatmap counter from another course checkpoint's trunk, FPN and box head.

ImageNet weights cannot be downloaded offline; a checkpoint trained on the course's generated
scenes (``python -m utils pretrain``) is the stand-in. Its trunk (``body``), ``fpn`` and
``box`` head are copied into a new model; the ``heatmap`` head starts fresh because it has one
channel per class and the classes of the new data may differ. See ``docs/real_data.md``.
A stride-4 start (``centernet_resnet18``, like the shipped one) also starts the stride-2
default: its box head's last layer is copied onto each of the 2x2 sub-locations.

The package ships one such start, :data:`SCENES_START` (``--pretrained scenes``): only the copied
tensors, in float16 (1.6 MB), written from ``python -m utils pretrain``'s default run by
``scripts/ship_start_weights.py`` so that nobody has to spend the 24 minutes to get it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from .config import display_path
from .model import HEATMAP_STRIDES

COPIED = ("body.", "fpn.", "box.")  # everything but the per-class heatmap head
WANTED = " or ".join(HEATMAP_STRIDES)  # in messages: the models whose weights can start one
BOX_OUT = "box.2."  # the box head's last layer: 4 distances per (sub-)location
HINT = "make one with `python -m utils pretrain --out FILE.pt`"
START_FORMAT = "deploy-without-tears-start"  # a shipped start: copied tensors only
SCENES_START = Path(__file__).parent / "weights" / "scenes_start.pt"


def is_checkpoint_start(pretrained: object) -> bool:
    """True when ``pretrained`` names a file rather than auto/True/False (ImageNet)."""
    return isinstance(pretrained, Path) or (isinstance(pretrained, str) and pretrained != "auto")


def copy_pretrained(model: nn.Module, path: str | Path, verbose: bool = True) -> int:
    """Copy ``path``'s body/fpn/box tensors into ``model``; the number copied.

    Raises ``CheckpointError`` (a ``ValueError``) naming the file and what to do when it is
    missing, not a course checkpoint, or of another architecture (keys or shapes differ).
    """
    from .checkpoint import CheckpointError, read_payload

    path = Path(path)
    shown = display_path(path)
    if not path.is_file():
        raise CheckpointError(f"--pretrained: no checkpoint file at {shown}; {HINT}")
    payload = _read_start(path) or read_payload(path)  # neither: read_payload's clear error
    name = payload.get("model_name") or (payload.get("config") or {}).get("model_name")
    if name not in HEATMAP_STRIDES:
        raise CheckpointError(
            f"--pretrained: {shown} holds a {name} model; only {WANTED} weights can start the "
            f"heatmap counter: pass such a checkpoint or {HINT}"
        )
    source = {k: v for k, v in payload["state_dict"].items() if k.startswith(COPIED)}
    source = _box_head_for(source, HEATMAP_STRIDES[name], getattr(model, "stride", 4), shown)
    target = {k: v for k, v in model.state_dict().items() if k.startswith(COPIED)}
    if set(source) != set(target):
        odd = sorted(set(source) ^ set(target))
        raise CheckpointError(
            f"--pretrained: {shown} is another architecture ({len(odd)} tensor names differ, "
            f"e.g. {odd[0]}); pass a checkpoint of the same {WANTED} or {HINT}"
        )
    for key, value in source.items():
        if value.shape != target[key].shape:
            raise CheckpointError(
                f"--pretrained: {shown} is another architecture ({key} is "
                f"{tuple(value.shape)}, this model needs {tuple(target[key].shape)}); "
                f"pass a checkpoint of the same {WANTED} or {HINT}"
            )
    model.load_state_dict(source, strict=False)
    if verbose:
        print(
            f"Starting from {shown}: {len(source)} tensors of its trunk, FPN and box head; "
            "the heatmap head starts fresh."
        )
    return len(source)


def _read_start(path: Path) -> dict | None:
    """A shipped start file's payload, or None for anything else (then read as a checkpoint)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a start file: read_payload explains what it is
        return None
    if isinstance(payload, dict) and payload.get("format") == START_FORMAT:
        return payload
    return None


def write_start(checkpoint: str | Path, out: str | Path = SCENES_START) -> Path:
    """Keep ``checkpoint``'s trunk, FPN and box head in float16: a start small enough to ship.

    Integer tensors (BatchNorm's step counters) keep their type; ``copy_pretrained`` casts
    the halves back to the model's float32 when it copies them.
    """
    from .checkpoint import CheckpointError, read_payload

    payload = read_payload(checkpoint)
    name = payload["config"].get("model_name")
    if name not in HEATMAP_STRIDES:
        raise CheckpointError(f"{display_path(Path(checkpoint))} holds {name}, not {WANTED}")
    kept = {
        k: (v.half() if v.is_floating_point() else v)
        for k, v in payload["state_dict"].items()
        if k.startswith(COPIED)
    }
    metrics = {k: v for k, v in (payload.get("metrics") or {}).items() if k.startswith("val_")}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = {"format": START_FORMAT, "model_name": name, "state_dict": kept, "metrics": metrics}
    torch.save(start, out)
    return out


def _box_head_for(source: dict, from_stride: int, to_stride: int, shown: str) -> dict:
    """A stride-4 box head's last layer laid out for a stride-2 model (or unchanged).

    Why it is exact: the stride-2 model predicts each stride-4 point's 2x2 sub-locations as
    4 channels per distance (``pixel_shuffle``), and its distances are ``exp(x) * stride``, so
    every sub-location starts with the stride-4 point's distances (bias + log 2). A stride-2
    start cannot become a stride-4 one (which of the four sub-locations?): refused.
    """
    from .checkpoint import CheckpointError

    if from_stride == to_stride:
        return source
    if (from_stride, to_stride) != (4, 2):
        raise CheckpointError(
            f"--pretrained: {shown} holds a stride-{from_stride} heatmap counter, this model's "
            f"heatmap is at stride {to_stride}: train with --model "
            f"{next(n for n, s in HEATMAP_STRIDES.items() if s == from_stride)} or {HINT}"
        )
    parts = (from_stride // to_stride) ** 2
    out = dict(source)
    for key in (BOX_OUT + "weight", BOX_OUT + "bias"):
        if key in out:
            out[key] = out[key].repeat_interleave(parts, dim=0)
    if BOX_OUT + "bias" in out:
        # in float32: a shipped start is float16, and log 2 added in float16 loses ~1e-3
        out[BOX_OUT + "bias"] = out[BOX_OUT + "bias"].float() + math.log(from_stride / to_stride)
    return out
