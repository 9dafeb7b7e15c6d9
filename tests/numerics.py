"""Thresholds for tests that compare counts across runtimes, precisions, threads or machines.

Two runtimes computing the same float32 graph agree to about 1e-5 on a score, but not to the
last bit, and by how much depends on the CPU (Intel or AMD, AVX-512 or AMX, 1 or 2 threads).
A count taken at a threshold that sits *at* a score flips when that score moves by 1e-7, so
such a test passes on one machine and fails on the next. The rule (docs/CONVENTIONS.md):
a test counts at a threshold in the middle of a gap between two scores, and the gap must be
wider than twice :data:`PARITY_TOLERANCE`, so a score must move by more than the tolerance to
change a count.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# The largest score difference accepted between two runtimes of the same float32 graph
# (PyTorch eager, ONNX Runtime, OpenVINO f32, onnxruntime-web), on any CPU and thread count:
# 100x what they differ by here (~1e-5), 10x below what bfloat16 compute moves a score (~1e-2).
PARITY_TOLERANCE = 1e-3


def gap_threshold(
    scores: Iterable[float] | np.ndarray,
    keep: int,
    tolerance: float = PARITY_TOLERANCE,
    window: float = 0.5,
) -> float:
    """A threshold that keeps about ``keep`` of ``scores``, in the middle of the widest gap.

    The gap is looked for among the ranks ``keep * (1 - window)`` to ``keep * (1 + window)``
    (from the top). Raises ``AssertionError`` when no gap there is wider than
    ``2 * tolerance``: the test's model must then be changed, not the tolerance.
    """
    ranked = np.sort(np.asarray(list(scores) if not isinstance(scores, np.ndarray) else scores,
                                dtype=np.float64).ravel())[::-1]
    if len(ranked) < 2:
        raise AssertionError(f"need at least 2 scores to find a gap, got {len(ranked)}")
    low = max(0, int(keep * (1 - window)) - 1)
    high = min(len(ranked) - 1, max(low + 1, int(round(keep * (1 + window)))))
    gaps = ranked[low:high] - ranked[low + 1 : high + 1]
    best = int(np.argmax(gaps))
    gap = float(gaps[best])
    assert gap > 2 * tolerance, (
        f"no gap wider than {2 * tolerance:g} among score ranks {low + 1}-{high + 1} "
        f"(widest {gap:.2e}): every threshold there is within {tolerance:g} of a score"
    )
    return float((ranked[low + best] + ranked[low + best + 1]) / 2)


def margin(scores: Iterable[float] | np.ndarray, threshold: float) -> float:
    """How far the nearest score lies from ``threshold`` (to assert a threshold is safe)."""
    values = np.abs(np.asarray(list(scores), dtype=np.float64).ravel() - threshold)
    return float(values.min()) if values.size else float("inf")


def spread_scores(detector, factor: float = 30.0):
    """Widen an untrained detector's scores (in place; returns it).

    At random weights every peak scores about the prior, 0.05, within 1e-4 of each other: no
    threshold there is safe. Scaling the heatmap head's last weights by ``factor`` spreads the
    peaks over 0.05-0.9 (gaps of ~1e-2 near rank 80 at 30x), while the runtimes still agree
    to ~1e-6, so a gap threshold exists and a count compares what the runtimes compute.
    """
    import torch

    if hasattr(detector, "heatmap"):
        last = detector.heatmap[-1]
    else:  # torchvision FCOS / RetinaNet: the classification head's last conv
        last = detector.head.classification_head.cls_logits
    with torch.no_grad():
        last.weight.mul_(factor)
    return detector


def crowd_then_cells() -> tuple[np.ndarray, np.ndarray]:
    """100 near-copies of one box scored 0.90-0.99, then 300 separate cells scored below 0.9:
    what a badly matched model gives, with more junk at the top than 4 x a limit of 10 keeps."""
    copies = np.tile(np.float32([[10, 10, 30, 30]]), (100, 1)) + np.linspace(0, 1, 100)[:, None]
    xs, ys = np.meshgrid(np.arange(20) * 40.0 + 100, np.arange(15) * 40.0 + 100)
    cells = np.stack([xs.ravel(), ys.ravel(), xs.ravel() + 20, ys.ravel() + 20], 1)
    boxes = np.concatenate([copies, cells]).astype(np.float32)
    scores = np.concatenate([np.linspace(0.99, 0.90, 100), np.linspace(0.89, 0.5, 300)])
    return boxes, scores.astype(np.float32)
