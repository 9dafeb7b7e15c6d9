"""HTTP plumbing of the local Hub: bodies, answers, the Hub's error headers, tokens, access.

Routes live in ``routes.HubHandler``; this base class reads a request, checks the token the
way the Hub does (unknown token: 401 on every call; read token: 403 on writes; anonymous:
public repos only) and logs method, path and status, never a header.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .store import Commit, HubError, Repo, _not_found

if TYPE_CHECKING:
    from .server import _Server


class BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # -- plumbing -------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # no stderr noise in tests
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _body(self) -> bytes:
        return self._raw

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _json_body(self) -> Any:
        raw = self._body()
        return json.loads(raw) if raw else {}

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, data: Any, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode())

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        # Split before unquoting: a revision like "refs%2Fpr%2F1" is one segment.
        segments = [unquote(s) for s in parts.path.split("/") if s]
        query = parse_qs(parts.query)
        status = 500
        # Read the whole body first, even for requests that fail early: on a kept-alive
        # connection an unread body would be parsed as the next request.
        self._raw = self._read_body()
        try:
            with self.server.hub.lock:
                status = self._route(method, segments, query) or 200
        except HubError as error:
            status = error.status
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            body = json.dumps({"error": error.message}).encode()
            self._send(error.status, body, headers=headers)
        except Exception as error:  # a bug here must show up as a 500, not a hung client
            status = 500
            self._send_json({"error": f"test server error: {type(error).__name__}: {error}"}, 500)
        finally:
            # Only method, path and status: never headers, so a token can never be logged.
            self.server.hub.log.append((method, parts.path, status))

    # -- auth -----------------------------------------------------------------------------
    def _user(self) -> dict[str, Any] | None:
        """The token's user, None when anonymous; 401 for a malformed or unknown token."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        info = self.server.hub.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if info is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return info

    def _can_write(self, namespace: str) -> dict[str, Any]:
        user = self._user()
        if user is None:
            raise HubError(401, "You must be authenticated to do this (no token was sent)")
        if user["role"] != "write":
            raise HubError(403, "You don't have the rights to write: this token is read-only")
        if namespace not in (user["name"], *user.get("orgs", ())):
            raise HubError(403, f"You don't have the rights to write in the namespace {namespace}")
        return user

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        user = self._user()
        repo = self.server.hub.repos.get((repo_type, repo_id))
        if repo is None:
            raise _not_found(repo_type, repo_id)
        if repo.private and (
            user is None or repo.owner not in (user["name"], *user.get("orgs", ()))
        ):
            raise _not_found(repo_type, repo_id)
        if write:
            self._can_write(repo.owner)
        return repo

    @staticmethod
    def _commit(repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _route(self, method: str, seg: list[str], query: dict[str, list[str]]) -> int | None:
        raise NotImplementedError  # routes.HubHandler answers the Hub's calls
