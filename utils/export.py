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
from .atomicio import commit, temp_name  # not at the top: the Space copies this module
from .config import checkpoint_path, display_path, onnx_path
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
from .processing import InferenceConfig, postprocess

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
    core = DetectorCore(detector, config.image_size, flips=config.flip_tta).eval()
    size = config.image_size
    dummy = torch.zeros(1, 3, size, size)
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)} if dynamic_batch else None

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


# The parity yardstick, measured on notebook 03's model (6 held-out photos, this course's AMD
# EPYC; the same with COURSE_PRECISION=fp32: PyTorch *inference* is float32 either way, only
# training may use bf16). PyTorch and ONNX Runtime (or OpenVINO f32) compute the same float32
# graph in another order: the scores of the points both keep differ by ~3e-7, boxes by ~6e-5 px.
# bf16 compute (OpenVINO's bf16 on the same CPU) moves scores by ~2.5e-3 and boxes by ~0.2 px;
# a swapped channel order or a missing normalisation by 0.1-0.5 and several pixels.
SCORE_TOLERANCE = 1e-4  # 300x the float32 differences, 25x below the bf16 ones
BOX_TOLERANCE_PX = 1e-2  # 150x the float32 differences of a coordinate up to 512 px
# The graph's 3x3 peak finder keeps a point only where it is the highest of its neighbourhood;
# two neighbours whose scores tie to the last bit can go either way in another runtime (a
# "near-tie": measured 2 among 1,666 peaks of 6 photos, in the flat background, scores < 0.01).
# Such a point scores 0 in one graph and its score in the other, so it is reported apart, not as
# a difference; a share above NEAR_TIE_SHARE of the peaks is not rounding any more.
NEAR_TIE_SHARE = 0.01


def _compare_one(
    reference: Predictor, other: Predictor, image: Any, threshold: float | None
) -> dict[str, Any]:
    """Raw outputs and counts of one image; each predictor prepares it as its own file says."""

    outputs = []
    for predictor in (reference, other):
        batch, scales, sizes = predictor.prepare([image])
        boxes, scores = predictor.run(batch)
        detections = postprocess(boxes, scores, predictor.config, scales, sizes, threshold)
        outputs.append((boxes, scores, detections[0].count))
    (ref_boxes, ref_scores, ref_count), (oth_boxes, oth_scores, oth_count) = outputs
    one: dict[str, Any] = {"counts": (ref_count, oth_count)}
    if ref_boxes.shape != oth_boxes.shape or ref_scores.shape != oth_scores.shape:
        return {**one, "shapes_differ": True}
    kept_ref, kept_oth = ref_scores > 0, oth_scores > 0
    both, ties = kept_ref & kept_oth, kept_ref ^ kept_oth
    return {
        **one,
        "boxes": float(np.abs(ref_boxes - oth_boxes).max()),
        "scores": float(np.abs(ref_scores - oth_scores)[both].max(initial=0.0)),
        "kept": int((kept_ref | kept_oth).sum()),
        "ties": int(ties.sum()),
        "tie_max": float(np.maximum(ref_scores, oth_scores)[ties].max(initial=0.0)),
    }


def _problems(found: dict[str, Any], score_tolerance: float, box_tolerance: float) -> list[str]:
    """Why two predictors are not the same model (empty: they are)."""
    problems = []
    if found["shapes_differ"]:
        problems.append("the outputs have different shapes (another input size?)")
    if found["boxes"] > box_tolerance:
        problems.append(f"boxes differ by {found['boxes']:.1e} px (tolerance {box_tolerance:.0e})")
    if found["scores"] > score_tolerance:
        problems.append(f"scores differ by {found['scores']:.1e} (tolerance {score_tolerance:.0e})")
    if found["ties"] > NEAR_TIE_SHARE * max(found["kept"], 1):
        problems.append(
            f"{found['ties']} of {found['kept']} peaks are found by one graph only: "
            "not near-ties but other peaks"
        )
    return problems


def parity(
    reference: Predictor,
    other: Predictor,
    images: Sequence[Any],
    threshold: float | None = None,
    score_tolerance: float = SCORE_TOLERANCE,
    box_tolerance: float = BOX_TOLERANCE_PX,
) -> dict[str, Any]:
    """Is ``other`` the same model as ``reference``? Raw outputs anchor by anchor, then counts.

    Each predictor prepares the image as its own config says, so a file with a wrong
    normalisation in its metadata shows up too. ``scores_max_abs`` compares the points that both
    graphs keep as peaks; near-ties of the peak finder are counted apart (``near_ties``,
    ``near_tie_max``: below ``min_score`` they can never be counted). ``verdict`` is "same
    model" when boxes and scores agree within the tolerances (float32 in another order, see
    ``SCORE_TOLERANCE``) and near-ties are rare, else "broken", with ``problems`` saying why;
    :func:`describe_parity` puts it in one sentence. Counts are taken at ``threshold``
    (default: each config's counting threshold).
    """
    names = (reference.runtime, other.runtime)
    if names[0] == names[1]:
        names = (f"{names[0]} (reference)", f"{names[1]} (other)")
    found = {"boxes": 0.0, "scores": 0.0, "kept": 0, "ties": 0, "tie_max": 0.0}
    found["shapes_differ"] = False
    rows, same = [], 0
    for index, image in enumerate(images):
        if hasattr(image, "load_image"):  # an AnnotatedImage
            image = image.load_image()
        one = _compare_one(reference, other, image, threshold)
        rows.append({"image": index, names[0]: one["counts"][0], names[1]: one["counts"][1]})
        same += int(one["counts"][0] == one["counts"][1])
        if one.get("shapes_differ"):
            found["shapes_differ"] = True
            continue
        for key in ("boxes", "scores", "tie_max"):
            found[key] = max(found[key], one[key])
        for key in ("kept", "ties"):
            found[key] += one[key]
    problems = _problems(found, score_tolerance, box_tolerance)
    return {
        "reference": reference.runtime,
        "other": other.runtime,
        "images": len(rows),
        "boxes_max_abs": found["boxes"],
        "scores_max_abs": found["scores"],
        "near_ties": found["ties"],
        "near_tie_max": found["tie_max"],
        "peaks": found["kept"],
        "min_score": min(reference.config.min_score, other.config.min_score),
        "counts_identical": same,
        "counts_identical_text": f"{same}/{len(rows)}",
        "tolerance": {"scores": score_tolerance, "boxes_px": box_tolerance},
        "verdict": "broken" if problems else "same model",
        "problems": problems,
        "per_image": rows,
    }


def describe_parity(result: dict[str, Any]) -> str:
    """The parity verdict in one sentence: differences, tolerances, near-ties, counts."""
    tol = result["tolerance"]
    counts = f"counts identical on {result['counts_identical_text']} images"
    if result["verdict"] == "broken":
        return f"BROKEN: {'; '.join(result['problems'])}; {counts}."
    text = (
        f"same model: scores differ by at most {result['scores_max_abs']:.1e} "
        f"(tolerance {tol['scores']:.0e}), boxes by {result['boxes_max_abs']:.1e} px "
        f"(tolerance {tol['boxes_px']:.0e} px): float32 arithmetic in another order"
    )
    ties, top, floor = result["near_ties"], result["near_tie_max"], result["min_score"]
    if ties:
        effect = f"below min_score {floor:g}: never counted" if top < floor else "may move a count"
        text += (
            f"; {ties} near-tie{'s' if ties > 1 else ''} of the peak finder went the other way "
            f"(score up to {top:.1e}, {effect})"
        )
    return f"{text}; {counts}."


MISTAKES = {
    "bgr": "channels in BGR order (an OpenCV habit) instead of the RGB the model was trained on",
    "unnormalised": "no normalisation: 0-1 pixels instead of (pixel - mean) / std",
}


def broken_copy(path: str | Path, mistake: str, out: str | Path | None = None) -> Path:
    """A copy of an exported file with one classic export mistake (:data:`MISTAKES`).

    For notebook 03: run it through :func:`parity` to see what a wrong export looks like.
    ``bgr`` puts a channel swap in front of the graph; ``unnormalised`` stores mean 0 and std 1
    in the metadata, so every runtime feeds the network raw 0-1 pixels. Default ``out``: next to
    ``path``, named ``<stem>_<mistake>.onnx``.
    """
    import dataclasses

    import onnx

    if mistake not in MISTAKES:
        raise ValueError(f"mistake {mistake!r} is not one of {', '.join(MISTAKES)}")
    path = Path(path)
    out = Path(out) if out is not None else path.with_name(f"{path.stem}_{mistake}.onnx")
    model = load_onnx(path)
    if mistake == "bgr":
        swapped = f"{INPUT_NAME}_bgr"
        for node in model.graph.node:
            node.input[:] = [swapped if name == INPUT_NAME else name for name in node.input]
        order = onnx.helper.make_tensor("bgr_order", onnx.TensorProto.INT64, [3], [2, 1, 0])
        model.graph.initializer.append(order)
        swap = onnx.helper.make_node("Gather", [INPUT_NAME, "bgr_order"], [swapped], axis=1)
        model.graph.node.insert(0, swap)
    else:
        config = config_from_metadata(metadata(model), display_path(path))
        set_metadata(model, dataclasses.replace(config, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)))
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


def ensure_onnx(path: str | Path | None = None, checkpoint: str | Path | None = None) -> Path:
    """``artifacts/model.onnx``, exported from the checkpoint (trained first if needed) if missing.

    Like ``make``: an ONNX file older than the checkpoint it comes from is exported again,
    so notebooks after a re-training never compare a new checkpoint with an old ONNX file.
    """

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
