"""The static Space (free): the in-browser counter of ``utils.web`` plus a Space card."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import MARKER, _fresh_folder, _yaml, classes_sentence, front_matter

STATIC_SHORT_DESCRIPTION = "Count microalgae cells in your browser (ONNX, WASM)"


def static_front_matter(
    title: str = "Microalgae cell counter",
    short_description: str = STATIC_SHORT_DESCRIPTION,
    models: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A static Space's card header: ``sdk: static``, ``app_file: index.html``, COOP/COEP.

    ``custom_headers`` (Spaces config reference) asks the Hub to make the page cross-origin
    isolated, which onnxruntime-web needs for more than one WASM thread (SharedArrayBuffer).
    """
    data = front_matter(title, short_description, models=models)
    for key in ("sdk_version",):
        data.pop(key)
    data.update(sdk="static", app_file="index.html")
    data["tags"] = [*data["tags"], "onnxruntime-web", "wasm"]
    data["custom_headers"] = {
        "cross-origin-embedder-policy": "require-corp",
        "cross-origin-opener-policy": "same-origin",
    }
    return data


def static_readme(meta: dict[str, Any], model_info: str) -> str:
    body = f"""\
    ---
    {{yaml}}
    ---

    # {meta["title"]}

    Counts microalgae cells in a microscope photo **inside your browser**: the ONNX model runs
    with onnxruntime-web (WebAssembly, or WebGPU where your device has a GPU for it), so the
    photo never leaves your device and no server does inference. {model_info}

    Built in the course *Deploy a deep-learning model without tears* ({MARKER}): a small
    cell counter (a centre-heatmap detector) trained on 17 labelled images, exported to ONNX; `counter.js` is a port of
    the course's Python pre/post-processing that counts exactly what Python counts.

    URL parameters: `?threshold=0.4`, `?threads=2` (needs a cross-origin-isolated page),
    `?backend=webgpu` or `?backend=wasm` (default: WebGPU from a hardware GPU, else WebAssembly),
    `?model=<url of another export of this model>`.
    """
    return textwrap.dedent(body).replace("{yaml}", _yaml(meta))


def write_static_space(
    out_dir: str | Path,
    onnx_path: str | Path | None = None,
    examples: Sequence[str | Path] | None = None,
    model_url: str | None = None,
    title: str = "Microalgae cell counter",
    models: Sequence[str] | None = None,
    weights: str = "fp16",
) -> Path:
    """Write the static Space folder (replacing an earlier generated one) and return it.

    The model is bundled (``model.onnx`` next to the page) unless ``model_url`` points at
    the learner's Hub model repo (``https://huggingface.co/<user>/<repo>/resolve/<tag>/model.onnx``).
    ``weights="fp16"`` (default) bundles it with float16 weights and float32 arithmetic
    (``utils.web.fp16_weights``): half the visitor's download; ``"fp32"`` the file as exported.
    """
    from .. import web
    from ..export import ensure_onnx, read_onnx_config

    out = _fresh_folder(Path(out_dir))
    model = ensure_onnx() if onnx_path is None else Path(onnx_path)
    web.build_site(out, model, examples=examples, model_url=model_url, weights=weights)
    c = read_onnx_config(model)
    where = f"downloaded from {model_url}" if model_url else f"bundled ({weights} weights)"
    info = (
        f"Model: `{c.model_name}`, {c.image_size} px input, counting threshold "
        f"{c.score_threshold:.2f}, {where}." + classes_sentence(c.class_names, "the page")
    )
    meta = static_front_matter(title, models=models)
    (out / "README.md").write_text(static_readme(meta, info), encoding="utf-8")
    return out
