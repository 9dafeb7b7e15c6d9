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

from ..processing import postprocess, recording
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


WARM_BLOCKS = 4  # rounds of back-to-back calls per predictor in ``time_round_robin``


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _outside_share(pre: float, graph: float, post: float) -> float:
    """The part of a call spent outside the graph, which no runtime can speed up."""
    return (pre + post) / (pre + graph + post)


def _summary(
    run: Sequence[float],
    pre: Sequence[float],
    post: Sequence[float],
    e2e: Sequence[float],
    batched: Sequence[float],
    batch_size: int,
    warm: dict[str, list[float]] | None = None,
) -> dict[str, float]:
    """The timing row (ms, images per second) from the raw times of each measurement.

    ``warm``: end-to-end times of back-to-back calls (``e2e``) and their parts as the call's
    own timing records saw them (``preprocess``, ``graph``, ``postprocess``); without it the
    ``e2e`` calls count as warm (they ran back to back).
    """
    warm = warm or {"e2e": list(e2e), "preprocess": list(pre), "postprocess": list(post)}
    warm_pre, warm_post = (
        statistics.median(warm["preprocess"]),
        statistics.median(warm["postprocess"]),
    )
    warm_graph = statistics.median(warm["graph"]) if warm.get("graph") else _pct(run, 50)
    pre_ms, post_ms = statistics.median(pre), statistics.median(post)
    return {
        "run_p50_ms": _pct(run, 50),
        "run_p95_ms": _pct(run, 95),
        "pre_ms": pre_ms,
        "post_ms": post_ms,
        "e2e_p50_ms": _pct(e2e, 50),
        "e2e_p95_ms": _pct(e2e, 95),
        "pre_post_share": _outside_share(pre_ms, _pct(run, 50), post_ms),
        "e2e_warm_p50_ms": _pct(warm["e2e"], 50),
        "warm_pre_post_share": _outside_share(warm_pre, warm_graph, warm_post),
        "throughput_ips": batch_size * 1000 / statistics.median(batched),
    }


def _warm_block(predictor: Predictor, image: Image.Image, calls: int, out: dict[str, list]) -> None:
    """``calls`` back-to-back ``predict`` calls after one untimed: a deployed counter's calls.

    Each call's parts come from its own timing records (``processing.recording``).
    """
    records = []

    def call() -> None:
        with recording() as record:
            predictor.predict(image)
        records.append(record.ms())

    out["e2e"] += timeit_ms(call, 1, calls)
    for parts in records[1:]:  # the first call only warms up
        for name in ("preprocess", "graph", "postprocess"):
            out[name].append(parts.get(name, 0.0))


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

    Throughput runs ``batch_size`` copies of the image in one ``run`` call (which an
    ``OpenVinoPredictor``, compiled for one photo, runs one copy after another).
    """
    config = predictor.config
    batch, scales, sizes = predictor.prepare([image])
    boxes, scores = predictor.run(batch)
    run = timeit_ms(lambda: predictor.run(batch), warmup, runs)
    pre = timeit_ms(lambda: predictor.prepare([image]), 1, max(5, runs // 3))
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
    all formats alike instead of spoiling one row: fairer on a shared or busy machine. But a call
    right after another runtime's finds the caches full of that runtime's data and its own
    threads asleep, which costs a 10 ms graph far more than a 100 ms one (an INT8 IR on an Intel
    Xeon: 15.2 ms a call interleaved, 11.0 ms back to back; PyTorch eager 96 and 99 ms). So each
    predictor is then also timed warm, as a deployed counter runs: ``WARM_BLOCKS`` rounds of a
    block of back-to-back calls each (``e2e_warm_p50_ms``, ``warm_pre_post_share``).
    """
    prepared = []
    for p in predictors:
        batch, scales, sizes = p.prepare([image])
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
                t["pre"] += timeit_ms(lambda p=p: p.prepare([image]), 0, 1)
                t["post"] += timeit_ms(
                    lambda p=p, bx=boxes, sc=scores, s=scales, z=sizes: postprocess(
                        bx, sc, p.config, s, z
                    ),
                    0,
                    1,
                )
            if round_ % 5 == 0:
                t["batched"] += timeit_ms(lambda p=p, b=big: p.run(b), 0, 1)
    warm: list[dict[str, list[float]]] = [
        {k: [] for k in ("e2e", "preprocess", "graph", "postprocess")} for _ in prepared
    ]
    calls = max(3, runs // WARM_BLOCKS)
    for _ in range(WARM_BLOCKS):
        for (p, *_), w in zip(prepared, warm):
            _warm_block(p, image, calls, w)
    return [
        _summary(t["run"], t["pre"], t["post"], t["e2e"], t["batched"], batch_size, w)
        for t, w in zip(times, warm)
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
