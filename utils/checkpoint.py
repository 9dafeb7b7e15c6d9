"""The course's checkpoint: one ``.pt`` file that carries everything inference needs.

Contents (plain types and tensors only, so ``torch.load(weights_only=True)`` can read it
without running any pickled code)::

    format            "deploy-without-tears/checkpoint"
    format_version    1
    state_dict        the detector's weights
    config            InferenceConfig.to_dict(): model name, class names, input size,
                      normalisation, the counting threshold chosen in training, NMS
    metrics           training/validation metrics (mAP, count MAE, ...)
    history           per-epoch losses and validation metrics
    versions          torch, torchvision and course versions that wrote the file
    extra             anything else (training plan, data summary), optional

The talk's checkpoint held weights, model name, backbone, image size and class names;
this one adds normalisation, the counting threshold and the numbers that justify it.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .atomicio import atomic_path
from .config import display_path
from .modelfile import ModelFileError, looks_like_onnx, require_file
from .processing import InferenceConfig

FORMAT = "deploy-without-tears/checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "state_dict", "config")


class CheckpointError(ModelFileError):
    """A file that is missing, corrupt or not one of this course's checkpoints.

    A ``modelfile.ModelFileError``: one error type for every bad model file."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the detector (eval mode, on ``device``) and what came with it."""

    detector: nn.Module
    config: InferenceConfig
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list | dict = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def predictor(self, device: str = "cpu"):
        """A ``runtime.TorchPredictor`` around this checkpoint's detector."""
        from .runtime import TorchPredictor

        return TorchPredictor(self.detector, self.config, device=device)


def library_versions() -> dict[str, str]:
    """Versions that matter when a checkpoint misbehaves on another machine."""
    import torchvision

    return {
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "utils": str(__version__),
    }


def plain(value: Any) -> Any:
    """Turn NumPy scalars/arrays, tuples and Paths into types that ``weights_only`` loads."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint; convert it first")


def save_checkpoint(
    path: str | Path,
    detector: nn.Module,
    config: InferenceConfig,
    metrics: dict | None = None,
    history: dict | list | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``detector`` and everything inference needs to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in detector.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": state,
        "config": config.to_dict(),
        "metrics": plain(metrics or {}),
        "history": plain(history if history is not None else []),
        "versions": library_versions(),
        "extra": plain(extra or {}),
    }
    with atomic_path(path) as tmp:  # never leave a half-written model.pt behind
        torch.save(payload, tmp)
    return path


def read_payload(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dictionary, validated; raises ``CheckpointError`` with a clear message."""
    path = Path(path)
    shown = require_file(
        path,
        "checkpoint at {shown}: train one in notebook 02 or with `python -m utils train`",
        "pass the checkpoint file (e.g. model.pt)",
        CheckpointError,
    )
    if looks_like_onnx(path):
        raise CheckpointError(
            f"{shown} is an ONNX model, not a PyTorch checkpoint; load it with "
            "utils.runtime (ONNX Runtime) or pass the .pt file"
        )
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{shown} is not a PyTorch checkpoint (corrupt, truncated or another file type)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError from a damaged zip, ...
        if "weights only load failed" in str(error).lower():
            raise CheckpointError(
                f"{shown} is a PyTorch file that holds pickled Python objects (a whole model?), "
                "not a course checkpoint; safe loading refuses it. Save models with "
                "utils.checkpoint.save_checkpoint"
            ) from error
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{shown} could not be read as a checkpoint (corrupt, truncated, or saved with "
            f"unsupported objects): {first[:200]}"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{shown} is a PyTorch file but not a course checkpoint (format {found!r}, expected "
            f"{FORMAT!r}); save models with utils.checkpoint.save_checkpoint"
        )
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{shown} has checkpoint format version {version!r}; this code reads version "
            f"{FORMAT_VERSION}: update the course code or re-train"
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{shown} lacks {missing}; it is incomplete, re-save it")
    return payload


def load_checkpoint(path: str | Path, device: str = "cpu") -> Checkpoint:
    """Rebuild the detector from ``path`` (no download: weights come from the file)."""
    from .model import build_model

    payload = read_payload(path)
    shown = display_path(path)
    try:
        config = InferenceConfig.from_dict(payload["config"])
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{shown} has a broken inference config: {error}") from error
    try:
        detector = build_model(
            config.model_name, len(config.class_names), config.image_size, pretrained=False
        )
    except ValueError as error:
        raise CheckpointError(f"{shown}: {error}") from error
    try:
        detector.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(
            f"{shown}: weights do not fit a {config.model_name} with "
            f"{len(config.class_names)} classes ({first[:200]})"
        ) from error
    detector.to(device).eval()
    return Checkpoint(
        detector=detector,
        config=config,
        metrics=dict(payload.get("metrics") or {}),
        history=payload.get("history") or [],
        versions=dict(payload.get("versions") or {}),
        extra=dict(payload.get("extra") or {}),
        path=Path(path),
    )


def predictor(path: str | Path, device: str = "cpu"):
    """``runtime.TorchPredictor`` straight from a checkpoint file."""
    return load_checkpoint(path, device=device).predictor(device=device)
