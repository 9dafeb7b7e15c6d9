"""The one pre- and post-processing path that every runtime shares.

The exported graph (see ``model.DetectorCore``) is the network plus box decoding at a
fixed square input size: it takes a normalised float32 batch ``[N, 3, S, S]`` and returns
``boxes [N, A, 4]`` (x1, y1, x2, y2 in input pixels) and ``scores [N, A, C]``. Everything
around it lives here, in NumPy, so PyTorch, ONNX Runtime, OpenVINO, the Gradio Space
(no torch) and a browser port all resize, normalise, threshold, suppress and rescale the
same way:

    image -> letterbox -> normalise -> [graph] -> threshold -> NMS -> rescale -> Detections
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InferenceConfig:
    """All that inference needs besides the weights; stored in checkpoints and ONNX metadata."""

    model_name: str
    class_names: tuple[str, ...]
    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    score_threshold: float = 0.5  # the counting threshold, chosen on validation
    nms_iou: float = 0.6
    max_detections: int = 300
    min_score: float = 0.05  # candidates below this are never kept, whatever the slider says

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InferenceConfig:
        known = {f for f in cls.__dataclass_fields__}
        missing = {"model_name", "class_names", "image_size"} - set(data)
        if missing:
            raise ValueError(f"inference config lacks {sorted(missing)}; re-export the model")
        values = {k: v for k, v in data.items() if k in known}
        values["class_names"] = tuple(values["class_names"])
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)


@dataclass
class Detections:
    """Boxes in original-image pixels (x1, y1, x2, y2), scores in [0, 1], 0-based labels."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    class_names: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """Number of detected objects: the cell count."""
        return int(len(self.scores))

    def above(self, threshold: float) -> Detections:
        """Only the detections scoring at least ``threshold``."""
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep], self.class_names)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per detection, for tables and JSON."""
        names = self.class_names
        return [
            {
                "label": names[int(lab)] if int(lab) < len(names) else str(int(lab)),
                "score": round(float(s), 4),
                "x1": round(float(b[0]), 1),
                "y1": round(float(b[1]), 1),
                "x2": round(float(b[2]), 1),
                "y2": round(float(b[3]), 1),
            }
            for b, s, lab in zip(self.boxes, self.scores, self.labels)
        ]


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


def letterbox(image: Image.Image | np.ndarray, size: int) -> tuple[Image.Image, float]:
    """Resize the longer side to ``size`` keeping the aspect ratio, pad right/bottom with black.

    Returns the square image and the scale (input pixels per original pixel). Black padding
    matches the dark surround of an eyepiece photo, so the model sees nothing new.
    """
    rgb = Image.fromarray(to_rgb_array(image))
    width, height = rgb.size
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if (new_w, new_h) != (width, height):
        rgb = rgb.resize((new_w, new_h), Image.Resampling.BILINEAR)
    if (new_w, new_h) == (size, size):
        return rgb, scale
    canvas = Image.new("RGB", (size, size))
    canvas.paste(rgb, (0, 0))
    return canvas, scale


def normalize(image: Image.Image, config: InferenceConfig) -> np.ndarray:
    """A ``3 x S x S`` float32 array, scaled to [0, 1] then standardised with mean/std.

    Computed as ``pixel * (1 / (255 std)) - mean / std`` in place on one channel-first copy:
    the same numbers (to 1e-6) about 5x faster than three passes, which matters once an
    INT8 graph takes only a few times longer than its pre-processing.
    """
    std = np.asarray(config.std, np.float32)
    scale = (1.0 / (255.0 * std)).astype(np.float32)[:, None, None]
    shift = (np.asarray(config.mean, np.float32) / std)[:, None, None]
    array = np.asarray(image).transpose(2, 0, 1).astype(np.float32, order="C")
    array *= scale
    array -= shift
    return array


def preprocess(
    images: Sequence[Image.Image | np.ndarray], config: InferenceConfig
) -> tuple[np.ndarray, list[float], list[tuple[int, int]]]:
    """Batch of images -> (``N x 3 x S x S`` float32, scales, original (width, height))."""
    batch, scales, sizes = [], [], []
    for image in images:
        rgb = to_rgb_array(image)
        boxed, scale = letterbox(rgb, config.image_size)
        batch.append(normalize(boxed, config))
        scales.append(scale)
        sizes.append((rgb.shape[1], rgb.shape[0]))
    return np.stack(batch), scales, sizes


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best first.

    Written in NumPy because the Space and the edge runtimes run without torch;
    ``tests/test_processing.py`` checks it against ``torchvision.ops.nms``.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def postprocess_one(
    boxes: np.ndarray,
    scores: np.ndarray,
    config: InferenceConfig,
    scale: float,
    original_size: tuple[int, int],
    threshold: float | None = None,
) -> Detections:
    """Raw graph outputs of one image (``A x 4``, ``A x C``) -> Detections in original pixels.

    ``threshold`` defaults to the counting threshold stored in ``config``.
    """
    threshold = config.score_threshold if threshold is None else float(threshold)
    floor = max(threshold, config.min_score)
    anchor_idx, class_idx = np.nonzero(scores >= floor)
    kept_scores = scores[anchor_idx, class_idx].astype(np.float32)
    # Clip to the input frame before NMS, as torchvision does, so IoUs match across runtimes.
    kept_boxes = np.clip(boxes[anchor_idx].astype(np.float32), 0, config.image_size)
    # Class-aware NMS: shift each class to its own region so boxes of different classes never overlap.
    offset = class_idx[:, None].astype(np.float32) * (config.image_size * 4.0)
    keep = nms(kept_boxes + offset, kept_scores, config.nms_iou)[: config.max_detections]
    width, height = original_size
    out_boxes = kept_boxes[keep] / scale
    out_boxes[:, 0::2] = np.clip(out_boxes[:, 0::2], 0, width)
    out_boxes[:, 1::2] = np.clip(out_boxes[:, 1::2], 0, height)
    return Detections(
        boxes=out_boxes.astype(np.float32),
        scores=kept_scores[keep],
        labels=class_idx[keep].astype(np.int64),
        class_names=tuple(config.class_names),
    )


def postprocess(
    boxes: np.ndarray,
    scores: np.ndarray,
    config: InferenceConfig,
    scales: Sequence[float],
    sizes: Sequence[tuple[int, int]],
    threshold: float | None = None,
) -> list[Detections]:
    """Batched :func:`postprocess_one`."""
    return [
        postprocess_one(boxes[i], scores[i], config, scales[i], sizes[i], threshold)
        for i in range(len(scales))
    ]
