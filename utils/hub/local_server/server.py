"""The local Hub's server: a background thread on 127.0.0.1, a free port, a context manager."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any

from .routes import HubHandler
from .store import READ_ONLY_TOKEN, TEST_TOKEN, TEST_USER, Repo


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: HubTestServer


class HubTestServer:
    """An in-memory Hub on 127.0.0.1 with a free port; a context manager.

    ``start()`` serves from a daemon thread (it never keeps the interpreter alive), ``stop()``
    (or leaving the ``with`` block) shuts it down and frees the port.

    ``repos[(repo_type, repo_id)]`` holds what was uploaded (``Repo.files(revision)``),
    ``log`` the (method, path, status) of every request and ``unknown`` the routes it lacks.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: dict[str, dict] | None = None,
        free_plan: bool = False,
    ):
        self.host, self.port = host, port
        self.free_plan = free_plan  # True: Gradio/Docker Spaces answer 402, as on a free account
        self.tokens: dict[str, dict[str, Any]] = tokens or {
            TEST_TOKEN: {"name": TEST_USER, "role": "write", "orgs": ["course-org"]},
            READ_ONLY_TOKEN: {"name": TEST_USER, "role": "read", "orgs": []},
        }
        self.repos: dict[tuple[str, str], Repo] = {}
        self.log: list[tuple[str, str, int]] = []
        self.unknown: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("HubTestServer is not started; call start() first")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> HubTestServer:
        if self._httpd is None:
            self._httpd = _Server((self.host, self.port), HubHandler)
            self._httpd.hub = self
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="hub-test-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        """The stored repository (KeyError when it was never created)."""
        return self.repos[(repo_type, repo_id)]

    def reset(self) -> None:
        with self.lock:
            self.repos.clear()
            self.log.clear()
            self.unknown.clear()


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C (``python -m utils.hub.local_server``: run a notebook against it by hand)."""
    import argparse

    parser = argparse.ArgumentParser(description="A local, in-memory Hugging Face Hub for tests.")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = HubTestServer(port=args.port).start()
    print(f"HF_ENDPOINT={server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
