"""The notebook's one call: prepare, and with a token and a reachable Hub push, tag, pull, verify.

Offline: with no token, or when the Hub does not answer within a couple of seconds,
:func:`share_model` says so in one sentence and lists what it would upload; it never waits
on huggingface_hub's retry loops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import artifacts_dir
from ..processing import InferenceConfig
from .auth import _api, endpoint_label, get_token, hub_reachable, whoami
from .card import build_model_card
from .plan import UPLOAD_DIR_NAME, describe_plan, prepare_upload_folder, upload_plan
from .pull import verify_roundtrip
from .push import PushResult, plan_version_tag, push_folder

if TYPE_CHECKING:
    from ..runtime import Predictor

DEFAULT_REPO_NAME = "microalgae-counter"


@dataclass
class ShareResult:
    pushed: bool
    reason: str  # "pushed", "no token" or "hub unreachable"
    folder: Path
    plan: list[tuple[str, int]]
    push: PushResult | None = None
    verification: dict[str, Any] | None = None


def share_model(
    onnx_path: str | Path,
    config: InferenceConfig,
    metrics: Mapping[str, Any],
    checkpoint_path: str | Path | None = None,
    repo_name: str = DEFAULT_REPO_NAME,
    tag: str = "auto",
    images: Sequence[Any] = (),
    local_predictor: Predictor | None = None,
    training: Mapping[str, Any] | None = None,
    token: str | None = None,
    private: bool = False,
    out_dir: str | Path | None = None,
    endpoint: str | None = None,
    timeout: float = 2.0,
) -> ShareResult:
    """Prepare the folder; with a token and a reachable Hub: push, tag, pull back, verify counts.

    Without a token or a Hub it prints one sentence (and what it would upload) and returns.
    """
    out = Path(out_dir) if out_dir is not None else artifacts_dir() / UPLOAD_DIR_NAME
    token = token or get_token()
    reachable = bool(token) and hub_reachable(endpoint, timeout=timeout)
    user = None
    if token and reachable:
        user = whoami(token, endpoint)["name"]
    repo_id = repo_name if "/" in repo_name or user is None else f"{user}/{repo_name}"
    card = build_model_card(
        config, metrics, repo_id, training=training, revision=tag if tag != "auto" else "main"
    )
    folder = prepare_upload_folder(out, onnx_path, checkpoint_path, card, config, metrics)
    plan = upload_plan(folder)
    if not token:
        print(
            "No Hugging Face token found (set HF_TOKEN or a Colab secret named HF_TOKEN), "
            f"so nothing was uploaded; it would upload {describe_plan(plan)}."
        )
        return ShareResult(False, "no token", folder, plan)
    if not reachable:
        label = endpoint_label(endpoint)
        print(
            f"{label[0].upper()}{label[1:]} cannot be reached from here (offline?), "
            f"so nothing was uploaded; it would upload {describe_plan(plan)}."
        )
        return ShareResult(False, "hub unreachable", folder, plan)
    where = endpoint_label(endpoint)
    if tag == "auto":  # pick vN before the upload, so the card's snippet can pin it
        tag = plan_version_tag(
            _api(token, endpoint),
            repo_id,
            folder,
            lambda t: build_model_card(config, metrics, repo_id, training=training, revision=t),
        )
    push = push_folder(folder, repo_id, token=token, private=private, tag=tag, endpoint=endpoint)
    print(
        f"Pushed {len(plan)} files to {push.repo_id} on {where}: commit {push.commit_sha[:7]}, tag {push.tag}."
    )
    verification = None
    if local_predictor is not None and images:
        verification = verify_roundtrip(
            push.repo_id,
            push.revision,
            local_predictor,
            images,
            local_onnx=onnx_path,
            token=token,
            endpoint=endpoint,
        )
        same = "the same" if verification["counts_identical"] else "DIFFERENT"
        print(
            f"Pulled model.onnx back at {push.revision}: {same} counts on {verification['images']} images "
            f"({verification['remote_counts']}), bytes identical: {verification.get('bytes_identical')}."
        )
    return ShareResult(True, "pushed", folder, plan, push, verification)
