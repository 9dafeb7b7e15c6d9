"""What goes up: the allow-list, credential-file skipping, the folder to upload and its plan.

Why an allow-list: ``upload_folder`` uploads *everything* in a folder by default, and a
folder that once held a ``.env`` or a token file leaks it for ever (a public repo keeps its
history). ``ALLOW_PATTERNS`` names what may go up, ``IGNORE_PATTERNS`` what never may.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import atomicio
from ..config import display_path
from ..modelfile import read_onnx_config
from ..processing import InferenceConfig

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

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
    "*.wasm.gz",  # onnxruntime-web binaries the page unpacks (utils.web.site.GZIPPED)
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


def _allowed(
    folder: Path, allow_patterns: Sequence[str] | None, ignore_patterns: Sequence[str] | None
) -> list[str]:
    """The paths in ``folder`` that the allow- and ignore-lists let through (as upload_folder)."""
    from huggingface_hub.utils import filter_repo_objects

    allow = list(ALLOW_PATTERNS if allow_patterns is None else allow_patterns)
    ignore = list(IGNORE_PATTERNS if ignore_patterns is None else ignore_patterns)
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(paths, allow_patterns=allow, ignore_patterns=ignore))


def upload_plan(
    folder: str | Path,
    allow_patterns: Sequence[str] | None = None,
    ignore_patterns: Sequence[str] | None = None,
) -> list[tuple[str, int]]:
    """(path in repo, bytes) of the files ``push_folder`` would upload, with the same filter."""
    folder = Path(folder)
    kept = _allowed(folder, allow_patterns, ignore_patterns)
    secret = {p for p, _ in credential_files(folder, kept)}
    return [(p, (folder / p).stat().st_size) for p in kept if p not in secret]


def skipped_credentials(
    folder: str | Path,
    allow_patterns: Sequence[str] | None = None,
    ignore_patterns: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """(path, reason) of files the allow-list matches but that look like credentials."""
    folder = Path(folder)
    return credential_files(folder, _allowed(folder, allow_patterns, ignore_patterns))


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
