"""The model handoff between notebooks when each one runs alone (a Colab badge: a fresh runtime).

Notebook 04 pushes the learner's model to ``<user>/microalgae-counter`` on the Hub. A notebook
opened later in a new Colab runtime has no ``artifacts/``: instead of quietly training a
fast-mode model, it downloads the learner's own model from that repo, and says so in one line.

The repo id comes from one setting, the environment variable ``COURSE_HUB_MODEL``:

* ``COURSE_HUB_MODEL=alice/microalgae-counter``: that repo (public: no token needed);
* unset: ``<the token's user>/microalgae-counter``, the repo notebook 04 pushes to by default
  (the token: ``HF_TOKEN`` or the Colab secret ``HF_TOKEN``, see ``utils.hub.get_token``);
* ``COURSE_HUB_MODEL=0`` (or ``off``): never download, always train.

    from utils import handoff
    handoff.fetch_own_model(checkpoint=config.checkpoint_path(), onnx=config.onnx_path())
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .config import display_path

REPO_ENV = "COURSE_HUB_MODEL"
DEFAULT_REPO_NAME = "microalgae-counter"  # what notebook 04 pushes to (utils.hub.DEFAULT_REPO_NAME)
OFF_VALUES = {"0", "off", "no", "false", "none"}
REMOTE_NAMES = {"checkpoint": "model.pt", "onnx": "model.onnx"}


class HandoffSetupError(ValueError):
    """``COURSE_HUB_MODEL`` holds something that is not a Hub repo id."""


@dataclass
class Handoff:
    """What :func:`fetch_own_model` did: ``repo_id`` (or None), files written, one-line ``message``."""

    repo_id: str | None
    message: str
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def checkpoint(self) -> Path | None:
        return self.files.get("checkpoint")

    @property
    def onnx(self) -> Path | None:
        return self.files.get("onnx")

    def __bool__(self) -> bool:
        return bool(self.files)


def push_repo_name() -> str:
    """The repo notebook 04 pushes to: ``COURSE_HUB_MODEL`` if set (and not off), else the default.

    A bare name gets the token's user in front (``hub.share_model``), so push and pull agree.
    """
    value = os.environ.get(REPO_ENV, "").strip()
    return DEFAULT_REPO_NAME if not value or value.lower() in OFF_VALUES else value


def own_repo_id(token: str | None = None, endpoint: str | None = None) -> tuple[str | None, str]:
    """The learner's model repo and where the id came from, or (None, why there is none)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    value = os.environ.get(REPO_ENV, "").strip()
    if value.lower() in OFF_VALUES:
        return None, f"{REPO_ENV}={value} turns the Hub handoff off"
    if "/" in value:
        try:
            validate_repo_id(value)
        except HFValidationError:
            raise HandoffSetupError(
                f"{REPO_ENV}={value!r} is not a Hub repo id: set it to <your-name>/{DEFAULT_REPO_NAME}"
                f" (or unset it to use your token's account)."
            ) from None
        return value, f"{REPO_ENV}"
    if not token:
        return None, f"no {REPO_ENV}=<your-name>/{DEFAULT_REPO_NAME} and no Hub token"
    from . import hub

    try:
        user = hub.whoami(token, endpoint)["name"]
    except Exception as error:  # a bad token or no network: train instead, and say why
        return None, f"the Hub did not say whose token this is ({type(error).__name__})"
    return f"{user}/{value or DEFAULT_REPO_NAME}", "your Hub token's account"


def _copy_into_place(source: str | Path, target: Path) -> Path:
    """Copy from the Hub cache to ``target`` through a temp file, so a stopped copy leaves none."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def fetch_own_model(
    checkpoint: str | Path | None = None,
    onnx: str | Path | None = None,
    *,
    revision: str = "main",
    token: str | None = None,
    endpoint: str | None = None,
    verbose: bool = True,
) -> Handoff:
    """Download ``model.pt`` / ``model.onnx`` of the learner's repo to the given missing paths.

    Only paths that are given and do not exist are filled. Returns a falsy :class:`Handoff`
    when there is nothing to fetch from (no setting, no token, no repo, no such file, offline);
    the caller then trains in fast mode. Prints one line saying which (``verbose``).
    The checkpoint is written before the ONNX file, so ``ensure_onnx`` sees the ONNX file as
    up to date and does not export it again.
    """

    wanted = {
        kind: Path(path)
        for kind, path in (("checkpoint", checkpoint), ("onnx", onnx))
        if path is not None and not Path(path).exists()
    }
    if not wanted:
        return Handoff(None, "nothing to fetch: the files are already here")
    from . import hub

    token = token or hub.get_token()
    repo_id, source = own_repo_id(token, endpoint)
    result = Handoff(repo_id, "")
    if repo_id is None:
        result.message = f"No model of yours from the Hub ({source}): training one in fast mode."
    elif not hub.hub_reachable(endpoint):
        result.message = (
            f"The Hub ({hub.endpoint_label(endpoint)}) is not reachable: training a fast-mode "
            f"model instead of downloading {repo_id}."
        )
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

        missing = []
        for kind in ("checkpoint", "onnx"):
            if kind not in wanted:
                continue
            try:
                cached = hf_hub_download(
                    repo_id,
                    REMOTE_NAMES[kind],
                    revision=revision,
                    token=token,
                    endpoint=hub.hub_endpoint(endpoint),
                )
            except EntryNotFoundError:
                missing.append(REMOTE_NAMES[kind])
                continue
            except HfHubHTTPError as error:  # no such repo (404), private (401/403), ...
                status = getattr(getattr(error, "response", None), "status_code", None)
                result.message = (
                    f"No model found at {repo_id} (Hub answer {status}; source: {source}; "
                    "notebook 04 pushes one): training one in fast mode."
                )
                return _say(result, verbose)
            result.files[kind] = _copy_into_place(cached, wanted[kind])
        if result.files:
            names = ", ".join(display_path(p) for p in result.files.values())
            extra = f" ({', '.join(missing)} not in the repo)" if missing else ""
            result.message = f"Using your model from the Hub: {repo_id}@{revision} -> {names}{extra}."
        else:
            result.message = (
                f"{repo_id} has no {' or '.join(missing)}: training one in fast mode."
            )
    return _say(result, verbose)


def _say(result: Handoff, verbose: bool) -> Handoff:
    if verbose:
        print(result.message)
    return result
