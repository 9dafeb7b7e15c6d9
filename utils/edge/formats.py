"""Every edge format built from one ONNX file: the list of rows the scorecard measures."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import artifacts_dir
from ..loading import load_predictor
from ..progress import tqdm
from ..runtime import Predictor
from ..runtime_choice import cpu_has_bf16  # one test for every caller (the app's choice too)
from .calibration import _pil_images
from .openvino_ir import NncfOptions, ir_files, quantize_openvino, to_openvino
from .ort_int8 import quantize_dynamic, quantize_static


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
