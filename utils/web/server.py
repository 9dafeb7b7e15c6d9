"""A local static server with the MIME types and the COOP/COEP headers a WASM page needs."""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..config import display_path
from .site import WebSetupError

MIME_TYPES = {
    ".wasm": "application/wasm",
    ".gz": "application/gzip",  # served as is: the page unpacks it (no Content-Encoding)
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".html": "text/html; charset=utf-8",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
}


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
