"""The local Hub's data: repositories as full snapshots per commit, tokens, the Hub's errors.

In memory only: nothing is written to disk, and everything is gone when the server stops.
Standard library only (plus PyYAML, which huggingface_hub itself requires, for the model
card's front matter), so a learner in Colab has it with the course.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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


def front_matter(text: str) -> dict[str, Any]:
    """The YAML metadata block at the top of a README (empty dict when there is none)."""
    import yaml  # huggingface_hub's own dependency; imported here, only when a card arrives

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
    import yaml

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

