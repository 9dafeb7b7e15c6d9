"""Pixels in: RGB arrays, the letterbox, ImageNet normalisation, a model-ready batch.

A graph takes its pixels in one of two forms (``PIXEL_FORMATS``): ``NORMALIZED``, float32
``[N, 3, S, S]`` standardised here in NumPy (the ONNX file, and so every runtime that reads
it); or ``UINT8``, the resized photo's bytes as ``[N, S, S, 3]``, for a graph that standardises
them itself (the course's OpenVINO IRs: ``edge.openvino_ir``). Either way the resize, the
padding and the numbers the network sees are the same; only who does the arithmetic differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from .bands import resize_bilinear, resize_in_bands, row_bands, run_bands
from .config import InferenceConfig

NORMALIZED = "normalized"
UINT8 = "uint8"
PIXEL_FORMATS = (NORMALIZED, UINT8)


def check_pixels(pixels: str) -> str:
    """``pixels`` if it is one of ``PIXEL_FORMATS``; else a ValueError naming them."""
    if pixels not in PIXEL_FORMATS:
        raise ValueError(f"pixels must be one of {PIXEL_FORMATS}, got {pixels!r}")
    return pixels


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """An ``H x W x 3`` uint8 RGB array from a PIL image or an array (gray, RGB or RGBA)."""
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image)
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W x 3 image array, got shape {array.shape}")
    array = array[:, :, :3]
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}; convert the image first")
    return array


def as_rgb_image(image: Image.Image | np.ndarray) -> Image.Image:
    """A PIL RGB image of ``image`` without the array round trip when it already is one.

    Why: without the copy to an array and back, ``preprocess`` of a 640 px photo takes 3.9
    instead of 4.4 ms (next to a 20 ms INT8 graph); the pixels are the same either way.
    """
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    return Image.fromarray(to_rgb_array(image))


def working_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """A photo's size at ``scale`` (working pixels per photo pixel), rounded one way for all."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def letterbox_size(width: int, height: int, size: int) -> tuple[int, int, float]:
    """(width, height) of a photo resized so its longer side is ``size``, and the scale."""
    scale = size / max(width, height)
    return (*working_size(width, height, scale), scale)


def letterbox(image: Image.Image | np.ndarray, size: int) -> tuple[Image.Image, float]:
    """Resize the longer side to ``size`` keeping the aspect ratio, pad right/bottom with black.

    Returns the square image and the scale (input pixels per original pixel). Black padding
    matches the dark surround of an eyepiece photo, so the model sees nothing new. The resize
    is Pillow's BILINEAR (``bands.resize_bilinear``: the same bytes, on every core).
    """
    rgb = as_rgb_image(image)
    new_w, new_h, scale = letterbox_size(*rgb.size, size)
    canvas = np.empty((size, size, 3), np.uint8)
    resized_into(rgb, (new_w, new_h), canvas)
    return Image.fromarray(canvas), scale


def _affine(config: InferenceConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``scale`` and ``shift``: ``pixel * scale - shift`` is the normalised value."""
    std = np.asarray(config.std, np.float32)
    return (1.0 / (255.0 * std)).astype(np.float32), np.asarray(config.mean, np.float32) / std


def _normalize_rows(
    pixels: np.ndarray, out: np.ndarray, scale: np.ndarray, shift: np.ndarray
) -> None:
    """``out`` (``3 x h x w`` float32) = ``pixels`` (``h x w x 3`` uint8) normalised."""
    for channel in range(3):  # uint8 -> float32 and the scale in one pass, then the shift
        np.multiply(pixels[:, :, channel], scale[channel], out=out[channel])
        out[channel] -= shift[channel]


def normalize(
    image: Image.Image | np.ndarray, config: InferenceConfig, out: np.ndarray | None = None
) -> np.ndarray:
    """A ``3 x S x S`` float32 array, scaled to [0, 1] then standardised with mean/std.

    Computed as ``pixel * (1 / (255 std)) - mean / std`` channel by channel into one
    channel-first array: the same numbers (to 1e-6) about 5x faster than three passes, which
    matters once an INT8 graph takes only a few times longer than its pre-processing.
    ``out`` (a slot of a batch) saves stacking the tiles afterwards.
    """
    scale, shift = _affine(config)
    pixels = np.asarray(image)
    if out is None:
        out = np.empty((3, *pixels.shape[:2]), np.float32)
    run_bands(  # a band of rows per core (``bands``)
        lambda start, stop: _normalize_rows(pixels[start:stop], out[:, start:stop], scale, shift),
        row_bands(*pixels.shape[:2]),
    )
    return out


def normalized_into(
    image: Image.Image | np.ndarray,
    size: tuple[int, int],
    config: InferenceConfig,
    out: np.ndarray,
) -> None:
    """``normalize`` of ``image`` resized to ``size`` (width, height) and padded black on the
    right and bottom to ``out``'s ``3 x S x S``: a letterbox, or a photo's one tile.

    Each band of rows is resized and normalised by the same thread while it is in cache, and
    the padding is written as what ``normalize`` makes of black: the same numbers as the
    separate steps (``tests/test_bands.py``), without a uint8 copy of the resized photo.
    """
    rgb = as_rgb_image(image)
    new_w, new_h = size
    factor, shift = _affine(config)
    black = -shift[:, None, None]  # 0 * factor - shift
    out[:, new_h:, :] = black
    out[:, :new_h, new_w:] = black
    photo = out[:, :new_h, :new_w]
    if (new_w, new_h) == rgb.size:
        normalize(rgb, config, out=photo)
        return
    resize_in_bands(
        rgb,
        (new_w, new_h),
        lambda start, stop, rows: _normalize_rows(rows, photo[:, start:stop], factor, shift),
    )


def resized_into(image: Image.Image | np.ndarray, size: tuple[int, int], out: np.ndarray) -> None:
    """``image`` resized to ``size`` (width, height) into the top-left of ``out`` (an
    ``S x S x 3`` uint8 array), the rest black: the bytes that ``normalized_into`` standardises,
    for a graph that standardises them itself (``UINT8``)."""
    rgb = as_rgb_image(image)
    new_w, new_h = size
    out[new_h:] = 0
    out[:new_h, new_w:] = 0
    if (new_w, new_h) == rgb.size:
        out[:new_h, :new_w] = np.asarray(rgb)
    else:
        resize_bilinear(rgb, (new_w, new_h), out=out[:new_h, :new_w])


def input_batch(count: int, size: int, pixels: str = NORMALIZED) -> np.ndarray:
    """An empty batch of ``count`` graph inputs of side ``size`` in the ``pixels`` form."""
    if check_pixels(pixels) == UINT8:
        return np.empty((count, size, size, 3), np.uint8)
    return np.empty((count, 3, size, size), np.float32)


def input_into(
    image: Image.Image | np.ndarray, size: tuple[int, int], config: InferenceConfig, out: np.ndarray
) -> None:
    """One graph input in ``out``'s form (uint8 ``S x S x 3`` or float32 ``3 x S x S``):
    ``image`` resized to ``size`` and padded black on the right and bottom."""
    if out.dtype == np.uint8:
        resized_into(image, size, out)
    else:
        normalized_into(image, size, config, out)


def preprocess(
    images: Sequence[Image.Image | np.ndarray], config: InferenceConfig, pixels: str = NORMALIZED
) -> tuple[np.ndarray, list[float], list[tuple[int, int]]]:
    """Batch of images -> (graph inputs in the ``pixels`` form, scales, original (width, height)).

    ``NORMALIZED``: ``N x 3 x S x S`` float32; ``UINT8``: ``N x S x S x 3`` uint8.
    """
    size = config.image_size
    batch = input_batch(len(images), size, pixels)
    scales, sizes = [], []
    for slot, image in zip(batch, images):
        rgb = as_rgb_image(image)
        new_w, new_h, scale = letterbox_size(*rgb.size, size)
        input_into(rgb, (new_w, new_h), config, slot)
        scales.append(scale)
        sizes.append(rgb.size)
    return batch, scales, sizes
