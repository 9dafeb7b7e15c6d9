"""The in-browser counter (web/): onnxruntime-web in headless Chromium counts what Python counts.

The site is built into a temporary folder, served on 127.0.0.1 and opened in the system
Chromium (driven by Playwright's Python package, no browser download). The page reads the
config from the model's ONNX metadata, letterboxes with its own port of Pillow's resize,
runs the WASM session and post-processes in JS; every count must equal
``load_predictor(model).predict(image, threshold).count``.

The model is an untrained, seeded detector (whatever ``build_model`` makes) exported at 128 px:
fast and deterministic. Its stored counting threshold is read off its own scores so that it keeps
a few dozen boxes, and its scores crowd together, so a single pixel of resize difference or an
NMS detail that differs would change the counts. Without Chromium or ``web/node_modules`` the tests fail (not skip)
and say what to install: ``make browser`` and ``cd web && npm ci``.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.chromium import CHROMIUM_ARGS, chromium_path
from tests.numerics import PARITY_TOLERANCE, crowd_then_cells
from utils import web
from utils.images import load_image
from utils.processing import InferenceConfig, letterbox, postprocess_one

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128  # the counting model's input size (counting_onnx in conftest.py)
N_IMAGES = 4


def chromium_or_fail() -> str:
    path = chromium_path()
    if path is None:
        pytest.fail(
            "Chromium is not installed, so the in-browser counter cannot be tested. Install it "
            "with `make browser` or `sudo apt-get install -y chromium` (or set CHROMIUM_PATH)."
        )
    return path


@pytest.fixture(scope="module")
def model(counting_onnx) -> Path:
    """The counting model of conftest.py: its stored threshold keeps a few dozen boxes."""
    return counting_onnx


@pytest.fixture(scope="module")
def threshold(predictor) -> float:
    return predictor.config.score_threshold


@pytest.fixture(scope="module")
def predictor(model):
    from utils.loading import load_predictor

    return load_predictor(model, threads=2)


@pytest.fixture(scope="module")
def images() -> list[Path]:
    found = sorted((ROOT / "data" / "test").glob("*.jpg"))[:N_IMAGES]
    assert len(found) >= 3, "data/test needs held-out photos: run `make data`"
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory, model, images) -> Path:
    try:
        return web.build_site(tmp_path_factory.mktemp("site"), model, examples=images)
    except web.WebSetupError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def url(site):
    address, stop = web.serve(site)
    try:
        yield address
    finally:
        stop()


@pytest.fixture(scope="module")
def page(url):
    executable = chromium_or_fail()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)  # the counting threshold comes from the model's metadata
            page.wait_for_function(
                "['ready', 'error'].includes(document.body.dataset.state)", timeout=120_000
            )
            status = page.locator("#status").inner_text()
            assert page.evaluate("document.body.dataset.state") == "ready", (status, errors)
            yield page
        finally:
            browser.close()


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def test_site_layout_and_mime_types(site, model, url):
    from utils.export import read_onnx_config

    for name in ("index.html", "counter.js", "model.onnx", "examples.json"):
        assert (site / name).is_file(), name
    for name in (shipped for runtime in web.ORT_FILES for shipped in web.shipped_as(runtime)):
        assert (site / "ort" / name).is_file(), name
    config = json.loads((site / "config.json").read_text())
    assert config == read_onnx_config(model).to_dict()
    examples = json.loads((site / "examples.json").read_text())
    assert len(examples) == N_IMAGES and all((site / e).is_file() for e in examples)
    expected = {
        "ort/ort-wasm-simd-threaded.wasm": "application/wasm",
        "ort/ort-wasm-simd-threaded.wasm.gz": "application/gzip",
        "ort/ort.wasm.min.mjs": "text/javascript",
        "counter.js": "text/javascript",
        "config.json": "application/json",
    }
    for path, mime in expected.items():
        with urllib.request.urlopen(url + path, timeout=10) as response:
            assert response.headers["Content-Type"].split(";")[0] == mime, path
    html = (site / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # no CDN: works offline


def test_missing_onnxruntime_web_says_npm_ci(tmp_path, monkeypatch, model):
    monkeypatch.setattr(web.site, "ORT_DIST", tmp_path / "nothing")  # where ort_files looks
    with pytest.raises(web.WebSetupError, match="npm ci"):
        web.build_site(tmp_path / "site", model)


def test_config_read_from_onnx_metadata(page, predictor):
    info = page.locator("#model-info").inner_text()
    assert "ONNX metadata" in info and f"{SIZE}x{SIZE}" in info
    config = page.evaluate("window.microalgae.counter.config")
    assert config == predictor.config.to_dict()


def test_letterbox_is_bit_identical_to_pillow(page):
    """Down- and up-scaling, odd aspect ratios, Python's round-half-even, black padding."""
    rng = np.random.default_rng(0)
    for width, height in [(640, 640), (301, 170), (50, 90), (129, 128), (700, 3), (64, 64)]:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        expected, scale = letterbox(pixels, SIZE)
        got = page.evaluate(
            """async ([data, w, h, size]) => {
                const m = await import('./counter.js');
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                const out = m.letterbox(bytes, w, h, size, 3);
                let s = '';
                for (const b of out.rgb) s += String.fromCharCode(b);
                return {rgb: btoa(s), scale: out.scale};
            }""",
            [_b64(pixels), width, height, SIZE],
        )
        rgb = np.frombuffer(base64.b64decode(got["rgb"]), np.uint8).reshape(SIZE, SIZE, 3)
        diff = np.abs(rgb.astype(int) - np.asarray(expected, dtype=int))
        assert diff.max() == 0, f"{width}x{height}: {int((diff > 0).sum())} values differ"
        assert got["scale"] == scale


def test_input_tensor_is_bit_identical(page, predictor, images):
    """Letterbox + normalise of a held-out photo: the exact float32 tensor Python feeds."""
    from utils.processing import preprocess

    expected = preprocess([load_image(images[0]).image], predictor.config)[0][0]
    got = page.evaluate(
        """async ([name, cfg]) => {
            const m = await import('./counter.js');
            const blob = await (await fetch('examples/' + name)).blob();
            const img = await m.decodeImage(blob);
            const size = cfg.image_size;
            const boxed = m.letterbox(img.pixels, img.width, img.height, size, 4);
            const x = m.normalize(boxed.rgb, size, cfg.mean, cfg.std);
            let s = '';
            for (const b of new Uint8Array(x.buffer)) s += String.fromCharCode(b);
            return btoa(s);
        }""",
        [images[0].name, predictor.config.to_dict()],
    )
    tensor = np.frombuffer(base64.b64decode(got), np.float32).reshape(expected.shape)
    mismatched = int((tensor != expected).sum())
    assert mismatched == 0, f"{mismatched} values differ (max {np.abs(tensor - expected).max()})"


def test_postprocess_matches_numpy(page, predictor):
    """Threshold + class-aware NMS + rescale on crowded, overlapping random boxes (2 classes)."""
    rng = np.random.default_rng(1)
    anchors, classes = 400, 2
    config = InferenceConfig("fcos_resnet18", ("a", "b"), SIZE, nms_iou=0.5)
    centers = rng.uniform(-10, SIZE + 10, (anchors, 2))
    sizes = rng.uniform(4, 30, (anchors, 2))
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], 1).astype(np.float32)
    scores = rng.uniform(0, 1, (anchors, classes)).astype(np.float32)
    scores[::3] = scores[::3].round(1)  # many ties: the stable order must match too
    for threshold in (0.05, 0.3, 0.7):
        expected = postprocess_one(boxes, scores, config, 0.4, (320, 300), threshold)
        got = page.evaluate(
            """async ([b, s, c, cfg, t]) => {
                const m = await import('./counter.js');
                const f32 = (d) => new Float32Array(Uint8Array.from(atob(d), (x) => x.charCodeAt(0)).buffer);
                return m.postprocess(f32(b), f32(s), c, m.configFromDict(cfg), 0.4, 320, 300, t);
            }""",
            [_b64(boxes), _b64(scores), classes, config.to_dict(), threshold],
        )
        assert got["count"] == expected.count, threshold
        assert got["labels"] == expected.labels.tolist()
        np.testing.assert_array_equal(np.float32(got["scores"]), expected.scores)
        np.testing.assert_allclose(np.array(got["boxes"]).reshape(-1, 4), expected.boxes, atol=1e-4)


def test_postprocess_looks_at_the_same_best_candidates_as_numpy(page, predictor):
    """A crowd of 100 copies above 300 cells with max_detections 10: NumPy looks at the best
    40 candidates only (1 box); so must the browser, or it counts 10."""
    boxes, scores = crowd_then_cells()
    config = InferenceConfig("centernet_resnet18_s2", ("cell",), 1024, max_detections=10)
    expected = postprocess_one(boxes, scores[:, None], config, 1.0, (1024, 1024), 0.1)
    got = page.evaluate(
        """async ([b, s, cfg]) => {
            const m = await import('./counter.js');
            const f32 = (d) => new Float32Array(Uint8Array.from(atob(d), (x) => x.charCodeAt(0)).buffer);
            return m.postprocess(f32(b), f32(s), 1, m.configFromDict(cfg), 1.0, 1024, 1024, 0.1);
        }""",
        [_b64(boxes), _b64(scores), config.to_dict()],
    )
    assert expected.count == 1 and got["count"] == 1
    np.testing.assert_array_equal(np.float32(got["scores"]), expected.scores)


def _count_in_page(page, run: int) -> dict:
    page.wait_for_function(
        "n => document.querySelector('#count').dataset.run === String(n)", arg=run, timeout=60_000
    )
    return page.evaluate("window.microalgae.last")


def test_counts_match_python(page, predictor, images, threshold):
    """Click each example (the last one is uploaded instead): the count Python gets, box for box."""
    assert page.locator("#threshold").input_value() == str(threshold)  # not snapped to 0.01
    rows = []
    for index, path in enumerate(images):
        run = int(page.evaluate("window.microalgae.runs")) + 1
        if index == len(images) - 1:
            page.locator("#file").set_input_files(str(path))
        else:
            page.locator(f"button[data-example='{path.name}']").click()
        shown = _count_in_page(page, run)
        assert page.locator("#count").inner_text() == str(shown["count"])
        assert page.locator("#count").get_attribute("data-image") == path.name
        expected = predictor.predict(load_image(path).image)  # the stored threshold
        rows.append((path.name, shown["count"], expected.count, shown["timings"]))
        assert shown["count"] == expected.count, (
            f"{path.name}: browser {shown['count']}, Python {expected.count}"
        )
        assert shown["counts"] == expected.counts_by_class() == {"Microalgae": expected.count}
        assert page.locator("#class-counts").is_hidden()  # one class: the total says it all
        np.testing.assert_allclose(shown["scores"], expected.scores, atol=1e-4)
        np.testing.assert_allclose(
            np.array(shown["boxes"]).reshape(-1, 4), expected.boxes, atol=0.05
        )
    assert sum(r[2] for r in rows) >= 3 * len(rows), f"too few boxes for a real check: {rows}"


def test_transparent_png_is_flattened_like_load_image(page, predictor, images, tmp_path):
    """Transparent areas count as black in both (utils.images flattens them onto black)."""
    rgba = np.array(Image.open(images[1]).convert("RGBA"))
    rgba[:, : rgba.shape[1] // 3, 3] = 0  # a transparent band over real cells
    rgba[:, : rgba.shape[1] // 3, :3] = 255  # white underneath: ignored only if flattened
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba).save(path)
    run = int(page.evaluate("window.microalgae.runs")) + 1
    page.locator("#file").set_input_files(str(path))
    shown = _count_in_page(page, run)
    expected = predictor.predict(
        load_image(path).image, float(page.locator("#threshold").input_value())
    )
    assert shown["count"] == expected.count


def test_threshold_slider_recounts(page, predictor, images, threshold):
    run = int(page.evaluate("window.microalgae.runs")) + 1
    page.locator(f"button[data-example='{images[0].name}']").click()
    _count_in_page(page, run)
    lower = round(threshold * 0.99, 4)  # a few more boxes
    page.locator("#threshold").fill(str(lower))
    shown = _count_in_page(page, run + 1)
    expected = predictor.predict(load_image(images[0]).image, lower)
    assert shown["count"] == expected.count
    assert page.locator("#count").get_attribute("data-threshold") == str(lower)


def test_non_image_upload_shows_the_message(page, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("lab notes, not a photo\n")
    page.locator("#file").set_input_files(str(notes))
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=30_000)
    assert "notes.jpg is not an image" in page.locator("#status").inner_text()
    assert page.locator("#count").inner_text() == "–"


def _foreign_onnx(path: Path) -> Path:
    """A valid ONNX file that is not ours: an image classifier-like graph, no course metadata."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _load_error(page, url: str, query: str) -> str:
    """Open the page with ``query`` in a new tab; the status line once loading has failed."""
    tab = page.context.browser.new_page()
    try:
        tab.goto(url + query)
        tab.wait_for_function(
            "['ready', 'error'].includes(document.body.dataset.state)", timeout=120_000
        )
        assert tab.evaluate("document.body.dataset.state") == "error"
        return tab.locator("#status").inner_text()
    finally:
        tab.close()


def test_a_model_that_is_not_ours_shows_a_message(page, site, url, images):
    _foreign_onnx(site / "foreign.onnx")
    status = _load_error(page, url, "?model=foreign.onnx")
    assert "foreign.onnx is not a cell counter exported by this course" in status, status
    (site / "photo.onnx").write_bytes(images[0].read_bytes())  # a JPEG renamed .onnx
    status = _load_error(page, url, "?model=photo.onnx")
    assert status.startswith("Could not load the model:") and "photo.onnx" in status, status


def test_a_model_url_that_404s_shows_a_message(page, url):
    status = _load_error(page, url, "?model=missing/model.onnx")
    assert "could not download the model missing/model.onnx: HTTP 404" in status, status


def test_a_12_mp_photo_is_counted_and_a_larger_one_refused(page, predictor, images, tmp_path):
    """A 4000 x 3000 phone photo counts as in Python; above 4096 px the page says to downsize."""
    big = tmp_path / "phone_12mp.png"  # PNG: the same pixels for Pillow and Chromium
    Image.open(images[2]).convert("RGB").resize((4000, 3000)).save(big, compress_level=1)
    run = int(page.evaluate("window.microalgae.runs")) + 1
    page.locator("#file").set_input_files(str(big))
    shown = _count_in_page(page, run)
    threshold = float(page.locator("#threshold").input_value())
    assert shown["count"] == predictor.predict(load_image(big).image, threshold).count
    assert "phone_12mp.png" in page.locator("#status").inner_text()

    huge = tmp_path / "panorama.jpg"
    Image.new("RGB", (6000, 1500), (40, 60, 50)).save(huge, quality=80)
    page.locator("#file").set_input_files(str(huge))
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=60_000)
    status = page.locator("#status").inner_text()
    assert "6000 x 1500 px" in status and "downsize it" in status, status
    assert page.locator("#count").inner_text() == "–"


def _count_each_in_a_new_tab(page, site: Path, photos):
    """Serve ``site`` in a new tab of this module's browser and click each photo's example
    button: yields ``(tab, photo, what the page showed)``. Use it under ``closing`` so the tab
    and the server close even when an assertion stops the loop."""
    address, stop = web.serve(site)
    tab = page.context.browser.new_page()
    try:
        tab.goto(address)
        tab.wait_for_function("document.body.dataset.state === 'ready'", timeout=120_000)
        for run, path in enumerate(photos, start=1):
            tab.locator(f"button[data-example='{path.name}']").click()
            yield tab, path, web.wait_for_count(tab, run)
    finally:
        tab.close()
        stop()


def test_three_classes_are_counted_per_class_like_python(
    page, tmp_path_factory, multiclass_onnx, multiclass_photos
):
    """A three-class model (conftest's, threshold in a gap of its scores): the page's
    ``result.counts``, its per-class line and its status equal ``counts_by_class()`` in Python.
    Its own site, in a new tab of this module's browser."""
    from utils.loading import load_predictor

    try:
        site = web.build_site(
            tmp_path_factory.mktemp("site3"), multiclass_onnx, examples=multiclass_photos
        )
    except web.WebSetupError as error:
        pytest.fail(str(error))
    predictor = load_predictor(multiclass_onnx, threads=2)
    names = list(predictor.config.class_names)
    seen = dict.fromkeys(names, 0)
    with closing(_count_each_in_a_new_tab(page, site, multiclass_photos)) as shown_photos:
        for tab, path, shown in shown_photos:
            expected = predictor.predict(load_image(path).image)
            counts = expected.counts_by_class()
            assert list(shown["counts"].items()) == list(counts.items()), path.name
            assert shown["labels"] == expected.labels.tolist(), path.name
            items = tab.locator("#class-counts .class-count")
            assert items.all_inner_texts() == [f"{k}: {n}" for k, n in counts.items()]
            by_class = ", ".join(f"{k} {n}" for k, n in counts.items())
            assert f"({by_class}) found in {path.name}" in tab.locator("#status").inner_text()
            for name, n in counts.items():
                seen[name] += n
    assert min(seen.values()) >= 2, seen  # every class was really counted


# How far an int8 score may sit between onnxruntime-web and native ONNX Runtime: 10x the float32
# parity tolerance, because integer kernels (WASM, x86 with or without VNNI, ARM) may round a
# requantised activation a step apart. Here the two agree to 3e-8 on every score, and the model's
# threshold sits more than 0.02 from any int8 score of these photos.
INT8_PARITY_TOLERANCE = 10 * PARITY_TOLERANCE


def test_int8_site_counts_like_python_on_its_own_file(page, tmp_path_factory, model, images):
    """``weights="int8"``: a QDQ file a third of the float32 one's size, and the page's counts
    (onnxruntime-web's integer kernels) are Python's on that same file, photo by photo: exactly
    here; on another CPU a score within :data:`INT8_PARITY_TOLERANCE` of the threshold may fall
    either way, so the count must lie between Python's counts at the threshold +- that much."""
    from utils.edge import quantized_node_count
    from utils.loading import load_predictor

    try:
        site = web.build_site(
            tmp_path_factory.mktemp("site8"),
            model,
            examples=images,
            weights="int8",
            calibration=images[:2],
        )
    except web.WebSetupError as error:
        pytest.fail(str(error))
    shipped = site / "model.onnx"
    assert quantized_node_count(shipped)["QuantizeLinear"] > 0
    assert shipped.stat().st_size < 0.5 * model.stat().st_size
    predictor = load_predictor(shipped, threads=2)
    threshold, tolerance = predictor.config.score_threshold, INT8_PARITY_TOLERANCE
    counted = 0
    with closing(_count_each_in_a_new_tab(page, site, images)) as shown_photos:
        for _, path, shown in shown_photos:
            near = predictor.predict(load_image(path).image, threshold - tolerance)
            surely = int((near.scores >= threshold + tolerance).sum())
            assert surely <= shown["count"] <= near.count, (path.name, shown["count"], surely)
            kept = np.sort(near.scores)[::-1][: shown["count"]]
            np.testing.assert_allclose(np.sort(shown["scores"])[::-1], kept, atol=tolerance)
            counted += surely
    assert counted >= 3 * len(images), f"too few boxes for a real check: {counted}"


def test_int8_without_calibration_photos_is_refused(tmp_path, model):
    with pytest.raises(web.WebSetupError, match="calibration photos"):
        web.build_site(tmp_path / "s", model, examples=[], weights="int8", calibration=[])
