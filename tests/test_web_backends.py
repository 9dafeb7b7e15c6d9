"""The in-browser counter's runtime: which backend runs (WebGPU or WASM) and how it downloads.

* The site ships onnxruntime-web's binaries gzipped and the page unpacks them itself, so the
  first load is small on any host; a site without the ``.gz`` still loads the plain binary.
* ``?backend=auto`` (the default) takes WebGPU only from a hardware adapter; the tests' Chromium
  has none, and with ``--enable-unsafe-webgpu`` only SwiftShader's software adapter, which auto
  refuses (with a note the page shows) and ``?backend=webgpu`` takes: there the WebGPU build
  must count what Python counts. When WebGPU cannot run the model, the page falls back to WASM
  and says why.

Same model and photos as test_web.py (an untrained 128 px model whose counting threshold sits
in a gap of the first photo's scores wider than 2 x ``PARITY_TOLERANCE``).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.numerics import PARITY_TOLERANCE
from tests.test_web import images, model, predictor, site  # noqa: F401 - fixtures
from utils import web
from utils.images import load_image
from utils.web.browser import WEBGPU_ARGS  # SwiftShader's software adapter

WASM = "ort-wasm-simd-threaded.wasm"
WEBGPU_WASM = "ort-wasm-simd-threaded.asyncify.wasm"


@contextlib.contextmanager
def opened(folder: Path, query: str = "", webgpu: bool = False):
    """A headless Chromium tab on ``folder`` (``utils.web.open_site``), once the page is ready."""
    with web.open_site(folder, (1100, 900), WEBGPU_ARGS if webgpu else ()) as (page, url, _):
        page.goto(url + query)
        page.wait_for_function(
            "['ready', 'error'].includes(document.body.dataset.state)", timeout=120_000
        )
        status = page.locator("#status").inner_text()
        assert page.evaluate("document.body.dataset.state") == "ready", status
        yield page


def _downloaded(page) -> dict[str, int]:
    return {f["name"]: f["transfer"] for f in page.evaluate("window.microalgae.load.files")}


def _counter(page) -> dict:
    return page.evaluate(
        "({backend: window.microalgae.counter.backend, note: window.microalgae.counter.backendNote})"
    )


def _count(page, path: Path) -> dict:
    run = int(page.evaluate("window.microalgae.runs")) + 1
    page.locator("#file").set_input_files(str(path))
    page.wait_for_function(
        "n => document.querySelector('#count').dataset.run === String(n)",
        arg=run,
        timeout=120_000,
    )
    return page.evaluate("window.microalgae.last")


def _same_as_python(shown: dict, predictor, path: Path) -> None:  # noqa: F811 - the fixture's value
    expected = predictor.predict(load_image(path).image)
    assert shown["count"] == expected.count, (path.name, shown["count"], expected.count)
    np.testing.assert_allclose(shown["scores"], expected.scores, atol=PARITY_TOLERANCE)


def test_site_ships_the_binaries_gzipped(site):  # noqa: F811
    import gzip

    for name in web.site.GZIPPED:
        packed = site / "ort" / f"{name}.gz"
        assert gzip.decompress(packed.read_bytes()) == (web.site.ORT_DIST / name).read_bytes()
    assert (site / "ort" / WASM).is_file()  # for a browser without DecompressionStream
    assert not (site / "ort" / WEBGPU_WASM).exists()  # only gzipped: every WebGPU browser unpacks


def test_page_unpacks_the_gzipped_binary_and_counts(site, predictor, images):  # noqa: F811
    with opened(site) as page:
        files = _downloaded(page)
        assert f"{WASM}.gz" in files and WASM not in files, files
        plain = (site / "ort" / WASM).stat().st_size
        assert files[f"{WASM}.gz"] < 0.5 * plain  # 3.7 of 14.2 MB today
        assert WEBGPU_WASM + ".gz" not in files  # WASM chosen: the WebGPU build never loads
        counter = _counter(page)
        assert counter["backend"] == "wasm"
        assert "WebGPU" in counter["note"] and "WebAssembly" in counter["note"], counter
        assert "WASM (SIMD)" in page.locator("#model-info").inner_text()
        _same_as_python(_count(page, images[0]), predictor, images[0])


def test_without_the_gz_the_plain_binary_loads(site, predictor, images, tmp_path):  # noqa: F811
    bare = tmp_path / "site"
    shutil.copytree(site, bare)
    (bare / "ort" / f"{WASM}.gz").unlink()
    with opened(bare, "?backend=wasm") as page:
        assert WASM in _downloaded(page)
        assert _counter(page) == {"backend": "wasm", "note": ""}  # asked for WASM: no note
        _same_as_python(_count(page, images[0]), predictor, images[0])


def test_auto_refuses_a_software_webgpu_adapter(site):  # noqa: F811
    with opened(site, webgpu=True) as page:
        counter = _counter(page)
    assert counter["backend"] == "wasm"
    assert "software adapter" in counter["note"], counter


def test_webgpu_counts_like_python(site, predictor, images):  # noqa: F811
    with opened(site, "?backend=webgpu", webgpu=True) as page:
        assert _counter(page) == {"backend": "webgpu", "note": ""}
        assert f"{WEBGPU_WASM}.gz" in _downloaded(page)
        assert page.locator("#model-info").inner_text().count("WebGPU") == 1
        _same_as_python(_count(page, images[0]), predictor, images[0])


def test_webgpu_that_cannot_load_falls_back_to_wasm(site, predictor, images, tmp_path):  # noqa: F811
    broken = tmp_path / "site"
    shutil.copytree(site, broken)
    (broken / "ort" / f"{WEBGPU_WASM}.gz").unlink()  # the WebGPU build's binary is missing
    with opened(broken, "?backend=webgpu", webgpu=True) as page:
        counter = _counter(page)
        assert counter["backend"] == "wasm"
        assert counter["note"].startswith("WebGPU could not run the model"), counter
        assert "counting with WebAssembly" in page.locator("#model-info").inner_text()
        _same_as_python(_count(page, images[0]), predictor, images[0])


CHOICES = [  # (navigator.gpu stand-in, ?backend=, backend chosen, words of the note)
    ("null", "auto", "wasm", "this browser has no WebGPU"),
    ("{requestAdapter: async () => null}", "auto", "wasm", "gave no adapter"),
    ("{requestAdapter: async () => { throw new Error('lost') }}", "auto", "wasm", "(lost)"),
    ("{requestAdapter: async () => ({info: {isFallbackAdapter: true}})}", "auto", "wasm",
     "software adapter"),
    ("{requestAdapter: async () => ({info: {isFallbackAdapter: true}})}", "webgpu", "webgpu", ""),
    ("{requestAdapter: async () => ({info: {isFallbackAdapter: false}})}", "auto", "webgpu", ""),
    ("{requestAdapter: async () => ({isFallbackAdapter: true})}", "auto", "wasm", "software"),
    ("{requestAdapter: async () => ({info: {}})}", "wasm", "wasm", ""),
]


def test_choose_backend(site):  # noqa: F811
    with opened(site, "?backend=wasm") as page:
        chosen = [
            page.evaluate(
                f"""async () => {{
                  const {{ chooseBackend }} = await import('./counter.js');
                  return chooseBackend({asked!r}, {gpu});
                }}"""
            )
            for gpu, asked, _, _ in CHOICES
        ]
        with pytest.raises(Exception, match="backend must be auto, webgpu or wasm"):
            page.evaluate("async () => (await import('./counter.js')).chooseBackend('gpu')")
    for choice, (gpu, asked, expected, note) in zip(chosen, CHOICES):
        assert choice["name"] == expected, (gpu, asked, choice)
        assert (note in choice["note"]) if note else choice["note"] == "", (gpu, asked, choice)
