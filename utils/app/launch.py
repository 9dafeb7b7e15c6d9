"""Running the app: in the background for a notebook or a test, or as a command.

python -m utils.app [--model artifacts/model.onnx] [--port 7860] [--host 127.0.0.1]
                    [--runtime auto|onnxruntime|openvino|openvino-bf16|pytorch]

The command serves the fastest runtime that keeps the counts (``runtime_choice``, measured at
start on the first example photo) unless ``--runtime`` or ``COURSE_RUNTIME`` forces one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import RUNTIME_CHOICES, RUNTIME_ENV, test_dir
from .limits import launch_limits
from .ui import build_demo

DESCRIPTION_LINE = (
    "The cell-counting demo: one Gradio app for the notebook, ``make demo``, the Space and the API."
)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def launch_kwargs(host: str = "127.0.0.1", port: int | None = None) -> dict[str, Any]:
    """The launch settings every entry point shares (limits, no telemetry, errors shown)."""
    return {
        "server_name": host,
        "server_port": port,
        **launch_limits(),
        "quiet": True,
        "footer_links": ["api", "gradio"],
    }


def launch_in_background(
    predictor_or_demo: Any,
    port: int | None = None,
    host: str = "127.0.0.1",
    examples: Sequence[str | Path] | None = None,
    inline: bool = False,
    **kwargs: Any,
) -> tuple[str, Callable[[], None]]:
    """Start the app without blocking; returns (url, close). Loopback by default.

    ``inline=True`` also shows the app inside the notebook (an IFrame output).
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = predictor_or_demo
    if not hasattr(demo, "launch"):
        demo = build_demo(predictor_or_demo, examples=examples)
    options = launch_kwargs(host, port or free_port(host))
    options.update(kwargs)
    demo.launch(prevent_thread_lock=True, inline=inline, **options)
    url = f"http://{host}:{options['server_port']}/"

    def close() -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # "Closing server running on port ..."
            demo.close()

    return url, close


def default_examples(limit: int = 6) -> list[Path]:
    """A few held-out test images (``data/test``), if they exist."""

    folder = test_dir()
    images = (
        sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif"}
        )
        if folder.exists()
        else []
    )
    return images[:limit]


# ----------------------------------------------------------------------------- clients


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.app", description=DESCRIPTION_LINE)
    parser.add_argument(
        "--model", default=None, help="model file (.onnx, .pt, .xml); default: artifacts/model.onnx"
    )
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve your network")
    parser.add_argument("--threads", type=int, default=None, help="inference threads")
    parser.add_argument(
        "--runtime",
        choices=RUNTIME_CHOICES,
        default=None,
        help=f"auto (default, or {RUNTIME_ENV}): the fastest that keeps the counts, measured at "
        "start on an example photo; another name forces that runtime",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

    from ..runtime_choice import choose_runtime, served_by

    if args.model is None:
        from ..export import ensure_onnx

        model = ensure_onnx()
    else:
        model = Path(args.model)
    examples = default_examples()
    choice = choose_runtime(model, examples[:1], args.runtime, args.threads)
    print(f"{served_by(choice, model)}\non http://{args.host}:{args.port}/")
    demo = build_demo(choice.predictor, examples=examples, runtime_note=choice.describe())
    demo.launch(**launch_kwargs(args.host, args.port))
    return 0
