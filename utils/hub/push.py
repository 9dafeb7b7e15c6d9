"""The versioned push: create_repo + upload_folder (allow-list) + a ``vN`` tag that never moves."""

from __future__ import annotations

import glob
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import atomicio
from ..config import display_path
from .auth import (
    MISSING_TOKEN_HELP,
    HubSetupError,
    MissingTokenError,
    TagExistsError,
    TokenPermissionError,
    _api,
    _friendly,
    get_token,
    whoami,
)
from .plan import (
    ALLOW_PATTERNS,
    IGNORE_PATTERNS,
    SPACE_ALLOW_PATTERNS,
    describe_skipped,
    sha256_file,
    skipped_credentials,
    upload_plan,
)

if TYPE_CHECKING:
    from huggingface_hub import HfApi


@dataclass
class PushResult:
    repo_id: str
    repo_type: str
    commit_sha: str
    revision: str  # the tag if one was set, else the commit sha: what to pin downloads to
    tag: str | None
    url: str
    files: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        pinned = (
            f"tag {self.tag} -> commit {self.commit_sha[:7]}"
            if self.tag
            else f"commit {self.commit_sha[:7]}"
        )
        return f"{self.repo_type} {self.repo_id} ({pinned}): {', '.join(self.files)}"


def _tag_names(api: HfApi, repo_id: str, repo_type: str) -> dict[str, str]:
    refs = api.list_repo_refs(repo_id, repo_type=repo_type)
    return {t.name: t.target_commit for t in refs.tags}


def git_blob_oid(path: str | Path) -> str:
    """The git object id of a file (what the Hub reports for a file that is not in LFS)."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def same_as_remote(
    api: HfApi, repo_id: str, folder: Path, revision: str, repo_type: str = "model"
) -> bool:
    """True if every file ``push_folder`` would upload is already at ``revision``, byte for byte."""
    remote = {}
    for entry in api.list_repo_tree(
        repo_id, revision=revision, repo_type=repo_type, recursive=True
    ):
        if getattr(entry, "blob_id", None) is not None:
            lfs = getattr(entry, "lfs", None)
            remote[entry.path] = (entry.blob_id, lfs.sha256 if lfs else None)
    for path, _ in upload_plan(folder):
        if path not in remote:
            return False
        blob_id, lfs_sha = remote[path]
        local = folder / path
        if blob_id != git_blob_oid(local) and lfs_sha != sha256_file(local):
            return False
    return True


def plan_version_tag(api: HfApi, repo_id: str, folder: Path, make_card: Any) -> str:
    """The ``vN`` tag this upload will get, with README.md rendered for it.

    An unchanged model keeps the tag of the commit it is already at (re-running the
    notebook creates no commit and no tag); a changed one gets the next ``vN``.
    """
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        refs = api.list_repo_refs(repo_id)
    except RepositoryNotFoundError:
        refs = None
    tags = {t.name: t.target_commit for t in refs.tags} if refs else {}
    head = (
        next((b.target_commit for b in refs.branches if b.name == "main"), None) if refs else None
    )
    versions = {name: int(name[1:]) for name in tags if re.fullmatch(r"v\d+", name)}
    for name in sorted(versions, key=versions.get, reverse=True):
        if tags[name] == head:
            atomicio.write_text(folder / "README.md", str(make_card(name)))
            if same_as_remote(api, repo_id, folder, head):
                return name
            break
    name = f"v{max(versions.values(), default=0) + 1}"
    atomicio.write_text(folder / "README.md", str(make_card(name)))
    return name


def next_version_tag(existing: Mapping[str, str], commit: str) -> str:
    """Reuse the ``vN`` tag that already points at ``commit``; else the next free ``vN``."""
    versions = {name: int(name[1:]) for name in existing if re.fullmatch(r"v\d+", name)}
    for name in sorted(versions, key=versions.__getitem__):
        if existing[name] == commit:
            return name
    return f"v{max(versions.values(), default=0) + 1}"


def push_folder(
    folder: str | Path,
    repo_id: str,
    repo_type: str = "model",
    token: str | None = None,
    private: bool = False,
    tag: str | None = None,
    space_sdk: str | None = None,
    commit_message: str = "Upload the microalgae counter (deploy-without-tears course)",
    allow_patterns: Sequence[str] | None = None,
    ignore_patterns: Sequence[str] | None = None,
    endpoint: str | None = None,
) -> PushResult:
    """create_repo(exist_ok) + upload_folder(allow-list) + create_tag; returns what was pushed.

    ``repo_id`` may omit the user ("name"): the Hub puts it in the token's namespace.
    ``tag="auto"`` picks ``v1``, ``v2``, ... (reusing the tag of an unchanged upload). An
    explicit tag that already points at another commit raises :class:`TagExistsError`.
    For a Space pass ``repo_type="space", space_sdk="gradio"``; the allow-list then
    defaults to ``SPACE_ALLOW_PATTERNS``.
    """
    token = token or get_token()
    if not token:
        raise MissingTokenError(MISSING_TOKEN_HELP)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{display_path(folder)} is not a folder: run prepare_upload_folder first"
        )
    if allow_patterns is None:
        allow_patterns = SPACE_ALLOW_PATTERNS if repo_type == "space" else ALLOW_PATTERNS
    ignore = list(IGNORE_PATTERNS if ignore_patterns is None else ignore_patterns)
    if repo_type == "space" and space_sdk is None:
        space_sdk = "gradio"
    skipped = skipped_credentials(folder, allow_patterns, ignore)
    if skipped:
        print(describe_skipped(skipped))
        ignore += [glob.escape(path) for path, _ in skipped]
    if not upload_plan(folder, allow_patterns, ignore):
        raise FileNotFoundError(
            f"nothing in {display_path(folder)} matches the allow-list {list(allow_patterns)}"
        )
    api = _api(token, endpoint)
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(repo_id if "/" in repo_id else f"user/{repo_id}")
        info = whoami(token, endpoint)
        if info["role"] == "read":
            raise TokenPermissionError(
                "this token is read-only: create a token with the 'write' role at "
                "https://huggingface.co/settings/tokens and set HF_TOKEN to it"
            )
        repo_url = api.create_repo(
            repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=space_sdk
        )
        repo_id = repo_url.repo_id
        commit = api.upload_folder(
            folder_path=folder,
            repo_id=repo_id,
            repo_type=repo_type,
            commit_message=commit_message,
            allow_patterns=list(allow_patterns),
            ignore_patterns=ignore,
        )
        sha = commit.oid
        if tag is not None:
            existing = _tag_names(api, repo_id, repo_type)
            if tag == "auto":
                tag = next_version_tag(existing, sha)
            if tag in existing and existing[tag] != sha:
                raise TagExistsError(
                    f"tag {tag!r} already points at commit {existing[tag][:7]} of {repo_id}: "
                    "tags should not move, pick a new one (or tag='auto' for the next vN)"
                )
            if tag not in existing:
                api.create_tag(repo_id, tag=tag, revision=sha, repo_type=repo_type)
        files = api.list_repo_files(repo_id, repo_type=repo_type, revision=sha)
    except HubSetupError:
        raise
    except Exception as error:
        raise _friendly(error, repo_id) from None
    return PushResult(
        repo_id=repo_id,
        repo_type=repo_type,
        commit_sha=sha,
        revision=tag or sha,
        tag=tag,
        url=str(repo_url),
        files=sorted(files),
    )
