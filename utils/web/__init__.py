"""The browser leg: a static site that counts cells with onnxruntime-web, no server-side model.

``build_site`` lays out a folder that any static host (GitHub Pages, a USB stick, ``python -m
http.server``) can serve::

    index.html  counter.js          the page and the JS port of processing.py (web/)
    model.onnx  config.json         the model (its config is also in its metadata) + a readable copy
    examples/   examples.json       a few held-out photos to click
    ort/                            onnxruntime-web's WASM build, from web/node_modules (no CDN)

``serve`` runs it on 127.0.0.1 with the right MIME types (``application/wasm`` lets the
browser compile the runtime while it downloads). The page runs WASM with one thread by
default, which needs no cross-origin isolation; the local server also sends the COOP/COEP
headers, so ``?threads=2`` can be tried here.

    python -m utils.web --serve            # build into artifacts/web and open the URL it prints
    python -m utils.web --bench            # first-load MB, ms per image, counts vs Python (Chromium)

``python -m utils.space --sdk static`` wraps this folder as a free Hugging Face static Space.

One module per job, imports running one way: ``site`` (build the folder) <- ``server``
(serve it) <- ``browser`` (headless Chromium) <- ``measure`` (the numbers) <- ``cli``.
"""

from .browser import (
    CHROMIUM_ARGS,
    chromium_executable,
    count_in_browser,
    open_site,
    screenshot,
    wait_for_count,
)
from .cli import main
from .measure import (
    bench,
    compare_weights,
    measure,
    report,
    summarize,
)
from .server import serve
from .site import (
    ORT_DIST,
    ORT_FILES,
    WebSetupError,
    build_site,
    default_examples,
    fp16_weights,
    int8_weights,
    ort_files,
    shipped_as,
)

__all__ = [
    "CHROMIUM_ARGS",
    "ORT_DIST",
    "ORT_FILES",
    "WebSetupError",
    "bench",
    "build_site",
    "chromium_executable",
    "compare_weights",
    "count_in_browser",
    "default_examples",
    "fp16_weights",
    "int8_weights",
    "main",
    "measure",
    "open_site",
    "ort_files",
    "report",
    "screenshot",
    "serve",
    "shipped_as",
    "summarize",
    "wait_for_count",
]
