"""OpenVINO IR in FP32 and FP16 (``convert_model`` -> ``save_model``), INT8 with NNCF.

FP16-compressed weights halve the file with the same accuracy (a CPU still computes in
FP32). NNCF post-training quantization (``nncf.quantize``) is calibrated on the training
images, with an ``ignored_scope`` that keeps the decoding after the heads in float (and
optionally the heads' last convolutions too).

Every IR written here takes the photo's **uint8 pixels** (``[N, S, S, 3]``, as Pillow resized
them) and standardises them itself: OpenVINO's ``PrePostProcessor`` adds the conversion to
float, the ImageNet mean and scale and the layout change in front of the graph, which the CPU
plugin runs as one fused pass before the first convolution (its per-layer counters show a
single ``Transpose`` node for them: 0.14 ms for a 512 px input, quiet machine). Measured on
the INT8 IR on a 2-core Intel Xeon with AMX
(2026-12-07, side script, 6 x 100 alternating calls of one 640 px photo): a call took 11.5
instead of 12.6 ms, the graph's outputs bit for bit the same; preparing the pixels took 2.0
instead of 2.3 ms, and the graph, which now reads a quarter of the bytes, 8.5 instead of 8.9 ms.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomicio import atomic_openvino
from ..processing import InferenceConfig
from ..runtime import OV_CONFIG_PATH
from .calibration import _calibration_job, _output_path, _read_config


def _ov_set_config(model: Any, config: InferenceConfig, recipe: dict[str, Any]) -> None:
    model.set_rt_info(json.dumps(config.to_dict()), OV_CONFIG_PATH)
    model.set_rt_info(json.dumps(recipe), ["deploy_without_tears", "recipe"])


def _uint8_input(model: Any, config: InferenceConfig) -> Any:
    """``model`` taking uint8 ``[N, S, S, 3]`` pixels, standardised inside the graph.

    ``(x - 255 mean) / (255 std)`` equals ``processing.normalize``'s ``x / (255 std) -
    mean / std``: the same network input, computed by OpenVINO instead of NumPy.
    """
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean(
        [255.0 * m for m in config.mean]
    ).scale([255.0 * s for s in config.std])
    return ppp.build()


def ir_input(model_file: str | Path) -> str:
    """A model's input as OpenVINO reads it, e.g. ``u8 [?,512,512,3]`` for the course's IRs (the
    photo's bytes) or ``f32 [?,3,512,512]`` for the ONNX file (standardised floats)."""
    import openvino as ov

    port = ov.Core().read_model(str(model_file)).input(0)
    return f"{port.get_element_type().get_type_name()} {port.get_partial_shape()}"


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
    output = _output_path(onnx_file, output, f"_ov{suffix}.xml")
    model = _uint8_input(ov.convert_model(str(onnx_file)), config)
    recipe = {"tool": "openvino.convert_model", "weights": suffix[1:], "pixels": "uint8"}
    _ov_set_config(model, config, recipe)
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
# The decoding after the heads: sigmoid, the 3x3 peak test (MaxPool, Equal, Where), exp and the
# box corners. ``torch.onnx.export`` names these top-level nodes after their op ("/Sigmoid",
# "/MaxPool", "/Sub_1"; module paths start in lower case: "/body/...") and the outputs "boxes"
# and "scores"; NNCF matches each pattern at the start of a node's name.
DECODE_PATTERNS = (r"/[A-Z][A-Za-z]*(_[0-9]+)?$", r"(boxes|scores)$")


@dataclass
class NncfOptions:
    """The knobs of ``nncf.quantize`` that matter for this detector."""

    preset: str = "mixed"  # "performance": symmetric activations; "mixed": asymmetric
    subset_size: int = 300  # calibration images used (all of ours)
    fast_bias_correction: bool = True
    ignore_head_outputs: bool = False  # keep the head's last convs in float too
    ignored_patterns: tuple[str, ...] = ()
    # Quantize the decoding as well (NNCF's own choice: a FakeQuantize before the peak test's
    # MaxPool). Off: on a 2-core Intel Xeon with AMX (2026-12-07) the decoding in float made the
    # INT8 graph faster (10.8 against 13.0 ms) and its counts closer to PyTorch's (28 against 27
    # of 30 photos equal; count MAE 0.80 against 0.83): quantized, the peak test (MaxPool, Equal)
    # works on 8-bit steps of the sigmoid (1/255 apart, near the counting threshold too) and
    # costs a FakeQuantize and a dequantizing multiply on the whole heatmap.
    quantize_decoding: bool = False


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
    onnx_file, output, config, batches = _calibration_job(
        onnx_file, output, "_ov_int8.xml", calibration_images, limit, "NNCF quantization"
    )
    model = ov.convert_model(str(onnx_file))
    patterns = list(options.ignored_patterns)
    if options.ignore_head_outputs:
        patterns += list(HEAD_OUTPUT_PATTERNS)
    if not options.quantize_decoding:
        patterns += list(DECODE_PATTERNS)
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
        "pixels": "uint8",
    }
    quantized = _uint8_input(quantized, config)  # after calibration, which fed normalised floats
    _ov_set_config(quantized, config, recipe)
    with atomic_openvino(output) as tmp:
        ov.save_model(quantized, str(tmp), compress_to_fp16=False)
    return output
