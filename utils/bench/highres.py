"""Latency of full-resolution photos on every runtime, for ``python -m utils.bench train --highres``.

A 2,800 px photo is resized to the model's working scale and counted in tiles
(``processing.count_tiled``); this times that whole path (resize, tiles, graph, merge) per
photo on eager PyTorch, ONNX Runtime FP32 and INT8 and OpenVINO INT8, all built from the
trained model, and says how many tiles a photo took and whether the counts match PyTorch's.
Decoding the JPEG is timed once, apart: it is the same for every runtime.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..images import load_image


def runtime_latency(
    result, photos: Sequence[Path], calibration: Sequence[Path], workdir: Path, runs: int = 3
) -> list[dict[str, Any]]:
    """One row per runtime: median ms per photo, tiles per photo, counts identical to PyTorch."""
    from ..edge import quantize_openvino, quantize_static
    from ..edge.timing import timeit_ms
    from ..export import export_onnx
    from ..loading import load_predictor

    workdir.mkdir(parents=True, exist_ok=True)
    onnx = export_onnx(result.detector, result.config, path=workdir / "model.onnx")
    calib = [load_image(p).image for p in calibration]
    predictors = {
        "PyTorch eager": result.predictor(),
        "ONNX Runtime FP32": load_predictor(onnx),
        "ONNX Runtime INT8": load_predictor(
            quantize_static(onnx, calib, output=workdir / "model_int8.onnx")
        ),
        "OpenVINO INT8": load_predictor(
            quantize_openvino(onnx, calib, output=workdir / "model_ov_int8.xml")
        ),
    }
    decode_ms = statistics.median(timeit_ms(lambda p=p: load_image(p), 0, 1)[0] for p in photos)
    images = [load_image(p).image for p in photos]
    reference = [predictors["PyTorch eager"].predict(image).count for image in images]
    rows = []
    for name, predictor in predictors.items():
        predictor.predict(images[0])  # warm-up: first-call allocations and graph compilation
        times, counts, tiles = [], [], []
        for image in images:
            times.append(
                statistics.median(timeit_ms(lambda p=predictor, i=image: p.predict(i), 0, runs))
            )
            found = predictor.predict(image)
            counts.append(found.count)
            tiles.append(found.tiles)
        rows.append(
            {
                "runtime": name,
                "ms_per_photo": round(statistics.median(times), 1),
                "ms_with_decode": round(statistics.median(times) + decode_ms, 1),
                "tiles_per_photo": statistics.median(tiles),
                "photo_px": f"{images[0].width} x {images[0].height}",
                "counts_identical": f"{sum(a == b for a, b in zip(counts, reference))}/{len(images)}",
            }
        )
    return rows


def format_latency(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'runtime':<20} {'ms/photo':>9} {'+decode':>8} {'tiles':>6} {'same counts':>12}"]
    for r in rows:
        lines.append(
            f"{r['runtime']:<20} {r['ms_per_photo']:>9.1f} {r['ms_with_decode']:>8.1f} "
            f"{r['tiles_per_photo']:>6} {r['counts_identical']:>12}"
        )
    return "\n".join(lines)
