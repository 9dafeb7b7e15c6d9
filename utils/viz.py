"""Pictures: boxes on images (PIL, fast enough for the Gradio app), grids and dataset histograms.

``draw_detections``/``draw``/``compare`` use only PIL so the app and the Space never import
matplotlib; ``show_grid`` and ``plot_dataset_stats`` return small matplotlib figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .processing import Detections, to_rgb_array

if TYPE_CHECKING:  # matplotlib only where a figure is made
    from matplotlib.figure import Figure

    from .annotations import AnnotationSet

BOX_COLOR = "#ff2a6d"  # magenta-red: stands out on a grey field and on green cells
GT_COLOR = "#00b4ff"  # cyan-blue: ground truth
# Correct / false / missed: three Okabe-Ito colours that stay apart (CIELAB Delta E > 30) under
# simulated protanopia, deuteranopia and tritanopia (tests/test_viz.py) and show on the light field.
MATCH_COLOR = "#56b4e9"  # sky blue: a detection matched to a labelled cell
FALSE_COLOR = "#d55e00"  # vermillion (red-orange): a detection matched to no labelled cell
MISSED_COLOR = "#000000"  # black: a labelled cell that no detection matched


def compare_legend(iou_threshold: float = 0.5) -> list[tuple[str, str]]:
    """(colour, meaning) of each box colour that :func:`compare` draws, in words a reader checks.

    "Unmatched" is not "not a cell": a loose or shifted box on a real cell, a second box on
    one cell, or a cell the labeller skipped all count as unmatched detections.
    """
    iou = f"IoU >= {iou_threshold:g}"
    return [
        (MATCH_COLOR, f"blue: detection matched to a labelled cell ({iou})"),
        (
            FALSE_COLOR,
            f"red-orange: detection matched to no labelled cell ({iou}): debris, a second box, "
            "a loose box on a real cell, or an unlabelled cell",
        ),
        (MISSED_COLOR, f"black: labelled cell that no detection matched ({iou})"),
    ]


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


ImageLike = Image.Image | np.ndarray


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has a single bitmap size
        return ImageFont.load_default()


def to_pil(image: Any) -> Image.Image:
    """A PIL RGB copy of a PIL image, a uint8 ``H x W x 3`` array or a float ``3 x H x W`` tensor.

    Float tensors (what ``CellDataset`` returns) are taken as 0..1 and converted to 0..255.
    """
    if hasattr(image, "detach"):  # a torch tensor, without importing torch here
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[0] in (1, 3):
        if image.shape[-1] not in (3, 4) or image.dtype != np.uint8:
            image = image.transpose(1, 2, 0)
    if isinstance(image, np.ndarray) and image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(to_rgb_array(image)).copy()


_as_pil = to_pil


def draw_detections(
    image: ImageLike,
    boxes: np.ndarray | Sequence[Sequence[float]],
    scores: np.ndarray | Sequence[float] | None = None,
    labels: Sequence[str] | None = None,
    color: str | tuple[int, int, int] = BOX_COLOR,
    show_scores: bool = True,
    show_boxes: bool = True,
    width: int | None = None,
) -> Image.Image:
    """A copy of ``image`` with boxes (x1, y1, x2, y2 pixels) and optional score/label text.

    ``width`` defaults to about 1/320 of the image side (2 px at 640). With ``show_boxes``
    off, a small dot marks each object, so counts stay visible.
    """
    out = _as_pil(image)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return out
    side = max(out.size)
    width = width if width is not None else max(1, round(side / 320))
    draw = ImageDraw.Draw(out)
    font = _font(max(9, round(side / 55)))
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        if show_boxes:
            draw.rectangle((x1, y1, x2, y2), outline=color, width=width)
        else:
            cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, max(2, width + 1)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color)
        parts = []
        if labels is not None and i < len(labels):
            parts.append(str(labels[i]))
        if show_scores and scores is not None and i < len(scores):
            parts.append(f"{float(scores[i]):.2f}")
        if parts:
            text = " ".join(parts)
            ty = y1 - font.size - 2 if y1 - font.size - 2 >= 0 else y2 + 1
            left, top, right, bottom = draw.textbbox((x1, ty), text, font=font)
            draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=color)
            draw.text((x1, ty), text, fill="white", font=font)
    return out


def draw(
    image: ImageLike,
    detections: Detections,
    threshold: float | None = None,
    show_labels: bool = False,
    **kwargs: Any,
) -> Image.Image:
    """``draw_detections`` for a :class:`~utils.processing.Detections` (optionally thresholded)."""
    if threshold is not None:
        detections = detections.above(threshold)
    labels = None
    if show_labels:
        names = detections.class_names
        labels = [names[int(i)] if int(i) < len(names) else str(int(i)) for i in detections.labels]
    return draw_detections(image, detections.boxes, detections.scores, labels, **kwargs)


def densest_window(boxes: np.ndarray, width: int, height: int, side: int) -> tuple[int, int]:
    """Top-left corner of the ``side`` x ``side`` window holding the most box centres.

    Where a reader should look first in a large photo: a close-up there at full resolution.
    """
    side = min(side, width, height)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return (width - side) // 2, (height - side) // 2
    cells = 4  # a window spans 4 x 4 histogram bins
    step = max(1, side // cells)
    nx, ny = max(1, -(-width // step)), max(1, -(-height // step))
    cx = np.clip(((boxes[:, 0] + boxes[:, 2]) / 2 // step).astype(int), 0, nx - 1)
    cy = np.clip(((boxes[:, 1] + boxes[:, 3]) / 2 // step).astype(int), 0, ny - 1)
    hist = np.zeros((ny + cells, nx + cells), np.int64)
    np.add.at(hist, (cy, cx), 1)
    total = np.cumsum(np.cumsum(hist, 0), 1)
    padded = np.pad(total, ((1, 0), (1, 0)))
    sums = (
        padded[cells:, cells:]
        - padded[:-cells, cells:]
        - padded[cells:, :-cells]
        + padded[:-cells, :-cells]
    )[:ny, :nx]
    row, col = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return min(int(col) * step, width - side), min(int(row) * step, height - side)


def overview_with_closeup(
    image: ImageLike,
    boxes: np.ndarray,
    scores: np.ndarray | None = None,
    side: int = 1600,
    closeup: int = 640,
    show_scores: bool = True,
    show_boxes: bool = True,
) -> Image.Image:
    """A large photo made readable: the whole photo with its boxes, at most ``side`` px, and
    beside it a ``closeup`` px crop at full resolution where the cells are densest (marked
    on the overview). A photo that fits ``side`` is drawn whole at full resolution only.
    """
    photo = _as_pil(image)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scale = min(1.0, side / max(photo.size))
    if scale >= 0.5:  # cells stay readable in the overview itself
        small = (
            photo
            if scale == 1.0
            else photo.resize(
                (max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                Image.Resampling.BILINEAR,
            )
        )
        return draw_detections(
            small, boxes * scale, scores, show_scores=show_scores, show_boxes=show_boxes
        )
    x0, y0 = densest_window(boxes, photo.width, photo.height, closeup)
    w, h = min(closeup, photo.width), min(closeup, photo.height)
    inside = (
        (boxes[:, 2] > x0) & (boxes[:, 0] < x0 + w) & (boxes[:, 3] > y0) & (boxes[:, 1] < y0 + h)
    )
    crop = draw_detections(
        photo.crop((x0, y0, x0 + w, y0 + h)),
        boxes[inside] - np.asarray([x0, y0, x0, y0], np.float32),
        None if scores is None else np.asarray(scores)[inside],
        show_scores=show_scores,
        show_boxes=show_boxes,
    )
    overview_side = side - w
    scale = overview_side / max(photo.size)
    small = photo.resize(
        (max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
        Image.Resampling.BILINEAR,
    )
    overview = draw_detections(small, boxes * scale, None, show_boxes=show_boxes)
    mark = ImageDraw.Draw(overview)
    mark.rectangle(
        (x0 * scale, y0 * scale, (x0 + w) * scale, (y0 + h) * scale),
        outline=GT_COLOR,
        width=max(2, round(overview_side / 300)),
    )
    out = Image.new(
        "RGB", (overview.width + 8 + crop.width, max(overview.height, crop.height)), "white"
    )
    out.paste(overview, (0, 0))
    out.paste(crop, (overview.width + 8, 0))
    return out


def show_scale_effect(
    photo: ImageLike, box: Sequence[float], scales: dict[str, float], side: int = 180
) -> Figure:
    """One cell as the network receives it at each scale: the whole photo resized by that
    scale, a window of 3 cell-widths cut around the cell, shown enlarged pixel for pixel
    (nearest neighbour), so a cell that became 3 px wide looks 3 px wide."""
    import matplotlib.pyplot as plt

    image = _as_pil(photo)
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


def draw_tile_grid(photo: ImageLike, grid: Any, side: int = 800, highlight: int = 0) -> Image.Image:
    """The tiles of a ``processing.TileGrid`` drawn on the photo (at most ``side`` px): every
    tile's square as a thin line, one tile (``highlight``) thick, with the part of the photo
    it owns tinted, and the seams (where one tile's cells end and the next's begin) dashed."""
    from .processing import seams

    image = _as_pil(photo).convert("RGBA")
    shown = min(1.0, side / max(image.size))
    out = image.resize(
        (max(1, round(image.width * shown)), max(1, round(image.height * shown))),
        Image.Resampling.BILINEAR,
    )
    to_px = shown / grid.scale  # working pixels -> picture pixels
    x_seams, y_seams = seams(grid.xs, grid.size), seams(grid.ys, grid.size)
    col, row = highlight % len(grid.xs), highlight // len(grid.xs)
    x_edges, y_edges = [0.0, *x_seams, grid.work_width], [0.0, *y_seams, grid.work_height]
    tint = Image.new("RGBA", out.size, (0, 0, 0, 0))
    ImageDraw.Draw(tint).rectangle(
        (
            x_edges[col] * to_px,
            y_edges[row] * to_px,
            x_edges[col + 1] * to_px,
            y_edges[row + 1] * to_px,
        ),
        fill=(213, 94, 0, 70),
    )
    out = Image.alpha_composite(out, tint).convert("RGB")
    draw = ImageDraw.Draw(out)
    for x, y in grid.windows():
        draw.rectangle(
            (x * to_px, y * to_px, (x + grid.size) * to_px, (y + grid.size) * to_px),
            outline=MATCH_COLOR,
            width=1,
        )
    x, y = grid.windows()[highlight]
    draw.rectangle(
        (x * to_px, y * to_px, (x + grid.size) * to_px, (y + grid.size) * to_px),
        outline=FALSE_COLOR,
        width=4,
    )
    for seam in x_seams:
        for y in range(0, out.height, 12):
            draw.line((seam * to_px, y, seam * to_px, y + 6), fill="white", width=2)
    for seam in y_seams:
        for x in range(0, out.width, 12):
            draw.line((x, seam * to_px, x + 6, seam * to_px), fill="white", width=2)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of XYXY boxes, ``[len(a), len(b)]``."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_boxes(
    gt_boxes: np.ndarray,
    pred_boxes: np.ndarray,
    scores: np.ndarray | None = None,
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy one-to-one matching, best score first (as COCO does).

    Returns (indices of matched predictions, of false positives, of missed ground truths).
    """
    gt_boxes = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
    pred_boxes = np.asarray(pred_boxes, np.float32).reshape(-1, 4)
    order = np.arange(len(pred_boxes))
    if scores is not None and len(scores):
        order = np.argsort(-np.asarray(scores), kind="stable")
    iou = box_iou(pred_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), bool)
    matched, false_pos = [], []
    for p in order.tolist():
        candidates = np.where(~taken & (iou[p] >= iou_threshold))[0] if len(gt_boxes) else []
        if len(candidates):
            g = candidates[np.argmax(iou[p, candidates])]
            taken[g] = True
            matched.append(p)
        else:
            false_pos.append(p)
    missed = np.where(~taken)[0]
    return np.asarray(matched, np.int64), np.asarray(false_pos, np.int64), missed.astype(np.int64)


def compare(
    image: ImageLike,
    gt_boxes: np.ndarray,
    pred_boxes: np.ndarray,
    scores: np.ndarray | None = None,
    iou_threshold: float = 0.5,
    width: int | None = None,
) -> Image.Image:
    """Predictions against labels, coloured as :func:`compare_legend` says (blue / red-orange / black).

    The counts go into the image's ``info`` dict (``matched``, ``false_positives``, ``missed``).
    Show the legend with the picture: :func:`add_compare_legend` on the figure.
    """
    matched, false_pos, missed = match_boxes(gt_boxes, pred_boxes, scores, iou_threshold)
    pred_boxes = np.asarray(pred_boxes, np.float32).reshape(-1, 4)
    gt_boxes = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
    out = draw_detections(image, pred_boxes[matched], color=MATCH_COLOR, width=width)
    out = draw_detections(out, pred_boxes[false_pos], color=FALSE_COLOR, width=width)
    out = draw_detections(out, gt_boxes[missed], color=MISSED_COLOR, width=width)
    out.info.update(matched=len(matched), false_positives=len(false_pos), missed=len(missed))
    return out


# ---------------------------------------------------------------- matplotlib figures


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
        from .synth import REAL_PROFILE as reference
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
    return "\n".join(lines)


def plot_dataset_stats(aset: AnnotationSet, reference: dict | None = None) -> Figure:
    """Histograms of box width/height (fraction of the image), aspect ratio and cells per image.

    ``reference`` (default: ``utils.synth.REAL_PROFILE``, the measured real photos) draws
    its percentiles as dashed lines so the two can be compared at a glance.
    """
    import matplotlib.pyplot as plt

    if reference is None:
        from .synth import REAL_PROFILE as reference
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
    bumps are visible. Heatmaps are at stride 4 and are stretched to the photo's size.
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
