"""Latency and throughput of predictors, and the machine facts every number needs."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..processing import postprocess, preprocess
from ..progress import tqdm
from ..runtime import Predictor


def timeit_ms(fn: Callable[[], Any], warmup: int, runs: int) -> list[float]:
    """Milliseconds of each of ``runs`` calls of ``fn``, after ``warmup`` untimed ones."""
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


def _summary(
    run: Sequence[float],
    pre: Sequence[float],
    post: Sequence[float],
    e2e: Sequence[float],
    batched: Sequence[float],
    batch_size: int,
) -> dict[str, float]:
    """The timing row (ms, images per second) from the raw times of each measurement."""
    return {
        "run_p50_ms": _pct(run, 50),
        "run_p95_ms": _pct(run, 95),
        "pre_ms": statistics.median(pre),
        "post_ms": statistics.median(post),
        "e2e_p50_ms": _pct(e2e, 50),
        "e2e_p95_ms": _pct(e2e, 95),
        "throughput_ips": batch_size * 1000 / statistics.median(batched),
    }


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
    run = timeit_ms(lambda: predictor.run(batch), warmup, runs)
    pre = timeit_ms(lambda: preprocess([image], config), 1, max(5, runs // 3))
    post = timeit_ms(
        lambda: postprocess(boxes, scores, config, scales, sizes), 1, max(5, runs // 3)
    )
    e2e = timeit_ms(lambda: predictor.predict(image), 1, max(5, runs // 2))
    big = np.repeat(batch, batch_size, axis=0)
    batched = timeit_ms(lambda: predictor.run(big), 1, max(3, runs // 5))
    return _summary(run, pre, post, e2e, batched, batch_size)


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
            t["run"] += timeit_ms(lambda p=p, b=batch: p.run(b), 0, 1)
            if round_ % 2 == 0:
                t["e2e"] += timeit_ms(lambda p=p: p.predict(image), 0, 1)
            if round_ % 3 == 0:
                t["pre"] += timeit_ms(lambda p=p: preprocess([image], p.config), 0, 1)
                t["post"] += timeit_ms(
                    lambda p=p, bx=boxes, sc=scores, s=scales, z=sizes: postprocess(
                        bx, sc, p.config, s, z
                    ),
                    0,
                    1,
                )
            if round_ % 5 == 0:
                t["batched"] += timeit_ms(lambda p=p, b=big: p.run(b), 0, 1)
    return [
        _summary(t["run"], t["pre"], t["post"], t["e2e"], t["batched"], batch_size) for t in times
    ]


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
