"""The local Hub itself (utils/hub/local_server), driven by huggingface_hub's HfApi."""

from __future__ import annotations

import uuid

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from utils.hub.local_server import TEST_TOKEN, TEST_USER, HubTestServer


def new_repo(api: HfApi, **kwargs) -> str:
    return api.create_repo(f"{TEST_USER}/srv-{uuid.uuid4().hex[:8]}", **kwargs).repo_id


def test_commits_tags_and_history():
    api = HfApi(token=TEST_TOKEN)
    repo = new_repo(api)
    first = api.create_commit(
        repo,
        [
            CommitOperationAdd("a.txt", b"one"),
            CommitOperationAdd("dir/b.txt", b"bee"),
            CommitOperationAdd("dir/sub/c.txt", b"sea"),
        ],
        commit_message="first",
    ).oid
    api.create_tag(repo, tag="v1", revision=first)
    second = api.create_commit(
        repo,
        [CommitOperationAdd("a.txt", b"two"), CommitOperationDelete("dir/")],
        commit_message="second",
    ).oid
    assert api.list_repo_files(repo) == [".gitattributes", "a.txt"]
    assert sorted(api.list_repo_files(repo, revision="v1")) == [
        ".gitattributes",
        "a.txt",
        "dir/b.txt",
        "dir/sub/c.txt",
    ]
    top = {e.path for e in api.list_repo_tree(repo, revision="v1")}
    assert top == {".gitattributes", "a.txt", "dir"}
    assert [e.path for e in api.get_paths_info(repo, ["a.txt", "nope"], revision=first[:7])] == [
        "a.txt"
    ]
    assert [c.title for c in api.list_repo_commits(repo)] == ["second", "first", "initial commit"]
    assert api.model_info(repo).sha == second
    assert hf_hub_download(repo, "a.txt", revision="v1", force_download=True)
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo, revision="v9")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "missing.txt")
    with pytest.raises(HfHubHTTPError) as info:  # tags do not move
        api.create_tag(repo, tag="v1", revision=second)
    assert info.value.response.status_code == 409
    api.delete_tag(repo, tag="v1")
    assert api.list_repo_refs(repo).tags == []


def test_private_repos_and_anonymous_writes(hub_server):
    api = HfApi(token=TEST_TOKEN)
    repo = new_repo(api, private=True)
    assert hub_server.repo(repo).private
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info(repo, token=False)
    public = new_repo(api)
    with pytest.raises(HfHubHTTPError) as info:
        HfApi().create_commit(
            public, [CommitOperationAdd("x", b"x")], commit_message="anon", token=False
        )
    assert info.value.response.status_code == 401


def test_resolve_headers_and_ranges(hub_server):
    api = HfApi(token=TEST_TOKEN)
    repo = new_repo(api)
    sha = api.create_commit(
        repo, [CommitOperationAdd("f.bin", b"0123456789")], commit_message="f"
    ).oid
    url = f"{hub_server.url}/{repo}/resolve/main/f.bin"
    head = httpx.head(url)
    assert head.headers["X-Repo-Commit"] == sha
    assert head.headers["Content-Length"] == "10" and head.headers["ETag"].startswith('"')
    part = httpx.get(url, headers={"Range": "bytes=2-4"})
    assert part.status_code == 206 and part.content == b"234"


def test_unknown_routes_are_logged_and_answered_404():
    with HubTestServer() as server:
        response = httpx.get(f"{server.url}/api/not-a-route")
        assert response.status_code == 404
        assert server.unknown == [("GET", "/api/not-a-route")]
