"""``python -m utils.bench api [--soak]``: the options, then the latency run or the soak."""

from __future__ import annotations

import argparse
import os
import sys

from .latency import print_report, run
from .soak import print_soak, soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.bench api", description=sys.modules[__package__].__doc__
    )
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
    parser.add_argument(
        "--route",
        choices=("base64", "rest"),
        default="base64",
        help="the soak's route: /count_base64 (JSON) or POST /api/count (the photo's bytes)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if args.soak:
        report = soak(
            model=args.model,
            calls=args.n,
            image=args.image,
            threads=args.threads,
            out=args.out,
            route=args.route,
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
