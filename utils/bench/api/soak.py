"""The soak: the app in its own process under hostile traffic (memory, many clients, a burst)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ...config import artifacts_dir, display_path, fast_mode
from .. import write_report
from .measure import Timings, cpu_model, onnx_file, pick_image, summarize, throughput


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
    from ...app import BASE64_API_NAME, read_sse_result

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


def rest_call(http: Any, url: str, body: bytes, timeout: float = 120.0) -> str | None:
    """One ``POST /api/count`` (``body``: the photo's bytes, no picture back).

    Returns as :func:`base64_call` does: None when it counted, else what went wrong.
    """
    from ...app import REST_PATH

    try:
        response = http.post(
            f"{url.rstrip('/')}{REST_PATH}",
            data=body,
            params={"picture": "false"},
            headers={"Content-Type": "application/octet-stream"},
            timeout=timeout,
        )
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        answer = response.json()
    except Exception as error:
        return type(error).__name__
    if answer.get("error") or answer.get("count") is None:
        return "error answer"
    return None


CALLS = {"base64": base64_call, "rest": rest_call}
ROUTE_NAMES = {"base64": "/count_base64", "rest": "POST /api/count"}


def start_server(model: Path, threads: int | None = None) -> tuple[str, Any]:
    """``python -m utils.app`` in its own process, so its memory is measured alone."""
    import subprocess
    import sys

    import requests

    from ...app import free_port

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


def load_test(
    url: str, body: bytes, clients: int, total: int, call: Callable = base64_call
) -> dict[str, Any]:
    """``total`` calls from ``clients`` threads at once: latency, throughput, errors."""
    import requests

    errors: list[str] = []
    local = threading.local()

    def one() -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        problem = call(local.session, url, body)
        if problem:
            errors.append(problem)

    row = throughput(one, clients, total)
    row["errors"] = len(errors)
    row["error_kinds"] = sorted(set(errors))
    return row


def burst(url: str, body: bytes, calls: int, call: Callable = base64_call) -> dict[str, Any]:
    """``calls`` clients that all send at the same moment (a barrier): does the queue hold?"""
    import requests

    gate = threading.Barrier(calls)

    def one(_: int) -> tuple[float, str | None]:
        with requests.Session() as http:
            gate.wait()
            start = time.perf_counter()
            problem = call(http, url, body)
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
    route: str = "base64",
) -> dict[str, Any]:
    """Memory over many calls, then 8 and 32 clients and a burst of 100.

    ``route``: ``"base64"`` (``/count_base64``, a JSON body) or ``"rest"`` (``POST /api/count``,
    the photo's bytes).
    """
    import requests

    from ...app import SWEEP_SECONDS
    from ...runtime import OnnxPredictor

    calls = calls or (200 if fast_mode(verbose=False) else 1000)
    model_path = onnx_file(model)
    threshold = float(OnnxPredictor(model_path, threads=1).config.score_threshold)
    picture = pick_image(image)
    call = CALLS[route]
    body = base64_body(picture, threshold) if route == "base64" else Path(picture).read_bytes()
    url, process = start_server(model_path, threads)
    try:
        http = requests.Session()
        warm_errors = [call(http, url, body) for _ in range(warmup)]
        rss_start = rss_mb(process.pid)
        seconds, errors, rss_half = Timings(), [], rss_start
        for k in range(calls):
            start = time.perf_counter()
            problem = call(http, url, body)
            seconds.append(time.perf_counter() - start)
            if problem:
                errors.append(problem)
            if k + 1 == calls // 2:
                rss_half = rss_mb(process.pid)
        rss_end = rss_mb(process.pid)
        report: dict[str, Any] = {
            "route": ROUTE_NAMES[route],
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
            "concurrent": [load_test(url, body, n, max(4 * n, 64), call) for n in clients],
            "burst": burst(url, body, burst_calls, call),
        }
        time.sleep(3 * SWEEP_SECONDS)  # finished sessions are swept every SWEEP_SECONDS
        report["rss_after_load_mb"] = round(rss_mb(process.pid), 1)
        after = [call(http, url, body) for _ in range(calls // 5)]
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
        f"Soak: {report['calls']} sequential {report.get('route', '/count_base64')} calls "
        f"({report['body_kb']:.0f} KB "
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
