"""Boxes out: score threshold, NMS (NumPy) and rescaling to photo pixels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import Detections, InferenceConfig

NMS_BLOCK = 256  # rows of the IoU matrix computed at once: 256 x N floats, bounded memory
# NMS looks at the best ``CANDIDATES_PER_KEPT x limit`` candidates only. Why: in an untrained or
# badly matched model's noise-like heatmap about one point in nine is a 3x3 peak (the stride-2
# counter: about 7,300 per 512 px input) and NMS over thousands of them took minutes (the tests'
# one-epoch ``pretrain``: 284 s, 280 s of it in NMS; 3 s with the cap); a trained one has a few
# hundred. Greedy NMS decides each box from higher-scored ones only, so the ``limit`` kept
# are the same unless more than 3 in 4 of the best candidates overlap a better one.
CANDIDATES_PER_KEPT = 4


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, top: int | None = None
) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best first.

    Written in NumPy because the Space and the edge runtimes run without torch;
    ``tests/test_processing.py`` checks it against ``torchvision.ops.nms``. The IoUs of each
    box with every lower-scored box are computed a block of rows at a time, so Python only
    loops over the boxes that overlap a later one: 0.07 instead of 1.1 ms for a photo's 92 cells.
    ``top``: only the ``top`` best-scored boxes take part (ties in index order, as the sort).
    """
    order = np.argsort(-scores, kind="stable")[:top]
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[order, k]) for k in range(4))
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    suppressed = np.zeros(order.size, dtype=bool)
    for start in range(0, order.size, NMS_BLOCK):
        rows, cols = slice(start, start + NMS_BLOCK), slice(start, None)
        w = np.minimum(x2[rows, None], x2[cols]) - np.maximum(x1[rows, None], x1[cols])
        h = np.minimum(y2[rows, None], y2[cols]) - np.maximum(y1[rows, None], y1[cols])
        inter = np.maximum(w, 0) * np.maximum(h, 0)
        iou = inter / np.maximum(areas[rows, None] + areas[cols] - inter, 1e-9)
        overlaps = np.triu(iou > iou_threshold, 1)  # row r suppresses later columns only
        later = suppressed[start:]  # a view: writes land in ``suppressed``
        for r in np.flatnonzero(overlaps.any(axis=1)):  # ascending: the greedy order
            if not later[r]:
                later[overlaps[r]] = True
    return order[~suppressed].astype(np.int64)


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
    top = limit * CANDIDATES_PER_KEPT
    keep = nms(boxes + offset, scores, config.nms_iou, top)[:limit]
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
