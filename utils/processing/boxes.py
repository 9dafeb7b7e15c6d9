"""Boxes out: score threshold, NMS (NumPy) and rescaling to photo pixels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import Detections, InferenceConfig


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


def candidates(
    boxes: np.ndarray, scores: np.ndarray, floor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw boxes (float32), scores and class indices of every anchor and class scoring >= ``floor``."""
    anchor_idx, class_idx = np.nonzero(scores >= floor)
    return (
        boxes[anchor_idx].astype(np.float32),
        scores[anchor_idx, class_idx].astype(np.float32),
        class_idx,
    )


def suppress(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    config: InferenceConfig,
    scale: float,
    original_size: tuple[int, int],
    span: float,
    limit: int,
) -> Detections:
    """Class-aware NMS over boxes in input (or working) pixels, then back to photo pixels.

    Each class is shifted by ``span`` pixels into its own region, so boxes of different classes
    never suppress each other; at most ``limit`` are kept. Shared by the single-input path
    (:func:`postprocess_one`) and the tiled one (``tiling.merge_tiles``).
    """
    offset = labels[:, None].astype(np.float32) * np.float32(span)
    keep = nms(boxes + offset, scores, config.nms_iou)[:limit]
    width, height = original_size
    out_boxes = boxes[keep] / np.float32(scale)
    out_boxes[:, 0::2] = np.clip(out_boxes[:, 0::2], 0, width)
    out_boxes[:, 1::2] = np.clip(out_boxes[:, 1::2], 0, height)
    return Detections(
        boxes=out_boxes.astype(np.float32),
        scores=scores[keep],
        labels=labels[keep].astype(np.int64),
        class_names=tuple(config.class_names),
        scale=float(scale),
    )


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
    raw, kept_scores, class_idx = candidates(boxes, scores, max(threshold, config.min_score))
    # Clip to the input frame before NMS, as torchvision does, so IoUs match across runtimes.
    kept_boxes = np.clip(raw, 0, config.image_size)
    span = config.image_size * 4.0
    return suppress(
        kept_boxes,
        kept_scores,
        class_idx,
        config,
        scale,
        original_size,
        span,
        config.max_detections,
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
