"""``python -m utils.space``: write a Space folder (static or gradio), optionally push it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import display_path
from .common import list_files
from .gradio_space import write_space
from .push import PaidSpaceError, push_space
from .static_space import write_static_space


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m utils.space",
        description="Write a Hugging Face Space folder: static (free, in-browser) or gradio.",
    )
    parser.add_argument("--sdk", choices=("static", "gradio"), default="static")
    parser.add_argument("--out", type=Path, required=True, help="the Space folder to write")
    parser.add_argument(
        "--model", type=Path, default=None, help="ONNX model (artifacts/model.onnx)"
    )
    parser.add_argument(
        "--model-url",
        default=None,
        help="static only: fetch the model from this URL (a Hub model repo) instead of bundling it",
    )
    parser.add_argument(
        "--weights",
        choices=("fp16", "fp32"),
        default="fp16",
        help="static only: the bundled model's weights (fp16: half the download)",
    )
    parser.add_argument(
        "--zerogpu",
        action="store_true",
        help="gradio only: for ZeroGPU hardware (a no-op @spaces.GPU function)",
    )
    parser.add_argument("--push", metavar="REPO_ID", default=None, help="then push it (HF_TOKEN)")
    args = parser.parse_args(argv)
    from ..export import ensure_onnx
    from ..web import default_examples

    model = args.model or ensure_onnx()
    if args.sdk == "static":
        out = write_static_space(args.out, model, model_url=args.model_url, weights=args.weights)
    else:
        out = write_space(args.out, model, default_examples(6), zerogpu=args.zerogpu)
    for name, size in list_files(out):
        print(f"{name:40s} {size / 1e6:8.2f} MB")
    print(f"{args.sdk} Space written to {display_path(out)}/")
    if args.push:
        try:
            pushed = push_space(out, args.push, sdk=args.sdk)
        except PaidSpaceError as error:
            raise SystemExit(str(error)) from None
        print(f"Pushed {len(pushed.files)} files to the Space {pushed.repo_id}")
