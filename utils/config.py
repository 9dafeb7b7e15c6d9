"""Where the course keeps its files, and the fast mode that shrinks long work.

Everything that a notebook writes goes under ``artifacts/`` next to ``data/``, in the
course folder: the checkout that holds ``pyproject.toml`` (found from the working
directory upwards), or the working directory itself (``/content`` on Colab), or
whatever ``COURSE_ROOT`` names.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_NAME = "deploy-without-tears"
CLASS_NAMES: tuple[str, ...] = ("Microalgae",)

# File names of the artifacts that one notebook leaves for the next.
CHECKPOINT_NAME = "model.pt"
ONNX_NAME = "model.onnx"

FAST_ENV = "COURSE_FAST"
PRECISION_ENV = "COURSE_PRECISION"
PRECISIONS = ("auto", "fp32", "bf16")
RUNTIME_ENV = "COURSE_RUNTIME"
# Which runtime serves the app, the Space and ``python -m utils count``: ``auto`` measures
# (``runtime_choice``); the others force one. ``openvino`` computes in f32, ``openvino-bf16``
# in bfloat16 (where the CPU has it).
RUNTIME_CHOICES = ("auto", "onnxruntime", "openvino", "openvino-bf16", "pytorch")


def course_root() -> Path:
    """The course folder: ``COURSE_ROOT``, else the checkout above the cwd, else the cwd."""
    env = os.environ.get("COURSE_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and f'name = "{PROJECT_NAME}"' in pyproject.read_text(
            encoding="utf-8", errors="ignore"
        ):
            return folder
    return here


def data_dir() -> Path:
    """``data/``: the 17 training images and the held-out test set (VOC folders)."""
    return course_root() / "data"


def train_dir() -> Path:
    return data_dir() / "train"


def test_dir() -> Path:
    return data_dir() / "test"


def artifacts_dir() -> Path:
    """``artifacts/``: checkpoints, ONNX files, plots and benchmark results (created on use)."""
    path = course_root() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoint_path() -> Path:
    return artifacts_dir() / CHECKPOINT_NAME


def onnx_path() -> Path:
    return artifacts_dir() / ONNX_NAME


def fast_mode(verbose: bool = True) -> bool:
    """True when ``COURSE_FAST=1``: fewer epochs, images and timing runs, same code path.

    Tests and CI set it; instructors set it for a live session. Notebooks print it so a
    reader always knows which mode produced the numbers on screen.
    """
    fast = os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    if verbose:
        if fast:
            print(f"Fast mode ON ({FAST_ENV}=1): shorter training and fewer timing runs.")
        else:
            print(f"Full mode (set {FAST_ENV}=1 for a quick run in class).")
    return fast


def precision_choice() -> str:
    """``COURSE_PRECISION``: ``auto`` (default), ``fp32`` or ``bf16``.

    ``fp32`` makes this machine compute as a CPU without bfloat16 would (most of Colab's free
    CPUs): training without bf16 autocast, and no OpenVINO bf16 format in the edge scorecard.
    Tests and timings use it to show that nothing depends on this machine's numerics.
    """
    value = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ValueError(
            f"{PRECISION_ENV}={value!r} is not a precision: use one of {', '.join(PRECISIONS)}"
        )
    return value


def runtime_choice() -> str:
    """``COURSE_RUNTIME``: ``auto`` (default: the fastest runtime that keeps the counts,
    measured at start) or one of :data:`RUNTIME_CHOICES` to force it (no timing)."""
    value = os.environ.get(RUNTIME_ENV, "").strip().lower() or "auto"
    if value not in RUNTIME_CHOICES:
        raise ValueError(
            f"{RUNTIME_ENV}={value!r} is not a runtime: use one of {', '.join(RUNTIME_CHOICES)}"
        )
    return value


def default_threads() -> int | None:
    """``OMP_NUM_THREADS`` when set: the one variable that sets every runtime's threads.

    PyTorch reads it itself; ONNX Runtime and OpenVINO do not, so their predictors take it
    from here when no ``threads`` is given (None: the runtime's own choice, one per core).
    """
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"OMP_NUM_THREADS={value!r} is not a positive whole number of threads")
    return int(value)


def display_path(path: str | Path) -> str:
    """A path as learners should see it: relative to the course folder, never this machine's."""
    path = Path(path).resolve()
    try:
        return path.relative_to(course_root()).as_posix()
    except ValueError:
        return path.name


def one_line(error: BaseException) -> str:
    """An error message squeezed onto one line, never with this machine's full paths.

    Annotation errors list their problems one per line; a CSV error column and the CLI's
    ``error:`` line want them on one. Used by the CLI and the archive job alike.
    """
    if isinstance(error, OSError) and error.filename:
        return f"{error.strerror or type(error).__name__}: {Path(error.filename).name}"
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text or type(error).__name__
