"""Photos of any size: the working scale, tiles, seams, the merge, and scale notes.

**Working scale.** A model trained with tiling stores ``scale`` (working pixels per photo
pixel), chosen from its training boxes so that the median cell has the size its strides want
(``dataset.working_scale``). A photo is resized by that scale, whatever its size, so a cell in
a 12 MP photo looks as it did in training. Models without ``scale`` fit the whole photo into
one input (a letterbox), as before; a photo whose working image fits one input gets exactly
that letterbox.

**Tiles and seams.** A working image larger than ``S`` is cut into ``S x S`` tiles spread
evenly so that neighbours overlap by at least ``tile_overlap`` (more than the largest cell).
Each tile *owns* the part of the image closer to its centre than to its neighbours' (the
seam is the middle of the overlap) and keeps only detections whose box centre it owns (plus
a band of a quarter of the overlap, so that a cell right on a seam, whose two estimates may
fall on either side of it, is never dropped by both), so a cell on a seam, seen whole by both
tiles, is kept once or twice and a last NMS over the whole image merges the pair. We write
this ourselves instead of using SAHI (the reference for sliced inference) because it must
run identically without torch in the Space and in JavaScript in the browser, and because
SAHI merges tiles by box overlap (NMS/NMM), where a centre-point counter has an exact rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .bands import resize_bilinear
from .boxes import candidates, suppress
from .config import Detections, InferenceConfig
from .pixels import (
    NORMALIZED,
    UINT8,
    as_rgb_image,
    check_pixels,
    input_batch,
    input_into,
    normalize,
    to_rgb_array,
    working_size,
)
from .timing import part

FIT_SLACK = 1.15  # a working image at most this much larger than one input is fitted into it
MAX_TILES = 256  # about 40 MP of working image: a photo needing more is refused, not queued
MIN_WORKING_SIDE = 32  # below this the cells are a few pixels: nothing sensible to count
SCALE_WARNING = 2.0  # cells this many times larger or smaller than in training get a note


class ScaleError(ValueError):
    """A photo that cannot be counted at the model's working scale; the message says what to do."""


@dataclass(frozen=True)
class TileGrid:
    """Where the ``S x S`` tiles of one photo lie, in working pixels (see the module docstring)."""

    width: int  # the photo
    height: int
    scale: float  # working pixels per photo pixel
    work_width: int
    work_height: int
    size: int  # S, the graph's input side
    xs: tuple[int, ...]  # left edges of the tile columns
    ys: tuple[int, ...]  # top edges of the tile rows

    @property
    def tiles(self) -> int:
        return len(self.xs) * len(self.ys)

    def windows(self) -> list[tuple[int, int]]:
        """Top-left corners, row by row: the order tiles go through the graph."""
        return [(x, y) for y in self.ys for x in self.xs]


def tile_starts(length: int, size: int, overlap: int) -> tuple[int, ...]:
    """Left edges of tiles of ``size`` covering ``length``, spread evenly, overlapping >= ``overlap``.

    Rounded half up (``floor(v + 0.5)``), which JavaScript's ``Math.round`` matches exactly.
    """
    if length <= size:
        return (0,)
    overlap = min(max(0, int(overlap)), size // 2)
    n = math.ceil((length - overlap) / (size - overlap))
    return tuple(int(math.floor(i * (length - size) / (n - 1) + 0.5)) for i in range(n))


def seams(starts: Sequence[int], size: int) -> list[float]:
    """Where ownership passes from one tile to the next: the middle of each overlap."""
    return [(starts[i + 1] + starts[i] + size) / 2 for i in range(len(starts) - 1)]


def plan_tiles(
    width: int, height: int, config: InferenceConfig, scale: float | None = None
) -> TileGrid:
    """The tile grid of a ``width x height`` photo at ``scale`` (default: the model's own).

    Raises :class:`ScaleError` for a photo too small to count or so large it would need
    more than ``MAX_TILES`` inputs.
    """
    size = config.image_size
    if scale is None:
        scale = config.scale
    if scale is None:  # an older model: the whole photo into one input
        scale = size / max(width, height)
    if not (math.isfinite(scale) and scale > 0):
        raise ScaleError(f"scale must be a positive number, got {scale}")
    if size < max(width, height) * scale <= size * FIT_SLACK:
        # A few percent smaller cells cost far less than four overlapping tiles.
        scale = size / max(width, height)
    work_w, work_h = working_size(width, height, scale)
    if min(work_w, work_h) < MIN_WORKING_SIDE and max(work_w, work_h) < size:
        raise ScaleError(
            f"the photo is {width} x {height} px: at the model's scale ({scale:.3g}) that is "
            f"{work_w} x {work_h} px, too small for its cells to be seen; "
            "send the original photo, not a thumbnail"
        )
    xs = tile_starts(work_w, size, config.tile_overlap)
    ys = tile_starts(work_h, size, config.tile_overlap)
    if len(xs) * len(ys) > MAX_TILES:
        raise ScaleError(
            f"the photo is {width} x {height} px: at the model's scale ({scale:.3g}) it needs "
            f"{len(xs) * len(ys)} tiles, more than {MAX_TILES}; crop it to the field of view "
            "or downscale it to the training photos' magnification"
        )
    return TileGrid(width, height, float(scale), work_w, work_h, size, xs, ys)


def working_image(image: Image.Image | np.ndarray, scale: float) -> np.ndarray:
    """The photo resized to the working scale (Pillow bilinear, as ``letterbox``)."""
    width, height = photo_size(image)
    size = working_size(width, height, scale)
    if size == (width, height):
        return to_rgb_array(image)
    return resize_bilinear(as_rgb_image(image), size)


def photo_size(image: Image.Image | np.ndarray) -> tuple[int, int]:
    """(width, height) of a photo, without copying a PIL image's pixels to find out."""
    if isinstance(image, Image.Image):
        return image.size
    rgb = to_rgb_array(image)  # checks the array's shape and dtype
    return rgb.shape[1], rgb.shape[0]


def tiles(
    work: np.ndarray, grid: TileGrid, config: InferenceConfig, pixels: str = NORMALIZED
) -> Iterator[np.ndarray]:
    """Graph inputs (``pixels``: normalised ``[3, S, S]`` or uint8 ``[S, S, 3]``) in
    ``grid.windows()`` order, one at a time.

    A working image smaller than ``S`` along a side is padded black on the right/bottom, the
    same padding as ``letterbox``. Made lazily, so a 12 MP photo never holds all its tiles
    in memory at once.
    """
    size = grid.size
    check_pixels(pixels)
    for x, y in grid.windows():
        with part("preprocess"):  # timed here, not across the yield (the consumer's time)
            crop = work[y : y + size, x : x + size]
            if crop.shape[0] != size or crop.shape[1] != size:
                padded = np.zeros((size, size, 3), np.uint8)
                padded[: crop.shape[0], : crop.shape[1]] = crop
                crop = padded
            tile = crop if pixels == UINT8 else normalize(crop, config)
        yield tile


def photo_tiles(
    image: Image.Image | np.ndarray,
    grid: TileGrid,
    config: InferenceConfig,
    pixels: str = NORMALIZED,
) -> Iterator[np.ndarray]:
    """A photo's graph inputs in the ``pixels`` form, made when the graph asks for them.

    A photo that fits one input is resized, padded (and normalised) in one pass per band of
    rows (``pixels.input_into``), the same numbers as :func:`tiles` of its working image.
    """
    if grid.tiles == 1:
        with part("preprocess"):
            tile = input_batch(1, grid.size, pixels)[0]
            input_into(image, (grid.work_width, grid.work_height), config, tile)
        yield tile
        return
    with part("preprocess"):
        work = working_image(image, grid.scale)
    yield from tiles(work, grid, config, pixels)


def run_tiles(run, stream: Iterable[np.ndarray], batch_size: int = 4):
    """Raw graph outputs (boxes, scores) of a stream of tiles, ``batch_size`` tiles per call."""
    boxes, scores, batch = [], [], []
    for tile in stream:
        batch.append(tile)
        if len(batch) == batch_size:
            _run_batch(run, batch, boxes, scores)
            batch = []
    if batch:
        _run_batch(run, batch, boxes, scores)
    if len(boxes) == 1:  # one batch (a photo of up to 4 tiles): no copy
        return boxes[0], scores[0]
    with part("postprocess"):
        return np.concatenate(boxes), np.concatenate(scores)


def _run_batch(run, batch: list[np.ndarray], boxes: list, scores: list) -> None:
    """One graph call on stacked tiles; the stack is pre-processing, the call the graph."""
    with part("preprocess"):  # one tile (a photo that fits one input): a view, no copy
        stacked = batch[0][None] if len(batch) == 1 else np.stack(batch)
    with part("graph"):
        b, s = run(stacked)
    boxes.append(b)
    scores.append(s)


def merge_tiles(
    boxes: np.ndarray,
    scores: np.ndarray,
    grid: TileGrid,
    config: InferenceConfig,
    threshold: float | None = None,
) -> Detections:
    """Raw outputs of all tiles of one photo (``T x A x 4``, ``T x A x C``) -> Detections.

    Per tile: threshold, keep the detections whose box centre the tile owns, clip to the
    tile, move to working pixels. Then one class-aware NMS over the photo, back to photo
    pixels. With one tile this is exactly the letterbox post-processing.
    """
    threshold = config.score_threshold if threshold is None else float(threshold)
    floor = max(threshold, config.min_score)
    size = float(grid.size)
    # Each tile keeps a band of ``margin`` past its seams: two tiles' estimates of one cell's
    # centre differ by a pixel or two, and without the band a cell right on a seam could be
    # claimed by neither. What both keep, the final NMS merges.
    margin = config.tile_overlap / 4
    x_seams, y_seams = seams(grid.xs, grid.size), seams(grid.ys, grid.size)
    x_bounds = [-math.inf, *x_seams, math.inf]
    y_bounds = [-math.inf, *y_seams, math.inf]
    all_boxes, all_scores, all_classes = [], [], []
    t = 0
    for row, y0 in enumerate(grid.ys):  # the order of grid.windows(): row by row
        for col, x0 in enumerate(grid.xs):
            raw, kept, class_idx = candidates(boxes[t], scores[t], floor)
            t += 1
            if grid.tiles > 1:
                cx = (raw[:, 0] + raw[:, 2]) / np.float32(2) + np.float32(x0)
                cy = (raw[:, 1] + raw[:, 3]) / np.float32(2) + np.float32(y0)
                own = (cx >= x_bounds[col] - margin) & (cx < x_bounds[col + 1] + margin)
                own &= (cy >= y_bounds[row] - margin) & (cy < y_bounds[row + 1] + margin)
                raw, kept, class_idx = raw[own], kept[own], class_idx[own]
            # Clip to the tile before NMS, as torchvision does, so IoUs match across runtimes.
            clipped = np.clip(raw, 0, size)
            clipped += np.asarray([x0, y0, x0, y0], np.float32)
            all_boxes.append(clipped)
            all_scores.append(kept)
            all_classes.append(class_idx)
    span = float(max(grid.work_width, grid.work_height, grid.size)) * 4.0
    detections = suppress(
        np.concatenate(all_boxes),
        np.concatenate(all_scores),
        np.concatenate(all_classes),
        config,
        grid.scale,
        (grid.width, grid.height),
        span,
        config.max_detections * grid.tiles,
    )
    detections.tiles = grid.tiles
    detections.better_scale = suggested_scale(detections, config)
    detections.note = scale_note(detections, config)
    return detections


def cell_ratio(detections: Detections, config: InferenceConfig) -> float | None:
    """Median detected cell side, in working pixels, over the training one (None: unknown)."""
    if not config.cell_size or detections.count < 5:
        return None
    sides = np.sqrt(
        np.clip(detections.boxes[:, 2] - detections.boxes[:, 0], 0, None)
        * np.clip(detections.boxes[:, 3] - detections.boxes[:, 1], 0, None)
    )
    return max(float(np.median(sides)) * detections.scale, 1e-6) / config.cell_size


def suggested_scale(detections: Detections, config: InferenceConfig) -> float | None:
    """The scale that would bring these cells to the training size, when they are far from it
    (more than ``SCALE_WARNING`` times larger or smaller); None when the scale is fine."""
    ratio = cell_ratio(detections, config)
    if ratio is None or 1 / SCALE_WARNING <= ratio <= SCALE_WARNING:
        return None
    return detections.scale / ratio


def scale_note(detections: Detections, config: InferenceConfig) -> str:
    """One sentence when the counted cells are far larger or smaller than the training cells.

    The model only knows cells of about ``cell_size`` working pixels: a photo taken at another
    magnification is still counted, but the count deserves a warning and a better scale.
    """
    better = suggested_scale(detections, config)
    if better is None:
        return ""
    ratio = detections.scale / better  # how much larger the cells look than in training
    size = "larger" if ratio > 1 else "smaller"
    factor = ratio if ratio > 1 else 1 / ratio
    return (
        f"The cells look {factor:.1f}x {size} than in the training photos, so this count is "
        f"unreliable: count again with scale={better:.3g} (CLI: --scale {better:.3g}), "
        "or train on photos like this one."
    )


def count_tiled(
    run,
    images: Sequence[Image.Image | np.ndarray],
    config: InferenceConfig,
    threshold: float | None = None,
    scale: float | None = None,
    batch_size: int = 4,
    pixels: str = NORMALIZED,
) -> list[Detections]:
    """Detections on photos of any size; ``run`` maps a batch of tiles (in the ``pixels``
    form its graph takes) to raw outputs.

    Tiles of all the photos go through the graph together, ``batch_size`` at a time.
    """
    check_pixels(pixels)
    with part("preprocess"):  # every photo's grid first: a photo it refuses stops the batch early
        grids = [plan_tiles(*photo_size(image), config, scale) for image in images]
    stream = (
        tile
        for image, grid in zip(images, grids)
        for tile in photo_tiles(image, grid, config, pixels)
    )
    boxes, scores = run_tiles(run, stream, batch_size)
    results, first = [], 0
    with part("postprocess"):
        for grid in grids:
            last = first + grid.tiles
            merged = merge_tiles(boxes[first:last], scores[first:last], grid, config, threshold)
            results.append(merged)
            first = last
    for image, found in zip(images, results):
        if found.tiles > 1 and not found.note and config.cell_size:
            check_magnification(run, image, found, config, threshold, pixels)
    return results


def check_magnification(
    run,
    image: Image.Image | np.ndarray,
    found: Detections,
    config: InferenceConfig,
    threshold,
    pixels: str = NORMALIZED,
) -> None:
    """Notes a tiled photo that looks taken at a higher magnification than the training photos.

    Cells far larger than the model knows are often split into several detections of about
    the right size, which :func:`scale_note` cannot see. So a photo counted in tiles is also
    counted whole, in one input (a small extra cost). Three signs must agree, each measured
    on photos at 4.4x and 6.6x the training magnification against wider fields (a 1,280 px
    mosaic and a 12 MP one) at the right magnification:

    - counted whole, the cells have the training size (median 0.93-0.97 of it, against 0.67
      for a wide field, whose tiny cells the model can no longer see one by one);
    - the whole count scores higher on average than the tiled one, by more than 0.05
      (0.55-0.57 against 0.40-0.41; a wide field: 0.40-0.46 against 0.57-0.58);
    - the tiled count is more than twice the whole one (split cells).

    Then the whole-photo scale is probably the right one. A heuristic: it can miss, and it
    only ever adds a note, never changes the count.
    """
    width, height = photo_size(image)
    grid = plan_tiles(width, height, config, config.image_size / max(width, height))
    if grid.tiles != 1:
        return
    with part("preprocess"):
        work = working_image(image, grid.scale)
    boxes, scores = run_tiles(run, tiles(work, grid, config, pixels))
    with part("postprocess"):
        whole = merge_tiles(boxes, scores, grid, config, threshold)
    ratio = cell_ratio(whole, config)
    sizes_fit = whole.count >= 5 and ratio is not None and 1 / 1.25 <= ratio <= 1.25
    surer = whole.count and found.count and whole.scores.mean() > found.scores.mean() + 0.05
    if not (sizes_fit and surer) or found.count <= 2 * whole.count:
        return
    found.better_scale = grid.scale
    found.note = (
        f"Counted whole, this photo shows {whole.count} cells of the training size against "
        f"{found.count} in {found.tiles} tiles: it looks taken at a higher magnification than the "
        f"training photos, so this count is unreliable: count again with scale={grid.scale:.3g} "
        f"(CLI: --scale {grid.scale:.3g}), or train on photos like this one."
    )
