"""Smaller and faster models for the edge: INT8 with ONNX Runtime, OpenVINO FP32/FP16/INT8.

Every format here is built from the one exported ONNX file (``export.export_onnx``) and
runs through the same ``runtime.Predictor`` and the same NumPy pre/post-processing, so the
scorecard compares runtimes and number formats, nothing else.

* ONNX Runtime **static** INT8 (QDQ): weights *and* activations in INT8; activation ranges
  come from a calibration pass over preprocessed training images. Only ``Conv`` is quantized
  by default: the box decoding (a few multiplications with pixel-sized numbers) and the
  sigmoid scores stay in float, which is what keeps the boxes and the mAP.
* ONNX Runtime **dynamic** INT8: weights in INT8, activation ranges computed at run time.
  Made for Transformers/LSTMs (MatMul); on a conv net it inserts per-tensor range
  computations and ConvInteger kernels that are *slower* than FP32 - the lesson of
  notebook 06.
* OpenVINO IR (``convert_model`` -> ``save_model``) in FP32, and with FP16-compressed
  weights (half the file, same accuracy; a CPU still computes in FP32).
* OpenVINO INT8 with NNCF post-training quantization (``nncf.quantize``), calibrated on
  the training images, optionally with an ``ignored_scope`` that keeps the head's last
  layers and the decoding in float.

``scorecard`` measures all of them side by side: size, latency (the graph alone and end
to end with pre/post-processing), throughput, mAP, count error and counts identical to
PyTorch.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .atomicio import atomic_openvino, atomic_path
from .config import artifacts_dir, display_path
from .processing import InferenceConfig, postprocess, preprocess
from .progress import tqdm
from .runtime import OV_CONFIG_PATH, Predictor, load_predictor

# ----------------------------------------------------------------------------- calibration


def _pil_images(images: Iterable[Any], limit: int | None = None) -> list[Image.Image]:
    """PIL images from PIL images, arrays, paths, ``AnnotatedImage`` or an ``AnnotationSet``."""
    if hasattr(images, "images"):
        images = images.images
    out: list[Image.Image] = []
    for item in images:
        if limit is not None and len(out) >= limit:
            break
        if hasattr(item, "load_image"):
            out.append(item.load_image())
        elif isinstance(item, (str, os.PathLike)):
            with Image.open(item) as img:
                out.append(img.convert("RGB"))
        elif isinstance(item, np.ndarray):
            out.append(Image.fromarray(item))
        else:
            out.append(item)
    return out


def calibration_batches(
    images: Iterable[Any], config: InferenceConfig, limit: int | None = None
) -> list[np.ndarray]:
    """Preprocessed ``[1, 3, S, S]`` tensors, exactly what the model sees when it serves."""
    return [preprocess([img], config)[0] for img in _pil_images(images, limit)]


def _calibration_reader(batches: Sequence[np.ndarray], input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class ImageReader(CalibrationDataReader):
        """Feeds one preprocessed image at a time to ONNX Runtime's calibrator."""

        def __init__(self) -> None:
            self._iter = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._iter, None)
            return None if batch is None else {input_name: batch}

        def rewind(self) -> None:
            self._iter = iter(batches)

    return ImageReader()


def _read_config(onnx_file: str | Path) -> InferenceConfig:
    from .export import read_onnx_config

    return read_onnx_config(onnx_file)


def _copy_metadata(source: str | Path, target: str | Path, recipe: dict[str, Any]) -> None:
    """Quantizers rebuild the model: carry over our metadata and say how it was made."""
    import onnx

    src = onnx.load(str(source), load_external_data=False)
    dst = onnx.load(str(target))
    keys = {p.key for p in dst.metadata_props}
    for prop in src.metadata_props:
        if prop.key not in keys:
            dst.metadata_props.add(key=prop.key, value=prop.value)
    dst.metadata_props.add(key="deploy_without_tears.quantization", value=json.dumps(recipe))
    onnx.save(dst, str(target))


# ----------------------------------------------------------------------------- ONNX Runtime


def quantize_static(
    onnx_file: str | Path,
    calibration_images: Iterable[Any],
    output: str | Path | None = None,
    op_types: Sequence[str] | None = ("Conv",),
    per_channel: bool = True,
    activation_type: str = "uint8",
    calibrate_method: str = "minmax",
    exclude_nodes: Sequence[str] | None = None,
    limit: int | None = None,
) -> Path:
    """ONNX Runtime static INT8 in QDQ format, calibrated on preprocessed images.

    ``op_types``: which operators get INT8 (None: every one ONNX Runtime can). ``Conv``
    holds >95% of the arithmetic; quantizing the rest (Add, Mul of the decoding, Sigmoid)
    costs accuracy for no speed. ``per_channel``: one scale per output channel of each
    weight, which keeps small-weight channels (e.g. after BatchNorm folding) accurate.
    ``activation_type`` ``"uint8"`` (U8S8) is the fast path on x86; ``"int8"`` (S8S8)
    suits ARM. ``quant_pre_process`` (shape inference + graph optimisation) runs first,
    in a temporary folder, so nothing is left in the working directory.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx_file = Path(onnx_file)
    config = _read_config(onnx_file)
    output = Path(output) if output else onnx_file.with_name(onnx_file.stem + "_int8_static.onnx")
    output.parent.mkdir(parents=True, exist_ok=True)
    batches = calibration_batches(calibration_images, config, limit)
    if not batches:
        raise ValueError("static quantization needs at least one calibration image")
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    with tempfile.TemporaryDirectory(prefix="quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_file), str(prepared), skip_symbolic_shape=True)
        tmp_out = Path(tmp) / "quantized.onnx"
        ort_quantize_static(
            str(prepared),
            str(tmp_out),
            _calibration_reader(batches, "images"),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types) if op_types else None,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude_nodes or []),
            calibrate_method=methods[calibrate_method],
            extra_options={"CalibTensorRangeSymmetric": False},
        )
        recipe = {
            "tool": "onnxruntime.quantization.quantize_static",
            "format": "QDQ",
            "op_types": list(op_types) if op_types else "all",
            "per_channel": per_channel,
            "activations": activation_type,
            "calibration_images": len(batches),
            "calibration": calibrate_method,
        }
        _copy_metadata(onnx_file, tmp_out, recipe)
        _move(tmp_out, output)
    return output


def quantize_dynamic(
    onnx_file: str | Path,
    output: str | Path | None = None,
    op_types: Sequence[str] | None = None,
    per_channel: bool = False,
) -> Path:
    """ONNX Runtime dynamic INT8: INT8 weights, activation ranges found per run (no calibration)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx_file = Path(onnx_file)
    output = Path(output) if output else onnx_file.with_name(onnx_file.stem + "_int8_dynamic.onnx")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_file), str(prepared), skip_symbolic_shape=True)
        tmp_out = Path(tmp) / "quantized.onnx"
        ort_quantize_dynamic(
            str(prepared),
            str(tmp_out),
            op_types_to_quantize=list(op_types) if op_types else None,
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
        )
        recipe = {
            "tool": "onnxruntime.quantization.quantize_dynamic",
            "op_types": list(op_types) if op_types else "all",
            "per_channel": per_channel,
        }
        _copy_metadata(onnx_file, tmp_out, recipe)
        _move(tmp_out, output)
    return output


def _move(source: Path, target: Path) -> None:
    """Copy then rename in the target folder, so a half-written file never has the final name."""
    import shutil

    with atomic_path(target) as tmp:  # unique name, fsync, rename
        shutil.copyfile(source, tmp)


def quantized_node_count(onnx_file: str | Path) -> dict[str, int]:
    """How many QuantizeLinear/DequantizeLinear/integer nodes a model holds."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    kinds = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger")
    counts = dict.fromkeys(kinds, 0)
    for node in model.graph.node:
        if node.op_type in counts:
            counts[node.op_type] += 1
    return counts


# ----------------------------------------------------------------------------- OpenVINO


def _ov_set_config(model: Any, config: InferenceConfig, recipe: dict[str, Any]) -> None:
    model.set_rt_info(json.dumps(config.to_dict()), OV_CONFIG_PATH)
    model.set_rt_info(json.dumps(recipe), ["deploy_without_tears", "recipe"])


def ir_files(xml: str | Path) -> list[Path]:
    """The two files of an OpenVINO IR: ``.xml`` (graph) and ``.bin`` (weights)."""
    xml = Path(xml)
    return [xml, xml.with_suffix(".bin")]


def to_openvino(
    onnx_file: str | Path, output: str | Path | None = None, fp16: bool = False
) -> Path:
    """ONNX -> OpenVINO IR (``.xml`` + ``.bin``); ``fp16`` stores the weights in half precision."""
    import openvino as ov

    onnx_file = Path(onnx_file)
    config = _read_config(onnx_file)
    suffix = "_fp16" if fp16 else "_fp32"
    output = Path(output) if output else onnx_file.with_name(onnx_file.stem + f"_ov{suffix}.xml")
    output.parent.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_file))
    _ov_set_config(model, config, {"tool": "openvino.convert_model", "weights": suffix[1:]})
    with atomic_openvino(output) as tmp:  # the .xml/.bin pair, never half-written
        ov.save_model(model, str(tmp), compress_to_fp16=fp16)
    return output


# Node names of the exported graph (``torch.onnx.export`` names nodes after module paths).
HEAD_OUTPUT_PATTERNS = (
    ".*cls_logits.*",
    ".*bbox_reg.*",
    ".*bbox_ctrness.*",
    r".*/heatmap\.2/.*",  # CenterNet's last heatmap and box convolutions
    r".*/box\.2/.*",
)


@dataclass
class NncfOptions:
    """The knobs of ``nncf.quantize`` that matter for this detector."""

    preset: str = "mixed"  # "performance": symmetric activations; "mixed": asymmetric
    subset_size: int = 300  # calibration images used (all of ours)
    fast_bias_correction: bool = True
    ignore_head_outputs: bool = False  # keep the head's last convs (and decoding) in float
    ignored_patterns: tuple[str, ...] = ()


@contextmanager
def _plain_progress():
    """NNCF draws progress with ``rich``, which in Jupyter becomes widget outputs (that the
    course never commits); show them as plain text for the duration instead."""
    try:
        import rich
    except ImportError:
        yield
        return
    console = rich.get_console()
    saved = dict(console.__dict__)
    rich.reconfigure(force_jupyter=False, force_terminal=False)
    try:
        yield
    finally:
        console.__dict__.clear()
        console.__dict__.update(saved)


def quantize_openvino(
    onnx_file: str | Path,
    calibration_images: Iterable[Any],
    output: str | Path | None = None,
    options: NncfOptions | None = None,
    limit: int | None = None,
) -> Path:
    """OpenVINO INT8 IR with NNCF post-training quantization calibrated on preprocessed images."""
    import logging

    # NNCF imports torch's extension loader, which logs a CUDA warning on CPU-only machines.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message='install "ipywidgets"')
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)
    options = options or NncfOptions()
    onnx_file = Path(onnx_file)
    config = _read_config(onnx_file)
    output = Path(output) if output else onnx_file.with_name(onnx_file.stem + "_ov_int8.xml")
    output.parent.mkdir(parents=True, exist_ok=True)
    batches = calibration_batches(calibration_images, config, limit)
    if not batches:
        raise ValueError("NNCF quantization needs at least one calibration image")
    model = ov.convert_model(str(onnx_file))
    patterns = list(options.ignored_patterns)
    if options.ignore_head_outputs:
        patterns += list(HEAD_OUTPUT_PATTERNS)
    ignored = nncf.IgnoredScope(patterns=patterns, validate=False) if patterns else None
    preset = nncf.QuantizationPreset(options.preset)
    with _plain_progress():
        quantized = nncf.quantize(
            model,
            nncf.Dataset(batches),
            preset=preset,
            subset_size=min(options.subset_size, len(batches)),
            fast_bias_correction=options.fast_bias_correction,
            ignored_scope=ignored,
        )
    recipe = {
        "tool": "nncf.quantize",
        "preset": options.preset,
        "calibration_images": min(options.subset_size, len(batches)),
        "fast_bias_correction": options.fast_bias_correction,
        "ignored_patterns": patterns,
    }
    _ov_set_config(quantized, config, recipe)
    with atomic_openvino(output) as tmp:
        ov.save_model(quantized, str(tmp), compress_to_fp16=False)
    return output


# ----------------------------------------------------------------------------- formats


@dataclass
class ModelFormat:
    """One row of the scorecard: a file, the runtime that runs it, and runtime options."""

    name: str
    path: Path | None  # None for the PyTorch reference
    runtime: str
    options: dict[str, Any] | None = None

    def size_mb(self) -> float:
        if self.path is None:
            return float("nan")
        files = ir_files(self.path) if self.path.suffix == ".xml" else [self.path]
        return sum(f.stat().st_size for f in files if f.exists()) / 1e6

    def load(self, threads: int | None = 2) -> Predictor:
        assert self.path is not None
        return load_predictor(self.path, self.runtime, threads=threads, **(self.options or {}))


def build_formats(
    onnx_file: str | Path,
    calibration_images: Iterable[Any],
    out_dir: str | Path | None = None,
    fast: bool = False,
    include_dynamic: bool = True,
    nncf_options: NncfOptions | None = None,
    include_bf16: bool = True,
    progress: bool = True,
) -> list[ModelFormat]:
    """Build every edge format from one ONNX file; returns the list that ``scorecard`` takes.

    ``fast`` calibrates on fewer images (4 instead of all). ``include_bf16`` adds the FP32 IR
    computed in bfloat16 where the CPU supports it (OpenVINO's own default there).
    """
    onnx_file = Path(onnx_file)
    out_dir = Path(out_dir) if out_dir else artifacts_dir() / "edge"
    out_dir.mkdir(parents=True, exist_ok=True)
    images = _pil_images(calibration_images, 4 if fast else None)
    formats = [ModelFormat("ONNX Runtime FP32", onnx_file, "onnxruntime")]
    steps: list[tuple[str, Callable[[], ModelFormat]]] = [
        (
            "ORT INT8 static",
            lambda: ModelFormat(
                "ORT INT8 static",
                quantize_static(onnx_file, images, out_dir / "model_int8_static.onnx"),
                "onnxruntime",
            ),
        ),
    ]
    if include_dynamic:
        steps.append(
            (
                "ORT INT8 dynamic",
                lambda: ModelFormat(
                    "ORT INT8 dynamic",
                    quantize_dynamic(onnx_file, out_dir / "model_int8_dynamic.onnx"),
                    "onnxruntime",
                ),
            )
        )
    steps += [
        (
            "OpenVINO FP32",
            lambda: ModelFormat(
                "OpenVINO FP32", to_openvino(onnx_file, out_dir / "model_fp32.xml"), "openvino"
            ),
        ),
        (
            "OpenVINO FP16",
            lambda: ModelFormat(
                "OpenVINO FP16",
                to_openvino(onnx_file, out_dir / "model_fp16.xml", fp16=True),
                "openvino",
            ),
        ),
        (
            "OpenVINO INT8 (NNCF)",
            lambda: ModelFormat(
                "OpenVINO INT8 (NNCF)",
                quantize_openvino(onnx_file, images, out_dir / "model_int8.xml", nncf_options),
                "openvino",
            ),
        ),
    ]
    bar = tqdm(steps, desc="build formats", disable=not progress)
    for name, build in bar:
        bar.set_postfix_str(name)
        formats.append(build())
    if include_bf16 and cpu_has_bf16():
        fp32 = next(f for f in formats if f.name == "OpenVINO FP32")
        formats.insert(
            formats.index(fp32) + 1,
            ModelFormat(
                "OpenVINO FP32 IR, bf16 compute", fp32.path, "openvino", {"precision": "bf16"}
            ),
        )
    return formats


def cpu_has_bf16() -> bool:
    """Whether OpenVINO can compute in bfloat16 on this CPU (and would by default)."""
    import openvino as ov

    try:
        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no CPU plugin, old OpenVINO
        return False


# ----------------------------------------------------------------------------- scorecard


def _timeit(fn: Callable[[], Any], warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def cpu_name() -> str:
    """The CPU model, for the scorecard's caption."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_predictor(
    predictor: Predictor,
    image: Image.Image,
    warmup: int = 5,
    runs: int = 30,
    batch_size: int = 4,
) -> dict[str, float]:
    """Latency of one image: the graph alone (``run``), pre- and post-processing, end to end.

    Throughput runs ``batch_size`` copies of the image in one batch.
    """
    config = predictor.config
    batch, scales, sizes = preprocess([image], config)
    boxes, scores = predictor.run(batch)
    run = _timeit(lambda: predictor.run(batch), warmup, runs)
    pre = _timeit(lambda: preprocess([image], config), 1, max(5, runs // 3))
    post = _timeit(lambda: postprocess(boxes, scores, config, scales, sizes), 1, max(5, runs // 3))
    e2e = _timeit(lambda: predictor.predict(image), 1, max(5, runs // 2))
    big = np.repeat(batch, batch_size, axis=0)
    batched = _timeit(lambda: predictor.run(big), 1, max(3, runs // 5))
    return {
        "run_p50_ms": _pct(run, 50),
        "run_p95_ms": _pct(run, 95),
        "pre_ms": statistics.median(pre),
        "post_ms": statistics.median(post),
        "e2e_p50_ms": _pct(e2e, 50),
        "e2e_p95_ms": _pct(e2e, 95),
        "throughput_ips": batch_size * 1000 / statistics.median(batched),
    }


def time_round_robin(
    predictors: Sequence[Predictor],
    image: Image.Image,
    warmup: int = 5,
    runs: int = 30,
    batch_size: int = 4,
    progress: bool = False,
) -> list[dict[str, float]]:
    """:func:`time_predictor` for several predictors, interleaved run by run.

    Each round times every predictor once, so a burst of load from another process hits
    all formats alike instead of spoiling one row: fairer on a shared or busy machine.
    """
    prepared = []
    for p in predictors:
        batch, scales, sizes = preprocess([image], p.config)
        boxes, scores = p.run(batch)
        prepared.append((p, batch, scales, sizes, boxes, scores, np.repeat(batch, batch_size, 0)))
    for p, batch, *_ in prepared:
        for _ in range(warmup):
            p.run(batch)
    keys = ("run", "pre", "post", "e2e", "batched")
    times: list[dict[str, list[float]]] = [{k: [] for k in keys} for _ in prepared]
    for round_ in tqdm(range(runs), desc="timing", disable=not progress, leave=False):
        for (p, batch, scales, sizes, boxes, scores, big), t in zip(prepared, times):
            t["run"] += _timeit(lambda p=p, b=batch: p.run(b), 0, 1)
            if round_ % 2 == 0:
                t["e2e"] += _timeit(lambda p=p: p.predict(image), 0, 1)
            if round_ % 3 == 0:
                t["pre"] += _timeit(lambda p=p: preprocess([image], p.config), 0, 1)
                t["post"] += _timeit(
                    lambda p=p, bx=boxes, sc=scores, s=scales, z=sizes: postprocess(
                        bx, sc, p.config, s, z
                    ),
                    0,
                    1,
                )
            if round_ % 5 == 0:
                t["batched"] += _timeit(lambda p=p, b=big: p.run(b), 0, 1)
    return [
        {
            "run_p50_ms": _pct(t["run"], 50),
            "run_p95_ms": _pct(t["run"], 95),
            "pre_ms": statistics.median(t["pre"]),
            "post_ms": statistics.median(t["post"]),
            "e2e_p50_ms": _pct(t["e2e"], 50),
            "e2e_p95_ms": _pct(t["e2e"], 95),
            "throughput_ips": batch_size * 1000 / statistics.median(t["batched"]),
        }
        for t in times
    ]


def scorecard(
    formats: Sequence[ModelFormat],
    test_set: Any,
    torch_predictor: Predictor,
    threads: int = 2,
    warmup: int = 5,
    runs: int = 30,
    batch_size: int = 4,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One row per format: size, latency, throughput, mAP, count MAE, counts equal to PyTorch.

    Accuracy first (every format on every test image, at batch 1), then latency: batch 1,
    ``threads`` threads (PyTorch's global thread count is set too), after ``warmup`` runs,
    all formats interleaved (:func:`time_round_robin`). ``run`` is the graph alone; ``e2e``
    adds letterbox/normalise and threshold/NMS/rescale (the shared NumPy code), and
    ``pre_post_share`` is the part of the time that no runtime can speed up.
    """
    import torch

    from .evaluate import evaluate, predict_set

    torch.set_num_threads(threads)
    items = list(test_set.images if hasattr(test_set, "images") else test_set)
    reference = ModelFormat("PyTorch eager FP32", None, "pytorch")
    rows: list[dict[str, Any]] = []
    predictors: list[Predictor] = []
    ref_counts: list[int] | None = None
    bar = tqdm([reference, *formats], desc="accuracy", disable=not progress)
    for fmt in bar:
        bar.set_postfix_str(fmt.name)
        predictor = torch_predictor if fmt is reference else fmt.load(threads)
        predictors.append(predictor)
        detections = predict_set(predictor, items, batch_size=1)
        metrics = evaluate(predictor, items, detections=detections)
        counts = [r["pred"] for r in metrics["per_image"]]
        if ref_counts is None:
            ref_counts = counts
        same = sum(a == b for a, b in zip(counts, ref_counts))
        rows.append(
            {
                "format": fmt.name,
                "runtime": predictor.runtime,
                "file": display_path(fmt.path) if fmt.path else "model.pt (checkpoint)",
                "size_mb": round(fmt.size_mb(), 2) if fmt.path else None,
                "mAP": round(metrics["map"], 4),
                "mAP50": round(metrics["map_50"], 4),
                "count_mae": round(metrics["count_mae"], 3),
                "counts_same": same,
                "counts_same_text": f"{same}/{len(counts)}",
                "images": len(counts),
            }
        )
    timings = time_round_robin(
        predictors, items[0].load_image(), warmup, runs, batch_size, progress=progress
    )
    base = timings[0]["run_p50_ms"]
    for row, times in zip(rows, timings):
        row.update({k: round(v, 2) for k, v in times.items()})
        row["pre_post_share"] = round(
            (times["pre_ms"] + times["post_ms"])
            / (times["pre_ms"] + times["run_p50_ms"] + times["post_ms"]),
            3,
        )
        row["speedup"] = round(base / times["run_p50_ms"], 2)
        row["fps"] = round(1000 / times["e2e_p50_ms"], 1)
    return rows


TABLE_COLUMNS = (
    ("format", "format", "{}"),
    ("size_mb", "MB", "{:.1f}"),
    ("run_p50_ms", "run p50 ms", "{:.1f}"),
    ("run_p95_ms", "p95", "{:.1f}"),
    ("e2e_p50_ms", "e2e p50", "{:.1f}"),
    ("pre_post_share", "pre/post", "{:.0%}"),
    ("throughput_ips", "img/s b4", "{:.1f}"),
    ("speedup", "speed-up", "{:.1f}x"),
    ("mAP", "mAP", "{:.3f}"),
    ("mAP50", "mAP50", "{:.3f}"),
    ("count_mae", "count MAE", "{:.2f}"),
    ("counts_same_text", "= PyTorch", "{}"),
)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The scorecard as a plain-text table (for terminals and notebook output)."""
    header = [title for _, title, _ in TABLE_COLUMNS]
    body = []
    for row in rows:
        cells = []
        for key, _, fmt in TABLE_COLUMNS:
            value = row.get(key)
            cells.append("-" if value is None else fmt.format(value))
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for cells in body:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
            )
        )
    return "\n".join(lines)


def as_dataframe(rows: Sequence[dict[str, Any]]):
    """The scorecard as a pandas DataFrame (pandas comes with gradio), indexed by format."""
    import pandas as pd

    keep = [k for k, _, _ in TABLE_COLUMNS] + ["e2e_p95_ms", "pre_ms", "post_ms", "fps"]
    return pd.DataFrame([{k: r.get(k) for k in keep} for r in rows]).set_index("format")


def plot_scorecard(rows: Sequence[dict[str, Any]], title: str | None = None):
    """Two bar charts: latency (graph and end to end) and mAP, one bar pair per format."""
    import matplotlib.pyplot as plt

    names = [r["format"] for r in rows]
    y = np.arange(len(rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.5), dpi=90, sharey=True)
    ax1.barh(y + 0.2, [r["e2e_p50_ms"] for r in rows], 0.4, label="end to end", color="#9ecae1")
    ax1.barh(y - 0.2, [r["run_p50_ms"] for r in rows], 0.4, label="graph only", color="#3182bd")
    ax1.set_yticks(y, names)
    ax1.invert_yaxis()
    ax1.set_xlabel("latency p50, batch 1 (ms, lower is better)")
    ax1.legend(loc="lower right", fontsize=8)
    ax2.barh(y + 0.2, [r["mAP50"] for r in rows], 0.4, label="mAP@.5", color="#a1d99b")
    ax2.barh(y - 0.2, [r["mAP"] for r in rows], 0.4, label="mAP@[.5:.95]", color="#31a354")
    ax2.set_xlabel("accuracy on held-out images (higher is better)")
    ax2.set_xlim(0, 1)
    ax2.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def machine_caption(threads: int) -> str:
    """CPU model, core count and thread setting: the context every latency number needs."""
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load avg {os.getloadavg()[0]:.1f}"
    return f"{cpu_name()} ({os.cpu_count()} cores), {threads} threads{load}"


def runtime_versions() -> dict[str, str]:
    """Versions of every runtime in the scorecard: numbers change with them."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "onnx", "onnxruntime", "openvino", "nncf", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


# The talk's edge story (a YOLOX detector on an Intel i9 CPU, the author's own posts, 2022).
TALK_FPS = (
    ("PyTorch", 5),
    ("ONNX Runtime", 10),
    ("OpenVINO FP16", 16),
    ("OpenVINO INT8 (PTQ)", 50),
)


def fps_story(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our frames per second (1000 / p50 latency) next to the talk's 5 -> 50 FPS, as rows."""
    ours = [
        {
            "format": r["format"],
            "fps_graph": round(1000 / r["run_p50_ms"], 1),
            "fps_end_to_end": round(1000 / r["e2e_p50_ms"], 1),
            "x_vs_pytorch": r["speedup"],
        }
        for r in rows
    ]
    talk = [
        {
            "format": f"talk: {name}",
            "fps_graph": fps,
            "fps_end_to_end": None,
            "x_vs_pytorch": fps / 5,
        }
        for name, fps in TALK_FPS
    ]
    return ours + talk
