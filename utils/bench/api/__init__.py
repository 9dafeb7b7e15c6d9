"""``python -m utils.bench api``: end-to-end latency and throughput of the demo's API.

Starts the Gradio app on 127.0.0.1 with the ONNX Runtime predictor and measures, after a
warm-up, what a client waits for one count: ``gradio_client`` (upload + queue + result),
raw HTTP with ``requests`` (the three calls of ``clients/python_requests.py``) and the
one-request base64 endpoint; then the throughput of 8 concurrent clients sending a bounded
number of requests. Loopback only: the numbers are the app's cost, not a network's.

It also prints where one plain HTTP call's time goes (``split``): decode, resize + tiles,
graph, post-processing, drawing, encoding the annotated picture (the app's own timing records,
``processing.timing``) and the rest (Gradio + HTTP), each call alternating with the model alone
on the same photo, and the goal of issue 20: a call's p50 at most 1.3x the model alone's.

``--soak`` runs the app as its own process (``python -m utils.app``) and measures what hostile
traffic would find: its memory (RSS) over 1,000 sequential ``/count_base64`` calls (200 in
fast mode) after a warm-up, p50/p95 and errors with 8 and 32 concurrent clients, and a burst
of 100 simultaneous calls (a refused call, e.g. HTTP 503 from a full queue, is an error).

For comparison the talk's Space (Gradio 2.7, PyTorch + IceVision on a free CPU Space) took
about 1.1 s per request. Results go to ``artifacts/bench_api.json``.
"""

# One module per job, imports running one way: ``measure`` (timers, percentiles, the image
# and the model), ``split`` (one call's time by part) <- ``latency`` (the clients' latency
# run), ``soak`` (the hostile-traffic run) <- ``cli``. The docstring above is also
# ``--help``'s description (cli.py).

from .cli import main
from .latency import client_latency, print_report, run
from .measure import cpu_model, onnx_file, summarize, throughput, throughput_goal, timed
from .soak import (
    base64_body,
    base64_call,
    burst,
    rest_call,
    rss_mb,
    soak,
)
from .split import GOAL_RATIO, call_split, print_split, split_row

__all__ = [
    "GOAL_RATIO",
    "base64_body",
    "base64_call",
    "burst",
    "rest_call",
    "call_split",
    "client_latency",
    "cpu_model",
    "main",
    "onnx_file",
    "print_report",
    "print_split",
    "rss_mb",
    "run",
    "soak",
    "split_row",
    "summarize",
    "throughput",
    "throughput_goal",
    "timed",
]
