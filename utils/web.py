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
"""

from __future__ import annotations

import argparse
import functools
import json
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


def build_site(
    out_dir: str | Path,
    onnx_path: str | Path | None = None,
    examples: Sequence[str | Path] | None = None,
) -> Path:
    """Write the static site into ``out_dir`` and return it.

    ``onnx_path`` defaults to ``artifacts/model.onnx`` (exported, and trained first, if
    missing). ``examples`` defaults to the first three held-out photos.
    """
    from .export import ensure_onnx, read_onnx_config

    runtime_files = ort_files()  # fail before copying anything
    for name in PAGE_FILES:
        if not (WEB_DIR / name).is_file():
            raise WebSetupError(f"{display_path(WEB_DIR / name)} is missing: check out web/ again")
    model = ensure_onnx() if onnx_path is None else Path(onnx_path)
    config = read_onnx_config(model)  # a clear error for a model without the course metadata

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in PAGE_FILES:
        shutil.copy2(WEB_DIR / name, out / name)
    (out / "ort").mkdir(exist_ok=True)
    for path in runtime_files:
        shutil.copy2(path, out / "ort" / path.name)
    shutil.copy2(model, out / "model.onnx")
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
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (0: any free)")
    args = parser.parse_args(argv)
    out = build_site(args.out or artifacts_dir() / "web", args.model)
    print(f"Site written to {display_path(out)}/")
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
