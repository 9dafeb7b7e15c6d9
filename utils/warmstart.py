"""Start the heatmap counter from another course checkpoint's trunk, FPN and box head.

ImageNet weights cannot be downloaded offline; a checkpoint trained on the course's generated
scenes (``python -m utils pretrain``) is the stand-in. Its trunk (``body``), ``fpn`` and
``box`` head are copied into a new model; the ``heatmap`` head starts fresh because it has one
channel per class and the classes of the new data may differ. See ``docs/real_data.md``.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .config import display_path

COPIED = ("body.", "fpn.", "box.")  # everything but the per-class heatmap head
WANTED = "centernet_resnet18"
HINT = "make one with `python -m utils pretrain --out FILE.pt`"


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
    payload = read_payload(path)  # not a course checkpoint: its own clear error
    name = (payload.get("config") or {}).get("model_name")
    if name != WANTED:
        raise CheckpointError(
            f"--pretrained: {shown} holds a {name} model; only {WANTED} weights can start the "
            f"heatmap counter: pass a {WANTED} checkpoint or {HINT}"
        )
    source = {k: v for k, v in payload["state_dict"].items() if k.startswith(COPIED)}
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
