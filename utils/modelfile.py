"""The course's model files, read and checked in one place (no torch, no runtime).

Every loader - ``runtime`` (ONNX Runtime, OpenVINO), ``checkpoint`` (PyTorch ``.pt``),
``export`` and the Space - asks this module whether a file is what it should be, and a bad
file always raises one error type, :class:`ModelFileError`, whose message names the file and
what to do (``checkpoint.CheckpointError`` is a subclass of it).

* what a file that is *not* a model looks like (JPEG, HTML page, Git LFS pointer ...):
  :func:`sniff_format`, :func:`looks_like_onnx`;
* the bytes of an ONNX file and its parsed graph: :func:`read_model_bytes`,
  :func:`check_model_bytes`, :func:`load_onnx`;
* the inference config that travels inside the file: the metadata keys (``CONFIG_KEY``,
  ``VERSION_KEY``, ``OV_CONFIG_PATH``), :func:`metadata`, :func:`config_from_metadata`,
  :func:`read_onnx_config`. Writing them is ``export.set_metadata``.

This module sits just above ``processing`` and ``config`` and imports nothing else from
``utils``, so the Space ships it with ``runtime``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import display_path
from .processing import InferenceConfig

CONFIG_KEY = "deploy_without_tears.inference_config"
VERSION_KEY = "deploy_without_tears.version"
OV_CONFIG_PATH = ["deploy_without_tears", "inference_config"]  # in an OpenVINO IR's rt_info


class ModelFileError(ValueError):
    """A model file that is missing, truncated, of another format, or lacks the course metadata."""


# First bytes of files that people (and browsers, and git) put where a model should be.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a zip archive (a PyTorch .pt checkpoint is one: load it with load_predictor)"),
    (b"version https://git-lfs", "a Git LFS pointer, not the model: run `git lfs pull`"),
    (b"<?xml", "an XML file (an OpenVINO IR? give it the .xml suffix)"),
    (b"<!doctype", "a web page (downloaded the page instead of the file? use the 'resolve' URL)"),
    (b"<html", "a web page (downloaded the page instead of the file? use the 'resolve' URL)"),
    (b"{", "a JSON file"),
)


def sniff_format(head: bytes) -> str | None:
    """What a file that is *not* an ONNX model looks like, from its first bytes; None if unknown."""
    lowered = head[:32].lstrip().lower()
    for magic, what in _SIGNATURES:
        if head.startswith(magic) or lowered.startswith(magic.lower()):
            return what
    return None


def looks_like_onnx(path: Path) -> bool:
    """An ``.onnx`` suffix, or the first bytes of an ONNX ModelProto (for a misnamed ``.pt``)."""
    if path.suffix.lower() == ".onnx":
        return True
    with open(path, "rb") as handle:
        head = handle.read(64)
    # An ONNX ModelProto starts with field 1 (ir_version, varint) and names its producer early.
    return head[:1] == b"\x08" and (b"pytorch" in head or b"onnx" in head.lower())


def require_file(
    path: Path,
    missing: str,
    folder: str,
    error: type[ModelFileError] = ModelFileError,
) -> str:
    """``display_path(path)`` if ``path`` is a file; else ``error`` with the two sentences given.

    ``missing`` follows "no ... at <path>: " and ``folder`` follows "<path> is a folder; ".
    """
    shown = display_path(path)
    if not path.exists():
        raise error(f"no {missing.format(shown=shown)}")
    if path.is_dir():
        raise error(f"{shown} is a folder; {folder}")
    return shown


def read_model_bytes(path: str | Path, expected: str = "ONNX") -> bytes:
    """The bytes of a model file, or a ``ModelFileError`` that says what is wrong with it."""
    path = Path(path)
    shown = require_file(
        path,
        "model file at {shown}: export one in notebook 03 "
        "(utils.export.ensure_onnx()) or check the path",
        "pass the model file inside it (e.g. model.onnx)",
    )
    data = path.read_bytes()
    if not data:
        raise ModelFileError(f"{shown} is empty (0 bytes): the download or export did not finish")
    what = sniff_format(data[:64])
    if what is not None:
        raise ModelFileError(f"{shown} is not an {expected} model: it looks like {what}")
    return data


def corrupt_error(shown: str, error: Exception) -> ModelFileError:
    """The ``ModelFileError`` for a file that a parser (onnx, ONNX Runtime, OpenVINO) refused."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return ModelFileError(
        f"{shown} could not be parsed as an ONNX model (truncated or corrupt download?): "
        f"{first[:200]}. Download or export it again."
    )


def check_model_bytes(data: bytes, shown: str):
    """Parse ONNX bytes into an ``onnx.ModelProto``; ``ModelFileError`` if truncated or corrupt."""
    import onnx

    try:
        model = onnx.load_from_string(data)
    except Exception as error:  # google.protobuf.message.DecodeError and friends
        raise corrupt_error(shown, error) from error
    if not model.graph.node or not model.opset_import:
        raise ModelFileError(
            f"{shown} parsed but holds no graph (truncated, or not an ONNX model at all)"
        )
    return model


def load_onnx(path_or_model: str | Path | bytes | Any) -> Any:
    """An ``onnx.ModelProto`` from a path, bytes or a ModelProto, checked on the way."""
    import onnx

    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    if isinstance(path_or_model, bytes):
        return check_model_bytes(path_or_model, "the model bytes")
    data = read_model_bytes(path_or_model)
    return check_model_bytes(data, display_path(path_or_model))


def metadata(path_or_model: str | Path | Any) -> dict[str, str]:
    """All ``metadata_props`` of an ONNX file (or loaded ModelProto) as a dict."""
    model = load_onnx(path_or_model)
    return {p.key: p.value for p in model.metadata_props}


def config_from_metadata(props: dict[str, str], source: str = "the model") -> InferenceConfig:
    """The InferenceConfig stored by ``export.export_onnx``; ``ModelFileError`` if absent/broken."""
    raw = props.get(CONFIG_KEY)
    if raw is None:
        raise ModelFileError(
            f"{source} is an ONNX model without this course's inference config (class names, "
            "input size, normalisation). Re-export it with utils.export.export_onnx(checkpoint) "
            "or `python -m utils export`, or pass config=InferenceConfig(...) explicitly."
        )
    try:
        return InferenceConfig.from_dict(json.loads(raw))
    except (ValueError, TypeError, KeyError) as error:
        raise ModelFileError(f"{source} has a broken inference config: {error}") from error


def read_onnx_config(path: str | Path | bytes) -> InferenceConfig:
    """The InferenceConfig inside an exported ``.onnx`` file (or its bytes)."""
    source = "the model bytes" if isinstance(path, bytes) else display_path(path)
    return config_from_metadata(metadata(path), source)
