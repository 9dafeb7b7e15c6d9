"""Which runtime serves by default: the fastest one that keeps the counts, chosen by measurement.

The app, the Space and ``python -m utils count`` call :func:`choose_runtime` once at start.
With ``auto`` (the default; ``COURSE_RUNTIME`` or ``--runtime`` force another) it loads every
runtime this machine has for the model file - ONNX Runtime fp32 (the reference), OpenVINO f32
and OpenVINO computing in bfloat16 where the CPU has it - and runs each once on the given
photos. A runtime may serve only if it keeps the counts, judged two ways:

1. its counts (per class) equal the reference's on every photo checked, and
2. its scores stay close enough to the reference's that counts would rarely change on other
   photos (:func:`expected_changes`). A one-photo check cannot see a 1-in-15 change by
   itself, but it sees about 150 score differences. Each detection that both runtimes find
   (same class, IoU >= 0.5, at the model's floor ``min_score``) gives one; their mean
   absolute value is the drift. The density of reference scores near the counting threshold
   (peaks per photo per unit of score, within ``t - min_score`` of ``t``) times the drift is
   the expected number of peaks pushed across the threshold per photo, ``lambda``; a runtime
   whose ``1 - exp(-lambda)`` (photos with a changed count) exceeds ``TOLERANCE`` (1 in 50)
   is refused.

The others are timed on the first photo (interleaved calls, median of ``CALLS``); the fastest
serves if it is at least ``MIN_GAIN`` (1.1x) faster than the reference, else the reference
does. The estimate is a model, checked on this course's 2-core AMD EPYC (avx512_bf16) with the
fast-mode model: OpenVINO bf16 moves scores by 6e-4 on average, an estimate of 0.07-0.16
changed photos from any one of the 30 held-out photos (0.11 from all 30), where 2 of the 30
counts (0.067) changed in fact; on BCCD's 72 test photos 0.026-0.058 (0.040 from all 72)
where 2 of 72 changed (0.028). Refused whichever single photo is checked, those whose count
it kept included. OpenVINO f32 moves them by about 1e-7 (estimate about 1e-5): kept. (The two
changed held-out counts were not threshold crossings but a peak split in two at a near tie:
the estimate counts crossings only, so it is a proxy for drift-driven changes, not a bound.)
A forced choice loads that runtime untimed and unchecked.

Every runtime runs the same pre- and post-processing (``processing``): only the graph changes.
"""

from __future__ import annotations

import importlib.util
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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
from .viz.draw import box_iou

CALLS = 3  # timed calls per runtime (after one untimed call, which also checks the counts)
# A runtime must beat ONNX Runtime fp32 by this factor to replace it: a smaller gap is within a
# busy machine's noise, and ONNX Runtime serves concurrent calls (OpenVINO's one infer request
# is serialised by the app).
MIN_GAIN = 1.1
REFERENCE = "onnxruntime fp32"
# The most photos in which a runtime may be expected to change a count (from its score drift).
TOLERANCE = 1 / 50
MATCH_IOU = 0.5  # a detection of both runtimes: same class, boxes overlapping at least this

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
    # per runtime checked against the reference: the expected share of photos with a changed count
    changes: dict[str, float] = field(default_factory=dict)
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


def score_drift(reference: Any, other: Any) -> np.ndarray:
    """``other``'s score minus the reference's, for each detection both found.

    Matched greedily, the reference's highest scores first: same class, IoU >= ``MATCH_IOU``.
    A detection only one of them found (a peak that moved or split) gives no difference.
    """
    ref_boxes, got_boxes = np.asarray(reference.boxes), np.asarray(other.boxes)
    if not len(ref_boxes) or not len(got_boxes):
        return np.zeros(0)
    iou = box_iou(ref_boxes, got_boxes)
    iou[np.asarray(reference.labels)[:, None] != np.asarray(other.labels)[None, :]] = 0
    diffs, free = [], np.ones(len(got_boxes), bool)
    for i in np.argsort(-np.asarray(reference.scores), kind="stable"):
        j = int(np.argmax(np.where(free, iou[i], -1)))
        if free[j] and iou[i, j] >= MATCH_IOU:
            free[j] = False
            diffs.append(float(other.scores[j]) - float(reference.scores[i]))
    return np.asarray(diffs)


def expected_changes(
    reference_scores: Sequence[np.ndarray], drift: np.ndarray, threshold: float, floor: float
) -> float:
    """The expected share of photos whose count a runtime with this score ``drift`` changes.

    ``reference_scores``: the reference's detection scores (down to ``floor``) on each photo
    checked. A peak flips when the drift carries it across ``threshold``: for peaks spread
    evenly near it, ``density x mean |drift|`` per photo, ``density`` being the reference's
    peaks per photo per unit of score within ``threshold - floor`` (0.05 at least) of it.
    Returned as ``1 - exp(-that)``, the share of photos with at least one flip (Poisson).
    """
    if not len(drift) or not reference_scores:
        return 0.0
    band = max(threshold - floor, 0.05)
    low, high = max(floor, threshold - band), threshold + band
    near = sum(int(((s >= low) & (s <= high)).sum()) for s in reference_scores)
    density = near / (high - low) / len(reference_scores)
    return 1.0 - math.exp(-density * float(np.mean(np.abs(drift))))


def _one_in(rate: float) -> str:
    """``1 in 9`` (photos), for people."""
    if rate <= 0:
        return "none"
    return f"1 in {1 / rate:.0f}" if rate >= 1e-4 else "under 1 in 10,000"


def _floor(predictor: Any, threshold: float | None) -> tuple[float, float]:
    """(The counting threshold, the lowest score the post-processing keeps) of ``predictor``."""
    config = predictor.config
    t = config.score_threshold if threshold is None else float(threshold)
    return t, min(t, config.min_score)


def fastest_runtime(
    candidates: Sequence[Candidate],
    photos: Sequence[PhotoLike],
    calls: int = CALLS,
    min_gain: float = MIN_GAIN,
    clock: Callable[[], float] = time.perf_counter,
    threshold: float | None = None,
    tolerance: float = TOLERANCE,
) -> RuntimeChoice:
    """The fastest candidate that keeps the first's (the reference's) counts (module docstring).

    Counts are compared at ``threshold`` (None: the model's stored one), the threshold the
    caller will count at, and the scores near it. Each runtime runs once per photo, at the
    model's floor ``min_score``: the count at ``threshold`` is the detections scoring at
    least it (NMS keeps the best first, so that is the count at ``threshold`` exactly).

    A candidate that fails to load is skipped with a note; one that changes a count, or whose
    score drift is expected to change counts in more than ``tolerance`` of photos, is
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
    t, floor = _floor(ref_predictor, threshold)
    images, found, used = [], [], []
    for photo in photos:  # a photo the model cannot count (a thumbnail) measures nothing
        try:
            image = load_image(photo).image if isinstance(photo, (str, Path)) else photo
            found.append(ref_predictor.predict(image, floor))
        except (ValueError, OSError) as error:  # ImageError, ScaleError, unreadable
            notes.append(f"{_photo_name(photo)} not used ({one_line(error)})")
            continue
        images.append(image)
        used.append(photo)
    if not images:
        why = "not measured (no photo it could count)"
        return RuntimeChoice(ref_predictor, reference.name, why, notes=notes)
    expected = [_counts(d.above(t)) for d in found]
    ref_scores = [np.asarray(d.scores) for d in found]
    kept: list[tuple[str, Any]] = [(reference.name, ref_predictor)]
    changes: dict[str, float] = {}
    for candidate in others:
        try:
            predictor = candidate.load()
        except (ImportError, ModelFileError, RuntimeError) as error:
            notes.append(f"{candidate.name} could not load ({type(error).__name__}: {error})")
            continue
        theirs = [predictor.predict(image, floor) for image in images]
        got = [_counts(d.above(t)) for d in theirs]
        if got != expected:
            k = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
            notes.append(
                f"{candidate.name} refused: it counted {got[k]['total']}, not "
                f"{expected[k]['total']}, on {_photo_name(used[k])}"
                + ("" if got[k]["total"] != expected[k]["total"] else " (per class)")
            )
            continue
        drift = np.concatenate([score_drift(r, d) for r, d in zip(found, theirs)])
        changes[candidate.name] = rate = expected_changes(ref_scores, drift, t, floor)
        if rate > tolerance:
            mean = float(np.mean(np.abs(drift)))
            notes.append(
                f"{candidate.name} refused: same counts on {_photos(len(images))}, but its "
                f"scores move {mean:.1e} on average ({len(drift)} detections), enough to "
                f"change about {_one_in(rate)} photos' counts (more than {_one_in(tolerance)})"
            )
            continue
        kept.append((candidate.name, predictor))
    total = expected[0]["total"]
    if len(kept) == 1:
        why = (
            f"the only runtime that kept the counts ({total} on {_photo_name(used[0])}; "
            f"at most {_one_in(tolerance)} photos changed, estimated from score drift)"
        )
        return RuntimeChoice(ref_predictor, reference.name, why, notes=notes, changes=changes)
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
    kept_rates = ", ".join(f"{name} {_one_in(changes[name])}" for name, _ in kept[1:])
    reason = (
        f"{medians[best]:.0f} ms per call vs {others_ms}{slack} on {_photo_name(used[0])} "
        f"(median of {calls}), {same} ({total}); photos with a changed count expected "
        f"from score drift: {kept_rates} (at most {_one_in(tolerance)})"
    )
    predictor = dict(kept)[best]
    return RuntimeChoice(predictor, best, reason, timings_ms=medians, notes=notes, changes=changes)


def _photos(n: int) -> str:
    return "1 photo" if n == 1 else f"{n} photos"


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
