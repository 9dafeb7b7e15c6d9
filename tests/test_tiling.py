"""Tiled counting (issue 10): the grid, the seams, the working scale, every runtime alike.

A photo larger than the model's input is resized to the working scale and cut into
overlapping tiles; each tile keeps only the cells whose centre it owns. These tests use an
"oracle" graph that reports known cells exactly where they are (so any double count or miss
at a seam is the merge's fault), then a real exported model on three runtimes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from PIL import Image

from tests.numerics import gap_threshold, spread_scores
from utils import processing
from utils.processing import (
    InferenceConfig,
    ScaleError,
    count_tiled,
    plan_tiles,
    postprocess_one,
    tile_starts,
)

CONFIG = InferenceConfig("oracle", ("Microalgae",), 128, score_threshold=0.5, tile_overlap=32)


@pytest.mark.parametrize(
    "length,size,overlap",
    [
        (128, 128, 32),
        (129, 128, 32),
        (320, 128, 32),
        (1000, 128, 48),
        (5000, 512, 64),
        (700, 512, 64),
    ],
)
def test_tiles_cover_the_image_and_overlap_enough(length, size, overlap):
    starts = tile_starts(length, size, overlap)
    assert starts[0] == 0 and starts[-1] == max(0, length - size)
    assert list(starts) == sorted(set(starts))
    for a, b in zip(starts, starts[1:]):
        assert a + size - b >= overlap  # neighbours share at least `overlap` pixels
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + size] = True
    assert covered.all()


def test_a_photo_that_fits_is_one_letterboxed_tile():
    grid = plan_tiles(640, 480, CONFIG)  # an older model: no scale, the whole photo into one input
    assert grid.tiles == 1 and (grid.work_width, grid.work_height) == (128, 96)
    assert grid.scale == pytest.approx(128 / 640)
    tiled = plan_tiles(640, 480, dataclasses.replace(CONFIG, scale=0.5))
    assert (tiled.work_width, tiled.work_height) == (320, 240)
    assert (len(tiled.xs), len(tiled.ys)) == (3, 3)


def test_a_photo_slightly_larger_than_one_input_is_fitted_into_it():
    config = dataclasses.replace(CONFIG, scale=0.2)  # 2800 px -> 560 px: 4.4 inputs wide
    assert plan_tiles(2800, 2800, config).tiles > 1
    config = dataclasses.replace(CONFIG, scale=0.05)  # 2800 px -> 140 px, 9 % over 128 px
    grid = plan_tiles(2800, 2100, config)
    assert grid.tiles == 1 and grid.work_width == 128 and grid.scale == pytest.approx(128 / 2800)


@pytest.mark.parametrize("scale", [0.37, 1.0])
def test_working_image_of_a_pil_photo_equals_that_of_its_array(scale):
    """PIL photos are resized without an array round trip; the pixels must not change."""
    rgb = np.random.default_rng(2).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    photo = Image.fromarray(rgb).convert("L")  # a mode that needs converting too
    assert processing.tiling.photo_size(photo) == processing.tiling.photo_size(rgb) == (130, 90)
    from_pil = processing.tiling.working_image(photo, scale)
    np.testing.assert_array_equal(from_pil, processing.tiling.working_image(to_rgb(photo), scale))


def to_rgb(photo: Image.Image) -> np.ndarray:
    return np.asarray(photo.convert("RGB"))


def test_one_tile_equals_the_letterbox_postprocessing():
    """With one tile the tiled path must be exactly the old path: same boxes, same scores."""
    rng = np.random.default_rng(0)
    boxes = rng.uniform(-10, 140, (1, 500, 4)).astype(np.float32)
    boxes[..., 2:] = boxes[..., :2] + rng.uniform(2, 30, (1, 500, 2)).astype(np.float32)
    scores = rng.uniform(0, 1, (1, 500, 2)).astype(np.float32)
    config = InferenceConfig("x", ("a", "b"), 128, nms_iou=0.5)
    grid = plan_tiles(300, 200, config)
    merged = processing.merge_tiles(boxes, scores, grid, config, 0.4)
    legacy = postprocess_one(boxes[0], scores[0], config, grid.scale, (300, 200), 0.4)
    np.testing.assert_array_equal(merged.boxes, legacy.boxes)
    np.testing.assert_array_equal(merged.scores, legacy.scores)
    np.testing.assert_array_equal(merged.labels, legacy.labels)


@pytest.mark.parametrize("size", [(100, 90), (500, 200), (500, 330)])  # 1 tile; 3, padded; 6
def test_uint8_tiles_are_the_bytes_of_the_normalised_tiles(size):
    """A graph that standardises its pixels gets the same tiles, as bytes, in the same order."""
    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    config = dataclasses.replace(CONFIG, scale=0.5)
    grid = plan_tiles(*size, config)
    floats = list(processing.tiling.photo_tiles(photo, grid, config))
    pixels = list(processing.tiling.photo_tiles(photo, grid, config, processing.UINT8))
    assert len(pixels) == len(floats) == grid.tiles
    for as_bytes, as_floats in zip(pixels, floats):
        assert as_bytes.dtype == np.uint8 and as_bytes.shape == (128, 128, 3)
        np.testing.assert_array_equal(processing.normalize(as_bytes, config), as_floats)


def _cells(n: int, width: int, height: int, seed: int, scale: float = 0.5) -> np.ndarray:
    """``n`` boxes (photo pixels) all over the photo, seams included, 10-30 px at the working
    ``scale`` (the working scale is there to give cells that size), no two overlapping by
    more than IoU 0.2 (so the final NMS never merges two real cells)."""
    rng = np.random.default_rng(seed)
    cells: list[np.ndarray] = []
    while len(cells) < n:
        centre = rng.uniform([10, 10], [width - 10, height - 10])
        half = rng.uniform(5, 15, 2) / scale
        box = np.concatenate([centre - half, centre + half]).astype(np.float32)
        if not cells or _iou(box, np.asarray(cells)).max() <= 0.2:
            cells.append(box)
    return np.asarray(cells, np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return w * h / (area(box) + area(boxes) - w * h)


def oracle(cells: np.ndarray, config: InferenceConfig, jitter: float = 0.0, seed: int = 0):
    """A fake graph that sees every cell touching its tile, at its true place (+/- jitter px).

    It returns full boxes, even past the tile's edge, as the heatmap counter does for a cell
    whose centre it sees; cells whose centre lies outside the tile are seen only partly and
    reported where their visible part is, the way a real model mis-sees a cut cell.
    """
    rng = np.random.default_rng(seed)
    state = {"windows": None, "done": 0}

    def run(batch: np.ndarray):
        n, size = len(batch), config.image_size
        windows = state["windows"][state["done"] : state["done"] + n]
        state["done"] += n
        boxes = np.zeros((n, 400, 4), np.float32)
        scores = np.zeros((n, 400, 1), np.float32)
        for t, (x0, y0) in enumerate(windows):
            work = cells * state["scale"] - np.asarray([x0, y0, x0, y0], np.float32)
            cx, cy = (work[:, 0] + work[:, 2]) / 2, (work[:, 1] + work[:, 3]) / 2
            touching = (
                (work[:, 2] > 0) & (work[:, 0] < size) & (work[:, 3] > 0) & (work[:, 1] < size)
            )
            inside = (cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)
            seen = np.where(inside[:, None], work, np.clip(work, 0, size))[touching]
            seen = seen + rng.uniform(-jitter, jitter, seen.shape).astype(np.float32)
            boxes[t, : len(seen)] = seen
            scores[t, : len(seen), 0] = 0.9
        return boxes, scores

    return run, state


@pytest.mark.parametrize("jitter", [0.0, 1.5])
@pytest.mark.parametrize(
    "size,scale", [((1400, 1000), 0.5), ((2800, 2800), 0.25), ((900, 300), 1.0)]
)
def test_cells_on_seams_are_counted_once(size, scale, jitter):
    width, height = size
    cells = _cells(150, width, height, seed=width, scale=scale)
    # The overlap covers the largest cell (60 px at scale 1), as tile_overlap() makes sure.
    config = dataclasses.replace(CONFIG, scale=scale, tile_overlap=64, nms_iou=0.5)
    grid = plan_tiles(width, height, config)
    assert grid.tiles > 1
    run, state = oracle(cells, config, jitter)
    state.update(windows=grid.windows(), scale=grid.scale)
    photo = np.zeros((height, width, 3), np.uint8)
    found = count_tiled(run, [photo], config)[0]
    assert found.tiles == grid.tiles and state["done"] == grid.tiles
    assert found.count == len(cells)
    clipped = np.clip(cells, 0, [width, height, width, height])
    for k in range(4):  # every cell found where it is (up to the jitter, in photo pixels)
        error = np.abs(np.sort(found.boxes[:, k]) - np.sort(clipped[:, k])).max()
        assert error <= jitter / scale + 1e-3


def test_without_ownership_seams_would_double_count():
    """The test above can fail: keeping every tile's detections counts seam cells twice."""
    width, height = 1400, 1000
    cells = _cells(150, width, height, seed=width)
    config = dataclasses.replace(CONFIG, scale=0.5, nms_iou=0.99)
    grid = plan_tiles(width, height, config)
    run, state = oracle(cells, config, jitter=1.5)
    state.update(windows=grid.windows(), scale=grid.scale)
    boxes, scores = processing.run_tiles(
        run, processing.tiles(np.zeros((500, 700, 3), np.uint8), grid, config)
    )
    seen = int((scores >= 0.5).sum())
    assert seen > len(cells) + 10  # many cells are seen by two or four tiles


def test_too_small_and_too_large_photos_are_refused_with_a_reason():
    config = dataclasses.replace(CONFIG, scale=0.1)
    with pytest.raises(ScaleError, match="thumbnail"):
        plan_tiles(200, 150, config)
    with pytest.raises(ScaleError, match=r"more than 256"):
        plan_tiles(60000, 2000, dataclasses.replace(CONFIG, scale=1.0))
    with pytest.raises(ScaleError, match="positive"):
        plan_tiles(640, 640, CONFIG, scale=float("nan"))


def test_cells_far_larger_than_in_training_get_a_note():
    config = dataclasses.replace(CONFIG, scale=1.0, cell_size=22.5)
    big = processing.Detections(
        boxes=np.tile(np.asarray([[0, 0, 90, 90]], np.float32), (8, 1)),
        scores=np.ones(8, np.float32),
        labels=np.zeros(8, np.int64),
        scale=1.0,
    )
    note = processing.scale_note(big, config)
    assert "4.0x larger" in note and "--scale 0.25" in note
    assert processing.suggested_scale(big, config) == pytest.approx(0.25)
    fine = dataclasses.replace(big, boxes=big.boxes / 4)
    assert processing.scale_note(fine, config) == ""


def test_working_scale_brings_the_median_cell_to_the_target(tmp_path):
    from utils import synth
    from utils.annotations import load_annotations
    from utils.dataset import TARGET_CELL_PX, CellDataset, cell_sides, tile_overlap, working_scale

    folder = tmp_path / "big"
    synth.write_dataset(folder, [0, 1], size=1280)
    aset = load_annotations(folder)
    scale = working_scale(aset)
    assert np.median(cell_sides(aset)) * scale == pytest.approx(TARGET_CELL_PX)
    overlap = tile_overlap(aset, scale, 512)
    longest = max(
        float(np.max(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))
        for b in (i.boxes for i in aset.images)
    )
    assert 32 <= overlap <= 256 and overlap % 8 == 0 and overlap >= 0.9 * longest * scale
    data = CellDataset(aset, 512, train=True, crop_size=256, repeats=3, scale=scale)
    image, target = data[0]
    assert tuple(image.shape) == (3, 256, 256) and len(data) == 6
    full = data.letterboxed(0)[0]
    # The photo as inference will count it (here fitted into one 512 px input: see FIT_SLACK).
    grid = plan_tiles(1280, 1280, InferenceConfig("x", ("Microalgae",), 512, scale=scale))
    assert tuple(full.shape[-2:]) == (grid.work_height, grid.work_width)
    boxes = target["boxes"]
    assert len(boxes) > 0 and float(boxes.max()) <= 256


@pytest.fixture(scope="module")
def tiled_model(tmp_path_factory):
    """An untrained heatmap counter at 128 px with a working scale that makes 640 px photos 3x3 tiles."""
    import torch

    from utils.export import export_onnx
    from utils.model import build_model

    torch.manual_seed(0)
    detector = spread_scores(build_model(pretrained=False, image_size=128).eval())
    config = InferenceConfig(
        "untrained",
        ("Microalgae",),
        128,
        score_threshold=0.5,
        min_score=0.0,
        scale=0.5,
        tile_overlap=32,
    )
    path = export_onnx(detector, config, path=tmp_path_factory.mktemp("tiled") / "model.onnx")
    return detector, config, path


def test_every_runtime_counts_the_same_tiles(tiled_model, tmp_path):
    """Eager PyTorch, ONNX Runtime and OpenVINO: identical counts on a tiled photo."""
    from utils.config import test_dir
    from utils.edge import to_openvino
    from utils.images import load_image
    from utils.loading import load_predictor
    from utils.runtime import OpenVinoPredictor, TorchPredictor

    detector, config, path = tiled_model
    photo = load_image(sorted(test_dir().glob("*.jpg"))[0]).image
    onnx = load_predictor(path)
    # ~80 cells, at a threshold in a gap of the scores (tests/numerics.py): a score must move
    # by more than PARITY_TOLERANCE between runtimes to change a count.
    threshold = gap_threshold(onnx.predict(photo, 0.0).scores, keep=80)
    # OpenVINO twice: on the ONNX file (normalised floats) and on an IR of the course's, which
    # takes the tiles as uint8 pixels and standardises them itself (edge.openvino_ir).
    ir = OpenVinoPredictor(to_openvino(path, tmp_path / "model.xml"))
    assert ir.pixels == "uint8"
    counts = {}
    for predictor in (TorchPredictor(detector, config), onnx, OpenVinoPredictor(path), ir):
        found = predictor.predict(photo, threshold)
        counts[f"{predictor.runtime} {predictor.pixels}"] = found.count
        assert found.tiles == 9
    assert len(set(counts.values())) == 1 and counts["onnxruntime normalized"] > 10, counts


def test_exif_rotated_photo_is_counted_upright(tiled_model, tmp_path):
    from utils.config import test_dir
    from utils.images import load_image
    from utils.loading import load_predictor

    _, _, path = tiled_model
    predictor = load_predictor(path)
    upright = Image.open(sorted(test_dir().glob("*.jpg"))[0]).convert("RGB").crop((0, 0, 640, 400))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # the sensor's orientation
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    loaded = load_image(tmp_path / "phone.jpg").image
    assert loaded.size == upright.size
    grid = plan_tiles(*loaded.size, predictor.config)
    assert predictor.predict(loaded, 0.0).tiles == grid.tiles == len(grid.xs) * len(grid.ys)
    assert math.isclose(grid.scale, 0.5)


def test_the_app_counts_a_large_photo_in_tiles_and_refuses_a_thumbnail(tiled_model, tmp_path):
    """A photo far larger than the input: counted in tiles, time and tiles in the notes, a readable close-up;
    a thumbnail: one sentence, and the next photo is counted as usual."""
    from utils.app import count_cells
    from utils.config import test_dir
    from utils.loading import load_predictor

    _, _, path = tiled_model
    predictor = load_predictor(path)
    photo = Image.open(sorted(test_dir().glob("*.jpg"))[0]).convert("RGB")
    big = photo.resize((2400, 1800), Image.Resampling.BILINEAR)
    big.save(tmp_path / "phone.jpg", quality=90)
    result = count_cells(predictor, str(tmp_path / "phone.jpg"), 0.2, display_side=1000)
    assert result.error is None and result.tiles == len(
        plan_tiles(2400, 1800, predictor.config).windows()
    )
    assert f"{result.tiles} tiles at scale 0.5" in result.notes_markdown()
    assert result.count == predictor.predict(big, 0.2).count
    # Overview (1000 - 640 px wide) + 8 px gap + the 640 px full-resolution close-up.
    assert result.image.size == (1000 + 8, 640)
    assert result.to_json(with_image=False)["tiles"] == result.tiles

    photo.resize((40, 40)).save(tmp_path / "thumb.png")
    refused = count_cells(predictor, str(tmp_path / "thumb.png"), 0.0)
    assert refused.count is None and "thumbnail" in refused.error
    again = count_cells(predictor, str(sorted(test_dir().glob("*.jpg"))[1]), 0.0)
    assert again.error is None and again.count is not None


def test_densest_window_finds_the_crowd():
    from utils.viz import densest_window

    rng = np.random.default_rng(0)
    crowd = rng.uniform([3000, 200], [3500, 700], (60, 2))
    sparse = rng.uniform([0, 0], [4000, 3000], (20, 2))
    centres = np.concatenate([crowd, sparse])
    boxes = np.concatenate([centres - 10, centres + 10], 1)
    x0, y0 = densest_window(boxes, 4000, 3000, 640)
    inside = (
        (centres[:, 0] >= x0)
        & (centres[:, 0] < x0 + 640)
        & (centres[:, 1] >= y0)
        & (centres[:, 1] < y0 + 640)
    )
    assert inside.sum() >= 55 and 0 <= x0 <= 4000 - 640 and 0 <= y0 <= 3000 - 640


def _fragmenting_run(tiles: int):
    """A fake graph that finds ten cells of 22 px near the centre of every input it gets, as a
    model finds fragments of cells far larger than it knows: unsure of the ``tiles`` tiles
    (score 0.5), sure of the whole photo that comes after them (0.9)."""
    seen = [0]

    def run(batch: np.ndarray):
        n, size = len(batch), batch.shape[-1]
        seen[0] += n
        boxes = np.zeros((n, 64, 4), np.float32)
        scores = np.zeros((n, 64, 1), np.float32)
        for k in range(10):
            x, y = size / 2 - 40 + 8 * k, size / 2 - 20 + 4 * k
            boxes[:, k] = (x - 11, y - 11, x + 11, y + 11)
            scores[:, k, 0] = 0.5 if seen[0] <= tiles else 0.9
        return boxes, scores

    return run


def test_a_photo_at_higher_magnification_gets_a_note_and_a_better_scale():
    config = dataclasses.replace(CONFIG, scale=0.5, tile_overlap=32, cell_size=22.5, nms_iou=0.3)
    photo = np.zeros((1024, 1024, 3), np.uint8)  # 512 px at the working scale: 25 tiles
    found = count_tiled(_fragmenting_run(25), [photo], config)[0]
    assert found.tiles == 25 and found.count > 20
    assert found.better_scale == pytest.approx(128 / 1024)
    assert "higher magnification" in found.note and "--scale 0.125" in found.note
    # The same counts with the whole photo no surer than its tiles: no note (a wide field).
    same = count_tiled(_fragmenting_run(0), [photo], config)[0]
    assert same.count == found.count and same.note == "" and same.better_scale is None


def test_a_wider_field_at_the_right_magnification_gets_no_note():
    """The oracle sees every cell; counted whole the cells shrink below the training size."""
    width = height = 1400
    cells = _cells(150, width, height, seed=7, scale=0.5)
    config = dataclasses.replace(CONFIG, scale=0.5, tile_overlap=64, cell_size=20.0, nms_iou=0.5)
    grid = plan_tiles(width, height, config)
    run, state = oracle(cells, config)
    state.update(windows=[*grid.windows(), (0, 0)], scale=grid.scale)

    def both(batch):  # the tiles, then the one whole-photo input at its own scale
        if state["done"] >= grid.tiles:
            state["scale"] = 128 / width
        return run(batch)

    found = count_tiled(both, [np.zeros((height, width, 3), np.uint8)], config)[0]
    assert found.count == len(cells) and found.note == "" and found.better_scale is None
