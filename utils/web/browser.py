"""Headless Chromium (Playwright, the system browser): open the site, count photos, screenshot."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from .server import serve
from .site import WebSetupError

CHROMIUM_ARGS = [  # as root and offline: no sandbox, no background connections
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Exposes WebGPU to a headless Chromium: without a GPU, SwiftShader's software adapter, which
# the page's auto choice refuses and ``?backend=webgpu`` takes (the bench and tests measure it).
WEBGPU_ARGS = ["--enable-unsafe-webgpu"]
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
def open_site(folder: str | Path, viewport: tuple[int, int], extra_args: Sequence[str] = ()):
    """Serve ``folder`` on 127.0.0.1 and open a headless Chromium page: yields (page, url, browser).

    One place for what every in-browser measurement needs; the server and the browser are
    closed whatever happens inside.
    """
    from playwright.sync_api import sync_playwright

    url, stop = serve(folder)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium_executable(),
                headless=True,
                args=[*CHROMIUM_ARGS, *extra_args],
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
    folder: str | Path,
    images: Sequence[str | Path],
    threads: int = 1,
    query: str = "",
    backend: str = "auto",
) -> dict:
    """Open the site in headless Chromium, upload each image, return load + per-image results.

    ``backend`` is the page's ``?backend=``; any but "wasm" also exposes WebGPU to Chromium.
    """
    extra = () if backend == "wasm" else WEBGPU_ARGS
    with open_site(folder, (1100, 900), extra) as (page, url, browser):
        page.add_init_script(LONGTASK_PROBE)
        page.goto(f"{url}?threads={threads}&backend={backend}{query}")
        page.wait_for_function(
            "['ready', 'error'].includes(document.body.dataset.state)", timeout=180_000
        )
        if page.evaluate("document.body.dataset.state") == "error":
            raise RuntimeError(page.locator("#status").inner_text())
        load = page.evaluate("window.microalgae.load")
        info = {
            "threads": page.evaluate("window.microalgae.counter.threads"),
            "backend": page.evaluate("window.microalgae.counter.backendLabel"),
            "backend_note": page.evaluate("window.microalgae.counter.backendNote"),
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
                    "counts": last["counts"],  # per class, every class listed
                    "timings": last["timings"],
                    "longest_task_ms": longest,
                }
            )
    return {"load": load, "rows": rows, **info}


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
