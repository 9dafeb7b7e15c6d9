"""Smaller and faster models for the edge: INT8 with ONNX Runtime, OpenVINO FP32/FP16/INT8.

Every format here is built from the one exported ONNX file (``export.export_onnx``) and
runs through the same ``runtime.Predictor`` and the same NumPy pre/post-processing, so the
scorecard compares runtimes and number formats, nothing else.

One module per job; each imports only those to its left:
``calibration`` (the preprocessed calibration images) <- ``ort_int8`` (ONNX Runtime static
and dynamic INT8), ``openvino_ir`` (OpenVINO FP32/FP16 IR, NNCF INT8) <- ``formats`` (every
format from one ONNX file); ``timing`` (latency, throughput, machine facts) and ``layers``
(an OpenVINO graph's time layer by layer) stand alone;
``formats`` and ``timing`` <- ``scorecard`` (all of them side by side: size, latency, mAP,
count error, counts identical to PyTorch; table, DataFrame and plot).
"""

from .formats import ModelFormat, build_formats, cpu_has_bf16
from .layers import LayerProfile, profile_openvino
from .openvino_ir import (
    NncfOptions,
    ir_files,
    ir_input,
    quantize_openvino,
    to_openvino,
)
from .ort_int8 import quantize_dynamic, quantize_static, quantized_node_count
from .scorecard import (
    TABLE_COLUMNS,
    as_dataframe,
    format_table,
    fps_story,
    plot_scorecard,
    scorecard,
)
from .timing import cpu_name, machine_caption, runtime_versions, time_predictor

__all__ = [
    "TABLE_COLUMNS",
    "LayerProfile",
    "ModelFormat",
    "NncfOptions",
    "as_dataframe",
    "build_formats",
    "cpu_has_bf16",
    "cpu_name",
    "format_table",
    "fps_story",
    "ir_files",
    "ir_input",
    "machine_caption",
    "plot_scorecard",
    "profile_openvino",
    "quantize_dynamic",
    "quantize_openvino",
    "quantize_static",
    "quantized_node_count",
    "runtime_versions",
    "scorecard",
    "time_predictor",
    "to_openvino",
]
