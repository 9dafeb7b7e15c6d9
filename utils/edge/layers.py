"""Where an OpenVINO graph's milliseconds go, layer by layer (OpenVINO's ``PERF_COUNT``).

Why: the scorecard says how long a graph takes end to end; this says which layers take it,
so a learner can tell a graph that needs less glue around it from one that needs fewer or
cheaper convolutions (the INT8 counter's case: see the README's edge scorecard).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..processing import UINT8
from ..runtime import fix_batch_at_one, input_pixels

CONVOLUTIONS = ("Convolution", "GroupConvolution")


@dataclass(frozen=True)
class LayerProfile:
    """Mean milliseconds per run: in all, by node type, and the slowest layers."""

    total_ms: float
    by_type: dict[str, float]  # node type -> ms, largest first
    slowest: list[tuple[str, str, float]]  # (layer, node type, ms), largest first
    runs: int
    threads: int

    @property
    def conv_ms(self) -> float:
        return sum(ms for kind, ms in self.by_type.items() if kind in CONVOLUTIONS)

    def lines(self, top: int = 5) -> list[str]:
        """A few lines for a terminal: the convolutions' share, the other types, the slowest."""
        share = self.conv_ms / self.total_ms if self.total_ms else 0.0
        others = ", ".join(
            f"{kind} {ms:.2f}" for kind, ms in self.by_type.items() if kind not in CONVOLUTIONS
        )
        out = [
            f"  {self.total_ms:.1f} ms per run by OpenVINO's own counters (mean of {self.runs} "
            f"runs, {self.threads} threads): convolutions {self.conv_ms:.1f} ms ({share:.0%}); "
            f"the rest {self.total_ms - self.conv_ms:.1f} ms ({others or 'nothing'})",
            f"  slowest {top} layers:",
        ]
        out += [f"    {ms:6.2f} ms  {kind:12s} {name}" for name, kind, ms in self.slowest[:top]]
        return out


def profile_openvino(
    path: str | Path,
    threads: int = 2,
    runs: int = 20,
    warmup: int = 5,
    precision: str = "f32",
    one_photo: bool = True,
) -> LayerProfile:
    """Run an OpenVINO IR (or ONNX file) on zeros of its input size with per-layer counters.

    The input's content does not change a convolution's time, so zeros stand in for a photo.
    ``precision`` pins the compute type as ``OpenVinoPredictor`` does (FP32 means FP32);
    ``one_photo``: compiled for one photo, as the predictor does (``runtime.fix_batch_at_one``);
    False keeps the file's open batch, to see what fixing it saves.
    """
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if one_photo:
        fix_batch_at_one(model)
    shape = [
        1 if dim.is_dynamic else dim.get_length() for dim in model.input(0).get_partial_shape()
    ]
    properties = {
        "PERF_COUNT": "YES",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": int(threads),
        "INFERENCE_PRECISION_HINT": precision,
    }
    request = core.compile_model(model, "CPU", properties).create_infer_request()
    batch = np.zeros(shape, np.uint8 if input_pixels(model) == UINT8 else np.float32)
    for _ in range(warmup):
        request.infer({0: batch})
    per_layer: dict[tuple[str, str], float] = defaultdict(float)
    for _ in range(runs):
        request.infer({0: batch})
        for info in request.get_profiling_info():
            if info.status == info.Status.EXECUTED:
                per_layer[(info.node_name, info.node_type)] += info.real_time.total_seconds()
    by_type: dict[str, float] = defaultdict(float)
    for (_, kind), seconds in per_layer.items():
        by_type[kind] += seconds * 1000 / runs
    by_type = {kind: ms for kind, ms in by_type.items() if ms >= 0.005}  # shape-only nodes
    slowest = sorted(
        ((name, kind, seconds * 1000 / runs) for (name, kind), seconds in per_layer.items()),
        key=lambda row: -row[2],
    )
    return LayerProfile(
        total_ms=sum(by_type.values()),
        by_type=dict(sorted(by_type.items(), key=lambda item: -item[1])),
        slowest=slowest,
        runs=runs,
        threads=threads,
    )
