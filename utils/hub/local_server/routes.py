"""The Hub's HTTP calls that huggingface_hub (2.x) makes, answered from the in-memory store.

A create-repo -> upload -> tag -> download -> info round trip, plus what Spaces and the tests
need (see ``ROUTES``). Not the Hub: files are always uploaded "regular" (base64 inside the
commit, no LFS/Xet), there is one branch (``main``), no pull requests, no pagination, and a
Space never builds.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .handler import BaseHandler
from .store import (
    GITATTRIBUTES,
    PAID_SDKS,
    PAID_SPACE_MESSAGE,
    REPO_TYPES,
    URL_PREFIX,
    ZERO_GPU,
    Commit,
    HubError,
    Repo,
    front_matter,
    git_blob_oid,
    validate_card_metadata,
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



class HubHandler(BaseHandler):
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


