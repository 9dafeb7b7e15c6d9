"""How good is the counter? COCO mAP for the boxes, count error for what users see.

Every runtime is evaluated the same way: through a ``runtime.Predictor``
(``predict_batch``), i.e. the shared letterbox + NumPy post-processing, so a PyTorch,
ONNX or INT8 model gets numbers that can be compared.

* **mAP** (COCO mAP@[.5:.95], mAP@.5, mAP@.75) uses every detection above
  ``config.min_score``: AP ranks detections by score, so it needs the low ones too.
* **Counting** uses the counting threshold (``config.score_threshold`` unless given):
  count = number of boxes scoring at least the threshold, as in the talk's app.
  MAE is the mean absolute count error per image, MAPE the same relative to the true
  count (in percent).
* The **threshold sweep** recounts the same detections at many thresholds (NMS keeps
  the same boxes above any threshold, so one prediction pass suffices) and the counting
  threshold is the one with the smallest count MAE on the validation images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .processing import Detections

DEFAULT_THRESHOLDS = tuple(round(float(t), 3) for t in np.arange(0.05, 0.951, 0.025))


def _images(aset) -> list:
    return list(aset.images) if hasattr(aset, "images") else list(aset)


def predict_set(predictor, aset, batch_size: int = 4, progress: bool = False) -> list[Detections]:
    """Detections for every image of ``aset`` (an ``AnnotationSet``), down to ``min_score``."""
    items = _images(aset)
    floor = predictor.config.min_score
    batches = range(0, len(items), batch_size)
    if progress:
        from .progress import tqdm

        batches = tqdm(batches, desc="predict", unit="batch", leave=False)
    detections: list[Detections] = []
    for start in batches:
        chunk = items[start : start + batch_size]
        detections += predictor.predict_batch([item.load_image() for item in chunk], floor)
    return detections


def _label_ids(labels: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    return np.asarray([index.get(label, -1) for label in labels], dtype=np.int64)


def mean_average_precision(
    detections: Sequence[Detections],
    items: Sequence,
    class_names: Sequence[str],
    max_dets: int = 300,
) -> dict[str, float]:
    """COCO mAP@[.5:.95], mAP@.5 and mAP@.75 with torchmetrics (pycocotools backend).

    pycocotools' summary only reports mAP for ``maxDets=100``; images here can hold more
    than 100 cells, so we read its precision table at ``max_dets`` instead (same formula).
    """
    from torchmetrics.detection import MeanAveragePrecision

    max_dets = max(int(max_dets), 100)
    metric = MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        max_detection_thresholds=[1, 10, max_dets],
        extended_summary=True,
    )
    preds, targets = [], []
    for det, item in zip(detections, items):
        preds.append(
            {
                "boxes": torch.as_tensor(det.boxes, dtype=torch.float32).reshape(-1, 4),
                "scores": torch.as_tensor(det.scores, dtype=torch.float32),
                "labels": torch.as_tensor(det.labels, dtype=torch.int64),
            }
        )
        targets.append(
            {
                "boxes": torch.as_tensor(np.asarray(item.boxes), dtype=torch.float32).reshape(
                    -1, 4
                ),
                "labels": torch.as_tensor(_label_ids(item.labels, class_names)),
            }
        )
    metric.update(preds, targets)
    result = metric.compute()
    if "precision" not in result:  # nothing to compare (no boxes at all)
        return {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
    precision = result["precision"].numpy()  # [iou, recall, class, area, maxdet]
    ious = np.asarray(metric.iou_thresholds)
    table = precision[:, :, :, 0, -1]  # area "all", the largest maxDets

    def mean_valid(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else 0.0

    return {
        "map": mean_valid(table),
        "map_50": mean_valid(table[np.isclose(ious, 0.5)]),
        "map_75": mean_valid(table[np.isclose(ious, 0.75)]),
    }


def count_errors(
    detections: Sequence[Detections], items: Sequence, threshold: float
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Count MAE / MAPE / bias at ``threshold`` and one record per image."""
    records = []
    for det, item in zip(detections, items):
        true = int(len(item.boxes))
        pred = int((det.scores >= threshold).sum())
        records.append(
            {
                "image": Path(item.image_path).name,
                "true": true,
                "pred": pred,
                "error": pred - true,
            }
        )
    errors = np.asarray([r["error"] for r in records], dtype=np.float64)
    trues = np.asarray([r["true"] for r in records], dtype=np.float64)
    positive = trues > 0
    summary = {
        "count_mae": float(np.abs(errors).mean()) if errors.size else 0.0,
        "count_mape": float((np.abs(errors[positive]) / trues[positive]).mean() * 100)
        if positive.any()
        else 0.0,
        "count_bias": float(errors.mean()) if errors.size else 0.0,
    }
    return summary, records


def evaluate(
    predictor,
    aset,
    threshold: float | None = None,
    batch_size: int = 4,
    detections: Sequence[Detections] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """mAP@[.5:.95], mAP@.5, mAP@.75, count MAE/MAPE at ``threshold`` and per-image records.

    ``detections`` (from :func:`predict_set`) skips the prediction pass when given.
    """
    items = _images(aset)
    config = predictor.config
    threshold = config.score_threshold if threshold is None else float(threshold)
    if detections is None:
        detections = predict_set(predictor, items, batch_size, progress=progress)
    class_names = tuple(getattr(aset, "class_names", None) or config.class_names)
    result: dict[str, Any] = mean_average_precision(
        detections, items, class_names, max_dets=config.max_detections
    )
    counts, records = count_errors(detections, items, threshold)
    result.update(counts)
    result.update({"threshold": threshold, "images": len(items), "per_image": records})
    return result


def summary(metrics: dict[str, Any]) -> str:
    """One line of the numbers that matter."""
    return (
        f"mAP@[.5:.95] {metrics['map']:.3f} | mAP@.5 {metrics['map_50']:.3f} | "
        f"count MAE {metrics['count_mae']:.2f} cells ({metrics['count_mape']:.1f}%) "
        f"at threshold {metrics['threshold']:.2f} on {metrics['images']} images"
    )


def threshold_sweep(
    predictor,
    aset,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    batch_size: int = 4,
    detections: Sequence[Detections] | None = None,
) -> list[dict[str, float]]:
    """Count MAE, MAPE and bias (mean signed error) for each threshold: one row each."""
    items = _images(aset)
    if detections is None:
        detections = predict_set(predictor, items, batch_size)
    rows = []
    for threshold in thresholds:
        counts, _ = count_errors(detections, items, float(threshold))
        rows.append({"threshold": float(threshold), **counts})
    return rows


def best_threshold(table: Sequence[dict[str, float]]) -> float:
    """The threshold with the smallest count MAE; among ties, the middle one.

    With a handful of validation images the MAE moves in steps, so several thresholds
    often tie; the middle of the tied range is the choice least likely to sit on an edge.
    """
    if not table:
        raise ValueError("empty threshold sweep")
    best = min(row["count_mae"] for row in table)
    tied = [row["threshold"] for row in table if row["count_mae"] <= best + 1e-9]
    return float(tied[(len(tied) - 1) // 2])


# ----------------------------------------------------------------------------- plots


def plot_history(history: Sequence[dict[str, Any]], ax=None):
    """Training loss (total and per part) and validation metrics per epoch."""
    import matplotlib.pyplot as plt

    history = list(history)
    if ax is None:
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.5), dpi=80)
    else:
        fig = ax[0].figure
    epochs = [row["epoch"] for row in history]
    loss_keys = [k for k in history[0] if k.startswith("loss")] if history else []
    for key in loss_keys:
        ax[0].plot(
            epochs,
            [row[key] for row in history],
            label=key.replace("loss_", ""),
            lw=2 if key == "loss" else 1,
        )
    ax[0].set(xlabel="epoch", ylabel="training loss", yscale="log", title="Loss")
    ax[0].legend(fontsize=8)
    evaluated = [row for row in history if row.get("val_map") is not None]
    if evaluated:
        xs = [row["epoch"] for row in evaluated]
        ax[1].plot(xs, [row["val_map_50"] for row in evaluated], "o-", label="mAP@.5")
        ax[1].plot(xs, [row["val_map"] for row in evaluated], "o-", label="mAP@[.5:.95]")
        ax[1].set(xlabel="epoch", ylabel="validation mAP", ylim=(0, 1), title="Validation")
        twin = ax[1].twinx()
        twin.plot(
            xs, [row["val_count_mae"] for row in evaluated], "s--", color="gray", label="count MAE"
        )
        twin.set_ylabel("count MAE (cells, threshold 0.5)")
        lines = ax[1].get_lines() + twin.get_lines()
        ax[1].legend(lines, [line.get_label() for line in lines], fontsize=8, loc="center right")
    else:
        ax[1].set_axis_off()
    fig.tight_layout()
    return fig


def plot_threshold_sweep(table: Sequence[dict[str, float]], chosen: float | None = None, ax=None):
    """Count error vs threshold: too low counts debris twice, too high misses faint cells."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=80)
    else:
        fig = ax.figure
    xs = [row["threshold"] for row in table]
    ax.plot(xs, [row["count_mae"] for row in table], "o-", ms=3, label="MAE (cells)")
    ax.plot(xs, [row["count_bias"] for row in table], "--", label="bias (pred - true)")
    ax.axhline(0, color="black", lw=0.5)
    if chosen is not None:
        ax.axvline(chosen, color="red", lw=1, label=f"chosen {chosen:.2f}")
    ax.set(xlabel="score threshold", ylabel="count error per image", title="Threshold sweep")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_count_scatter(records: Sequence[dict[str, Any]], ax=None, title: str = "Counts"):
    """Predicted vs true count per image; points on the diagonal are perfect counts."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    else:
        fig = ax.figure
    true = np.asarray([r["true"] for r in records])
    pred = np.asarray([r["pred"] for r in records])
    top = max(int(true.max(initial=1)), int(pred.max(initial=1))) * 1.08
    ax.plot([0, top], [0, top], color="gray", lw=1)
    ax.scatter(true, pred, s=18)
    ax.set(
        xlim=(0, top),
        ylim=(0, top),
        xlabel="true count",
        ylabel="predicted count",
        title=title,
        aspect="equal",
    )
    fig.tight_layout()
    return fig


def show_predictions(predictor, aset, n: int = 3, threshold: float | None = None, cols: int = 3):
    """Predicted vs true boxes on ``n`` images, with missed cells and false positives marked."""
    import matplotlib.pyplot as plt

    from . import viz

    items = _images(aset)[:n]
    detections = predictor.predict_batch([item.load_image() for item in items], threshold)
    cols = min(cols, len(items))
    rows = (len(items) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 4.7 * rows), dpi=80, squeeze=False)
    for ax, item, det in zip(axes.flat, items, detections):
        picture = viz.compare(item.load_image(), item.boxes, det.boxes, det.scores)
        ax.imshow(picture)
        ax.set_title(
            f"{Path(item.image_path).name}: {det.count} found / {len(item.boxes)} true", fontsize=9
        )
    for ax in axes.flat:
        ax.set_axis_off()
    fig.tight_layout()
    return viz.add_compare_legend(fig)
