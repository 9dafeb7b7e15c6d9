"""Boxes on images with PIL only (fast enough for the Gradio app; the Space ships no matplotlib):
detections, the overview with a close-up, the tile grid, and detections against labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..processing import Detections, seams, to_rgb_array

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


ImageLike = Image.Image | np.ndarray


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has a single bitmap size
        return ImageFont.load_default()


def to_pil(image: Any) -> Image.Image:
    """A PIL RGB copy of a PIL image, a uint8 ``H x W x 3`` array or a float ``3 x H x W`` tensor.

    Float tensors (what ``CellDataset`` returns) are taken as 0..1 and converted to 0..255.
    A PIL image is copied by ``convert`` (same pixels as the array path, without its two copies:
    0.7 ms of the app's drawing time for a 640 px photo).
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if hasattr(image, "detach"):  # a torch tensor, without importing torch here
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[0] in (1, 3):
        if image.shape[-1] not in (3, 4) or image.dtype != np.uint8:
            image = image.transpose(1, 2, 0)
    if isinstance(image, np.ndarray) and image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(to_rgb_array(image)).copy()


_as_pil = to_pil


# Above this many labelled boxes no score text is drawn: in a photo of 60-100 cells the tags
# cover the cells and each other, and a shrunk picture makes them unreadable anyway. The app's
# table (and ``Detections.scores``) lists every score.
MAX_SCORE_LABELS = 30


def labels_note(count: int, max_labels: int = MAX_SCORE_LABELS) -> str:
    """The sentence to show beside a picture of ``count`` boxes whose score tags were left out
    (empty when :func:`draw_detections` draws them)."""
    if count <= max_labels:
        return ""
    return (
        f"Score tags are left out above {max_labels} boxes (they would cover the cells and each "
        f"other): this picture has {count}; the table lists every score."
    )


def draw_detections(
    image: ImageLike,
    boxes: np.ndarray | Sequence[Sequence[float]],
    scores: np.ndarray | Sequence[float] | None = None,
    labels: Sequence[str] | None = None,
    color: str | tuple[int, int, int] = BOX_COLOR,
    show_scores: bool = True,
    show_boxes: bool = True,
    width: int | None = None,
    max_labels: int | None = MAX_SCORE_LABELS,
) -> Image.Image:
    """A copy of ``image`` with boxes (x1, y1, x2, y2 pixels) and optional score/label tags.

    ``width`` defaults to about 1/320 of the image side (2 px at 640). With ``show_boxes``
    off, a small dot marks each object, so counts stay visible. Tags stay readable: none at
    all above ``max_labels`` boxes (None: no limit), and a tag that would overlap one already
    drawn (best score first) is left out; ``info["labels_hidden"]`` counts the tags left out.
    """
    out = _as_pil(image)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    out.info["labels_hidden"] = 0
    if len(boxes) == 0:
        return out
    side = max(out.size)
    width = width if width is not None else max(1, round(side / 320))
    draw = ImageDraw.Draw(out)
    for x1, y1, x2, y2 in boxes.tolist():
        if show_boxes:
            draw.rectangle((x1, y1, x2, y2), outline=color, width=width)
        else:
            cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, max(2, width + 1)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color)
    tags = _tags(len(boxes), scores if show_scores else None, labels)
    if not tags:
        return out
    if max_labels is not None and len(tags) > max_labels:
        out.info["labels_hidden"] = len(tags)
        return out
    font = _font(max(9, round(side / 55)))
    placed: list[tuple[float, float, float, float]] = []
    for i, text in _best_first(tags, scores):
        x1, y1, _, y2 = boxes[i].tolist()
        ty = y1 - font.size - 2 if y1 - font.size - 2 >= 0 else y2 + 1
        left, top, right, bottom = draw.textbbox((x1, ty), text, font=font)
        tag = (left - 1, top - 1, right + 1, bottom + 1)
        if any(_overlap(tag, other) for other in placed):
            out.info["labels_hidden"] += 1
            continue
        placed.append(tag)
        draw.rectangle(tag, fill=color)
        draw.text((x1, ty), text, fill="white", font=font)
    return out


def _tags(n: int, scores: Any, labels: Sequence[str] | None) -> dict[int, str]:
    """Box index -> its tag text (label and/or score), for the boxes that have one."""
    tags = {}
    for i in range(n):
        parts = []
        if labels is not None and i < len(labels):
            parts.append(str(labels[i]))
        if scores is not None and i < len(scores):
            parts.append(f"{float(scores[i]):.2f}")
        if parts:
            tags[i] = " ".join(parts)
    return tags


def _best_first(tags: dict[int, str], scores: Any) -> list[tuple[int, str]]:
    """Tags in drawing order: highest score first, so an overlap hides the weaker box's tag."""
    if scores is None:
        return list(tags.items())
    values = np.asarray(scores, np.float32)
    return sorted(
        tags.items(), key=lambda item: -float(values[item[0]]) if item[0] < len(values) else 0.0
    )


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


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


def draw_tile_grid(photo: ImageLike, grid: Any, side: int = 800, highlight: int = 0) -> Image.Image:
    """The tiles of a ``processing.TileGrid`` drawn on the photo (at most ``side`` px): every
    tile's square as a thin line, one tile (``highlight``) thick, with the part of the photo
    it owns tinted, and the seams (where one tile's cells end and the next's begin) dashed."""

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
