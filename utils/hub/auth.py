"""Tokens, the endpoint and the Hub's errors in words the learner can act on.

Tokens: ``HF_TOKEN`` in the environment, else a Colab secret named ``HF_TOKEN``, else the
token that ``hf auth login`` / ``notebook_login()`` stored. A token is never printed, logged
or written into a file here; :func:`describe_token` gives a masked description.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from huggingface_hub import HfApi

TOKEN_ENV = "HF_TOKEN"
PUBLIC_ENDPOINT = "https://huggingface.co"


# -- errors ---------------------------------------------------------------------------------
class HubSetupError(ValueError):
    """Something the learner can fix (token, repo name, tag); the message says how."""


class MissingTokenError(HubSetupError):
    pass


class TokenRejectedError(HubSetupError):
    pass


class TokenPermissionError(HubSetupError):
    pass


class InvalidRepoIdError(HubSetupError):
    pass


class TagExistsError(HubSetupError):
    pass


MISSING_TOKEN_HELP = (
    "no Hugging Face token found: create a write token at https://huggingface.co/settings/tokens, "
    "then set it as the HF_TOKEN environment variable, or in Colab add it as a secret named "
    "HF_TOKEN (key icon in the left bar), or run huggingface_hub.notebook_login() in a notebook"
)


# -- tokens and endpoint --------------------------------------------------------------------
def token_and_source() -> tuple[str | None, str]:
    """(token, where it came from); (None, "none") when there is none. Never print the token."""
    token = (os.environ.get(TOKEN_ENV) or "").strip()
    if token:
        return token, f"the {TOKEN_ENV} environment variable"
    try:  # Colab secrets: only inside Colab, and only if the learner granted access
        from google.colab import userdata  # type: ignore[import-not-found]

        token = (userdata.get(TOKEN_ENV) or "").strip()
        if token:
            return token, f"the Colab secret {TOKEN_ENV}"
    except Exception:  # not Colab, secret missing, or access not granted
        pass
    try:
        from huggingface_hub import get_token as stored_token

        token = (stored_token() or "").strip()
        if token:
            return token, "huggingface_hub's login (hf auth login / notebook_login)"
    except Exception:
        pass
    return None, "none"


def get_token() -> str | None:
    """``HF_TOKEN`` env, else Colab secret ``HF_TOKEN``, else huggingface_hub's stored token."""
    return token_and_source()[0]


def describe_token(token: str | None) -> str:
    """A masked description that is safe to print: 'a token (hf_****)' or 'no token'."""
    if not token:
        return "no token"
    prefix = "hf_" if token.startswith("hf_") else ""
    return f"a token ({prefix}****)"


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub URL in use: ``endpoint``, else what huggingface_hub read from ``HF_ENDPOINT``."""
    if endpoint:
        return endpoint.rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def endpoint_label(endpoint: str | None = None) -> str:
    """Words for the endpoint, without its port (it changes from run to run).

    ``endpoint=None`` is the one huggingface_hub read from ``HF_ENDPOINT`` (the tests' local Hub);
    an explicit local URL is a local test server started by the caller (``share_model``).
    """
    url = hub_endpoint(endpoint)
    host = urlsplit(url).hostname or ""
    if url == PUBLIC_ENDPOINT or host == "huggingface.co":
        return "the Hugging Face Hub"
    if host in ("127.0.0.1", "localhost", "::1"):
        return (
            "a local test server (HF_ENDPOINT)"
            if endpoint is None
            else f"a local test server on {host}"
        )
    return "the Hub at HF_ENDPOINT" if endpoint is None else "the Hub at the given endpoint"


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` is on: huggingface_hub then sends no request at all, even to 127.0.0.1."""
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return flag or bool(constants.HF_HUB_OFFLINE)


def hub_reachable(endpoint: str | None = None, timeout: float = 2.0) -> bool:
    """True if the Hub answers ``/api/whoami-v2`` (200, or 401 without a token) within ``timeout`` s.

    Other answers (a captive portal, a proxy's 404 or 502) count as unreachable.
    One request, no retries (huggingface_hub's own calls retry for ~20 s when offline), run
    in a daemon thread so that even a hanging DNS lookup cannot hold the notebook longer.
    """
    if offline_mode():
        return False
    import threading

    import httpx

    url = f"{hub_endpoint(endpoint)}/api/whoami-v2"
    answered: list[bool] = []

    def probe() -> None:
        try:
            status = httpx.get(url, timeout=timeout).status_code
            answered.append(status in (200, 401))
        except Exception:
            pass

    thread = threading.Thread(target=probe, name="hub-reachable", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answered and answered[0])


def _api(token: str | None, endpoint: str | None = None) -> HfApi:
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint(endpoint), token=token)


def _friendly(error: Exception, repo_id: str | None = None) -> Exception:
    """huggingface_hub's errors -> a HubSetupError that says what to do (or the error itself)."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    if isinstance(error, HFValidationError):
        return InvalidRepoIdError(
            f"repo id {repo_id!r} is not valid: use 'name' or 'user/name' with letters, digits, "
            "'-', '_' or '.', at most 96 characters, no '--' or '..' ({})".format(
                str(error).splitlines()[0]
            )
        )
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        if status == 401:
            return TokenRejectedError(
                "the Hub rejected the token (401): it is unknown, revoked or mistyped; create a new "
                "write token at https://huggingface.co/settings/tokens and set HF_TOKEN again"
            )
        if status == 403:
            return TokenPermissionError(
                f"the token may not write to {repo_id or 'this repo'} (403): it needs the 'write' role "
                "(or a fine-grained token with write access to this namespace); create one at "
                "https://huggingface.co/settings/tokens"
            )
    return error


def whoami(token: str, endpoint: str | None = None) -> dict[str, Any]:
    """The token's user name and role: {'name': ..., 'role': 'write' | 'read' | 'fineGrained'}."""
    try:
        info = _api(token, endpoint).whoami(token=token)
    except Exception as error:
        raise _friendly(error) from None
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role", "unknown")
    return {"name": info.get("name"), "role": role}
