"""Which runtime serves by default: the fastest one that keeps the counts, chosen by measurement.

The app, the Space and ``python -m utils count`` call :func:`choose_runtime` once at start.
With ``auto`` (the default; ``COURSE_RUNTIME`` or ``--runtime`` force another) it loads every
runtime this machine has for the model file - ONNX Runtime fp32 (the reference), OpenVINO f32
and OpenVINO computing in bfloat16 where the CPU has it - counts the given photos with each,
refuses any whose counts differ from the reference's, times the others on the first photo
(interleaved calls) and serves the fastest. Measured, not assumed: on an Intel CPU with AMX the
bf16 compute was 3.4x PyTorch's speed and kept 29 of 30 counts (README's edge scorecard), but
whether it pays, or keeps the counts, depends on the CPU, the model and the threshold, and only
this machine can say. A forced choice loads that runtime untimed.

Every runtime runs the same pre- and post-processing (``processing``): only the graph changes.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .config import (
    default_threads,
    display_path,
    one_line,
    precision_choice,
    runtime_choice,
)
from .images import load_image
from .loading import load_predictor
from .modelfile import ModelFileError

CALLS = 3  # timed calls per runtime (after one untimed call, which also checks the counts)
# A runtime must beat ONNX Runtime fp32 by this factor to replace it: a smaller gap is within a
# busy machine's noise, and ONNX Runtime serves concurrent calls (OpenVINO's one infer request
# is serialised by the app).
MIN_GAIN = 1.1
REFERENCE = "onnxruntime fp32"

PhotoLike = Image.Image | str | Path


@dataclass(frozen=True)
class Candidate:
    """One way to run the model file: a name for people and how to load it."""

    name: str
    load: Callable[[], Any]  # -> Predictor (tests pass fakes with ``predict``)


@dataclass
class RuntimeChoice:
    """The predictor that serves, its name (``openvino bf16``) and why, in one line."""

    predictor: Any
    name: str
    reason: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # runtimes skipped or refused, and why
    forced: bool = False  # named by --runtime or COURSE_RUNTIME, not measured

    @property
    def worth_saying(self) -> bool:
        """Whether there was a choice at all (a ``.pt`` file has one runtime and says nothing)."""
        return bool(self.timings_ms or self.forced or self.notes)

    def describe(self) -> str:
        """``openvino bf16: 94 ms per call vs onnxruntime fp32 166 ms ...; <notes>``."""
        return "; ".join([f"{self.name}: {self.reason}", *self.notes])


def cpu_has_bf16() -> bool:
    """Whether OpenVINO can compute in bfloat16 on this CPU (and would by default).

    False without OpenVINO, and under ``COURSE_PRECISION=fp32`` (a CPU without bfloat16).
    """
    if precision_choice() == "fp32" or importlib.util.find_spec("openvino") is None:
        return False
    import openvino as ov

    try:
        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no CPU plugin, old OpenVINO
        return False


def candidates_for(
    path: str | Path, threads: int | None = None
) -> tuple[list[Candidate], list[str]]:
    """The ways this machine can run ``path`` (the reference first) and notes on the others."""
    path = Path(path)
    suffix = path.suffix.lower()
    has_openvino = importlib.util.find_spec("openvino") is not None
    notes: list[str] = []

    def make(name: str, runtime: str, **options: Any) -> Candidate:
        return Candidate(name, lambda: load_predictor(path, runtime, threads=threads, **options))

    if suffix in (".pt", ".pth"):
        return [make("pytorch", "pytorch")], notes
    if suffix == ".xml":
        found = [make("openvino f32", "openvino")]
    else:
        found = [make(REFERENCE, "onnxruntime")]
        if has_openvino:
            found.append(make("openvino f32", "openvino"))
        else:
            notes.append("openvino is not installed (pip install openvino to try it)")
    if has_openvino:
        if cpu_has_bf16():
            found.append(make("openvino bf16", "openvino", precision="bf16"))
        else:
            notes.append("no bf16: this CPU has no bfloat16 (or COURSE_PRECISION=fp32)")
    return found, notes


def _photo_name(photo: PhotoLike) -> str:
    return Path(photo).name if isinstance(photo, (str, Path)) else "the given photo"


def _counts(detections: Any) -> dict[str, int]:
    """The count per class, and the total: what a runtime must keep to serve."""
    return {**detections.counts_by_class(), "total": detections.count}


def fastest_runtime(
    candidates: Sequence[Candidate],
    photos: Sequence[PhotoLike],
    calls: int = CALLS,
    min_gain: float = MIN_GAIN,
    clock: Callable[[], float] = time.perf_counter,
    threshold: float | None = None,
) -> RuntimeChoice:
    """The fastest candidate whose counts on every photo equal the first's (the reference).

    Counts are compared at ``threshold`` (None: the model's stored one), the threshold the
    caller will count at: bf16 moves scores by about 1e-2, so a count kept at one threshold
    may change at another.

    A candidate that fails to load is skipped with a note; one that changes a count is
    refused. Calls alternate between runtimes (a busy machine slows them all alike) and the
    median of ``calls`` on the first photo decides. Without a photo nothing is timed and the
    reference serves.
    """
    reference, *others = candidates
    notes: list[str] = []
    ref_predictor = reference.load()
    if not photos or not others:
        why = "the only runtime here" if not others else "not measured (no photo given)"
        return RuntimeChoice(ref_predictor, reference.name, why, notes=notes)
    images, expected, used = [], [], []
    for photo in photos:  # a photo the model cannot count (a thumbnail) measures nothing
        try:
            image = load_image(photo).image if isinstance(photo, (str, Path)) else photo
            expected.append(_counts(ref_predictor.predict(image, threshold)))
        except (ValueError, OSError) as error:  # ImageError, ScaleError, unreadable
            notes.append(f"{_photo_name(photo)} not used ({one_line(error)})")
            continue
        images.append(image)
        used.append(photo)
    if not images:
        why = "not measured (no photo it could count)"
        return RuntimeChoice(ref_predictor, reference.name, why, notes=notes)
    kept: list[tuple[str, Any]] = [(reference.name, ref_predictor)]
    for candidate in others:
        try:
            predictor = candidate.load()
        except (ImportError, ModelFileError, RuntimeError) as error:
            notes.append(f"{candidate.name} could not load ({type(error).__name__}: {error})")
            continue
        got = [_counts(predictor.predict(image, threshold)) for image in images]
        if got != expected:
            k = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
            notes.append(
                f"{candidate.name} refused: it counted {got[k]['total']}, not "
                f"{expected[k]['total']}, on {_photo_name(used[k])}"
                + ("" if got[k]["total"] != expected[k]["total"] else " (per class)")
            )
            continue
        kept.append((candidate.name, predictor))
    total = expected[0]["total"]
    if len(kept) == 1:
        why = f"the only runtime that kept the count ({total}) on {_photo_name(used[0])}"
        return RuntimeChoice(ref_predictor, reference.name, why, notes=notes)
    times: dict[str, list[float]] = {name: [] for name, _ in kept}
    for _ in range(calls):
        for name, predictor in kept:
            start = clock()
            predictor.predict(images[0], threshold)
            times[name].append((clock() - start) * 1000)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ref_ms = medians[reference.name]
    best = min(medians, key=medians.__getitem__)
    if best != reference.name and medians[best] * min_gain > ref_ms:
        best = reference.name  # not clearly faster: keep the reference
    others_ms = ", ".join(
        f"{name} {ms:.0f} ms"
        for name, ms in sorted(medians.items(), key=lambda x: x[1])
        if name != best
    )
    beaten_by_less = best == reference.name and ref_ms > min(medians.values())
    slack = f" (none {min_gain:g}x faster)" if beaten_by_less else ""
    same = "same count" if len(images) == 1 else f"same counts on {len(images)} photos"
    reason = (
        f"{medians[best]:.0f} ms per call vs {others_ms}{slack} on {_photo_name(used[0])} "
        f"(median of {calls}), {same} ({total})"
    )
    predictor = dict(kept)[best]
    return RuntimeChoice(predictor, best, reason, timings_ms=medians, notes=notes)


_CHOSEN: dict[tuple[Any, ...], RuntimeChoice] = {}


def choose_runtime(
    model_path: str | Path,
    photos: Sequence[PhotoLike] = (),
    runtime: str | None = None,
    threads: int | None = None,
    calls: int = CALLS,
    threshold: float | None = None,
) -> RuntimeChoice:
    """The runtime that serves ``model_path``: measured (``auto``) or forced; once per process.

    ``threshold``: the one the caller counts at (None: the model's own), where the counts must
    stay the same.

    ``runtime`` None reads ``COURSE_RUNTIME`` (default ``auto``). A forced runtime whose package
    is missing falls back to ``auto`` with a note, so a Space without OpenVINO still starts; one
    that cannot run the file at all (``pytorch`` on an ``.onnx``) raises ``ModelFileError``.
    """
    path = Path(model_path)
    wanted = runtime or runtime_choice()
    threads = threads or default_threads()
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, wanted, threads, threshold)
    key += (precision_choice(),)
    if key not in _CHOSEN:
        _CHOSEN[key] = _choose(path, photos, wanted, threads, calls, threshold)
    return _CHOSEN[key]


def _choose(
    path: Path,
    photos: Sequence[PhotoLike],
    wanted: str,
    threads: int | None,
    calls: int,
    threshold: float | None,
) -> RuntimeChoice:
    notes: list[str] = []
    if wanted != "auto":
        runtime, _, precision = wanted.partition("-")
        if runtime == "openvino" and importlib.util.find_spec("openvino") is None:
            notes.append(f"{wanted} was asked for but openvino is not installed")
        elif precision == "bf16" and not cpu_has_bf16():
            notes.append("bf16 was asked for but this CPU has none: OpenVINO computes in f32")
            predictor = load_predictor(path, runtime, threads=threads)
            return RuntimeChoice(predictor, "openvino f32", "forced", notes=notes, forced=True)
        else:
            options = {"precision": precision} if precision else {}
            predictor = load_predictor(path, runtime, threads=threads, **options)
            name = f"{runtime} {precision}" if precision else runtime
            if runtime in ("onnxruntime", "openvino") and not precision:
                name += " fp32" if runtime == "onnxruntime" else " f32"
            return RuntimeChoice(predictor, name, f"forced ({wanted})", forced=True)
    candidates, skipped = candidates_for(path, threads)
    choice = fastest_runtime(candidates, photos, calls, threshold=threshold)
    if path.suffix.lower() in (".pt", ".pth"):
        choice.reason = "a .pt checkpoint runs in PyTorch only (export it to ONNX for the others)"
    choice.notes[:0] = notes + skipped
    return choice


def served_by(choice: RuntimeChoice, model_path: str | Path) -> str:
    """``Serving model.onnx with openvino bf16 (...)``: the line an entry point prints."""
    return f"Serving {display_path(model_path)} with {choice.describe()}"
