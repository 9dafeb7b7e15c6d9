"""Where one plain HTTP call's milliseconds go: the app's own timing records against the clock.

The app fills a :class:`~utils.processing.CallTimes` for every call (``demo.course_call_times``):
decode, pre-processing, graph, post-processing, drawing, encoding, as the request really runs.
Here each plain HTTP call is timed by the client and set against its record, for both ways of
calling: Gradio's (``call_with_requests``: upload + call + result stream) and the app's plain
route (``call_rest_with_requests``: one ``POST /api/count``, the annotated picture in the JSON).
What the record does not hold is the handler's own glue (``app, untimed``) and the server +
HTTP (the call's total minus the handler's wall time). Calls
alternate with ``predictor.predict`` on the same photo, so the model alone and the call see
the same machine, even one busy with other jobs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ...processing import PARTS, CallTimes, recording

GOAL_RATIO = 1.3  # issue 20: a plain HTTP call's p50 at most this times the model alone's
REST = ("app_untimed", "gradio_http")  # a call's time outside the parts
LABELS = {
    "decode": "decode the upload",
    "preprocess": "resize + tiles (pre-processing)",
    "graph": "graph (the model)",
    "postprocess": "post-processing (NMS, table)",
    "draw": "draw the boxes",
    "encode": "encode the annotated picture",
    "app_untimed": "app, between the parts",
    "gradio_http": "server + HTTP (the rest)",
}
ROUTES = {
    "gradio": "Gradio's API (upload + call + SSE)",
    "rest": "the plain route (one POST /api/count)",
}


def split_row(record: CallTimes, total: float) -> dict[str, float]:
    """One call's milliseconds by part; the parts and the rest add up to ``total`` exactly."""
    row = record.ms()
    row["app_untimed"] = record.untimed() * 1000
    row["gradio_http"] = max(0.0, total - record.wall) * 1000
    row["total"] = total * 1000
    return row


def mean_split(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean milliseconds of each part over the calls (means add up; medians would not)."""
    keys = [*PARTS, *REST, "total"]
    return {key: round(float(np.mean([row[key] for row in rows])), 2) for key in keys}


def call_split(
    predictor: Any,
    demo: Any,
    url: str,
    picture: str | Path,
    threshold: float,
    n: int,
    warmup: int = 2,
    route: str = "gradio",
) -> dict[str, Any]:
    """``n`` rounds of (model alone, one plain HTTP call): p50s, their ratio, the call's split.

    ``route``: ``"gradio"`` (upload + call + SSE) or ``"rest"`` (``POST /api/count``).
    """
    import requests

    from ...app import call_rest_with_requests, call_with_requests
    from ...images import load_image

    image = load_image(picture).image
    records = demo.course_call_times
    session = requests.Session()
    client = {"gradio": call_with_requests, "rest": call_rest_with_requests}[route]

    def call() -> Any:
        return client(url, picture, threshold, session=session)

    for _ in range(warmup):
        predictor.predict(image, threshold)
        call()
    alone, alone_rows, rows = [], [], []
    for _ in range(n):
        with recording() as times:
            start = time.perf_counter()
            predictor.predict(image, threshold)
        alone.append(time.perf_counter() - start)
        alone_rows.append(split_row(times, alone[-1]))
        records.clear()
        start = time.perf_counter()
        call()
        total = time.perf_counter() - start
        if len(records) != 1:
            raise RuntimeError(f"expected one timing record for one call, found {len(records)}")
        rows.append(split_row(records[-1], total))
    model_p50 = float(np.percentile(np.asarray(alone) * 1000, 50))
    call_p50 = float(np.percentile([row["total"] for row in rows], 50))
    return {
        "route": route,
        "n": n,
        "model_p50_ms": round(model_p50, 1),
        "call_p50_ms": round(call_p50, 1),
        "ratio": round(call_p50 / model_p50, 3),
        "goal_ratio": GOAL_RATIO,
        "model_mean_ms": mean_split(alone_rows),
        "call_mean_ms": mean_split(rows),
    }


def print_split(split: dict[str, Any]) -> None:
    """The split as a table (ms and % of the call), then the goal's line."""
    call, alone = split["call_mean_ms"], split["model_mean_ms"]
    route = ROUTES[split.get("route", "gradio")]
    print(
        f"One plain HTTP call through {route}, split by the app's timing records "
        f"(mean of {split['n']} calls, each after one predictor.predict on the same photo):"
    )
    print(f"  {'part':34s} {'call ms':>8s} {'% call':>7s} {'predict ms':>11s}")
    for key in (*PARTS, *REST):
        model = f"{alone[key]:11.1f}" if key != "gradio_http" else f"{'':11s}"
        share = 100 * call[key] / call["total"] if call["total"] else 0.0
        print(f"  {LABELS[key]:34s} {call[key]:8.1f} {share:6.1f}% {model}")
    print(f"  {'total':34s} {call['total']:8.1f} {100.0:6.1f}% {alone['total']:11.1f}")
    met = "met" if split["ratio"] <= split["goal_ratio"] else "NOT met"
    print(
        f"Goal (issue 20): p50 of a plain HTTP call ({route}) <= {split['goal_ratio']}x the "
        f"model alone "
        f"(predictor.predict) on the same photo: {split['call_p50_ms']:.1f} / "
        f"{split['model_p50_ms']:.1f} ms = {split['ratio']:.2f}x, {met}."
    )
