"""Export the trained detector to ONNX, with everything inference needs inside the file.

What goes into the graph is ``model.DetectorCore``: the network plus box decoding at a
fixed square input size. Input ``images [N, 3, S, S]`` (normalised, any batch size),
outputs ``boxes [N, A, 4]`` (input pixels) and ``scores [N, A, C]``. Letterbox,
normalisation, thresholds and NMS stay outside, in ``processing`` (see docs/CONVENTIONS.md).

Exporter: ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based tracer. Measured
here (torch 2.14): ``dynamo=True`` fails on the *full* torchvision detector inside
``batched_nms`` (a data-dependent guard); on ``DetectorCore`` (no NMS) it works and gives
the same numbers (max diff 3e-5) after ONNX Runtime's graph optimisations, but it needs the
extra ``onnxscript`` package and took ~6 s instead of ~0.4 s. The tracer is enough for a
graph without data-dependent control flow, so we keep one dependency fewer. It prints a
DeprecationWarning in torch >= 2.9, which we silence; if a future torch drops it, switch to
``dynamo=True`` with ``dynamic_shapes={"images": {0: Dim("batch")}}``.

The inference config (class names, input size, normalisation, counting threshold, NMS IoU,
model name) travels as JSON in the ONNX ``metadata_props``, so a ``.onnx`` file alone is
enough to count cells: ``runtime.OnnxPredictor(path)`` needs nothing else.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__, handoff
from .config import display_path, onnx_path
from .modelfile import (  # noqa: F401  (the readers are re-exported: notebooks use export.*)
    CONFIG_KEY,
    VERSION_KEY,
    ModelFileError,
    check_model_bytes,
    config_from_metadata,
    load_onnx,
    metadata,
    read_model_bytes,
    read_onnx_config,
)
from .processing import InferenceConfig, preprocess

if TYPE_CHECKING:
    from torch import nn

    from .runtime import Predictor

TORCH_KEY = "torch_version"
INPUT_NAME = "images"
OUTPUT_NAMES = ("boxes", "scores")


def _detector_and_config(model: Any, config: InferenceConfig | None) -> tuple[Any, InferenceConfig]:
    """Accept a detector (+config), a ``checkpoint.Checkpoint``, or a checkpoint path."""
    if isinstance(model, (str, os.PathLike)):
        from .checkpoint import load_checkpoint

        model = load_checkpoint(model)
    if hasattr(model, "detector") and hasattr(model, "config"):  # a Checkpoint
        return model.detector, config or model.config
    if config is None:
        raise ValueError("export_onnx needs the InferenceConfig when given a bare detector")
    return model, config


def export_onnx(
    detector_or_checkpoint: nn.Module | Any,
    config: InferenceConfig | None = None,
    path: str | Path | None = None,
    opset: int = 17,
    dynamic_batch: bool = True,
) -> Path:
    """Export ``DetectorCore`` to ``path`` (default ``artifacts/model.onnx``), check it, add metadata.

    ``detector_or_checkpoint``: a torchvision detector (then ``config`` is required), a
    ``checkpoint.Checkpoint`` or the path of a ``.pt`` checkpoint. The file is written
    atomically (a temporary name, then renamed) so a crash never leaves half a model.
    """
    import onnx
    import torch

    from .model import DetectorCore

    detector, config = _detector_and_config(detector_or_checkpoint, config)
    path = Path(path) if path is not None else onnx_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = detector.training
    detector.eval()
    core = DetectorCore(detector, config.image_size).eval()
    size = config.image_size
    dummy = torch.zeros(1, 3, size, size)
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)} if dynamic_batch else None
    from .atomicio import commit, temp_name  # not at the top: the Space copies this module

    tmp = temp_name(path, ".onnx")  # unique, same folder; a killed run's left-over is removed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's DeprecationWarning and TracerWarnings
            torch.onnx.export(
                core,
                (dummy,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=axes,
            )
        model = onnx.load(str(tmp))
        with torch.inference_mode():
            shapes = [tuple(t.shape) for t in core(dummy)]
        _name_output_dims(model, shapes, dynamic_batch)
        onnx.checker.check_model(model, full_check=True)
        model.doc_string = (
            f"{config.model_name} cell detector ({', '.join(config.class_names)}), "
            f"{size}x{size} input; NMS and thresholds are applied outside the graph."
        )
        set_metadata(model, config, {TORCH_KEY: torch.__version__})
        onnx.save(model, str(tmp))
        commit(tmp, path)  # fsync + rename
    finally:
        tmp.unlink(missing_ok=True)
        detector.train(was_training)
    return path


def _name_output_dims(model: Any, shapes: list[tuple[int, ...]], dynamic_batch: bool) -> None:
    """Declare the output shapes (``batch x A x 4``, ``batch x A x C``) instead of the tracer's
    generated names, so Netron, OpenVINO and readers see the number of anchors ``A``."""
    for output, shape in zip(model.graph.output, shapes):
        dims = output.type.tensor_type.shape.dim
        for i, (dim, value) in enumerate(zip(dims, shape)):
            if i == 0 and dynamic_batch:
                dim.dim_param = "batch"
            else:
                dim.dim_value = int(value)


def set_metadata(model: Any, config: InferenceConfig, extra: dict[str, str] | None = None) -> None:
    """Write the inference config (JSON) and versions into an ``onnx.ModelProto``'s metadata."""
    values = {
        CONFIG_KEY: json.dumps(config.to_dict()),
        VERSION_KEY: __version__,
        **(extra or {}),
    }
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, str(value)


def graph_summary(path: str | Path) -> dict[str, Any]:
    """Size, node count and op-type counts of an ONNX file: what Netron would show you."""
    model = load_onnx(path)
    ops = Counter(node.op_type for node in model.graph.node)
    inputs = {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in model.graph.input
    }
    outputs = {
        o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
        for o in model.graph.output
    }
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    return {
        "file": display_path(path),
        "size_mb": round(Path(path).stat().st_size / 1e6, 2),
        "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "nodes": len(model.graph.node),
        "parameters": params,
        "inputs": inputs,
        "outputs": outputs,
        "op_types": dict(ops.most_common()),
    }


def parity(
    reference: Predictor,
    other: Predictor,
    images: Sequence[Any],
    threshold: float | None = None,
) -> dict[str, Any]:
    """Compare two predictors on the same images: raw outputs and the final counts.

    ``boxes_max_abs``/``scores_max_abs`` compare the raw graph outputs anchor by anchor
    (the same preprocessed tensor goes into both); ``counts_identical`` compares the cell
    counts after the shared post-processing, at ``threshold`` (default: the counting one).
    """
    box_diff, score_diff, same, rows = 0.0, 0.0, 0, []
    for index, image in enumerate(images):
        if hasattr(image, "load_image"):  # an AnnotatedImage
            image = image.load_image()
        batch, scales, sizes = preprocess([image], reference.config)
        ref_boxes, ref_scores = reference.run(batch)
        oth_boxes, oth_scores = other.run(batch)
        box_diff = max(box_diff, float(np.abs(ref_boxes - oth_boxes).max()))
        score_diff = max(score_diff, float(np.abs(ref_scores - oth_scores).max()))
        from .processing import postprocess

        ref_count = postprocess(ref_boxes, ref_scores, reference.config, scales, sizes, threshold)[
            0
        ].count
        oth_count = postprocess(oth_boxes, oth_scores, other.config, scales, sizes, threshold)[
            0
        ].count
        same += int(ref_count == oth_count)
        rows.append({"image": index, reference.runtime: ref_count, other.runtime: oth_count})
    n = len(rows)
    return {
        "reference": reference.runtime,
        "other": other.runtime,
        "images": n,
        "boxes_max_abs": box_diff,
        "scores_max_abs": score_diff,
        "counts_identical": same,
        "counts_identical_text": f"{same}/{n}",
        "per_image": rows,
    }


def ensure_onnx(path: str | Path | None = None, checkpoint: str | Path | None = None) -> Path:
    """``artifacts/model.onnx``, exported from the checkpoint (trained first if needed) if missing.

    Like ``make``: an ONNX file older than the checkpoint it comes from is exported again,
    so notebooks after a re-training never compare a new checkpoint with an old ONNX file.
    """
    from .config import checkpoint_path

    path = Path(path) if path is not None else onnx_path()
    source = Path(checkpoint) if checkpoint is not None else checkpoint_path()
    asked = not path.exists() and not source.exists()
    if asked:  # a fresh runtime: the learner's own model from the Hub?
        handoff.fetch_own_model(checkpoint=source, onnx=path)
    if path.exists():
        if not source.exists() or source.stat().st_mtime <= path.stat().st_mtime:
            return path
        print(f"{display_path(path)} is older than {display_path(source)}: exporting it again.")
    else:
        print(
            f"{display_path(path)} not found: exporting it from the checkpoint (as notebook 03 does)."
        )
    from . import train

    return export_onnx(train.ensure_checkpoint(source, ask_hub=not asked), path=path)


def plot_op_types(summary: dict[str, Any], top: int = 12, ax=None):
    """Bar chart of the most frequent operator types in the graph (from :func:`graph_summary`)."""
    import matplotlib.pyplot as plt

    items = list(summary["op_types"].items())[:top]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.28 * len(items) + 1), dpi=90)
    names, counts = zip(*items) if items else ((), ())
    ax.barh(names, counts, color="#3182bd")
    ax.invert_yaxis()
    ax.set_xlabel("nodes")
    ax.set_title(f"{summary['nodes']} nodes, top {len(items)} operator types", fontsize=10)
    ax.figure.tight_layout()
    return ax.figure
