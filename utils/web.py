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
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import gzip
import html
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .config import artifacts_dir, display_path, test_dir

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
ORT_DIST = WEB_DIR / "node_modules" / "onnxruntime-web" / "dist"
# The WASM-only build of onnxruntime-web: its ES module, the Emscripten loader it imports,
# and the WebAssembly binary (SIMD; threads only when the page is cross-origin isolated).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "counter.js")
MIME_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".html": "text/html; charset=utf-8",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
}


class WebSetupError(ValueError):
    """The site cannot be built: onnxruntime-web is not installed, or a page file is missing."""


def ort_files() -> list[Path]:
    """onnxruntime-web's files that the page loads; ``WebSetupError`` if npm has not run."""
    missing = [name for name in ORT_FILES if not (ORT_DIST / name).is_file()]
    if missing:
        raise WebSetupError(
            f"onnxruntime-web is not installed in {display_path(WEB_DIR)}/node_modules "
            f"(missing {', '.join(missing)}): run `cd web && npm ci` (Node.js 18+)"
        )
    return [ORT_DIST / name for name in ORT_FILES]


def default_examples(count: int = 3) -> list[Path]:
    """The first few held-out photos of ``data/test``."""
    return sorted(test_dir().glob("*.jpg"))[:count]


MODEL_META = '<meta name="model-url" content="./model.onnx">'
WEIGHTS = ("fp32", "fp16")


def fp16_weights(onnx_path: str | Path, out_path: str | Path, min_elements: int = 1024) -> Path:
    """Store the large float32 weights as float16, each followed by a Cast back to float32.

    Why: half the download for the visitor, and the same float32 arithmetic at run time
    (onnxruntime folds the Casts when it loads the file). The weights are rounded to float16
    once, so counts can differ from the float32 file's; Python and the page, running this
    same file, still count alike. Metadata (the inference config) is kept.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    initializers, casts = [], []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or int(np.prod(tensor.dims)) < min_elements:
            initializers.append(tensor)
            continue
        half = numpy_helper.from_array(
            numpy_helper.to_array(tensor).astype(np.float16), f"{tensor.name}__fp16"
        )
        initializers.append(half)
        casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=TensorProto.FLOAT))
    nodes = [*casts, *graph.node]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return Path(out_path)


def build_site(
    out_dir: str | Path,
    onnx_path: str | Path | None = None,
    examples: Sequence[str | Path] | None = None,
    model_url: str | None = None,
    weights: str = "fp32",
) -> Path:
    """Write the static site into ``out_dir`` and return it.

    ``onnx_path`` defaults to ``artifacts/model.onnx`` (exported, and trained first, if
    missing). ``examples`` defaults to the first three held-out photos. With ``model_url``
    (e.g. a Hub ``.../resolve/v1/model.onnx``) the page downloads the model from there and
    the folder holds no copy of it; ``onnx_path`` then only provides ``config.json``.
    ``weights="fp16"`` bundles :func:`fp16_weights` of the model: half the download.
    """
    from .export import ensure_onnx, read_onnx_config

    runtime_files = ort_files()  # fail before copying anything
    for name in PAGE_FILES:
        if not (WEB_DIR / name).is_file():
            raise WebSetupError(f"{display_path(WEB_DIR / name)} is missing: check out web/ again")
    page = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    if MODEL_META not in page:
        raise WebSetupError(f"{display_path(WEB_DIR / 'index.html')} lacks {MODEL_META}")
    if weights not in WEIGHTS:
        raise WebSetupError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if model_url is not None and not model_url.startswith(("https://", "http://", "./")):
        raise WebSetupError(f"model_url must be an http(s) address or ./file, got {model_url!r}")
    model = None
    if model_url is None or onnx_path is not None:
        model = ensure_onnx() if onnx_path is None else Path(onnx_path)
    config = read_onnx_config(model) if model else None  # clear error without course metadata

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(WEB_DIR / "counter.js", out / "counter.js")
    if model_url is not None:
        page = page.replace(MODEL_META, MODEL_META.replace("./model.onnx", html.escape(model_url)))
    (out / "index.html").write_text(page, encoding="utf-8")
    (out / "ort").mkdir(exist_ok=True)
    for path in runtime_files:
        shutil.copy2(path, out / "ort" / path.name)
    if model_url is None and weights == "fp16":
        fp16_weights(model, out / "model.onnx")
    elif model_url is None:
        shutil.copy2(model, out / "model.onnx")
    else:
        (out / "model.onnx").unlink(missing_ok=True)
    if config is not None:
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    chosen = [Path(p) for p in (default_examples() if examples is None else examples)]
    folder = out / "examples"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for path in chosen:
        if not path.is_file():
            raise WebSetupError(f"example image {display_path(path)} does not exist")
        shutil.copy2(path, folder / path.name)
    listing = [f"examples/{p.name}" for p in chosen]
    (out / "examples.json").write_text(json.dumps(listing, indent=2) + "\n")
    return out


class _Handler(SimpleHTTPRequestHandler):
    """Static files with the MIME types a WASM page needs, no caching, no console noise."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        # Cross-origin isolation: lets onnxruntime-web use threads (?threads=N) when asked.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A browser that stops a download (page closed, reload) resets the connection:
        # normal for a static server, not worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def serve(out_dir: str | Path, port: int = 0) -> tuple[str, Callable[[], None]]:
    """Serve ``out_dir`` on 127.0.0.1 in a background thread; returns (url, stop).

    ``port=0`` picks a free port. Call ``stop()`` to shut the server down.
    """
    folder = Path(out_dir)
    if not (folder / "index.html").is_file():
        raise WebSetupError(f"{display_path(folder)} has no index.html: run build_site first")
    handler = functools.partial(_Handler, directory=str(folder))
    server = _Server(("127.0.0.1", int(port)), handler)
    thread = threading.Thread(target=server.serve_forever, name="web-site", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return url, stop


# -- measuring in a real browser ------------------------------------------------------------
CHROMIUM_ARGS = [  # as root and offline: no sandbox, no background connections
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Records the longest main-thread task: how long the tab was frozen at worst.
LONGTASK_PROBE = """
window.__longest = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
}).observe({ type: "longtask", buffered: true });
"""


def _outside_event_loop(function: Callable) -> Callable:
    """Run ``function`` in a worker thread when this thread runs an asyncio loop (Jupyter):
    Playwright's sync API refuses to start inside one."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return function(*args, **kwargs)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(function, *args, **kwargs).result()

    return wrapper


def chromium_executable() -> str:
    """The system Chromium (Playwright drives it; it never downloads a browser of its own)."""
    for candidate in (
        os.environ.get("CHROMIUM_PATH"),
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    raise WebSetupError(
        "Chromium is not installed: run `make browser` (sudo apt-get install -y chromium) "
        "or set CHROMIUM_PATH to a Chromium/Chrome binary"
    )


def gzip_bytes(path: str | Path) -> int:
    """Size after gzip -6: about what a host that compresses its responses sends."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=6))


def wait_for_count(page, run: int, timeout_ms: int = 120_000) -> dict:
    """The page's result once it has finished its ``run``-th count (or shown an error)."""
    page.wait_for_function(
        "n => document.querySelector('#count').dataset.run === String(n)"
        " || document.body.dataset.state === 'error'",
        arg=run,
        timeout=timeout_ms,
    )
    if page.evaluate("document.body.dataset.state") == "error":
        raise RuntimeError(page.locator("#status").inner_text())
    return page.evaluate("window.microalgae.last")


@contextlib.contextmanager
def open_site(folder: str | Path, viewport: tuple[int, int]):
    """Serve ``folder`` on 127.0.0.1 and open a headless Chromium page: yields (page, url, browser).

    One place for what every in-browser measurement needs; the server and the browser are
    closed whatever happens inside.
    """
    from playwright.sync_api import sync_playwright

    url, stop = serve(folder)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
                yield page, url, browser
            finally:
                browser.close()
    finally:
        stop()


@_outside_event_loop
def count_in_browser(
    folder: str | Path, images: Sequence[str | Path], threads: int = 1, query: str = ""
) -> dict:
    """Open the site in headless Chromium, upload each image, return load + per-image results."""
    with open_site(folder, (1100, 900)) as (page, url, browser):
        page.add_init_script(LONGTASK_PROBE)
        page.goto(f"{url}?threads={threads}{query}")
        page.wait_for_function(
            "['ready', 'error'].includes(document.body.dataset.state)", timeout=180_000
        )
        if page.evaluate("document.body.dataset.state") == "error":
            raise RuntimeError(page.locator("#status").inner_text())
        load = page.evaluate("window.microalgae.load")
        info = {
            "threads": page.evaluate("window.microalgae.counter.threads"),
            "isolated": page.evaluate("crossOriginIsolated"),
            "browser": browser.version,
            "cores": page.evaluate("navigator.hardwareConcurrency"),
            "load_longest_task_ms": page.evaluate("window.__longest"),
        }
        rows = []
        for path in images:
            run = int(page.evaluate("window.microalgae.runs")) + 1
            page.evaluate("window.__longest = 0")
            page.locator("#file").set_input_files(str(path))
            last = wait_for_count(page, run)
            longest = page.evaluate("window.__longest")
            rows.append(
                {
                    "name": Path(path).name,
                    "count": last["count"],
                    "timings": last["timings"],
                    "longest_task_ms": longest,
                }
            )
    return {"load": load, "rows": rows, **info}


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def summarize(result: dict, expected: Sequence[int], site: str | Path) -> dict:
    """The numbers that matter from ``count_in_browser``: first load, ms per image, counts.

    The first image is the warm-up (onnxruntime allocates its buffers on the first run);
    "per image" is the median of the others, end to end: decode, resize, model, NMS, draw.
    """
    site = Path(site)
    load, rows = result["load"], result["rows"][: len(expected)]
    downloaded = [site / _site_path(f["name"]) for f in load["files"]]
    warm = [r["timings"] for r in rows[1:]] or [rows[0]["timings"]]
    return {
        "browser": f"Chromium {result['browser']} (headless, {result['cores']} cores)",
        "threads": result["threads"],
        "isolated": result["isolated"],
        "first_load_mb": load["transfer"] / 1e6,
        "first_load_gzip_mb": sum(gzip_bytes(p) for p in downloaded if p.is_file()) / 1e6,
        "ready_s": load["ms"] / 1000,
        "largest_files": [
            (f["name"], f["decoded"] / 1e6)
            for f in sorted(load["files"], key=lambda f: -f["decoded"])[:2]
        ],
        "images": len(rows),
        "ms_per_image": _median([t["pipeline_ms"] for t in warm]),
        "model_ms": _median([t["session_ms"] for t in warm]),
        "resize_ms": _median([t["preprocess_ms"] for t in warm]),
        "nms_ms": _median([t["postprocess_ms"] for t in warm]),
        "max_ms": max(t["pipeline_ms"] for t in warm),
        "first_image_ms": rows[0]["timings"]["pipeline_ms"],
        "longest_block_ms": max(r["longest_task_ms"] for r in result["rows"]),
        "same_counts": sum(r["count"] == e for r, e in zip(rows, expected)),
    }


def report(s: dict) -> str:
    """``summarize``'s numbers as a few lines of text that say what each number is."""
    files = ", ".join(f"{name} {mb:.1f} MB" for name, mb in s["largest_files"])
    return "\n".join(
        [
            f"{s['browser']}, onnxruntime-web WASM (SIMD), {s['threads']} thread(s), "
            f"cross-origin isolated: {s['isolated']}",
            f"  first load: {s['first_load_mb']:.1f} MB downloaded ({files}); a host that "
            f"gzips would send {s['first_load_gzip_mb']:.1f} MB; model ready after "
            f"{s['ready_s']:.1f} s (local server)",
            f"  per 640 px photo after the first one: median {s['ms_per_image']:.0f} ms end to "
            f"end (model {s['model_ms']:.0f} ms, resize+normalise {s['resize_ms']:.0f} ms, "
            f"NMS {s['nms_ms']:.1f} ms), slowest {s['max_ms']:.0f} ms; first photo "
            f"{s['first_image_ms']:.0f} ms",
            f"  longest time the page could not react (main-thread task): "
            f"{s['longest_block_ms']:.0f} ms",
            f"  counts identical to Python (ONNX Runtime, same file): "
            f"{s['same_counts']}/{s['images']} photos",
        ]
    )


def measure(
    site: str | Path,
    images: Sequence[str | Path],
    threads: int = 1,
    onnx_path: str | Path | None = None,
) -> dict:
    """Count ``images`` in the site in headless Chromium and compare with Python: a summary."""
    from .images import load_image
    from .runtime import load_predictor

    site = Path(site)
    predictor = load_predictor(Path(onnx_path) if onnx_path else site / "model.onnx")
    expected = [predictor.predict(load_image(p).image).count for p in images]
    return summarize(count_in_browser(site, images, threads), expected, site)


@_outside_event_loop
def screenshot(site: str | Path, photo: str | Path, out_png: str | Path, threads: int = 1) -> Path:
    """A picture of the page after counting ``photo`` twice (headless Chromium), for docs."""
    with open_site(site, (1000, 1180)) as (page, url, _):
        page.goto(f"{url}?threads={threads}")
        page.wait_for_function("document.body.dataset.state === 'ready'", timeout=180_000)
        for run in (1, 2):  # the second count shows warm timings, as visitors see them
            page.locator("#file").set_input_files([])
            page.locator("#file").set_input_files(str(photo))
            wait_for_count(page, run)
        out = Path(out_png)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
    return out


def bench(
    onnx_path: str | Path | None = None,
    n_images: int | None = None,
    threads: Sequence[int] = (1, 2),
    weights: str = "fp32",
) -> list[dict]:
    """Print first-load MB, ms per held-out photo after the first, counts vs Python, and a
    12 MP photo's time and longest main-thread block (``python -m utils.web --bench``)."""
    import tempfile

    from PIL import Image

    from .export import ensure_onnx

    model = ensure_onnx() if onnx_path is None else Path(onnx_path)
    images = sorted(test_dir().glob("*.jpg"))[:n_images]
    summaries = []
    with tempfile.TemporaryDirectory() as tmp:
        site = build_site(Path(tmp) / "site", model, examples=images[:3], weights=weights)
        if weights != "fp32":
            _compare_weights(model, site / "model.onnx", images, weights)
        big = Path(tmp) / "photo_12mp.jpg"  # a phone-sized photo: 4000 x 3000
        Image.open(images[0]).convert("RGB").resize((4000, 3000)).save(big, quality=92)
        print(python_reference(site / "model.onnx", images))
        for n in threads:
            summary = measure(site, images, n)  # Python runs the file the page runs
            print("\n" + report(summary))
            large = count_in_browser(site, [big], n)["rows"][0]
            print(
                f"  12 MP photo (4000 x 3000): {large['timings']['pipeline_ms']:.0f} ms, "
                f"longest main-thread block {large['longest_task_ms']:.0f} ms"
            )
            summaries.append(summary)
    return summaries


def compare_weights(
    fp32: str | Path, other: str | Path, images: Sequence[str | Path]
) -> dict[str, float]:
    """Python counts of the float32 file and a smaller one on ``images``, and their sizes."""
    from .images import load_image
    from .runtime import load_predictor

    a, b = load_predictor(Path(fp32)), load_predictor(Path(other))
    pictures = [load_image(p).image for p in images]
    return {
        "fp32_mb": Path(fp32).stat().st_size / 1e6,
        "other_mb": Path(other).stat().st_size / 1e6,
        "same_counts": sum(a.predict(x).count == b.predict(x).count for x in pictures),
        "images": len(pictures),
    }


def _compare_weights(fp32: Path, other: Path, images: Sequence[Path], weights: str) -> None:
    c = compare_weights(fp32, other, images)
    print(
        f"{weights} weights: model {c['other_mb']:.1f} MB (fp32 {c['fp32_mb']:.1f} MB); Python "
        f"counts equal to the fp32 file's on {c['same_counts']}/{c['images']} photos"
    )


def python_reference(onnx_path: Path, images: Sequence[Path], threads: int = 1) -> str:
    """Python's ONNX Runtime on the same file and photos, timed the same way: a yardstick for
    the browser's numbers on this machine (median of all photos but the first)."""
    import time

    from .images import load_image
    from .runtime import load_predictor

    predictor = load_predictor(onnx_path, threads=threads)
    times = []
    for path in images:
        start = time.perf_counter()
        predictor.predict(load_image(path).image)
        times.append((time.perf_counter() - start) * 1000)
    return (
        f"Python ONNX Runtime (native, {threads} thread), same file: median "
        f"{_median(times[1:] or times):.0f} ms per 640 px photo (load + model + NMS)"
    )


def _site_path(name: str) -> str:
    """A downloaded file's path in the site folder (runtime files live in ort/)."""
    return f"ort/{name}" if name.startswith("ort") else name


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m utils.web",
        description="Build the in-browser cell counter (onnxruntime-web) and optionally serve it.",
    )
    parser.add_argument("--out", type=Path, default=None, help="site folder (artifacts/web)")
    parser.add_argument(
        "--model", type=Path, default=None, help="ONNX model (artifacts/model.onnx)"
    )
    parser.add_argument("--serve", action="store_true", help="serve the site on 127.0.0.1")
    parser.add_argument(
        "--weights", choices=WEIGHTS, default="fp32", help="fp16: half the model download"
    )
    parser.add_argument(
        "--bench",
        action="store_true",
        help="measure in headless Chromium: first-load MB, ms per image, counts vs Python",
    )
    parser.add_argument("--images", type=int, default=None, help="--bench: held-out images")
    parser.add_argument(
        "--screenshot", type=Path, default=None, help="save a PNG of the page counting a photo"
    )
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="--bench: WASM thread counts"
    )
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (0: any free)")
    args = parser.parse_args(argv)
    if args.bench:
        bench(args.model, args.images, args.threads, args.weights)
        return
    out = build_site(args.out or artifacts_dir() / "web", args.model, weights=args.weights)
    print(f"Site written to {display_path(out)}/")
    if args.screenshot:
        photo = sorted(test_dir().glob("*.jpg"))[0]
        print(f"Screenshot saved to {display_path(screenshot(out, photo, args.screenshot))}")
    if not args.serve:
        print("Serve it with `python -m utils.web --serve` (or any static file server).")
        return
    url, stop = serve(out, args.port)
    print(f"Open {url} (Ctrl-C to stop). The model runs in the browser, not on this server.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()


if __name__ == "__main__":
    main()
