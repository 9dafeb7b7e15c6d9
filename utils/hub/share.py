"""The notebook's one call: prepare the folder, push, tag, pull back, verify; one line says where.

Which Hub (:func:`choose_hub`): with a token and a Hub that answers within ``timeout`` s, that
Hub (huggingface.co, or the one ``HF_ENDPOINT`` names, e.g. the tests' local Hub). Otherwise
the same huggingface_hub calls go to a local test Hub started for this one call
(``local_server``: in memory, on 127.0.0.1, a daemon thread, stopped when the call returns)
with its fake token, so the lesson runs without an account or a network. ``local_fallback=False``
keeps the old behaviour: one sentence and what it would upload. It never waits on
huggingface_hub's retry loops, and never prints a token, an address's port or a machine path.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import artifacts_dir
from ..processing import InferenceConfig
from .auth import (
    _api,
    describe_token,
    endpoint_label,
    get_token,
    hub_reachable,
    offline_mode,
    whoami,
)
from .card import build_model_card
from .local_server import TEST_TOKEN, HubTestServer
from .plan import UPLOAD_DIR_NAME, describe_plan, prepare_upload_folder, upload_plan
from .pull import verify_roundtrip
from .push import PushResult, plan_version_tag, push_folder

if TYPE_CHECKING:
    from ..runtime import Predictor

DEFAULT_REPO_NAME = "microalgae-counter"


@dataclass
class ShareResult:
    pushed: bool
    reason: str  # "token" (a Hub that answered), "no token", "hub unreachable" or "offline mode"
    folder: Path
    plan: list[tuple[str, int]]
    push: PushResult | None = None
    verification: dict[str, Any] | None = None
    local: bool = False  # True: the round trip went to a local test Hub, gone after the call
    hub: str = ""  # the "Hub: ..." line that was printed


@dataclass(frozen=True)
class HubChoice:
    """Where a round trip goes: the Hub with the learner's token, or a local test Hub (or none)."""

    reason: str  # "token", "no token", "hub unreachable" or "offline mode"
    token: str | None
    local: bool  # True: start a local test Hub and use its fake token

    def line(self, endpoint: str | None = None) -> str:
        """The one ``Hub:`` line: which Hub, and why; never the token, never the port."""
        label = endpoint_label(endpoint)
        if not self.local:
            return f"Hub: {label}, with {describe_token(self.token)}."
        if self.reason == "no token":
            why, then = "no HF_TOKEN found", "when you have a token"
        else:
            why, then = f"{label} did not answer: no network?", "when it answers"
        return (
            f"Hub: a local test server on 127.0.0.1 ({why}); "
            f"the same calls go to {_public_name(label)} {then}."
        )


def _public_name(label: str) -> str:
    return "huggingface.co" if label == "the Hugging Face Hub" else label


def choose_hub(
    token: str | None,
    endpoint: str | None = None,
    timeout: float = 2.0,
    local_fallback: bool = True,
) -> HubChoice:
    """The learner's Hub when there is a token and it answers, else a local test Hub (or none).

    No token: no request to the real Hub at all. ``HF_HUB_OFFLINE``: none either, and no local
    Hub (huggingface_hub then refuses every request, even to 127.0.0.1).
    """
    if offline_mode():
        return HubChoice("offline mode", token, local=False)
    if not token:
        return HubChoice("no token", None, local=local_fallback)
    if not hub_reachable(endpoint, timeout=timeout):
        return HubChoice("hub unreachable", token, local=local_fallback)
    return HubChoice("token", token, local=False)


def _skipped(choice: HubChoice, endpoint: str | None, plan: list[tuple[str, int]]) -> str:
    """One sentence: why nothing was uploaded, and what would have been."""
    would = f"so nothing was uploaded; it would upload {describe_plan(plan)}."
    if choice.reason == "no token":
        return (
            f"No Hugging Face token found (set HF_TOKEN or a Colab secret named HF_TOKEN), {would}"
        )
    if choice.reason == "offline mode":
        return f"HF_HUB_OFFLINE is set: huggingface_hub sends no request, {would}"
    label = endpoint_label(endpoint)
    return f"{label[0].upper()}{label[1:]} cannot be reached from here (offline?), {would}"


@dataclass(frozen=True)
class _Target:
    """The Hub a round trip talks to: endpoint (None: ``HF_ENDPOINT``), token, download cache."""

    endpoint: str | None
    token: str
    cache_dir: str | None = None


def _open_target(choice: HubChoice, endpoint: str | None, stack: ExitStack) -> _Target | None:
    """The learner's Hub, a local test Hub started on ``stack`` (closed with it), or None."""
    if choice.local:
        server = stack.enter_context(HubTestServer())  # a daemon thread; stopped with the stack
        cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="local_hub_"))
        return _Target(server.url, TEST_TOKEN, cache)  # its fake repos stay out of the HF cache
    if choice.reason == "token" and choice.token:
        return _Target(endpoint, choice.token)
    return None


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
    local_fallback: bool = True,
) -> ShareResult:
    """Prepare the folder, push it with a ``vN`` tag, pull ``model.onnx`` back at the tag, verify.

    Prints the ``Hub:`` line first. Without a token or a Hub that answers, the round trip runs
    against a local test Hub (``local_fallback=True``); else it prints one sentence and returns.
    """
    out = Path(out_dir) if out_dir is not None else artifacts_dir() / UPLOAD_DIR_NAME
    choice = choose_hub(token or get_token(), endpoint, timeout, local_fallback)
    with ExitStack() as stack:
        target = _open_target(choice, endpoint, stack)
        line = choice.line(endpoint) if target else ""  # the asked Hub, not the local one
        if line:
            print(line)
        user = whoami(target.token, target.endpoint)["name"] if target else None
        repo_id = repo_name if "/" in repo_name or user is None else f"{user}/{repo_name}"

        def card(revision: str) -> Any:
            return build_model_card(config, metrics, repo_id, training=training, revision=revision)

        folder = prepare_upload_folder(
            out, onnx_path, checkpoint_path, card(tag if tag != "auto" else "main"), config, metrics
        )
        plan = upload_plan(folder)
        if target is None:
            print(_skipped(choice, endpoint, plan))
            return ShareResult(False, choice.reason, folder, plan)
        if tag == "auto":  # pick vN before the upload, so the card's snippet can pin it
            tag = plan_version_tag(_api(target.token, target.endpoint), repo_id, folder, card)
        push = push_folder(
            folder, repo_id, token=target.token, private=private, tag=tag, endpoint=target.endpoint
        )
        where = "the local test server" if choice.local else endpoint_label(target.endpoint)
        print(
            f"Pushed {len(plan)} files to {push.repo_id} on {where}: "
            f"commit {push.commit_sha[:7]}, tag {push.tag}."
        )
        result = ShareResult(True, choice.reason, folder, plan, push, local=choice.local, hub=line)
        if local_predictor is not None and images:
            result.verification = _verify(push, target, local_predictor, images, onnx_path)
        return result


def _verify(
    push: PushResult,
    target: _Target,
    local_predictor: Predictor,
    images: Sequence[Any],
    onnx_path: str | Path,
) -> dict[str, Any]:
    """Pull the model back at the tag, count with it, print one line."""
    check = verify_roundtrip(
        push.repo_id,
        push.revision,
        local_predictor,
        images,
        local_onnx=onnx_path,
        token=target.token,
        endpoint=target.endpoint,
        cache_dir=target.cache_dir,
    )
    same = "the same" if check["counts_identical"] else "DIFFERENT"
    print(
        f"Pulled model.onnx back at {push.revision}: {same} counts on {check['images']} images "
        f"({check['remote_counts']}), bytes identical: {check.get('bytes_identical')}."
    )
    return check
