"""The in-browser counter tiles like Python (issue 10): same grid, same seams, same counts.

A model whose metadata carries a working scale makes ``web/counter.js`` resize the photo to
that scale and count it in overlapping tiles (``planTiles``/``mergeTiles``), the port of
``processing.plan_tiles``/``merge_tiles``. Checked here: the merge on random raw outputs of a
3 x 2 grid, number for number, and whole photos of 9 and 42 tiles counted in headless
Chromium against ``load_predictor(model).predict``. Fails (not skips) without Chromium or
``web/node_modules``, as tests/test_web.py does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from tests.numerics import gap_threshold
from tests.test_web import _b64, chromium_or_fail
from utils import web
from utils.images import load_image
from utils.processing import InferenceConfig, merge_tiles, plan_tiles

N_IMAGES = 3


@pytest.fixture(scope="module")
def tiled_onnx(tmp_path_factory, counting_onnx, photos):
    """conftest's crowded untrained 128 px model, told to count at working scale 0.5, at a
    threshold in a gap of its merged scores on ``photos`` (tests/numerics.py), so the browser
    and Python count alike unless a score differs by more than PARITY_TOLERANCE."""
    import onnx

    from utils.export import read_onnx_config, set_metadata
    from utils.loading import load_predictor

    path = tmp_path_factory.mktemp("tiled_web") / "model.onnx"
    config = dataclasses.replace(
        read_onnx_config(counting_onnx), scale=0.5, tile_overlap=32, cell_size=20.0
    )
    model = onnx.load(str(counting_onnx))
    set_metadata(model, config)
    onnx.save(model, str(path))
    predictor = load_predictor(path)
    scores = [predictor.predict(load_image(p).image, 0.0).scores for p in photos]
    threshold = round(gap_threshold(np.concatenate(scores), keep=10 * len(photos)), 5)
    set_metadata(model, dataclasses.replace(config, score_threshold=threshold))
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list:
    from utils.config import test_dir

    found = sorted(test_dir().glob("*.jpg"))[:N_IMAGES]
    big = tmp_path_factory.mktemp("big") / "enlarged_1400.png"
    Image.open(found[0]).convert("RGB").resize((1400, 1050), Image.Resampling.BILINEAR).save(big)
    return [*found, big]


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiled_onnx, photos):
    chromium_or_fail()
    try:
        return web.build_site(tmp_path_factory.mktemp("site"), tiled_onnx, examples=photos)
    except web.WebSetupError as error:
        pytest.fail(str(error))


def test_merge_matches_numpy(site):
    """Threshold + ownership + class-aware NMS + rescale over a 3 x 2 grid of random outputs."""
    rng = np.random.default_rng(3)
    size, anchors, classes = 128, 300, 2
    config = InferenceConfig("x", ("a", "b"), size, nms_iou=0.5, scale=0.5, tile_overlap=32)
    grid = plan_tiles(600, 400, config)
    assert (len(grid.xs), len(grid.ys)) == (3, 2)
    centers = rng.uniform(-10, size + 10, (grid.tiles, anchors, 2))
    sides = rng.uniform(4, 30, (grid.tiles, anchors, 2))
    boxes = np.concatenate([centers - sides / 2, centers + sides / 2], 2).astype(np.float32)
    scores = rng.uniform(0, 1, (grid.tiles, anchors, classes)).astype(np.float32)
    scores[:, ::3] = scores[:, ::3].round(1)  # ties: the stable order must match too
    with web.open_site(site, (800, 600)) as (page, url, _):
        page.goto(url)
        for threshold in (0.05, 0.5):
            expected = merge_tiles(boxes, scores, grid, config, threshold)
            got = page.evaluate(
                """async ([b, s, n, c, cfg, t]) => {
                    const m = await import('./counter.js');
                    const f32 = (d) => new Float32Array(Uint8Array.from(atob(d), (x) => x.charCodeAt(0)).buffer);
                    const all = f32(b), sc = f32(s), per = all.length / n;
                    const config = m.configFromDict(cfg);
                    const grid = m.planTiles(600, 400, config);
                    const tiles = Array.from({ length: n }, (_, i) => ({
                        boxes: all.subarray(i * per, (i + 1) * per),
                        scores: sc.subarray(i * (sc.length / n), (i + 1) * (sc.length / n)),
                    }));
                    return { grid, result: m.mergeTiles(tiles, c, grid, config, t) };
                }""",
                [_b64(boxes), _b64(scores), grid.tiles, classes, config.to_dict(), threshold],
            )
            assert got["grid"]["xs"] == list(grid.xs) and got["grid"]["ys"] == list(grid.ys)
            result = got["result"]
            assert result["count"] == expected.count > 20, threshold
            assert result["labels"] == expected.labels.tolist()
            np.testing.assert_array_equal(np.float32(result["scores"]), expected.scores)
            np.testing.assert_allclose(
                np.array(result["boxes"]).reshape(-1, 4), expected.boxes, atol=1e-3
            )


def test_tiled_counts_match_python(site, tiled_onnx, photos):
    from utils.loading import load_predictor

    predictor = load_predictor(tiled_onnx, threads=2)
    shown = web.count_in_browser(site, photos)
    for path, row in zip(photos, shown["rows"]):
        expected = predictor.predict(load_image(path).image)
        assert row["count"] == expected.count, (path.name, row["count"], expected.count)
        assert expected.tiles in (9, 42)
    assert sum(r["count"] for r in shown["rows"]) >= 3 * len(photos), shown["rows"]


@pytest.fixture(scope="module")
def multiclass_tiled(tmp_path_factory, multiclass_onnx):
    """conftest's three-class model told to count at working scale 0.5 (16 and 20 tiles on the
    two photos), at a threshold in a gap of its merged scores on them; and the photos."""
    import onnx

    from utils.export import read_onnx_config, set_metadata
    from utils.loading import load_predictor
    from utils.synth_classes import FIRST_SEED, generate_mixed_image

    folder = tmp_path_factory.mktemp("tiled_multiclass")
    photo = generate_mixed_image(FIRST_SEED + 10, 768)[0]
    photos = [folder / "mixed_768.png", folder / "mixed_1000x750.png"]
    photo.save(photos[0])
    photo.resize((1000, 750), Image.Resampling.BILINEAR).save(photos[1])
    path = folder / "model.onnx"
    config = dataclasses.replace(read_onnx_config(multiclass_onnx), scale=0.5, tile_overlap=32)
    model = onnx.load(str(multiclass_onnx))
    set_metadata(model, config)
    onnx.save(model, str(path))
    predictor = load_predictor(path)
    scores = [predictor.predict(load_image(p).image, 0.0).scores for p in photos]
    threshold = round(gap_threshold(np.concatenate(scores), keep=40 * len(photos)), 5)
    set_metadata(model, dataclasses.replace(config, score_threshold=threshold))
    onnx.save(model, str(path))
    return path, photos


def test_tiled_three_class_counts_match_python_per_class(tmp_path_factory, multiclass_tiled):
    from utils.loading import load_predictor

    model, photos = multiclass_tiled
    chromium_or_fail()
    try:
        site = web.build_site(tmp_path_factory.mktemp("site3"), model, examples=photos)
    except web.WebSetupError as error:
        pytest.fail(str(error))
    predictor = load_predictor(model, threads=2)
    shown = web.count_in_browser(site, photos)
    totals = dict.fromkeys(predictor.config.class_names, 0)
    for path, row in zip(photos, shown["rows"]):
        expected = predictor.predict(load_image(path).image)
        assert expected.tiles in (16, 20), expected.tiles
        assert row["counts"] == expected.counts_by_class(), (path.name, row["counts"])
        assert row["count"] == expected.count
        for name, n in row["counts"].items():
            totals[name] += n
    assert min(totals.values()) >= 3, totals  # every class was counted across seams
