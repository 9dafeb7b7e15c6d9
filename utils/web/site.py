"""The static site: the page, onnxruntime-web's WASM files, the model (fp32, fp16 or int8),
examples."""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..config import display_path, test_dir, train_dir

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
ORT_DIST = WEB_DIR / "node_modules" / "onnxruntime-web" / "dist"
# onnxruntime-web's two builds the page can load (web/counter.js BACKENDS), each an ES module,
# the Emscripten loader it imports and a WebAssembly binary: the WASM build (SIMD; threads
# only when the page is cross-origin isolated) and the WebGPU build (asyncify binary).
ORT_FILES = (
    "ort.wasm.min.mjs",
    "ort-wasm-simd-threaded.mjs",
    "ort-wasm-simd-threaded.wasm",
    "ort.webgpu.min.mjs",
    "ort-wasm-simd-threaded.asyncify.mjs",
    "ort-wasm-simd-threaded.asyncify.wasm",
)
# Binaries the site ships gzipped (``<name>.gz``), which the page unpacks itself: most of the
# first load, and not every static host compresses. The WASM build's binary also ships plain
# for a browser without DecompressionStream; the WebGPU one only gzipped (every browser with
# WebGPU has DecompressionStream), so the folder stays small.
GZIPPED = ("ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.asyncify.wasm")
PLAIN_TOO = ("ort-wasm-simd-threaded.wasm",)
PAGE_FILES = ("index.html", "counter.js")


class WebSetupError(ValueError):
    """The site cannot be built: onnxruntime-web is not installed, or a page file is missing."""


def ort_files() -> list[Path]:
    """onnxruntime-web's files that the page loads; ``WebSetupError`` if npm has not run."""
    missing = [name for name in ORT_FILES if not (ORT_DIST / name).is_file()]
    if missing:
        raise WebSetupError(
            f"onnxruntime-web is not installed in {display_path(WEB_DIR)}/node_modules "
            f"(missing {', '.join(missing)}): run `cd web && npm ci` (Node.js 18+)"
        )
    return [ORT_DIST / name for name in ORT_FILES]


def shipped_as(name: str) -> tuple[str, ...]:
    """The names one of ``ORT_FILES`` has in the site's ``ort/`` folder (``x.wasm.gz``, ...)."""
    if name not in GZIPPED:
        return (name,)
    return (f"{name}.gz", name) if name in PLAIN_TOO else (f"{name}.gz",)


def default_examples(count: int = 3) -> list[Path]:
    """The first few held-out photos of ``data/test``."""
    return sorted(test_dir().glob("*.jpg"))[:count]


def gzip_file(source: Path, target: Path) -> Path:
    """``target`` = gzip -6 of ``source`` (-9 saves 0.5 % for 2.5x the time), unless an
    up-to-date one is already there."""
    import gzip

    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(gzip.compress(source.read_bytes(), compresslevel=6, mtime=0))
    partial.replace(target)
    return target


MODEL_META = '<meta name="model-url" content="./model.onnx">'
WEIGHTS = ("fp32", "fp16", "int8")
# Photos that calibrate ``weights="int8"`` when none are given: the course's training photos.
CALIBRATION_PHOTOS = 8


def fp16_weights(onnx_path: str | Path, out_path: str | Path, min_elements: int = 1024) -> Path:
    """Store the large float32 weights as float16, each followed by a Cast back to float32.

    Why: half the download for the visitor, and the same float32 arithmetic at run time
    (onnxruntime folds the Casts when it loads the file). The weights are rounded to float16
    once, so counts can differ from the float32 file's; Python and the page, running this
    same file, still count alike. Metadata (the inference config) is kept.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    initializers, casts = [], []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or int(np.prod(tensor.dims)) < min_elements:
            initializers.append(tensor)
            continue
        half = numpy_helper.from_array(
            numpy_helper.to_array(tensor).astype(np.float16), f"{tensor.name}__fp16"
        )
        initializers.append(half)
        casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=TensorProto.FLOAT))
    nodes = [*casts, *graph.node]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return Path(out_path)


def int8_weights(
    onnx_path: str | Path, out_path: str | Path, calibration: Sequence[str | Path] | None = None
) -> Path:
    """ONNX Runtime's static INT8 (QDQ, convolutions only) of the model, for the page.

    Why: onnxruntime-web's WASM build runs INT8 convolutions with its integer SIMD kernels,
    several times fewer bytes moved per multiply than float32, and the file is a third of
    the float32 one. ``calibration``: photos like those the page will count (default: the
    first :data:`CALIBRATION_PHOTOS` training photos of the course). The counts can differ
    from the float32 file's (``python -m utils.web --bench --weights int8`` says on how many
    photos); Python and the page, running this same file, still count alike.
    """
    from ..edge.ort_int8 import quantize_static

    if calibration is None:
        from ..synth import ensure_course_data

        ensure_course_data()
        calibration = sorted(train_dir().glob("*.jpg"))[:CALIBRATION_PHOTOS]
    photos = [Path(p) for p in calibration]
    if not photos:
        raise WebSetupError("int8 weights need calibration photos: none were given or found")
    return quantize_static(onnx_path, photos, output=out_path)


def build_site(
    out_dir: str | Path,
    onnx_path: str | Path | None = None,
    examples: Sequence[str | Path] | None = None,
    model_url: str | None = None,
    weights: str = "fp32",
    calibration: Sequence[str | Path] | None = None,
) -> Path:
    """Write the static site into ``out_dir`` and return it.

    ``onnx_path`` defaults to ``artifacts/model.onnx`` (exported, and trained first, if
    missing). ``examples`` defaults to the first three held-out photos. With ``model_url``
    (e.g. a Hub ``.../resolve/v1/model.onnx``) the page downloads the model from there and
    the folder holds no copy of it; ``onnx_path`` then only provides ``config.json``.
    ``weights="fp16"`` bundles :func:`fp16_weights` of the model: half the download;
    ``weights="int8"`` bundles :func:`int8_weights`, calibrated on ``calibration`` photos.
    """
    from ..export import ensure_onnx, read_onnx_config

    runtime_files = ort_files()  # fail before copying anything
    for name in PAGE_FILES:
        if not (WEB_DIR / name).is_file():
            raise WebSetupError(f"{display_path(WEB_DIR / name)} is missing: check out web/ again")
    page = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    if MODEL_META not in page:
        raise WebSetupError(f"{display_path(WEB_DIR / 'index.html')} lacks {MODEL_META}")
    if weights not in WEIGHTS:
        raise WebSetupError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if model_url is not None and not model_url.startswith(("https://", "http://", "./")):
        raise WebSetupError(f"model_url must be an http(s) address or ./file, got {model_url!r}")
    model = None
    if model_url is None or onnx_path is not None:
        model = ensure_onnx() if onnx_path is None else Path(onnx_path)
    config = read_onnx_config(model) if model else None  # clear error without course metadata

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(WEB_DIR / "counter.js", out / "counter.js")
    if model_url is not None:
        page = page.replace(MODEL_META, MODEL_META.replace("./model.onnx", html.escape(model_url)))
    (out / "index.html").write_text(page, encoding="utf-8")
    (out / "ort").mkdir(exist_ok=True)
    for path in runtime_files:
        for name in shipped_as(path.name):
            if name.endswith(".gz"):
                gzip_file(path, out / "ort" / name)
            else:
                shutil.copy2(path, out / "ort" / name)
    if model_url is None and weights == "fp16":
        fp16_weights(model, out / "model.onnx")
    elif model_url is None and weights == "int8":
        int8_weights(model, out / "model.onnx", calibration)
    elif model_url is None:
        shutil.copy2(model, out / "model.onnx")
    else:
        (out / "model.onnx").unlink(missing_ok=True)
    if config is not None:
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    chosen = [Path(p) for p in (default_examples() if examples is None else examples)]
    folder = out / "examples"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for path in chosen:
        if not path.is_file():
            raise WebSetupError(f"example image {display_path(path)} does not exist")
        shutil.copy2(path, folder / path.name)
    listing = [f"examples/{p.name}" for p in chosen]
    (out / "examples.json").write_text(json.dumps(listing, indent=2) + "\n")
    return out
