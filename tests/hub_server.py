"""A small Hugging Face Hub-compatible HTTP server, in memory, on 127.0.0.1, for tests.

huggingface.co cannot be reached from CI, and no installable server implements uploads, so
this answers the calls that ``huggingface_hub`` (2.x) makes for a create-repo -> upload ->
tag -> download -> info round trip (see the module's ``ROUTES``). Point the library at it
with ``HF_ENDPOINT`` (read once, when huggingface_hub is first imported) or
``HfApi(endpoint=server.url)``. ``conftest.py`` starts one for the whole test session.

Not the Hub: files are always uploaded "regular" (base64 inside the commit, no LFS/Xet),
there is one branch (``main``), no pull requests, no pagination, and a Space never builds.
Tokens are checked the way the Hub does it: an unknown token is a 401 on every call, a
read token cannot write (403), anonymous callers can read public repos only.

Opt-in, the Hub's rule since July 2026: with ``free_plan=True`` (or ``server.free_plan =
True``) creating a Gradio or Docker Space answers 402 with the Hub's own message, as it does
for a free account; static Spaces, and Gradio Spaces created on ZeroGPU hardware
(``zero-a10g``), are still created.

Run it by hand (prints the URL; the write token is ``TEST_TOKEN`` in this file)::

    python -m tests.hub_server
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

# What huggingface.co answers a free account that creates a Gradio or Docker Space (since July
# 2026; huggingface/hub-docs PR #2624, reports in ed-donner/agents #1469).
PAID_SPACE_MESSAGE = (
    "Static Spaces are free for everyone, but hosting Gradio and Docker Spaces on free "
    "cpu-basic requires a PRO subscription. Subscribe at https://huggingface.co/pro"
)
PAID_SDKS = ("gradio", "docker", "streamlit")
ZERO_GPU = "zero-a10g"  # the hardware flavour a free account may still create a Gradio Space on

# Fake credentials of the local server: not secrets, never valid on the real Hub.
TEST_USER = "course-learner"
TEST_TOKEN = "hf_local_test_token_not_secret"
READ_ONLY_TOKEN = "hf_local_read_only_token_not_secret"

REPO_TYPES = {"models": "model", "spaces": "space", "datasets": "dataset"}
URL_PREFIX = {"model": "", "space": "spaces/", "dataset": "datasets/"}
GITATTRIBUTES = (
    b"*.onnx filter=lfs diff=lfs merge=lfs -text\n*.pt filter=lfs diff=lfs merge=lfs -text\n"
)

ROUTES = """\
GET    /api/whoami-v2
POST   /api/repos/create                      (409 with "url" when it exists; 402 for a
                                               Gradio/Docker Space when free_plan is set)
DELETE /api/repos/delete
POST   /api/validate-yaml
GET    /api/{models|spaces|datasets}/{repo_id}[/revision/{rev}]
GET    /api/{type}s/{repo_id}/tree/{rev}[/{path}]
POST   /api/{type}s/{repo_id}/paths-info/{rev}
POST   /api/{type}s/{repo_id}/preupload/{rev}  (always "regular")
POST   /api/{type}s/{repo_id}/commit/{rev}     (NDJSON: header, file, deletedFile, deletedFolder)
POST   /api/{type}s/{repo_id}/tag/{rev}        DELETE /api/{type}s/{repo_id}/tag/{tag}
GET    /api/{type}s/{repo_id}/refs
GET    /api/{type}s/{repo_id}/commits/{rev}
GET    /api/spaces/{repo_id}/runtime
HEAD   /[spaces/|datasets/]{repo_id}/resolve/{rev}/{path}   GET (with Range)
"""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def git_blob_oid(data: bytes) -> str:
    """The git object id of a file's bytes: what the Hub reports as a regular file's oid/ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    files: dict[str, bytes]
    date: str
    author: str


@dataclass
class Repo:
    """One repository: every commit keeps a full snapshot, so any revision resolves."""

    repo_type: str
    repo_id: str
    private: bool = False
    sdk: str | None = None
    created: str = field(default_factory=_now)
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        return self.repo_id.split("/")[0]

    def head(self) -> Commit:
        return self.commits[self.branches["main"]]

    def resolve(self, revision: str) -> Commit | None:
        """A branch, a tag, a full commit sha or a unique prefix of at least 7 characters."""
        oid = self.branches.get(revision) or self.tags.get(revision)
        if oid is None and revision.startswith("refs/heads/"):
            oid = self.branches.get(revision[len("refs/heads/") :])
        if oid is None and revision.startswith("refs/tags/"):
            oid = self.tags.get(revision[len("refs/tags/") :])
        if oid is None and len(revision) >= 7:
            matches = [c for c in self.commits if c.startswith(revision.lower())]
            oid = matches[0] if len(matches) == 1 else None
        return self.commits.get(oid) if oid else None

    def files(self, revision: str = "main") -> dict[str, bytes]:
        """The files as of ``revision`` (empty when it does not resolve)."""
        commit = self.resolve(revision)
        return dict(commit.files) if commit else {}

    def add_commit(self, files: dict[str, bytes], title: str, message: str, author: str) -> Commit:
        parent = self.branches.get("main")
        digest = hashlib.sha1()
        for part in (parent or "", title, message, author, repr(time.time_ns())):
            digest.update(part.encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + git_blob_oid(files[path]).encode())
        commit = Commit(digest.hexdigest(), parent, title, message, files, _now(), author)
        self.commits[commit.oid] = commit
        self.branches["main"] = commit.oid
        return commit


class HubError(Exception):
    """An HTTP error answered the way the Hub does (status, X-Error-Code, X-Error-Message)."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _not_found(repo_type: str, repo_id: str) -> HubError:
    return HubError(404, f"{repo_type.capitalize()} {repo_id} not found", "RepoNotFound")


class _Handler(BaseHTTPRequestHandler):
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

    # -- routing --------------------------------------------------------------------------
    def _route(self, method: str, seg: list[str], query: dict[str, list[str]]) -> int | None:
        if seg[:1] == ["api"]:
            rest = seg[1:]
            if rest == ["whoami-v2"] and method == "GET":
                return self._whoami()
            if rest == ["repos", "create"] and method == "POST":
                return self._create_repo()
            if rest == ["repos", "delete"] and method == "DELETE":
                return self._delete_repo()
            if rest == ["validate-yaml"] and method == "POST":
                return self._validate_yaml()
            if len(rest) >= 3 and rest[0] in REPO_TYPES:
                repo_type = REPO_TYPES[rest[0]]
                repo_id = f"{rest[1]}/{rest[2]}"
                return self._repo_api(method, repo_type, repo_id, rest[3:], query)
        else:
            repo_type = "model"
            if seg[:1] in (["spaces"], ["datasets"]):
                repo_type = REPO_TYPES[seg[0]]
                seg = seg[1:]
            if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
                return self._resolve(repo_type, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
        self.server.hub.unknown.append((method, urlsplit(self.path).path))
        raise HubError(404, f"test server: no route for {method} {urlsplit(self.path).path}")

    def _repo_api(
        self, method: str, repo_type: str, repo_id: str, action: list[str], query: dict
    ) -> int | None:
        name = action[0] if action else ""
        arg = action[1] if len(action) > 1 else "main"
        if method == "GET" and name == "":
            return self._info(repo_type, repo_id, "main")
        if method == "GET" and name == "revision" and len(action) >= 2:
            return self._info(repo_type, repo_id, "/".join(action[1:]))
        if method == "GET" and name == "tree":
            prefix = "/".join(action[2:])
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return self._tree(repo_type, repo_id, arg, prefix, recursive)
        if method == "POST" and name == "paths-info":
            return self._paths_info(repo_type, repo_id, arg)
        if method == "POST" and name == "preupload":
            return self._preupload(repo_type, repo_id, arg)
        if method == "POST" and name == "commit":
            return self._create_commit(repo_type, repo_id, arg, query)
        if method == "POST" and name == "tag":
            return self._create_tag(repo_type, repo_id, arg)
        if method == "DELETE" and name == "tag" and len(action) >= 2:
            return self._delete_tag(repo_type, repo_id, action[1])
        if method == "GET" and name == "refs":
            return self._refs(repo_type, repo_id)
        if method == "GET" and name == "commits":
            return self._commits(repo_type, repo_id, arg)
        if method == "GET" and name == "runtime" and repo_type == "space":
            return self._runtime(repo_id)
        self.server.hub.unknown.append((method, urlsplit(self.path).path))
        raise HubError(404, f"test server: no route for {method} {urlsplit(self.path).path}")

    # -- handlers -------------------------------------------------------------------------
    def _whoami(self) -> None:
        user = self._user()
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        self._send_json(
            {
                "type": "user",
                "id": hashlib.sha1(user["name"].encode()).hexdigest()[:24],
                "name": user["name"],
                "fullname": user["name"],
                "email": None,
                "emailVerified": True,
                "isPro": False,
                "orgs": [{"name": org, "type": "org"} for org in user.get("orgs", ())],
                "auth": {
                    "type": "access_token",
                    "accessToken": {
                        "displayName": user.get("display_name", "course test token"),
                        "role": user["role"],
                        "createdAt": "2026-01-01T00:00:00.000Z",
                    },
                },
            }
        )

    def _create_repo(self) -> None:
        body = self._json_body()
        user = self._user()
        name = body.get("name") or ""
        namespace = body.get("organization") or (user["name"] if user else "")
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        self._can_write(namespace)
        if not name or "/" in name:
            raise HubError(400, f"Invalid repo name {name!r}")
        repo_id = f"{namespace}/{name}"
        url = f"{self.server.hub.url}/{URL_PREFIX[repo_type]}{repo_id}"
        hub = self.server.hub
        if (repo_type, repo_id) in hub.repos:
            error = f"You already created this {repo_type} repo"
            self._send(
                409,
                json.dumps({"error": error, "url": url}).encode(),
                headers={"X-Error-Message": error},
            )
            return 409
        if repo_type == "space" and not body.get("sdk"):
            raise HubError(400, "Spaces need an sdk (gradio, docker or static)")
        zero_gpu = body.get("hardware") == ZERO_GPU  # free accounts may host 2 of these
        if repo_type == "space" and hub.free_plan and body.get("sdk") in PAID_SDKS and not zero_gpu:
            raise HubError(402, PAID_SPACE_MESSAGE)
        private = bool(body.get("private")) or body.get("visibility") == "private"
        repo = Repo(repo_type, repo_id, private=private, sdk=body.get("sdk"))
        repo.add_commit({".gitattributes": GITATTRIBUTES}, "initial commit", "", namespace)
        hub.repos[(repo_type, repo_id)] = repo
        self._send_json({"url": url, "name": repo_id, "id": repo_id})
        return None

    def _delete_repo(self) -> None:
        body = self._json_body()
        user = self._user()
        namespace = body.get("organization") or (user["name"] if user else "")
        repo_type = body.get("type") or "model"
        repo = self._repo(repo_type, f"{namespace}/{body.get('name')}", write=True)
        del self.server.hub.repos[(repo.repo_type, repo.repo_id)]
        self._send_json({})

    def _validate_yaml(self) -> int | None:
        body = self._json_body()
        errors, warnings = validate_card_metadata(
            body.get("content", ""), body.get("repoType") or "model"
        )
        if errors:
            if "text/plain" in self.headers.get("Accept", ""):
                self._send(400, "\n".join(errors).encode(), "text/plain")
            else:
                payload = {"errors": [{"message": e} for e in errors], "warnings": []}
                self._send_json(payload, 400)
            return 400
        self._send_json({"errors": [], "warnings": [{"message": w} for w in warnings]})
        return None

    def _info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, revision)
        card = front_matter(commit.files.get("README.md", b"").decode("utf-8", "replace"))
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo.owner,
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(card.get("tags") or []),
            "cardData": card or None,
            "siblings": [
                {"rfilename": path, "size": len(data), "blobId": git_blob_oid(data)}
                for path, data in sorted(commit.files.items())
            ],
            "usedStorage": sum(len(d) for d in commit.files.values()),
        }
        if repo_type == "model":
            info["modelId"] = repo_id
            info["library_name"] = card.get("library_name")
            info["pipeline_tag"] = card.get("pipeline_tag")
            if card.get("model-index"):
                info["model-index"] = card["model-index"]
        if repo_type == "space":
            info["sdk"] = repo.sdk
            info["subdomain"] = repo_id.replace("/", "-").lower()
        self._send_json(info)

    @staticmethod
    def _entry(path: str, data: bytes) -> dict[str, Any]:
        return {"type": "file", "oid": git_blob_oid(data), "size": len(data), "path": path}

    def _tree(self, repo_type: str, repo_id: str, rev: str, prefix: str, recursive: bool) -> None:
        files = self._commit(self._repo(repo_type, repo_id), rev).files
        prefix = prefix.strip("/")
        base = f"{prefix}/" if prefix else ""
        if (
            prefix
            and prefix not in {p.rsplit("/", 1)[0] for p in files if "/" in p}
            and not any(p.startswith(base) for p in files)
        ):
            raise HubError(404, f"Entry not found: {prefix}", "EntryNotFound")
        entries: dict[str, dict[str, Any]] = {}
        for path, data in sorted(files.items()):
            if not path.startswith(base):
                continue
            rest = path[len(base) :]
            parts = rest.split("/")
            # Directories on the way down (all of them when recursive, the first level otherwise).
            for depth in range(1, len(parts)):
                folder = base + "/".join(parts[:depth])
                entries.setdefault(
                    folder, {"type": "directory", "oid": "0" * 40, "size": 0, "path": folder}
                )
                if not recursive:
                    break
            if recursive or len(parts) == 1:
                entries[path] = self._entry(path, data)
        self._send_json(list(entries.values()))

    def _paths_info(self, repo_type: str, repo_id: str, rev: str) -> None:
        files = self._commit(self._repo(repo_type, repo_id), rev).files
        raw = self._body().decode()
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            paths = json.loads(raw).get("paths", [])
        else:
            paths = parse_qs(raw).get("paths", [])
        out = []
        folders = {p.rsplit("/", 1)[0] for p in files if "/" in p}
        for path in paths:
            if path in files:
                out.append(self._entry(path, files[path]))
            elif path in folders:
                out.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": path})
        self._send_json(out)

    def _preupload(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        files = self._commit(repo, rev).files
        body = self._json_body()
        answer = []
        for item in body.get("files", []):
            entry = {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False}
            if item["path"] in files:  # lets the client skip files that did not change
                entry["oid"] = git_blob_oid(files[item["path"]])
            answer.append(entry)
        self._send_json({"files": answer, "commitOid": self._commit(repo, rev).oid})

    def _create_commit(self, repo_type: str, repo_id: str, rev: str, query: dict) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        user = self._user() or {"name": "?"}
        if query.get("create_pr", ["0"])[0] in ("1", "true"):
            raise HubError(400, "test server: pull requests are not supported")
        if rev not in repo.branches:
            raise HubError(
                404,
                f"Invalid rev id: {rev} (the test server has one branch, main)",
                "RevisionNotFound",
            )
        files = dict(repo.head().files)
        header: dict[str, Any] = {}
        for line in self._body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                header = value
                parent = value.get("parentCommit")
                if parent and parent != repo.branches[rev]:
                    raise HubError(
                        412, "A commit has happened since. Please refresh and try again."
                    )
            elif key == "file":
                content = value.get("content", "")
                data = (
                    base64.b64decode(content)
                    if value.get("encoding") == "base64"
                    else content.encode()
                )
                files[value["path"]] = data
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(404, f"File not found: {value['path']}", "EntryNotFound")
                files.pop(value["path"])
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(folder)]:
                    files.pop(path)
            elif key == "lfsFile":
                raise HubError(
                    400, "test server: LFS uploads are not supported (preupload answers regular)"
                )
            else:
                raise HubError(400, f"test server: unknown commit line {key!r}")
        readme = files.get("README.md")
        if readme is not None and readme != repo.head().files.get("README.md"):
            errors, _ = validate_card_metadata(readme.decode("utf-8", "replace"), repo_type)
            if errors:
                raise HubError(400, "Invalid metadata in README.md: " + "; ".join(errors))
        commit = repo.add_commit(
            files, header.get("summary", ""), header.get("description", ""), user["name"]
        )
        url = f"{self.server.hub.url}/{URL_PREFIX[repo_type]}{repo_id}/commit/{commit.oid}"
        self._send_json(
            {"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None}
        )

    def _create_tag(self, repo_type: str, repo_id: str, rev: str) -> int | None:
        repo = self._repo(repo_type, repo_id, write=True)
        commit = self._commit(repo, rev)
        tag = (self._json_body().get("tag") or "").strip()
        if not tag or " " in tag:
            raise HubError(400, f"Invalid tag name {tag!r}")
        if tag in repo.tags:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = commit.oid
        self._send_json({})
        return None

    def _delete_tag(self, repo_type: str, repo_id: str, tag: str) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        if repo.tags.pop(tag, None) is None:
            raise HubError(404, f"Invalid rev id: {tag}", "RevisionNotFound")
        self._send_json({})

    def _refs(self, repo_type: str, repo_id: str) -> None:
        repo = self._repo(repo_type, repo_id)

        def refs(kind: str, table: dict[str, str]) -> list[dict[str, str]]:
            return [
                {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": o} for n, o in table.items()
            ]

        self._send_json(
            {
                "branches": refs("heads", repo.branches),
                "tags": refs("tags", repo.tags),
                "converts": [],
            }
        )

    def _commits(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit: Commit | None = self._commit(repo, rev)
        out = []
        while commit is not None:
            out.append(
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": commit.message,
                    "authors": [{"user": commit.author}],
                    "date": commit.date,
                }
            )
            commit = repo.commits.get(commit.parent) if commit.parent else None
        self._send_json(out)

    def _runtime(self, repo_id: str) -> None:
        repo = self._repo("space", repo_id)
        stage = "RUNNING" if "app.py" in repo.head().files else "NO_APP_FILE"
        self._send_json(
            {
                "stage": stage,  # a test server runs nothing: RUNNING only means "has an app.py"
                "hardware": {"current": "cpu-basic", "requested": "cpu-basic"},
                "storage": None,
                "gcTimeout": 172800,
                "replicas": {"current": 1, "requested": 1},
                "sdk": repo.sdk,
            }
        )

    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, rev)
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        data = commit.files[path]
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{git_blob_oid(data)}"',
            "Accept-Ranges": "bytes",
        }
        status = 200
        byte_range = self.headers.get("Range", "")
        if byte_range.startswith("bytes=") and self.command == "GET":
            start_s, _, end_s = byte_range[len("bytes=") :].partition("-")
            start = int(start_s or 0)
            end = int(end_s) if end_s else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(status, data, "application/octet-stream", headers)


def front_matter(text: str) -> dict[str, Any]:
    """The YAML metadata block at the top of a README (empty dict when there is none)."""
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    data = yaml.safe_load(text[3:end])
    return data if isinstance(data, dict) else {}


def validate_card_metadata(content: str, repo_type: str = "model") -> tuple[list[str], list[str]]:
    """(errors, warnings) of a few of the Hub's metadata checks.

    Errors: the YAML does not parse, lists are not lists, model-index is malformed.
    Warning: a Space README without ``sdk`` (the Hub shows a configuration error for it).
    """
    try:
        meta = front_matter(content)
    except yaml.YAMLError as error:
        return [f"YAML front matter does not parse: {error}"], []
    errors: list[str] = []
    warnings: list[str] = []
    for key in ("tags", "datasets", "metrics"):
        if key in meta and not isinstance(meta[key], (list, str)):
            errors.append(f'"{key}" must be a list of strings')
    if "license" in meta and not isinstance(meta["license"], str):
        errors.append('"license" must be a string')
    if repo_type == "space" and "sdk" not in meta:
        warnings.append('a Space README needs "sdk" in its metadata')
    for model in meta.get("model-index") or []:
        if not isinstance(model, dict) or "name" not in model:
            errors.append('"model-index" entries need a "name"')
            continue
        for result in model.get("results") or []:
            if not (result.get("task") or {}).get("type"):
                errors.append('"model-index" results need "task.type"')
            if not (result.get("dataset") or {}).get("type"):
                errors.append('"model-index" results need "dataset.type"')
            for metric in result.get("metrics") or []:
                if "type" not in metric or "value" not in metric:
                    errors.append('"model-index" metrics need "type" and "value"')
    return errors, warnings


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: HubTestServer


class HubTestServer:
    """An in-memory Hub on 127.0.0.1 with a free port; a context manager.

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
            self._httpd = _Server((self.host, self.port), _Handler)
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


def main() -> None:
    """Serve until Ctrl-C (for running a notebook against it by hand)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = HubTestServer(port=args.port).start()
    print(f"HF_ENDPOINT={server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
