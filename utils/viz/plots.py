"""Small matplotlib figures for the notebooks: images, grids, augmentations, dataset
histograms, heatmaps, the scale effect and the legend of :func:`~utils.viz.draw.compare`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .draw import GT_COLOR, ImageLike, compare_legend, draw_detections, to_pil

if TYPE_CHECKING:  # matplotlib only where a figure is made
    from matplotlib.figure import Figure

    from ..annotations import AnnotationSet


def add_compare_legend(fig: Figure, iou_threshold: float = 0.5) -> Figure:
    """Put :func:`compare_legend` under a figure of :func:`compare` pictures."""
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor="none", edgecolor=color, linewidth=2, label=text)
        for color, text in compare_legend(iou_threshold)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=1, fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=max(fig.subplotpars.bottom, 0.16))
    return fig


def show_scale_effect(
    photo: ImageLike, box: Sequence[float], scales: dict[str, float], side: int = 180
) -> Figure:
    """One cell as the network receives it at each scale: the whole photo resized by that
    scale, a window of 3 cell-widths cut around the cell, shown enlarged pixel for pixel
    (nearest neighbour), so a cell that became 3 px wide looks 3 px wide."""
    import matplotlib.pyplot as plt

    image = to_pil(photo)
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 1.5 * max(x2 - x1, y2 - y1)
    fig, axes = plt.subplots(1, len(scales), figsize=(2.6 * len(scales), 3.0), dpi=80)
    for ax, (title, scale) in zip(np.atleast_1d(axes), scales.items()):
        window = (cx - half, cy - half, cx + half, cy + half)
        crop = image.crop(tuple(round(v) for v in window))
        small = crop.resize(
            (max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
            Image.Resampling.BILINEAR,
        )
        ax.imshow(small.resize((side, side), Image.Resampling.NEAREST))
        cell_px = max(x2 - x1, y2 - y1) * scale
        ax.set_title(f"{title}\ncell {cell_px:.0f} px long", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def use_jpeg_figures(quality: int = 80) -> None:
    """Show notebook figures as JPEG: microscope photos saved as PNG make notebooks megabytes big.

    Does nothing outside IPython.
    """
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("jpeg", pil_kwargs={"quality": quality})


def show_image(image: Any, title: str = "", size: float = 4.0) -> Figure:
    """One image (PIL, array or dataset tensor) as a small figure."""
    import matplotlib.pyplot as plt

    pil = to_pil(image)
    fig, ax = plt.subplots(figsize=(size, size * pil.height / pil.width), dpi=90)
    ax.imshow(pil)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _items(source: AnnotationSet | Sequence[tuple[ImageLike, np.ndarray]], n: int):
    if hasattr(source, "images"):
        return [(img.load_image(), img.boxes, img.name) for img in source.images[:n]]
    return [(to_pil(image), np.asarray(boxes), "") for image, boxes in list(source)[:n]]


def show_grid(
    source: AnnotationSet | Sequence[tuple[ImageLike, np.ndarray]],
    n: int = 6,
    cols: int = 3,
    color: str = GT_COLOR,
    size: float = 3.2,
) -> Figure:
    """The first ``n`` images with their boxes, titled with the file name and box count."""
    import matplotlib.pyplot as plt

    items = _items(source, n)
    rows = max(1, -(-len(items) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), dpi=90, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, boxes, name) in zip(axes.flat, items):
        ax.imshow(draw_detections(image, boxes, color=color, width=2))
        count = len(np.asarray(boxes).reshape(-1, 4))
        ax.set_title(f"{name}  {count} cells" if name else f"{count} cells", fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def show_augmentations(dataset: Any, index: int = 0, n: int = 6, cols: int = 3) -> Figure:
    """``n`` draws of the same training image through the dataset's augmentations."""
    items = []
    for _ in range(n):
        image, target = dataset[index]
        items.append((image, np.asarray(target["boxes"])))
    return show_grid(items, n=n, cols=cols)


def box_stats(aset: AnnotationSet) -> dict[str, np.ndarray]:
    """Per-box width and height as fractions of the image size, long/short ratio; cells per image."""
    widths, heights = [], []
    for img in aset.images:
        widths.append((img.boxes[:, 2] - img.boxes[:, 0]) / img.width)
        heights.append((img.boxes[:, 3] - img.boxes[:, 1]) / img.height)
    w = np.concatenate(widths) if widths else np.zeros(0, np.float32)
    h = np.concatenate(heights) if heights else np.zeros(0, np.float32)
    ratio = np.maximum(w, h) / np.maximum(np.minimum(w, h), 1e-9)
    counts = np.asarray([len(img.boxes) for img in aset.images])
    return {"width": w, "height": h, "ratio": ratio, "counts": counts}


def describe_boxes(aset: AnnotationSet, reference: dict | None = None) -> str:
    """A small table: this set's box-size percentiles next to the real photos' ones."""
    if reference is None:
        from ..synth import REAL_PROFILE as reference
    stats = box_stats(aset)
    pct = (5, 25, 50, 75, 95)
    lines = [f"{'':24s}" + "".join(f"{f'p{p}':>8s}" for p in pct)]
    for key, ref_key, title in (
        ("width", "width_pct", "width"),
        ("height", "height_pct", "height"),
    ):
        ours = np.percentile(stats[key], pct) if len(stats[key]) else [np.nan] * 5
        lines.append(f"{title + ' / image, this set':24s}" + "".join(f"{v:8.3f}" for v in ours))
        lines.append(
            f"{title + ' / image, real':24s}" + "".join(f"{v:8.3f}" for v in reference[ref_key])
        )
    ratio = np.percentile(stats["ratio"], (50, 95)) if len(stats["ratio"]) else [np.nan] * 2
    real_ratio = reference["ratio_pct"]
    lines.append(
        f"long/short side: median {ratio[0]:.1f} (real {real_ratio[0]:.1f}), "
        f"p95 {ratio[1]:.1f} (real {real_ratio[1]:.1f})"
    )
    counts = stats["counts"]
    low, mid, high = reference["counts_range"]
    if len(counts):
        lines.append(
            f"cells per image: {counts.min()}-{counts.max()}, median {np.median(counts):.0f} "
            f"(real {low}-{high}, median {mid})"
        )
        lines.append(_median_cell_line(aset))
    return "\n".join(lines)


def _median_cell_line(aset: AnnotationSet) -> str:
    """The median cell in pixels (the side of a square of its area), what the working scale uses."""
    sides = np.concatenate(
        [np.sqrt((i.boxes[:, 2] - i.boxes[:, 0]) * (i.boxes[:, 3] - i.boxes[:, 1])) for i in aset]
    )
    longest = sorted({max(i.width, i.height) for i in aset.images})
    size = f"{longest[0]}" if len(longest) == 1 else f"{longest[0]}-{longest[-1]}"
    return (
        f"median cell: {np.median(sides):.0f} px (the side of a square of the same area) "
        f"in these {size} px photos"
    )


def plot_dataset_stats(aset: AnnotationSet, reference: dict | None = None) -> Figure:
    """Histograms of box width/height (fraction of the image), aspect ratio and cells per image.

    ``reference`` (default: ``utils.synth.REAL_PROFILE``, the measured real photos) draws
    its percentiles as dashed lines so the two can be compared at a glance.
    """
    import matplotlib.pyplot as plt

    if reference is None:
        from ..synth import REAL_PROFILE as reference
    stats = box_stats(aset)
    fig, axes = plt.subplots(1, 4, figsize=(13, 2.9), dpi=90)
    panels = [
        ("width", "box width / image width", "width_pct"),
        ("height", "box height / image height", "height_pct"),
        ("ratio", "long side / short side", "ratio_pct"),
        ("counts", "cells per image", "counts_range"),
    ]
    for ax, (key, title, ref_key) in zip(axes, panels):
        values = stats[key]
        bins = 12 if key == "counts" else 30
        ax.hist(values, bins=bins, color="#4c9f70", alpha=0.85)
        for value in reference.get(ref_key, ()):
            ax.axvline(value, color="#333333", ls="--", lw=1)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("boxes", fontsize=8)
    fig.suptitle(
        f"{len(aset)} images, {aset.num_boxes} boxes (dashed: real photos' percentiles)",
        fontsize=9,
    )
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_heatmaps(
    image: np.ndarray, target: np.ndarray, predicted: np.ndarray | None = None, zoom: int = 2
) -> Figure:
    """The photo, the heatmap the network is trained to draw, and the one it draws.

    Shows the centre of the image zoomed ``zoom`` times, so individual cells and their
    bumps are visible. Heatmaps are at the model's stride (2 or 4), stretched to the photo's size.
    """
    import matplotlib.pyplot as plt

    side = image.shape[0]
    half = side // (2 * zoom)
    lo, hi = side // 2 - half, side // 2 + half
    panels = [("photo (centre, zoomed)", image[lo:hi, lo:hi], None)]
    stride = side // target.shape[0]
    crop = slice(lo // stride, hi // stride)
    panels.append(("target: a bump per cell", target[crop, crop], "magma"))
    if predicted is not None:
        panels.append(("predicted heatmap", predicted[crop, crop], "magma"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), dpi=80)
    for ax, (title, data, cmap) in zip(np.atleast_1d(axes), panels):
        ax.imshow(data, cmap=cmap, vmin=0 if cmap else None, vmax=1 if cmap else None)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_training(result: Any) -> Figure:
    """Training loss per epoch, and validation mAP at each evaluation, of a ``fit`` result.

    ``result``: a :class:`~utils.train.TrainResult` (``history``, ``kept_epoch``, ``config``,
    ``metrics``). The count error shown is the kept weights' on the validation photos at the
    **chosen** counting threshold (what the model will count with), not the 0.5 that the
    evaluations during training use before a threshold is chosen. With few evaluations
    (``TrainingPlan.eval_every``) the panel says how many points it has.
    """
    import matplotlib.pyplot as plt

    history = list(result.history)
    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(10, 3.5), dpi=80)
    epochs = [row["epoch"] for row in history]
    for key in [k for k in history[0] if k.startswith("loss")] if history else []:
        label, heavy = key.replace("loss_", ""), key == "loss"
        loss_ax.plot(epochs, [row[key] for row in history], label=label, lw=2 if heavy else 1)
    loss_ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Training loss")
    loss_ax.legend(fontsize=8)
    evaluated = [row for row in history if row.get("val_map") is not None]
    if not evaluated:
        val_ax.set_axis_off()
        fig.tight_layout()
        return fig
    xs = [row["epoch"] for row in evaluated]
    val_ax.plot(xs, [row["val_map_50"] for row in evaluated], "o-", label="mAP@.5")
    val_ax.plot(xs, [row["val_map"] for row in evaluated], "o-", label="mAP@[.5:.95]")
    val_ax.axvline(result.kept_epoch, color="gray", ls="--", lw=1, label="weights kept")
    val_ax.set(xlabel="epoch", ylabel="validation mAP", ylim=(0, 1), xlim=(0, max(epochs) + 1))
    val_ax.set_title(f"Validation: {len(xs)} evaluation(s)", fontsize=11)
    notes = []
    if len(xs) < 3:
        at = ", ".join(str(x) for x in xs)
        notes.append(f"only {len(xs)} point(s), at epoch(s) {at}: plan.eval_every sets how often")
    mae = result.metrics.get("val_count_mae")
    if mae is not None:
        threshold = result.config.score_threshold
        notes.append(
            f"kept weights: count MAE {mae:.2f} cells\nat the chosen threshold {threshold:.3f}"
        )
    if notes:
        val_ax.text(0.03, 0.05, "\n".join(notes), transform=val_ax.transAxes, fontsize=8)
    val_ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
