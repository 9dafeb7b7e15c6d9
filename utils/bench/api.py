"""``python -m utils.bench api``: end-to-end latency and throughput of the demo's API.

Starts the Gradio app on 127.0.0.1 with the ONNX Runtime predictor and measures, after a
warm-up, what a client waits for one count: ``gradio_client`` (upload + queue + result),
raw HTTP with ``requests`` (the three calls of ``clients/python_requests.py``) and the
one-request base64 endpoint; then the throughput of 8 concurrent clients sending a bounded
number of requests. Loopback only: the numbers are the app's cost, not a network's.

``--soak`` runs the app as its own process (``python -m utils.app``) and measures what hostile
traffic would find: its memory (RSS) over 1,000 sequential ``/count_base64`` calls (200 in
fast mode) after a warm-up, p50/p95 and errors with 8 and 32 concurrent clients, and a burst
of 100 simultaneous calls (a refused call, e.g. HTTP 503 from a full queue, is an error).

For comparison the talk's Space (Gradio 2.7, PyTorch + IceVision on a free CPU Space) took
about 1.1 s per request. Results go to ``artifacts/bench_api.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..config import artifacts_dir, display_path, fast_mode, test_dir
from . import write_report

TALK_SPACE_SECONDS = 1.1


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


def client_latency(
    url: str, image: str | Path, threshold: float | None = None, n: int = 10, warmup: int = 2
) -> dict[str, float]:
    """p50/p95 of ``gradio_client`` calls to ``/count`` (one connected client, after warm-up)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, analytics_enabled=False)
    kwargs: dict[str, Any] = {} if threshold is None else {"threshold": threshold}
    try:
        seconds = timed(
            lambda: client.predict(image=handle_file(str(image)), api_name="/count", **kwargs),
            n,
            warmup,
        )
    finally:
        client.close()
    return summarize(seconds)


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


def run(
    model: str | None = None,
    n: int | None = None,
    warmup: int = 3,
    clients: int = 8,
    total: int | None = None,
    image: str | None = None,
    threads: int | None = None,
    concurrency: int | None = None,
    out: str | None = None,
) -> dict[str, Any]:
    import requests
    from gradio_client import Client, handle_file

    from ..app import (
        build_demo,
        call_base64_with_requests,
        call_with_requests,
        launch_in_background,
    )
    from ..runtime import OnnxPredictor

    fast = fast_mode(verbose=False)
    n = n or (10 if fast else 40)
    total = total or (16 if fast else 64)
    if model is None:
        from ..export import ensure_onnx

        model_path = ensure_onnx()
    else:
        model_path = Path(model)
    predictor = OnnxPredictor(model_path, threads=threads)
    picture = pick_image(image)
    threshold = float(predictor.config.score_threshold)

    from ..images import load_image

    loaded = load_image(picture).image
    direct = timed(lambda: predictor.predict(loaded, threshold), n, warmup)

    demo = build_demo(predictor, concurrency_limit=concurrency)
    url, close = launch_in_background(demo)
    try:
        client = Client(url, verbose=False, analytics_enabled=False)
        session = requests.Session()

        def by_client() -> Any:
            return client.predict(
                image=handle_file(str(picture)), threshold=threshold, api_name="/count"
            )

        results: dict[str, Any] = {
            "model_only": summarize(direct),
            "gradio_client": summarize(timed(by_client, n, warmup)),
            "requests": summarize(
                timed(lambda: call_with_requests(url, picture, threshold, session=session), n, 1)
            ),
            "requests_base64": summarize(
                timed(
                    lambda: call_base64_with_requests(url, picture, threshold, session=session),
                    n,
                    1,
                )
            ),
        }
        client.close()
        local = threading.local()

        def one_request() -> Any:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            return call_with_requests(url, picture, threshold, session=local.session)

        results["concurrent"] = throughput(one_request, clients, total)
    finally:
        close()

    c = predictor.config
    report = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "model": display_path(model_path),
        "model_name": c.model_name,
        "image_size": c.image_size,
        "runtime": predictor.runtime,
        "ort_threads": threads,
        "queue_concurrency": getattr(demo, "course_concurrency_limit", concurrency),
        "image": display_path(picture),
        "image_px": list(loaded.size),
        "fast_mode": fast,
        "warmup": warmup,
        "talk_space_s": TALK_SPACE_SECONDS,
        **results,
    }
    path = Path(out) if out else artifacts_dir() / "bench_api.json"
    write_report(path, report)
    report["written_to"] = display_path(path)
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"CPU: {report['cpu']} ({report['cores']} cores, load {report['load_avg_1min']})")
    print(
        f"Model: {report['model']} ({report['model_name']}, {report['image_size']} px, "
        f"{report['runtime']}); image {report['image']} {report['image_px'][0]}x"
        f"{report['image_px'][1]}"
    )
    print(
        f"{'sequential, after warm-up':34s} {'p50 ms':>8s} {'p95 ms':>8s} {'CPU ms':>8s} {'n':>4s}"
    )
    for key, label in (
        ("model_only", "predictor.predict (no server)"),
        ("gradio_client", "gradio_client /count"),
        ("requests", "requests: upload + call + SSE"),
        ("requests_base64", "requests: /count_base64"),
    ):
        row = report[key]
        cpu = row.get("cpu_ms_per_call", float("nan"))
        print(f"{label:34s} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {cpu:8.1f} {row['n']:4d}")
    c = report["concurrent"]
    print(
        f"{c['clients']} concurrent clients, {c['requests']} requests: "
        f"{c['requests_per_s']:.2f} req/s, p50 {c['p50_ms']:.0f} ms, p95 {c['p95_ms']:.0f} ms"
    )
    print(
        f"The talk's Space: ~{report['talk_space_s']:.1f} s per request; this app: p50 "
        f"{report['gradio_client']['p50_ms']:.0f} ms with gradio_client (which also downloads "
        f"the annotated picture), {report['requests']['p50_ms']:.0f} ms with raw HTTP."
    )
    print(
        "CPU ms: CPU time of all threads of this process (server + ONNX Runtime + client) per "
        "call; with the machine to itself, a call's wall time is about this divided by the "
        "threads that work in parallel."
    )
    print(f"Written to {report['written_to']}")


# ----------------------------------------------------------------------------- soak


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process in MB (psutil when installed, else Linux ``/proc``)."""
    pid = os.getpid() if pid is None else pid
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        pass
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("cannot read this process's memory: install psutil")


def base64_body(picture: str | Path, threshold: float) -> bytes:
    """The JSON body of one ``/count_base64`` call, built once and sent many times."""
    import base64

    data = Path(picture).read_bytes()
    mime = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
    image = f"data:{mime};base64," + base64.b64encode(data).decode()
    return json.dumps({"data": [image, threshold]}).encode()


def base64_call(http: Any, url: str, body: bytes, timeout: float = 120.0) -> str | None:
    """One ``/count_base64`` call; None when it counted, else what went wrong (one line).

    A refused request (HTTP 503 when the queue is full, 413, ...) and an answer with an
    ``error`` field both count as errors.
    """
    from ..app import BASE64_API_NAME, read_sse_result

    base = url.rstrip("/")
    try:
        response = http.post(
            f"{base}/gradio_api/call/{BASE64_API_NAME}",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        event_id = response.json()["event_id"]
        event, answer = read_sse_result(
            http, f"{base}/gradio_api/call/{BASE64_API_NAME}/{event_id}", timeout
        )
    except Exception as error:  # a client's view: anything that is not a count is an error
        return type(error).__name__
    if event != "complete":
        return f"event {event}"
    if not answer or answer[0].get("error") or answer[0].get("count") is None:
        return "error answer"
    return None


def start_server(model: Path, threads: int | None = None) -> tuple[str, Any]:
    """``python -m utils.app`` in its own process, so its memory is measured alone."""
    import subprocess
    import sys

    import requests

    from ..app import free_port

    port = free_port()
    args = [sys.executable, "-m", "utils.app", "--model", str(model), "--port", str(port)]
    if threads:
        args += ["--threads", str(threads)]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=Path.cwd()
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                "the app exited while starting; run `python -m utils.app` to see why"
            )
        try:
            if requests.get(url + "config", timeout=2).ok:
                return url, process
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError("the app did not start within 3 minutes")


def load_test(url: str, body: bytes, clients: int, total: int) -> dict[str, Any]:
    """``total`` calls from ``clients`` threads at once: latency, throughput, errors."""
    import requests

    errors: list[str] = []
    local = threading.local()

    def one() -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        problem = base64_call(local.session, url, body)
        if problem:
            errors.append(problem)

    row = throughput(one, clients, total)
    row["errors"] = len(errors)
    row["error_kinds"] = sorted(set(errors))
    return row


def burst(url: str, body: bytes, calls: int) -> dict[str, Any]:
    """``calls`` clients that all send at the same moment (a barrier): does the queue hold?"""
    import requests

    gate = threading.Barrier(calls)

    def one(_: int) -> tuple[float, str | None]:
        with requests.Session() as http:
            gate.wait()
            start = time.perf_counter()
            problem = base64_call(http, url, body)
            return time.perf_counter() - start, problem

    start = time.perf_counter()
    with ThreadPoolExecutor(calls) as pool:
        results = list(pool.map(one, range(calls)))
    problems = [p for _, p in results if p]
    return {
        "calls": calls,
        "wall_s": round(time.perf_counter() - start, 2),
        "errors": len(problems),
        "error_kinds": sorted(set(problems)),
        **summarize([s for s, _ in results]),
    }


def soak(
    model: str | None = None,
    calls: int | None = None,
    warmup: int = 200,
    image: str | None = None,
    threads: int | None = None,
    clients: tuple[int, ...] = (8, 32),
    burst_calls: int = 100,
    out: str | None = None,
) -> dict[str, Any]:
    """Memory over many ``/count_base64`` calls, then 8 and 32 clients and a burst of 100."""
    import requests

    from ..app import SWEEP_SECONDS
    from ..runtime import OnnxPredictor

    calls = calls or (200 if fast_mode(verbose=False) else 1000)
    if model is None:
        from ..export import ensure_onnx

        model_path = ensure_onnx()
    else:
        model_path = Path(model)
    threshold = float(OnnxPredictor(model_path, threads=1).config.score_threshold)
    picture = pick_image(image)
    body = base64_body(picture, threshold)
    url, process = start_server(model_path, threads)
    try:
        http = requests.Session()
        warm_errors = [base64_call(http, url, body) for _ in range(warmup)]
        rss_start = rss_mb(process.pid)
        seconds, errors, rss_half = Timings(), [], rss_start
        for k in range(calls):
            start = time.perf_counter()
            problem = base64_call(http, url, body)
            seconds.append(time.perf_counter() - start)
            if problem:
                errors.append(problem)
            if k + 1 == calls // 2:
                rss_half = rss_mb(process.pid)
        rss_end = rss_mb(process.pid)
        report: dict[str, Any] = {
            "model": display_path(model_path),
            "image": display_path(picture),
            "body_kb": round(len(body) / 1024, 1),
            "warmup_calls": warmup,
            "warmup_errors": sum(1 for e in warm_errors if e),
            "calls": calls,
            "rss_after_warmup_mb": round(rss_start, 1),
            "rss_after_calls_mb": round(rss_end, 1),
            "rss_growth_mb_per_1000_calls": round((rss_end - rss_start) * 1000 / calls, 2),
            # A leak grows in both halves alike; an allocator settling in, in the first only.
            "rss_growth_mb_first_half": round(rss_half - rss_start, 2),
            "rss_growth_mb_second_half": round(rss_end - rss_half, 2),
            "sequential": {**summarize(seconds), "errors": len(errors)},
            "concurrent": [load_test(url, body, n, max(4 * n, 64)) for n in clients],
            "burst": burst(url, body, burst_calls),
        }
        time.sleep(3 * SWEEP_SECONDS)  # finished sessions are swept every SWEEP_SECONDS
        report["rss_after_load_mb"] = round(rss_mb(process.pid), 1)
        after = [base64_call(http, url, body) for _ in range(calls // 5)]
        report["calls_after_load"] = len(after)
        report["errors_after_load"] = sum(1 for e in after if e)
        report["rss_final_mb"] = round(rss_mb(process.pid), 1)
    finally:
        process.terminate()
        process.wait(timeout=30)
    report.update(cpu=cpu_model(), cores=os.cpu_count(), fast_mode=fast_mode(verbose=False))
    path = Path(out) if out else artifacts_dir() / "bench_api_soak.json"
    write_report(path, report)
    report["written_to"] = display_path(path)
    return report


def print_soak(report: dict[str, Any]) -> None:
    s = report["sequential"]
    print(
        f"Soak: {report['calls']} sequential /count_base64 calls ({report['body_kb']:.0f} KB "
        f"body) after {report['warmup_calls']} warm-up calls"
    )
    print(
        f"  server RSS {report['rss_after_warmup_mb']:.1f} -> {report['rss_after_calls_mb']:.1f} "
        f"MB: {report['rss_growth_mb_per_1000_calls']:+.2f} MB per 1,000 calls "
        f"({report['rss_growth_mb_first_half']:+.1f} MB in the first half, "
        f"{report['rss_growth_mb_second_half']:+.1f} MB in the second); "
        f"p50 {s['p50_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms, errors {s['errors']}"
    )
    for row in report["concurrent"]:
        print(
            f"  {row['clients']:3d} concurrent clients, {row['requests']} calls: "
            f"{row['requests_per_s']:.2f} calls/s, p50 {row['p50_ms']:.0f} ms, "
            f"p95 {row['p95_ms']:.0f} ms, errors {row['errors']} {row['error_kinds'] or ''}"
        )
    b = report["burst"]
    print(
        f"  burst of {b['calls']} simultaneous calls: errors {b['errors']} "
        f"{b['error_kinds'] or ''}, p50 {b['p50_ms']:.0f} ms, p95 {b['p95_ms']:.0f} ms, "
        f"all done in {b['wall_s']:.1f} s"
    )
    print(
        f"  server RSS {report['rss_after_load_mb']:.1f} MB after the load, "
        f"{report['rss_final_mb']:.1f} MB after {report['calls_after_load']} more calls "
        f"(errors {report['errors_after_load']})"
    )
    print(f"Written to {report['written_to']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.bench api", description=__doc__)
    parser.add_argument("--model", help="ONNX model (default: artifacts/model.onnx)")
    parser.add_argument("--n", type=int, help="sequential calls per client (10 fast, 40 full)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--requests", type=int, help="requests in the concurrent run")
    parser.add_argument("--image", help="image to send (default: first of data/test)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads")
    parser.add_argument("--concurrency", type=int, help="the app's queue concurrency limit")
    parser.add_argument("--out", help="JSON output (default: artifacts/bench_api[_soak].json)")
    parser.add_argument(
        "--soak",
        action="store_true",
        help="memory over --n base64 calls (1000; 200 fast), 8 and 32 clients, a burst of 100",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if args.soak:
        report = soak(
            model=args.model, calls=args.n, image=args.image, threads=args.threads, out=args.out
        )
        print_soak(report)
        return 0
    report = run(
        model=args.model,
        n=args.n,
        warmup=args.warmup,
        clients=args.clients,
        total=args.requests,
        image=args.image,
        threads=args.threads,
        concurrency=args.concurrency,
        out=args.out,
    )
    print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
