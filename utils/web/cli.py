"""``python -m utils.web``: build the site, serve it, measure it, screenshot it."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Sequence
from pathlib import Path

from ..config import artifacts_dir, display_path, test_dir
from .browser import screenshot
from .measure import bench
from .server import serve
from .site import WEIGHTS, build_site


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m utils.web",
        description="Build the in-browser cell counter (onnxruntime-web) and optionally serve it.",
    )
    parser.add_argument("--out", type=Path, default=None, help="site folder (artifacts/web)")
    parser.add_argument(
        "--model", type=Path, default=None, help="ONNX model (artifacts/model.onnx)"
    )
    parser.add_argument("--serve", action="store_true", help="serve the site on 127.0.0.1")
    parser.add_argument(
        "--weights",
        choices=WEIGHTS,
        default="fp32",
        help="fp16: half the model download; int8: a third, and faster in WASM",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="--weights int8: a folder of photos like the ones to count (default: data/train)",
    )
    parser.add_argument(
        "--bench",
        action="store_true",
        help="measure in headless Chromium: first-load MB, ms per image, counts vs Python",
    )
    parser.add_argument("--images", type=int, default=None, help="--bench: held-out images")
    parser.add_argument(
        "--backend",
        choices=("auto", "wasm", "webgpu"),
        default="auto",
        help="--bench: the page's backend (auto: WebGPU from a hardware GPU, else WASM)",
    )
    parser.add_argument(
        "--screenshot", type=Path, default=None, help="save a PNG of the page counting a photo"
    )
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="--bench: WASM thread counts"
    )
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (0: any free)")
    args = parser.parse_args(argv)
    calibration = None
    if args.calibration:
        from ..cli import CliError, image_files

        try:
            calibration = image_files([args.calibration])
        except CliError as err:
            parser.error(f"--calibration: {err}")
    if args.bench:
        bench(args.model, args.images, args.threads, args.weights, args.backend, calibration)
        return
    out = build_site(
        args.out or artifacts_dir() / "web",
        args.model,
        weights=args.weights,
        calibration=calibration,
    )
    print(f"Site written to {display_path(out)}/")
    if args.screenshot:
        photo = sorted(test_dir().glob("*.jpg"))[0]
        print(f"Screenshot saved to {display_path(screenshot(out, photo, args.screenshot))}")
    if not args.serve:
        print("Serve it with `python -m utils.web --serve` (or any static file server).")
        return
    url, stop = serve(out, args.port)
    print(f"Open {url} (Ctrl-C to stop). The model runs in the browser, not on this server.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
