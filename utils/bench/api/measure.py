"""Timing helpers shared by the latency run and the soak: percentiles, CPU time, throughput."""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ...config import artifacts_dir, test_dir


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Timings(list):
    """Wall-clock seconds per call, plus the CPU seconds this process spent on all of them."""

    cpu_s: float | None = None


def summarize(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    out = {
        "n": int(len(ms)),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "mean_ms": round(float(ms.mean()), 1),
        "min_ms": round(float(ms.min()), 1),
    }
    cpu = getattr(seconds, "cpu_s", None)
    if cpu is not None and len(ms):
        # CPU time of every thread of this process (server, ONNX Runtime, client) per call:
        # what one request costs whatever else the machine is doing.
        out["cpu_ms_per_call"] = round(cpu * 1000 / len(ms), 1)
    return out


def timed(call: Callable[[], Any], n: int, warmup: int) -> Timings:
    for _ in range(warmup):
        call()
    out = Timings()
    cpu_start = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    out.cpu_s = time.process_time() - cpu_start
    return out


def throughput(call: Callable[[], Any], clients: int, total: int) -> dict[str, float]:
    """``total`` requests spread over ``clients`` threads; requests per second and latency."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            start = time.perf_counter()
            call()
            with lock:
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": total,
        "wall_s": round(wall, 2),
        "requests_per_s": round(total / wall, 2),
        **summarize(latencies),
    }


def pick_image(path: str | None) -> Path:
    if path:
        return Path(path)
    found = sorted(test_dir().glob("*.jpg")) if test_dir().exists() else []
    if found:
        return found[0]
    from PIL import Image

    target = artifacts_dir() / "bench_api_image.jpg"
    array = (np.random.default_rng(0).random((960, 1280, 3)) * 255).astype(np.uint8)
    Image.fromarray(array).save(target, quality=90)
    return target


def onnx_file(model: str | None) -> Path:
    """The model to serve: ``model``, else ``artifacts/model.onnx`` (exported, trained first)."""
    if model is None:
        from ...export import ensure_onnx

        return ensure_onnx()
    return Path(model)


THROUGHPUT_GOAL = 0.9  # issue 20: concurrent clients served at >= 90 % of the model's own rate


def throughput_goal(model_only: dict[str, float], concurrent: dict[str, float]) -> dict[str, Any]:
    """The rate the clients were served at against the model's own, and the goal's line.

    The model's own rate is ``predictor.predict`` called back to back from one thread (with
    its usual threads inside), ``1000 / mean ms``: what the app could at best pass on.
    """
    own = 1000.0 / model_only["mean_ms"]
    share = concurrent["requests_per_s"] / own
    met = "met" if share >= THROUGHPUT_GOAL else "NOT met"
    line = (
        f"Goal (issue 20): {concurrent['clients']} clients served at >= "
        f"{THROUGHPUT_GOAL:.0%} of the model's own throughput (predictor.predict back to back, "
        f"1000 / {model_only['mean_ms']:.1f} ms): {concurrent['requests_per_s']:.2f} / "
        f"{own:.2f} req/s = {share:.0%}, {met}."
    )
    return {
        "model_per_s": round(own, 2),
        "share": round(share, 3),
        "goal": THROUGHPUT_GOAL,
        "line": line,
    }
