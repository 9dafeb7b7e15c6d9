"""How good is the counter? COCO mAP for the boxes, count error for what users see.

Every runtime is evaluated the same way: through a ``runtime.Predictor``
(``predict_batch``), i.e. the shared letterbox + NumPy post-processing, so a PyTorch,
ONNX or INT8 model gets numbers that can be compared.

* **mAP** (COCO mAP@[.5:.95], mAP@.5, mAP@.75) uses every detection above
  ``config.min_score``: AP ranks detections by score, so it needs the low ones too.
* **Counting** uses the counting threshold (``config.score_threshold`` unless given):
  count = number of boxes scoring at least the threshold, as in the talk's app.
  MAE is the mean absolute count error per image, MAPE the same relative to the true
  count (in percent). With several classes each class is also counted alone
  (``per_class``): its MAE, its MAPE over the photos holding at least ``MAPE_MIN_CELLS`` of
  it (a photo with one white cell makes any percentage meaningless) and the relative error of
  its total over the set; ``count_class_mae`` sums the classes' errors per image (equal to
  ``count_mae`` for one class) and is what the threshold sweep minimises.
* The **threshold sweep** recounts the same detections at many thresholds (NMS keeps
  the same boxes above any threshold, so one prediction pass suffices) and the counting
  threshold is the one with the smallest count MAE on the validation images, averaged over
  the thresholds within ``THRESHOLD_BAND`` of it (a broad valley, not a one-step dip).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .processing import Detections
from .progress import tqdm

# A class's MAPE only counts photos with at least this many true cells of it.
MAPE_MIN_CELLS = 5
# best_threshold scores a threshold by the mean count MAE within this distance of it.
THRESHOLD_BAND = 0.05
DEFAULT_THRESHOLDS = tuple(round(float(t), 3) for t in np.arange(0.05, 0.951, 0.025))


def _images(aset) -> list:
    return list(aset.images) if hasattr(aset, "images") else list(aset)


def predict_set(predictor, aset, batch_size: int = 4, progress: bool = False) -> list[Detections]:
    """Detections for every image of ``aset`` (an ``AnnotationSet``), down to ``min_score``."""
    items = _images(aset)
    floor = predictor.config.min_score
    batches = range(0, len(items), batch_size)
    if progress:

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
    ``per_class`` holds each labelled class's AP, AP@.5 and AP@.75 from the same table.
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
        return {"map": 0.0, "map_50": 0.0, "map_75": 0.0, "per_class": {}}
    precision = result["precision"].numpy()  # [iou, recall, class, area, maxdet]
    ious = np.asarray(metric.iou_thresholds)
    table = precision[:, :, :, 0, -1]  # area "all", the largest maxDets

    def mean_valid(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else 0.0

    at_50, at_75 = np.isclose(ious, 0.5), np.isclose(ious, 0.75)
    # The table's classes are the label ids seen in predictions or targets, sorted (torchmetrics).
    seen = sorted({int(v) for d in (*preds, *targets) for v in d["labels"].tolist()})
    per_class: dict[str, dict[str, float]] = {}
    if len(seen) == table.shape[2]:
        labelled = {int(v) for t in targets for v in t["labels"].tolist()}
        for column, label in enumerate(seen):
            if 0 <= label < len(class_names) and label in labelled:
                cls = table[:, :, column]
                per_class[class_names[label]] = {
                    "ap": mean_valid(cls),
                    "ap_50": mean_valid(cls[at_50]),
                    "ap_75": mean_valid(cls[at_75]),
                }
    return {
        "map": mean_valid(table),
        "map_50": mean_valid(table[at_50]),
        "map_75": mean_valid(table[at_75]),
        "per_class": per_class,
    }


def count_errors(
    detections: Sequence[Detections],
    items: Sequence,
    threshold: float,
    class_names: Sequence[str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Count MAE / MAPE / bias at ``threshold`` and one record per image.

    The totals count every class together, as the course always has. With
    ``class_names`` of two or more classes, ``per_class`` adds each class counted alone
    and the records hold ``true_by_class`` / ``pred_by_class``.
    """
    names = tuple(class_names or ())
    records = []
    for det, item in zip(detections, items):
        kept = det.scores >= threshold
        true_ids = _label_ids(item.labels, names) if names else np.zeros(len(item.boxes), int)
        pred_ids = np.asarray(det.labels)[kept] if names else np.zeros(int(kept.sum()), int)
        true, pred = int(len(item.boxes)), int(kept.sum())
        record: dict[str, Any] = {
            "image": Path(item.image_path).name,
            "true": true,
            "pred": pred,
            "error": pred - true,
        }
        if len(names) > 1:
            record["true_by_class"] = np.bincount(true_ids[true_ids >= 0], minlength=len(names))
            record["pred_by_class"] = np.bincount(pred_ids, minlength=len(names))[: len(names)]
        records.append(record)
    summary = _count_summary(
        np.asarray([r["pred"] for r in records], np.float64),
        np.asarray([r["true"] for r in records], np.float64),
    )
    if len(names) > 1 and records:
        trues = np.stack([r.pop("true_by_class") for r in records]).astype(np.float64)
        preds = np.stack([r.pop("pred_by_class") for r in records]).astype(np.float64)
        for r, t, p in zip(records, trues, preds):
            r["true_by_class"] = dict(zip(names, t.astype(int).tolist()))
            r["pred_by_class"] = dict(zip(names, p.astype(int).tolist()))
        summary["count_class_mae"] = float(np.abs(preds - trues).sum(axis=1).mean())
        summary["per_class"] = {
            name: _class_counts(preds[:, k], trues[:, k]) for k, name in enumerate(names)
        }
    else:
        summary["count_class_mae"] = summary["count_mae"]
    return summary, records


def _count_summary(preds: np.ndarray, trues: np.ndarray) -> dict[str, Any]:
    """MAE, MAPE (over photos with cells) and bias of one count per photo."""
    errors = preds - trues
    positive = trues > 0
    return {
        "count_mae": float(np.abs(errors).mean()) if errors.size else 0.0,
        "count_mape": float((np.abs(errors[positive]) / trues[positive]).mean() * 100)
        if positive.any()
        else 0.0,
        "count_bias": float(errors.mean()) if errors.size else 0.0,
    }


def _class_counts(preds: np.ndarray, trues: np.ndarray) -> dict[str, Any]:
    """One class counted alone: MAE and bias per photo, MAPE where it means something.

    ``mape`` covers only photos with at least ``MAPE_MIN_CELLS`` true cells of the class
    (None when there are none): one white cell per photo makes any error 100 %.
    ``total_error_pct`` compares the class's total over the set (None without any).
    """
    errors = preds - trues
    many = trues >= MAPE_MIN_CELLS
    total = float(trues.sum())
    return {
        "mae": float(np.abs(errors).mean()),
        "bias": float(errors.mean()),
        "mape": float((np.abs(errors[many]) / trues[many]).mean() * 100) if many.any() else None,
        "mape_photos": int(many.sum()),
        "true_total": int(total),
        "pred_total": int(preds.sum()),
        "total_error_pct": abs(float(preds.sum()) - total) / total * 100 if total else None,
    }


def evaluate(
    predictor,
    aset,
    threshold: float | None = None,
    batch_size: int = 4,
    detections: Sequence[Detections] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """mAP@[.5:.95], mAP@.5, mAP@.75, count MAE/MAPE at ``threshold`` and per-image records.

    Several classes add ``ap_per_class`` and ``per_class`` (each class counted alone).

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
    result["ap_per_class"] = result.pop("per_class")
    counts, records = count_errors(detections, items, threshold, class_names)
    result.update(counts)
    result.update({"threshold": threshold, "images": len(items), "per_image": records})
    return result


def headline(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The figures a benchmark reports, rounded once for every report (``prefix``: a key prefix)."""
    figures = {
        "images": metrics["images"],
        "map": round(metrics["map"], 4),
        "map_50": round(metrics["map_50"], 4),
        "map_75": round(metrics["map_75"], 4),
        "count_mae": round(metrics["count_mae"], 3),
        "count_mape": round(metrics["count_mape"], 2),
    }
    return {f"{prefix}{key}": value for key, value in figures.items()}


def summary(metrics: dict[str, Any]) -> str:
    """One line of the numbers that matter (plus one line per class when there are several)."""
    counts = metrics.get("per_class") or {}
    # With several classes a relative error of the summed count means little (a photo holds
    # one white cell): the per-class lines below give each class's own.
    relative = f" ({metrics['count_mape']:.1f}%)" if len(counts) <= 1 else ", all classes"
    line = (
        f"mAP@[.5:.95] {metrics['map']:.3f} | mAP@.5 {metrics['map_50']:.3f} | "
        f"count MAE {metrics['count_mae']:.2f} cells{relative} "
        f"at threshold {metrics['threshold']:.2f} on {metrics['images']} images"
    )
    aps = metrics.get("ap_per_class") or {}
    rows = [line]
    for name, c in counts.items():
        ap = aps.get(name, {})
        ap_text = f"AP {ap['ap']:.3f}, AP@.5 {ap['ap_50']:.3f} | " if ap else ""
        mape = f"{c['mape']:.1f}% on {c['mape_photos']} photos" if c["mape"] is not None else "n/a"
        total = f"{c['total_error_pct']:.1f}%" if c["total_error_pct"] is not None else "n/a"
        rows.append(
            f"  {name}: {ap_text}count MAE {c['mae']:.2f} (MAPE {mape} with >= "
            f"{MAPE_MIN_CELLS} cells; total {c['pred_total']}/{c['true_total']}, error {total})"
        )
    return "\n".join(rows)


def threshold_sweep(
    predictor,
    aset,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    batch_size: int = 4,
    detections: Sequence[Detections] | None = None,
) -> list[dict[str, float]]:
    """Count MAE, MAPE, bias (mean signed error) and class MAE for each threshold: one row each."""
    items = _images(aset)
    if detections is None:
        detections = predict_set(predictor, items, batch_size)
    names = tuple(getattr(aset, "class_names", None) or predictor.config.class_names)
    rows = []
    for threshold in thresholds:
        counts, _ = count_errors(detections, items, float(threshold), names)
        counts.pop("per_class", None)
        rows.append({"threshold": float(threshold), **counts})
    return rows


def best_threshold(table: Sequence[dict[str, float]], band: float = THRESHOLD_BAND) -> float:
    """The threshold whose neighbourhood has the smallest count MAE; among ties, the middle one.

    With several classes the MAE is ``count_class_mae`` (each class's error counts: a white
    cell counted as a red one is a mistake), the same number for one class.
    Each threshold is scored by the mean MAE of the sweep's rows within ``band`` of it (0: its
    own MAE alone). Why: on a handful of validation photos the MAE moves in whole cells, and its
    lowest point is often one narrow dip that the held-out photos do not share; the middle of a
    broad low valley carries over better. On the synthetic set (3 validation photos, 6 runs) a
    band of 0.05 took the fast plan's worst held-out MAPE from 4.3 % to 2.8 % and left no run
    worse (``docs/model_choice.md``, section 5). Among tied scores, the middle of the tied range
    is the choice least likely to sit on an edge.
    """
    if not table:
        raise ValueError("empty threshold sweep")
    key = "count_class_mae" if all("count_class_mae" in row for row in table) else "count_mae"
    thresholds = np.asarray([row["threshold"] for row in table], np.float64)
    errors = np.asarray([row[key] for row in table], np.float64)
    near = np.abs(thresholds[:, None] - thresholds[None, :]) <= band + 1e-9
    scores = (near * errors[None, :]).sum(1) / near.sum(1)
    tied = thresholds[scores <= scores.min() + 1e-9]
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
