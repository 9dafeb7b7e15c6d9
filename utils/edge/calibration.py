"""Calibration images: exactly the preprocessed tensors the model sees when it serves."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..images import load_image
from ..processing import InferenceConfig, plan_tiles, tiles, working_image


def _pil_images(images: Iterable[Any], limit: int | None = None) -> list[Image.Image]:
    """PIL images from PIL images, arrays, paths, ``AnnotatedImage`` or an ``AnnotationSet``."""
    if hasattr(images, "images"):
        images = images.images
    out: list[Image.Image] = []
    for item in images:
        if limit is not None and len(out) >= limit:
            break
        if hasattr(item, "load_image"):
            out.append(item.load_image())
        elif isinstance(item, (str, os.PathLike)):
            out.append(load_image(item).image)  # as served: EXIF orientation, 16-bit, alpha
        elif isinstance(item, np.ndarray):
            out.append(Image.fromarray(item))
        else:
            out.append(item)
    return out


def calibration_batches(
    images: Iterable[Any], config: InferenceConfig, limit: int | None = None
) -> list[np.ndarray]:
    """Preprocessed ``[1, 3, S, S]`` tiles, exactly what the model sees when it serves.

    A photo larger than one input gives all its tiles at the model's working scale
    (``processing.count_tiled``), so INT8 ranges are calibrated on the pixels it will count.
    """
    batches = []
    for img in _pil_images(images, limit):
        grid = plan_tiles(img.width, img.height, config)
        work = working_image(img, grid.scale)
        batches += [tile[None] for tile in tiles(work, grid, config)]
    return batches


def _calibration_reader(batches: Sequence[np.ndarray], input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class ImageReader(CalibrationDataReader):
        """Feeds one preprocessed image at a time to ONNX Runtime's calibrator."""

        def __init__(self) -> None:
            self._iter = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._iter, None)
            return None if batch is None else {input_name: batch}

        def rewind(self) -> None:
            self._iter = iter(batches)

    return ImageReader()


def _read_config(onnx_file: str | Path) -> InferenceConfig:
    from ..export import read_onnx_config

    return read_onnx_config(onnx_file)


def _output_path(onnx_file: Path, output: str | Path | None, suffix: str) -> Path:
    """``output``, else a file next to ``onnx_file`` named with ``suffix``; its folder exists."""
    output = Path(output) if output else onnx_file.with_name(onnx_file.stem + suffix)
    output.parent.mkdir(parents=True, exist_ok=True)
    return output


def _calibration_job(
    onnx_file: str | Path,
    output: str | Path | None,
    suffix: str,
    images: Iterable[Any],
    limit: int | None,
    what: str,
) -> tuple[Path, Path, InferenceConfig, list[np.ndarray]]:
    """(source, output, inference config, calibration tensors) for a calibrated quantizer."""
    onnx_file = Path(onnx_file)
    config = _read_config(onnx_file)
    output = _output_path(onnx_file, output, suffix)
    batches = calibration_batches(images, config, limit)
    if not batches:
        raise ValueError(f"{what} needs at least one calibration image")
    return onnx_file, output, config, batches
