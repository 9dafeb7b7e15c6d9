"""Pushing a Space folder, and what a free account hears (HTTP 402)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import display_path
from .gradio_space import ZERO_GPU


class PaidSpaceError(ValueError):
    """The Hub answered 402: this account may not host a Gradio/Docker Space on free CPU."""


def paid_space_message(repo_id: str) -> str:
    """One sentence with the three ways out (402 Payment Required)."""
    return (
        f"The Hub refused to create the Gradio Space {repo_id} (HTTP 402): since July 2026 "
        "free accounts can no longer host Gradio or Docker Spaces on free CPU, so either "
        "subscribe to PRO (https://huggingface.co/pro), or run it on ZeroGPU (free accounts "
        "may host 2; `write_space(..., zerogpu=True)` adds the no-op `@spaces.GPU` function "
        "ZeroGPU needs), or publish the free static Space that counts in the "
        "visitor's browser: `python -m utils.space --sdk static` (notebook 08)."
    )


def _card(folder: str | Path) -> dict[str, Any]:
    from huggingface_hub import metadata_load

    card = Path(folder) / "README.md"
    return (metadata_load(card) or {}) if card.is_file() else {}


def space_sdk(folder: str | Path) -> str:
    """The ``sdk`` in a Space folder's card (``gradio`` or ``static``)."""
    card = Path(folder) / "README.md"
    sdk = _card(folder).get("sdk")
    if sdk not in ("gradio", "static"):
        raise ValueError(
            f"{display_path(card)} has no `sdk: gradio` or `sdk: static` in its front matter: "
            "write the folder with write_space or write_static_space"
        )
    return sdk


def push_space(
    folder: str | Path,
    repo_id: str,
    token: str | None = None,
    tag: str | None = None,
    sdk: str | None = None,
):
    """Upload a Space folder with ``utils.hub.push_folder`` and its allow-list; a PushResult.

    ``sdk`` defaults to the card's. A card with ``suggested_hardware: zero-a10g`` (written by
    ``write_space(zerogpu=True)``) creates the Space on ZeroGPU. A 402 (Gradio on a free
    account) becomes :class:`PaidSpaceError`, whose message lists PRO, ZeroGPU and static.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from ..hub import (
        SPACE_ALLOW_PATTERNS,
        STATIC_SPACE_ALLOW_PATTERNS,
        get_token,
        hub_endpoint,
        push_folder,
    )

    sdk = sdk or space_sdk(folder)
    allow = STATIC_SPACE_ALLOW_PATTERNS if sdk == "static" else SPACE_ALLOW_PATTERNS
    try:
        if sdk == "gradio" and _card(folder).get("suggested_hardware") == ZERO_GPU:
            api = HfApi(endpoint=hub_endpoint(), token=token or get_token())
            api.create_repo(
                repo_id, repo_type="space", space_sdk=sdk, space_hardware=ZERO_GPU, exist_ok=True
            )
        return push_folder(
            folder,
            repo_id,
            repo_type="space",
            space_sdk=sdk,
            token=token,
            tag=tag,
            allow_patterns=allow,
        )
    except HfHubHTTPError as error:
        if error.response is not None and error.response.status_code == 402:
            raise PaidSpaceError(paid_space_message(repo_id)) from None
        raise
