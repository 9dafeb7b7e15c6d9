"""Share the model on the Hugging Face Hub: model card, allow-listed upload, tag, pull back, verify.

    card = build_model_card(config, metrics, repo_id)          # YAML metadata + text, offline
    folder = prepare_upload_folder(out_dir, onnx, ckpt, card, config, metrics)
    result = push_folder(folder, repo_id, tag="v1")           # create repo, upload, tag
    path = pull_model(result.repo_id, result.revision)        # hf_hub_download, pinned
    share_model(...)                                          # all of it, for the notebook

Why an allow-list: ``upload_folder`` uploads *everything* in a folder by default, and a
folder that once held a ``.env`` or a token file leaks it for ever (a public repo keeps its
history). ``ALLOW_PATTERNS`` names what may go up, ``IGNORE_PATTERNS`` what never may.

Tokens: ``HF_TOKEN`` in the environment, else a Colab secret named ``HF_TOKEN``, else the
token that ``hf auth login`` / ``notebook_login()`` stored. A token is never printed, logged
or written into a file here; :func:`describe_token` gives a masked description.

Offline: with no token, or when the Hub does not answer within a couple of seconds,
:func:`share_model` says so in one sentence and lists what it would upload; it never waits
on huggingface_hub's retry loops. ``HF_ENDPOINT`` (read by huggingface_hub at import)
points everything at another server, e.g. the local test Hub of ``tests/hub_server.py``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import atomicio
from .config import artifacts_dir, display_path
from .processing import InferenceConfig

if TYPE_CHECKING:
    from huggingface_hub import HfApi, ModelCard

    from .runtime import Predictor

TOKEN_ENV = "HF_TOKEN"
PUBLIC_ENDPOINT = "https://huggingface.co"
DEFAULT_REPO_NAME = "microalgae-counter"
DATASET_ID = "microalgae-synthetic"  # the course's generated data; not a Hub dataset repo
UPLOAD_DIR_NAME = "hub_upload"

# What may be uploaded (fnmatch on the path inside the folder; "*" also crosses "/").
ALLOW_PATTERNS: list[str] = [
    "*.onnx",
    "*.pt",
    "*.json",
    "README.md",
    "examples/*.jpg",
    "examples/*.jpeg",
    "examples/*.png",
]
# What a Space folder (app + its code) may upload: the model's list plus code and requirements.
SPACE_ALLOW_PATTERNS: list[str] = [
    *ALLOW_PATTERNS,
    "*.py",
    "requirements.txt",
    "packages.txt",
    "*.css",
    "*.md",
    "*.yaml",
    "*.yml",
]
# What a static Space (the in-browser counter, notebook 08) may upload: the page, its JavaScript,
# onnxruntime-web's WASM runtime, the model and examples. No Python: a static Space runs none.
STATIC_SPACE_ALLOW_PATTERNS: list[str] = [
    *ALLOW_PATTERNS,
    "*.html",
    "*.js",
    "*.mjs",
    "*.wasm",
    "*.css",
]
# What is never uploaded, even when an allow pattern matches (case-sensitive, hence variants).
IGNORE_PATTERNS: list[str] = [
    ".env",
    ".env*",
    "*/.env*",
    "*.env",
    "*token*",
    "*Token*",
    "*TOKEN*",
    "*secret*",
    "*Secret*",
    "*SECRET*",
    "*.key",
    "*.pem",
    "*.ipynb_checkpoints*",
    "*__pycache__*",
    "*.pyc",
    ".git/*",
    ".cache/*",
    ".huggingface/*",
]

# Files that look like credentials are never uploaded, whatever the allow-list says: by name
# (case-insensitive: "*.json" would take a service_account.json) and by content.
CREDENTIAL_NAME_PATTERNS: list[str] = [
    "*credential*",
    "*service_account*",
    "*service-account*",
    "*client_secret*",
    "*secret*",
    "*token*",
    "*password*",
    "*api_key*",
    "*apikey*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*id_rsa*",
    "*id_ed25519*",
    "*.netrc",
    "*.pypirc",
    "*.npmrc",
    "*.env",
    ".env*",
]
# Token and key shapes: Hugging Face, GitHub, AWS, Slack, OpenAI-style keys, PEM private
# keys, Google service-account JSON.
TOKEN_PATTERN = re.compile(
    rb"hf_[A-Za-z0-9]{30,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    rb"|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{32,}"
    rb"|-----BEGIN [A-Z ]*PRIVATE KEY-----|\"type\"\s*:\s*\"service_account\""
)
BINARY_SUFFIXES = (".onnx", ".pt", ".bin", ".jpg", ".jpeg", ".png", ".safetensors")
SCAN_BYTES = 4_000_000  # text files are read this far for token shapes


def credential_reason(folder: str | Path, path: str) -> str | None:
    """Why ``path`` (inside ``folder``) looks like a credential, or None."""
    import fnmatch

    lowered = path.lower()
    name = lowered.rsplit("/", 1)[-1]
    if any(
        fnmatch.fnmatch(n, pattern) for pattern in CREDENTIAL_NAME_PATTERNS for n in (name, lowered)
    ):
        return "its name looks like a credential file"
    if lowered.endswith(BINARY_SUFFIXES):
        return None
    with open(Path(folder) / path, "rb") as handle:
        head = handle.read(SCAN_BYTES)
    if TOKEN_PATTERN.search(head):
        return "it contains what looks like a token or private key"
    return None


def credential_files(folder: str | Path, paths: Sequence[str]) -> list[tuple[str, str]]:
    """(path, reason) of the ``paths`` that must not go up."""
    found = [(p, credential_reason(folder, p)) for p in paths]
    return [(p, reason) for p, reason in found if reason]


def describe_skipped(skipped: Sequence[tuple[str, str]]) -> str:
    listed = "; ".join(f"{path} ({reason})" for path, reason in skipped)
    return f"Not uploading {len(skipped)} file(s) that look like credentials: {listed}."


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
    """Words for the endpoint, without its port or address (they change from run to run)."""
    url = hub_endpoint(endpoint)
    host = urlsplit(url).hostname or ""
    if url == PUBLIC_ENDPOINT or host == "huggingface.co":
        return "the Hugging Face Hub"
    if host in ("127.0.0.1", "localhost", "::1"):
        return "a local test server (HF_ENDPOINT)"
    return "the Hub at HF_ENDPOINT"


def hub_reachable(endpoint: str | None = None, timeout: float = 2.0) -> bool:
    """True if the Hub answers ``/api/whoami-v2`` (200, or 401 without a token) within ``timeout`` s.

    Other answers (a captive portal, a proxy's 404 or 502) count as unreachable.
    One request, no retries (huggingface_hub's own calls retry for ~20 s when offline), run
    in a daemon thread so that even a hanging DNS lookup cannot hold the notebook longer.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
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


# -- model card -----------------------------------------------------------------------------
def _metric(metrics: Mapping[str, Any], *names: str) -> float | None:
    for name in names:
        value = metrics.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return round(float(value), 4)
    return None


def card_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The card's numbers from ``evaluate.evaluate``'s dict (keys ``map``, ``map_50``, ...)."""
    found = {
        "map": _metric(metrics, "map", "mAP", "map_50_95"),
        "map_50": _metric(metrics, "map_50", "mAP50", "map50"),
        "map_75": _metric(metrics, "map_75", "mAP75", "map75"),
        "count_mae": _metric(metrics, "count_mae", "mae"),
        "count_mape": _metric(metrics, "count_mape", "mape"),
    }
    return {k: v for k, v in found.items() if v is not None}


CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A small object detector that **counts microalgae cells** in microscope images: an
`{{ config.model_name }}` network exported to ONNX (network + box decoding at
{{ config.image_size }} x {{ config.image_size }} px), trained in the open course
[*Deploy a deep-learning model without tears*]({{ course_url }}).
Class{{ "es" if config.class_names|length > 1 else "" }}: {{ config.class_names|join(", ") }}.
The count is the number of boxes scoring at least **{{ "%.2f"|format(config.score_threshold) }}**
(the counting threshold chosen on validation images).

## Results

Measured on {{ eval_description }}:

| metric | value |
|---|---|
{% for name, value in metric_rows %}| {{ name }} | {{ value }} |
{% endfor %}

## Intended use

- Counting cells in bright-field microscope images that look like the training data, to save
  a person the tally and to learn how to deploy a model (this is a teaching model).
- A starting point to fine-tune on your own labelled images.
- Not for medical, diagnostic or regulatory decisions, and not for counts that nobody checks.

## Limits: what it will miss

- **It was trained on synthetic images** (generated by the course, modelled on a few real
  eyepiece photos), so real photos from another microscope, camera or stain look different
  and the counts will drift. Check a few images by hand before trusting it.
- **Faint or out-of-focus cells** are often missed; very small cells too.
- **Cells cut by the image border** are often missed: only part of them is visible.
- **Clumps** of touching cells tend to be counted as fewer cells than there are.
- **Labels are incomplete**: the reference boxes miss some cells, so the mAP above is a
  rough guide, and the counting error is measured against imperfect counts.
- Debris, bubbles and dust of cell size can be counted as cells.

## How to use it (5 lines)

```python
from huggingface_hub import hf_hub_download
from PIL import Image
from utils.runtime import load_predictor  # pip install "{{ package }} @ git+{{ course_url }}"
predictor = load_predictor(hf_hub_download("{{ repo_id }}", "model.onnx", revision="{{ revision }}"))
print(predictor.predict(Image.open("cells.jpg")).count)
```

Without the course package, with ONNX Runtime only: letterbox the RGB image to
{{ config.image_size }} px (longer side, black padding right/bottom), scale to [0, 1], subtract
mean {{ config.mean|list }} and divide by std {{ config.std|list }}, feed `images`
`[N, 3, {{ config.image_size }}, {{ config.image_size }}]`, then keep `scores` >=
{{ "%.2f"|format(config.score_threshold) }}, apply NMS (IoU {{ config.nms_iou }}) to `boxes`
and divide them by the letterbox scale. `config.json` and the ONNX metadata hold these values.

## How it was trained

{% for key, value in training %}- {{ key }}: {{ value }}
{% endfor %}
Files: `model.onnx` (what to deploy), `model.pt` (the PyTorch checkpoint, if present:
weights + the same inference config), `config.json` (inference config + metrics).
"""


def build_model_card(
    config: InferenceConfig,
    metrics: Mapping[str, Any],
    repo_id: str,
    *,
    training: Mapping[str, Any] | None = None,
    revision: str = "main",
    eval_description: str = "the course's held-out test images",
    dataset_id: str = DATASET_ID,
    dataset_name: str = "Synthetic microalgae microscope images (course data)",
    license: str = "apache-2.0",
    extra_tags: Sequence[str] = (),
) -> ModelCard:
    """The model card: YAML metadata (license, tags, model-index with the measured numbers) + text.

    Built offline with ``ModelCardData`` / ``ModelCard.from_template``; ``metrics`` is
    ``evaluate.evaluate``'s dict. ``card.validate()`` needs the Hub, the rest does not.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    numbers = card_metrics(metrics)
    if not numbers:
        raise ValueError(
            "metrics has none of map / map_50 / count_mae: pass the dict of evaluate.evaluate()"
        )
    model_name = repo_id.split("/")[-1]
    common = dict(
        task_type="object-detection",
        task_name="Object detection (cell counting)",
        dataset_type=dataset_id,
        dataset_name=dataset_name,
        dataset_split="test",
    )
    names = {
        "map": ("mAP", "mAP@[.5:.95]"),
        "map_50": ("mAP", "mAP@.5"),
        "map_75": ("mAP", "mAP@.75"),
        "count_mae": ("mae", "count MAE (cells per image)"),
        "count_mape": ("mape", "count MAPE (%)"),
    }
    eval_results = [
        EvalResult(
            metric_type=names[key][0], metric_name=names[key][1], metric_value=value, **common
        )
        for key, value in numbers.items()
    ]
    tags = ["object-detection", "onnx", "microscopy", "cell-counting", "microalgae", "biology"]
    tags += [t for t in extra_tags if t not in tags]
    card_data = ModelCardData(
        model_name=model_name,
        license=license,
        library_name="onnx",
        pipeline_tag="object-detection",
        tags=tags,
        datasets=[dataset_id],
        metrics=["mAP", "mae"],
        eval_results=eval_results,
    )
    threshold = metrics.get("threshold", config.score_threshold)
    images = metrics.get("images")
    if images:
        eval_description = (
            f"{eval_description} ({images} images, counting threshold {float(threshold):.2f})"
        )
    formats = {"count_mae": "{:.2f}", "count_mape": "{:.1f}"}
    rows = [(names[k][1], formats.get(k, "{:.3f}").format(v)) for k, v in numbers.items()]
    training_rows = [("model", f"`{config.model_name}`, input {config.image_size} px")]
    training_rows += [(str(k), str(v)) for k, v in (training or {}).items()]
    return ModelCard.from_template(
        card_data,
        template_str=CARD_TEMPLATE,
        title=f"{model_name}: a microalgae cell counter (ONNX)",
        config=config,
        metric_rows=rows,
        eval_description=eval_description,
        repo_id=repo_id,
        revision=revision,
        training=training_rows,
        course_url=_course_url(),
        package="deploy-without-tears",
    )


def _course_url() -> str:
    try:
        from importlib.metadata import metadata

        urls = metadata("deploy-without-tears").get_all("Project-URL") or []
        for entry in urls:
            label, _, url = entry.partition(",")
            if label.strip().lower() == "repository":
                return url.strip()
    except Exception:
        pass
    return "https://github.com/deploy-without-tears/deploy-without-tears"


TRAINING_LABELS = {
    "epochs": "epochs",
    "best_epoch": "epoch kept (best validation)",
    "image_size": "input size (px)",
    "batch_size": "batch size",
    "lr": "learning rate (warm-up + cosine)",
    "optimizer": "optimizer",
    "model_name": "model",
}


def training_summary(checkpoint: Any) -> dict[str, Any]:
    """A few lines about training from a ``checkpoint.Checkpoint`` (for the card)."""
    out: dict[str, Any] = {
        "data": "the course's 17 labelled training images (synthetic microscope images with "
        "VOC boxes), split 80/20 into training and validation; random flips, shifts, "
        "zoom, colour jitter and blur as augmentation",
    }
    extra = getattr(checkpoint, "extra", None) or {}
    plan = extra.get("plan") if isinstance(extra, Mapping) else None
    values: dict[str, Any] = dict(plan) if isinstance(plan, Mapping) else {}
    if isinstance(extra, Mapping) and isinstance(extra.get("best_epoch"), int):
        values["best_epoch"] = extra["best_epoch"]
    history = getattr(checkpoint, "history", None)
    if isinstance(history, list) and history and "epochs" not in values:
        values["epochs"] = len(history)
    for key, label in TRAINING_LABELS.items():
        if isinstance(values.get(key), (str, int, float)) and key != "model_name":
            out[label] = values[key]
    out["from"] = "random weights or ImageNet weights for the ResNet-18 backbone, as available"
    versions = getattr(checkpoint, "versions", None) or {}
    if isinstance(versions, Mapping) and versions:
        out["library versions"] = ", ".join(f"{k} {v}" for k, v in versions.items())
    return out


# -- the folder to upload -------------------------------------------------------------------
def _scalars(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in metrics.items()
        if isinstance(v, (str, int, bool)) or (isinstance(v, float) and math.isfinite(v))
    }


def prepare_upload_folder(
    out_dir: str | Path,
    onnx_path: str | Path,
    checkpoint_path: str | Path | None = None,
    card: ModelCard | str | None = None,
    config: InferenceConfig | None = None,
    metrics: Mapping[str, Any] | None = None,
    examples: Sequence[str | Path] = (),
) -> Path:
    """A clean folder with model.onnx, model.pt (optional), config.json, README.md, examples/.

    The folder is emptied first, so nothing left over from an earlier run goes up.
    """
    out = Path(out_dir)
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(
            f"{display_path(onnx_path)} not found: run notebook 03 or export.ensure_onnx()"
        )
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy2(onnx_path, out / "model.onnx")
    if checkpoint_path is not None:
        checkpoint_path = Path(checkpoint_path)
        if not checkpoint_path.is_file():
            raise FileNotFoundError(
                f"{display_path(checkpoint_path)} not found: pass checkpoint_path=None to skip it"
            )
        shutil.copy2(checkpoint_path, out / "model.pt")
    if config is None:
        from .export import read_onnx_config

        config = read_onnx_config(onnx_path)
    payload = {
        "format": "deploy-without-tears/hub-model",
        "inference_config": config.to_dict(),
        "metrics": _scalars(metrics or {}),
        "files": {"onnx": "model.onnx", "checkpoint": "model.pt" if checkpoint_path else None},
        "onnx_sha256": sha256_file(out / "model.onnx"),
    }
    atomicio.write_text(out / "config.json", json.dumps(payload, indent=2) + "\n")
    if card is not None:
        atomicio.write_text(out / "README.md", str(card))
    if examples:
        (out / "examples").mkdir()
        for example in examples:
            shutil.copy2(example, out / "examples" / Path(example).name)
    return out


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def upload_plan(
    folder: str | Path,
    allow_patterns: Sequence[str] | None = None,
    ignore_patterns: Sequence[str] | None = None,
) -> list[tuple[str, int]]:
    """(path in repo, bytes) of the files ``push_folder`` would upload, with the same filter."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    allow = list(ALLOW_PATTERNS if allow_patterns is None else allow_patterns)
    ignore = list(IGNORE_PATTERNS if ignore_patterns is None else ignore_patterns)
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    kept = list(filter_repo_objects(paths, allow_patterns=allow, ignore_patterns=ignore))
    secret = {p for p, _ in credential_files(folder, kept)}
    return [(p, (folder / p).stat().st_size) for p in kept if p not in secret]


def skipped_credentials(
    folder: str | Path,
    allow_patterns: Sequence[str] | None = None,
    ignore_patterns: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """(path, reason) of files the allow-list matches but that look like credentials."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    allow = list(ALLOW_PATTERNS if allow_patterns is None else allow_patterns)
    ignore = list(IGNORE_PATTERNS if ignore_patterns is None else ignore_patterns)
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    kept = filter_repo_objects(paths, allow_patterns=allow, ignore_patterns=ignore)
    return credential_files(folder, list(kept))


def human_size(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def describe_plan(plan: Sequence[tuple[str, int]]) -> str:
    """'4 files, 30.2 MB: model.onnx (15.1 MB), ...'"""
    total = sum(size for _, size in plan)
    files = ", ".join(f"{path} ({human_size(size)})" for path, size in plan)
    return f"{len(plan)} file{'s' if len(plan) != 1 else ''}, {human_size(total)}: {files}"


# -- push / pull ----------------------------------------------------------------------------
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
) -> dict[str, Any]:
    """Download the ONNX model at ``revision``, count cells with it, compare with the local counts."""
    path = pull_model(repo_id, revision, token=token, endpoint=endpoint)
    from .runtime import load_predictor

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


# -- the notebook's one call ----------------------------------------------------------------
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
