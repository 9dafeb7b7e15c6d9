"""Latency of one count through each client (gradio_client, raw HTTP, base64) and throughput."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from ...config import artifacts_dir, display_path, fast_mode
from ...images import load_image
from .. import write_report
from .measure import (
    cpu_model,
    onnx_file,
    pick_image,
    summarize,
    throughput,
    throughput_goal,
    timed,
)
from .split import call_split, print_split

TALK_SPACE_SECONDS = 1.1


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

    from ...app import (
        build_demo,
        call_base64_with_requests,
        call_rest_with_requests,
        call_with_requests,
        launch_in_background,
    )
    from ...runtime import OnnxPredictor

    fast = fast_mode(verbose=False)
    n = n or (10 if fast else 40)
    total = total or (16 if fast else 64)
    model_path = onnx_file(model)
    predictor = OnnxPredictor(model_path, threads=threads)
    picture = pick_image(image)
    threshold = float(predictor.config.score_threshold)

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
            "split": call_split(predictor, demo, url, picture, threshold, n),
            "split_rest": call_split(predictor, demo, url, picture, threshold, n, route="rest"),
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
            "requests_rest": summarize(
                timed(
                    lambda: call_rest_with_requests(url, picture, threshold, session=session),
                    n,
                    1,
                )
            ),
        }
        client.close()
        local = threading.local()

        def by_route(client: Any) -> Any:
            def one_request() -> Any:
                if not hasattr(local, "session"):
                    local.session = requests.Session()
                return client(url, picture, threshold, session=local.session)

            return one_request

        for suffix, client in (("", call_with_requests), ("_rest", call_rest_with_requests)):
            concurrent = throughput(by_route(client), clients, total)
            results[f"concurrent{suffix}"] = concurrent
            results[f"throughput_goal{suffix}"] = throughput_goal(results["model_only"], concurrent)
        # calls that ran on the predictor's fewer-thread twin (another call was in flight)
        results["twin_calls"] = getattr(getattr(demo, "course_guarded", None), "twin_calls", None)
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
        ("requests_rest", "requests: one POST /api/count"),
    ):
        if key not in report:  # a report written before the plain route
            continue
        row = report[key]
        cpu = row.get("cpu_ms_per_call", float("nan"))
        print(f"{label:34s} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {cpu:8.1f} {row['n']:4d}")
    for key in ("split", "split_rest"):
        if key in report:
            print_split(report[key])
    for suffix, route in (("", "Gradio's API"), ("_rest", "POST /api/count")):
        if f"concurrent{suffix}" not in report:
            continue
        c = report[f"concurrent{suffix}"]
        print(
            f"{c['clients']} concurrent clients through {route}, {c['requests']} requests: "
            f"{c['requests_per_s']:.2f} req/s, p50 {c['p50_ms']:.0f} ms, p95 {c['p95_ms']:.0f} ms"
        )
        if f"throughput_goal{suffix}" in report:
            print(report[f"throughput_goal{suffix}"]["line"])
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
