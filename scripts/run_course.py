"""Run every notebook in order, headless, and print a short summary.

Executed copies go to ``artifacts/executed/`` (your notebooks stay as they are), unless
``--inplace`` (used to refresh the committed outputs). ``--fast`` sets COURSE_FAST=1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
import zmq
from nbconvert.preprocessors import (
    CellExecutionError,
    CoalesceStreamsPreprocessor,
    ExecutePreprocessor,
)
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]


def kernel_config() -> Config:
    """Each notebook's kernel talks to this script over local TCP sockets (127.0.0.1).

    Recent ipykernels warn, for every notebook, that this runs "over TCP without encryption":
    CurveZMQ keys, which jupyter_client hands to the kernel when asked, encrypt those sockets and
    end the warning. Where pyzmq has no CurveZMQ, say once what the warning means instead.
    """
    if zmq.has("curve"):
        return Config({"KernelManager": {"transport_encryption": "auto"}})
    print(
        "Note: each notebook's kernel may warn that it runs 'over TCP without encryption': it "
        "talks to this script on 127.0.0.1 only (this machine), so nothing leaves it."
    )
    return Config()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fast mode (COURSE_FAST=1)")
    parser.add_argument("--inplace", action="store_true", help="write outputs into notebooks/")
    parser.add_argument("notebooks", nargs="*", help="only these (default: all, in order)")
    args = parser.parse_args(argv)
    if args.fast:
        os.environ["COURSE_FAST"] = "1"
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    paths = [Path(p) for p in args.notebooks] or sorted(
        (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
    )
    out_dir = ROOT / "artifacts" / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    mode = "fast" if args.fast else "full"
    print(f"Running {len(paths)} notebooks in {mode} mode")
    results = []
    kernels = kernel_config()
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        status = "ok"
        try:
            ExecutePreprocessor(timeout=1800, kernel_name="python3", config=kernels).preprocess(
                nb, {"metadata": {"path": str(path.parent)}}
            )
        except CellExecutionError as error:
            status = "FAILED: " + str(error).strip().splitlines()[-1][:120]
        # Keep each progress bar's final frame only: tqdm's \r updates, merged and resolved.
        CoalesceStreamsPreprocessor().preprocess(nb, {})
        seconds = time.perf_counter() - start
        target = path if args.inplace and status == "ok" else out_dir / path.name
        nbformat.write(nb, target)
        results.append((path.name, seconds, status))
        print(f"  {path.name:<32} {seconds:7.1f} s  {status}", flush=True)
    total = sum(s for _, s, _ in results)
    failed = [name for name, _, status in results if status != "ok"]
    print(
        f"Total {total / 60:.1f} min. Artifacts in artifacts/, executed notebooks in "
        f"{'notebooks/' if args.inplace else 'artifacts/executed/'}."
    )
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
