"""Pre-processing in row bands (``processing.bands``): Pillow's bytes, on every core, after a fork."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from PIL import Image

from utils.processing import InferenceConfig, letterbox, normalize, preprocess
from utils.processing.bands import exact_in_bands, resize_bilinear, row_bands
from utils.processing.tiling import photo_tiles, plan_tiles, tiles, working_image

CONFIG = InferenceConfig("centernet", ("cell",), 512, score_threshold=0.5, nms_iou=0.5)

# (photo width, height, output width, height): camera sizes whose vertical scale has a
# power-of-two denominator (banded) and sizes whose scale has not (one call), up and down.
SIZES = [
    (640, 640, 512, 512),
    (640, 480, 512, 384),
    (1920, 1080, 512, 288),
    (4032, 3024, 512, 384),
    (1000, 777, 512, 398),
    (513, 512, 512, 511),
    (300, 200, 512, 341),
]


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("bands", ["2", "3", "4"])
@pytest.mark.parametrize("src_w,src_h,out_w,out_h", SIZES)
def test_banded_resize_gives_pillows_bytes(
    monkeypatch: pytest.MonkeyPatch, bands: str, src_w: int, src_h: int, out_w: int, out_h: int
) -> None:
    """Exact equality: ``web/counter.js`` ports the whole-image resize, byte for byte."""
    monkeypatch.setenv("COURSE_PREPROCESS_BANDS", bands)
    image = noise(src_w, src_h)
    whole = np.asarray(image.resize((out_w, out_h), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(resize_bilinear(image, (out_w, out_h)), whole)


def test_bands_are_used_only_where_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_PREPROCESS_BANDS", "2")
    assert exact_in_bands(640, 512) and exact_in_bands(1080, 288) and exact_in_bands(3024, 384)
    assert not exact_in_bands(512, 511) and not exact_in_bands(200, 341)
    assert row_bands(512, 512) == [(0, 256), (256, 512)]
    assert row_bands(100, 100) == [(0, 100)]  # too small to be worth a thread hand-off
    monkeypatch.setenv("COURSE_PREPROCESS_BANDS", "1")
    assert row_bands(512, 512) == [(0, 512)]


def test_preprocess_is_the_same_on_one_core_and_on_several(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Letterbox + normalisation and the tiled path's working image, banded or not."""
    photos = [noise(640, 480, 1), noise(1920, 1080, 2), noise(500, 700, 3)]
    monkeypatch.setenv("COURSE_PREPROCESS_BANDS", "1")
    one = preprocess(photos, CONFIG)
    work_one = [working_image(p, 0.5) for p in photos]
    monkeypatch.setenv("COURSE_PREPROCESS_BANDS", "4")
    several = preprocess(photos, CONFIG)
    np.testing.assert_array_equal(several[0], one[0])
    assert several[1:] == one[1:]
    for photo, expected in zip(photos, work_one):
        np.testing.assert_array_equal(working_image(photo, 0.5), expected)


def test_a_bad_band_setting_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_PREPROCESS_BANDS", "two")
    with pytest.raises(ValueError, match="COURSE_PREPROCESS_BANDS='two'.*set it to 1"):
        row_bands(512, 512)


def _resize_in_child(queue) -> None:
    queue.put(resize_bilinear(noise(640, 480), (512, 384)).sum())


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(),
    reason="this platform starts processes without fork: no parent pool to inherit",
)
def test_a_forked_child_gets_its_own_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Data-loader workers fork after the parent resized: the child must not wait forever on
    the parent's pool threads, which do not exist in it."""
    monkeypatch.setenv("COURSE_PREPROCESS_BANDS", "2")
    expected = resize_bilinear(noise(640, 480), (512, 384)).sum()  # the parent's pool exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_resize_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the forked child hung or failed resizing in bands"
    assert queue.get(timeout=5) == expected


@pytest.mark.parametrize("bands", ["1", "2"])
def test_preprocess_is_letterbox_then_normalize(
    monkeypatch: pytest.MonkeyPatch, bands: str
) -> None:
    """The fused path (resize and normalise each band in one go, the padding written as the
    normalised black) gives the two documented steps' numbers exactly."""
    monkeypatch.setenv("COURSE_PREPROCESS_BANDS", bands)
    photos = [noise(w, h, k) for k, (w, h, *_) in enumerate(SIZES)] + [noise(512, 300, 9)]
    batch, scales, sizes = preprocess(photos, CONFIG)
    for slot, photo, scale, size in zip(batch, photos, scales, sizes):
        boxed, expected_scale = letterbox(photo, CONFIG.image_size)
        np.testing.assert_array_equal(slot, normalize(boxed, CONFIG))
        assert (scale, size) == (expected_scale, photo.size)


@pytest.mark.parametrize("scale", [None, 0.8, 0.5, 0.3])
def test_a_photos_one_tile_is_its_working_image_normalised(
    monkeypatch: pytest.MonkeyPatch, scale: float | None
) -> None:
    """``photo_tiles``' one-pass tile equals ``tiles`` of the resized working image."""
    monkeypatch.setenv("COURSE_PREPROCESS_BANDS", "2")
    for photo in (noise(640, 640, 4), noise(640, 480, 5), noise(900, 700, 6)):
        grid = plan_tiles(*photo.size, CONFIG, scale)
        expected = list(tiles(working_image(photo, grid.scale), grid, CONFIG))
        got = list(photo_tiles(photo, grid, CONFIG))
        assert len(got) == len(expected) == grid.tiles
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_the_course_thread_setting_sets_the_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """``OMP_NUM_THREADS`` (every runtime's threads) also sets the bands, unless
    ``COURSE_PREPROCESS_BANDS`` says otherwise."""
    monkeypatch.delenv("COURSE_PREPROCESS_BANDS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert row_bands(512, 512) == [(0, 512)]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert row_bands(512, 512) == [(0, 256), (256, 512)]
    monkeypatch.setenv("COURSE_PREPROCESS_BANDS", "1")
    assert row_bands(512, 512) == [(0, 512)]
    monkeypatch.delenv("COURSE_PREPROCESS_BANDS")
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS='lots'"):
        row_bands(512, 512)
