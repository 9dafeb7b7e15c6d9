"""Pull a pinned file back and check that the downloaded model counts like the local one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .auth import _friendly, get_token, hub_endpoint
from .plan import sha256_file

if TYPE_CHECKING:
    from ..runtime import Predictor


def pull_model(
    repo_id: str,
    revision: str,
    filename: str = "model.onnx",
    repo_type: str = "model",
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """``hf_hub_download`` of one file pinned to ``revision`` (a tag or a commit sha)."""
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(
            repo_id,
            filename,
            repo_type=repo_type,
            revision=revision,
            token=token or get_token(),
            endpoint=hub_endpoint(endpoint),
            cache_dir=cache_dir,
        )
    except Exception as error:
        raise _friendly(error, repo_id) from None
    return Path(path)


def verify_roundtrip(
    repo_id: str,
    revision: str,
    local_predictor: Predictor,
    images: Sequence[Any],
    local_onnx: str | Path | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Download the ONNX model at ``revision``, count cells with it, compare with the local counts.

    ``cache_dir``: where the download goes (default: huggingface_hub's cache); a local test Hub
    passes a temporary folder, so its fake repos never land in the learner's cache.
    """
    path = pull_model(repo_id, revision, token=token, endpoint=endpoint, cache_dir=cache_dir)
    from ..loading import load_predictor

    remote = load_predictor(path)
    local_counts = [local_predictor.predict(image).count for image in images]
    remote_counts = [remote.predict(image).count for image in images]
    result: dict[str, Any] = {
        "repo_id": repo_id,
        "revision": revision,
        "images": len(images),
        "local_counts": local_counts,
        "remote_counts": remote_counts,
        "counts_identical": local_counts == remote_counts,
        "downloaded_sha256": sha256_file(path),
    }
    if local_onnx is not None:
        result["bytes_identical"] = sha256_file(local_onnx) == result["downloaded_sha256"]
    return result
