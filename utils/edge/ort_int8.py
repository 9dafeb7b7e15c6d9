"""ONNX Runtime INT8: static (QDQ, calibrated) and dynamic quantization of the exported model.

* **static** INT8 (QDQ): weights *and* activations in INT8; activation ranges come from a
  calibration pass over preprocessed training images. Only ``Conv`` is quantized by default:
  the box decoding (a few multiplications with pixel-sized numbers) and the sigmoid scores
  stay in float, which is what keeps the boxes and the mAP.
* **dynamic** INT8: weights in INT8, activation ranges computed at run time. Made for
  Transformers/LSTMs (MatMul); on a conv net it inserts per-tensor range computations and
  ConvInteger kernels that are *slower* than FP32 - the lesson of notebook 06.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..atomicio import atomic_path
from .calibration import _calibration_job, _calibration_reader, _output_path


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

    onnx_file, output, _, batches = _calibration_job(
        onnx_file, output, "_int8_static.onnx", calibration_images, limit, "static quantization"
    )
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    recipe = {
        "tool": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "op_types": list(op_types) if op_types else "all",
        "per_channel": per_channel,
        "activations": activation_type,
        "calibration_images": len(batches),
        "calibration": calibrate_method,
    }
    return _quantize(
        onnx_file,
        output,
        lambda prepared, quantized: ort_quantize_static(
            prepared,
            quantized,
            _calibration_reader(batches, "images"),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types) if op_types else None,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude_nodes or []),
            calibrate_method=methods[calibrate_method],
            extra_options={"CalibTensorRangeSymmetric": False},
        ),
        recipe,
    )


def quantize_dynamic(
    onnx_file: str | Path,
    output: str | Path | None = None,
    op_types: Sequence[str] | None = None,
    per_channel: bool = False,
) -> Path:
    """ONNX Runtime dynamic INT8: INT8 weights, activation ranges found per run (no calibration)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    onnx_file = Path(onnx_file)
    recipe = {
        "tool": "onnxruntime.quantization.quantize_dynamic",
        "op_types": list(op_types) if op_types else "all",
        "per_channel": per_channel,
    }
    return _quantize(
        onnx_file,
        _output_path(onnx_file, output, "_int8_dynamic.onnx"),
        lambda prepared, quantized: ort_quantize_dynamic(
            prepared,
            quantized,
            op_types_to_quantize=list(op_types) if op_types else None,
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
        ),
        recipe,
    )


def _quantize(
    onnx_file: Path, output: Path, quantize: Callable[[str, str], Any], recipe: dict[str, Any]
) -> Path:
    """``quant_pre_process`` then ``quantize(prepared, quantized)`` in a temporary folder (so
    nothing is left in the working directory), our metadata + ``recipe``, then an atomic move."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_file), str(prepared), skip_symbolic_shape=True)
        tmp_out = Path(tmp) / "quantized.onnx"
        quantize(str(prepared), str(tmp_out))
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
