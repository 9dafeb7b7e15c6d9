"""The scorecard: every format side by side (size, latency, mAP, counts), as table and plot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import display_path
from ..progress import tqdm
from ..runtime import Predictor
from .formats import ModelFormat
from .timing import time_round_robin


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
    ``pre_post_share`` is the part of the time that no runtime can speed up. ``e2e_warm`` and
    ``warm_pre_post_share``: the same, each format timed in blocks of back-to-back calls.
    """
    import torch

    from ..evaluate import evaluate, predict_set

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
        for share in ("pre_post_share", "warm_pre_post_share"):
            row[share] = round(times[share], 3)
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
    ("e2e_warm_p50_ms", "e2e warm", "{:.1f}"),
    ("warm_pre_post_share", "pre/post", "{:.0%}"),
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

    def line(cells: Sequence[str]) -> str:  # the first column left-aligned, numbers right
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    lines = [line(header), "  ".join("-" * w for w in widths)]
    lines += [line(cells) for cells in body]
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
