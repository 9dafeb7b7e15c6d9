"""The runtime that serves by default (utils.runtime_choice): fastest with the same counts.

The choice logic runs on fake predictors and a fake clock (no timed thresholds: which one is
"faster" is decided by the fake clock); one real test chooses among this machine's runtimes for
the tiny exported detector, and the forced and missing-runtime paths load real files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils import cli, runtime_choice
from utils.config import RUNTIME_CHOICES
from utils.processing import Detections, InferenceConfig
from utils.runtime import OnnxPredictor
from utils.runtime_choice import (
    Candidate,
    choose_runtime,
    expected_changes,
    fastest_runtime,
    score_drift,
)


class FakeClock:
    """Milliseconds that the fake predictors spend, advanced by them, never by the machine."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CONFIG = InferenceConfig("fake", ("Microalgae",), 64, score_threshold=0.5, min_score=0.05)
# The reference's peak scores on the fake photo: 4 of 7 count at the threshold 0.5, and the
# density near it (within 0.45: from 0.05 to 0.95) is 7 / 0.9 peaks per unit of score.
SCORES = (0.9, 0.8, 0.7, 0.52, 0.45, 0.3, 0.1)


class FakePredictor:
    """Peaks at ``scores`` (+ ``drift``, alternating in sign), 20 px apart: Detections as a
    real predictor returns them, down to the threshold it is asked for."""

    config = CONFIG

    def __init__(
        self, clock: FakeClock, ms: float, scores=SCORES, drift: float = 0.0, low=None
    ) -> None:
        self.clock, self.ms = clock, ms
        self.scores = np.asarray(scores) + drift * (-1) ** np.arange(len(scores))
        self.low = low  # extra peaks at 0.07, seen only by a count at threshold 0.05

    def predict(self, image, threshold=None) -> Detections:
        self.clock.now += self.ms / 1000
        scores = np.concatenate([self.scores, [0.07] * (self.low or 0)])
        t = CONFIG.score_threshold if threshold is None else threshold
        keep = scores >= max(t, CONFIG.min_score)
        x = np.arange(len(scores), dtype=np.float32) * 20
        boxes = np.stack([x, x * 0, x + 10, x * 0 + 10], axis=1)
        labels = np.zeros(len(scores), np.int64)
        return Detections(
            boxes[keep], scores[keep].astype(np.float32), labels[keep], ("Microalgae",)
        )


def _candidate(
    name: str,
    clock: FakeClock,
    ms: float,
    count: int = 4,
    low: int | None = None,
    drift: float = 0.0,
) -> Candidate:
    scores = SCORES if count == 4 else (*SCORES[:count], *(s - 0.5 for s in SCORES[count:]))
    return Candidate(name, lambda: FakePredictor(clock, ms, scores, drift, low))


PHOTO = Image.new("RGB", (64, 64))


def test_a_faster_runtime_that_changes_the_count_is_refused() -> None:
    clock = FakeClock()
    choice = fastest_runtime(
        [
            _candidate("onnxruntime fp32", clock, 90),
            _candidate("openvino bf16", clock, 40, count=3),  # faster, one cell fewer
            _candidate("openvino f32", clock, 60),
        ],
        [PHOTO],
        clock=clock,
    )
    assert choice.name == "openvino f32"
    assert set(choice.timings_ms) == {"onnxruntime fp32", "openvino f32"}
    assert any("openvino bf16 refused" in note and "3, not 4" in note for note in choice.notes)
    assert "60 ms per call vs onnxruntime fp32 90 ms" in choice.reason
    assert choice.describe().startswith("openvino f32: 60 ms")


def test_the_fastest_with_equal_counts_wins() -> None:
    clock = FakeClock()
    choice = fastest_runtime(
        [
            _candidate("onnxruntime fp32", clock, 90),
            _candidate("openvino f32", clock, 80),
            _candidate("openvino bf16", clock, 40),
        ],
        [PHOTO, PHOTO],
        calls=3,
        clock=clock,
    )
    assert choice.name == "openvino bf16" and choice.notes == []
    assert choice.timings_ms == pytest.approx(
        {"onnxruntime fp32": 90, "openvino f32": 80, "openvino bf16": 40}
    )
    assert "same counts on 2 photos (4)" in choice.reason


def test_the_counts_are_compared_at_the_callers_threshold() -> None:
    """bf16 moves scores: a runtime that keeps the count at the stored threshold may not at
    the one the caller counts at (``count --threshold``)."""
    clock = FakeClock()
    candidates = [
        _candidate("onnxruntime fp32", clock, 90, low=30),
        _candidate("openvino bf16", clock, 40, low=31),
    ]
    assert fastest_runtime(candidates, [PHOTO], clock=clock).name == "openvino bf16"
    at_low = fastest_runtime(candidates, [PHOTO], clock=clock, threshold=0.05)
    assert at_low.name == "onnxruntime fp32"
    assert at_low.notes == ["openvino bf16 refused: it counted 38, not 37, on the given photo"]


def test_scores_that_drift_near_the_threshold_are_refused_though_the_counts_agree() -> None:
    """A drift of 0.01 keeps all 4 counts on the photo checked (0.52 stays above 0.5, 0.45
    below), but with 7 / 0.9 peaks per unit of score near the threshold it would flip about
    0.078 of a peak per photo: 1 - exp(-0.078) = 7.5 % of photos, over the 1 in 50 allowed.
    A drift of 1e-4 (0.08 % of photos) is kept; the thresholds of the rule sit in between."""
    clock = FakeClock()
    candidates = [
        _candidate("onnxruntime fp32", clock, 90),
        _candidate("openvino bf16", clock, 40, drift=0.01),
        _candidate("openvino f32", clock, 60, drift=1e-4),
    ]
    choice = fastest_runtime(candidates, [PHOTO], clock=clock)
    assert choice.name == "openvino f32"
    assert choice.changes == pytest.approx(
        {"openvino bf16": 1 - np.exp(-7 / 0.9 * 0.01), "openvino f32": 1 - np.exp(-7 / 0.9 * 1e-4)},
        rel=1e-3,  # float32 scores
    )
    [note] = choice.notes
    assert note.startswith("openvino bf16 refused: same counts on 1 photo, but its scores")
    assert "1.0e-02 on average (7 detections)" in note and "1 in 13 photos" in note
    assert "openvino f32 1 in 1286 (at most 1 in 50)" in choice.reason
    # the same drift passes a looser tolerance, and a drift of 1e-3 (0.8 %) passes this one
    loose = fastest_runtime(candidates, [PHOTO], clock=clock, tolerance=0.1)
    assert loose.name == "openvino bf16" and loose.notes == []
    small = _candidate("openvino bf16", clock, 40, drift=1e-3)
    assert fastest_runtime([candidates[0], small], [PHOTO], clock=clock).name == "openvino bf16"


def test_the_expected_changes_follow_the_density_near_the_threshold() -> None:
    """Peaks far from the threshold cannot flip: the same drift is harmless there."""
    drift = np.full(7, 0.01)
    near = [np.asarray(SCORES)]
    far = [np.asarray([0.99, 0.98, 0.97, 0.96])]  # none within 0.45 of 0.5
    assert expected_changes(near, drift, 0.5, 0.05) == pytest.approx(1 - np.exp(-7 / 0.9 * 0.01))
    assert expected_changes(far, drift, 0.5, 0.05) == 0.0
    assert expected_changes(near, np.zeros(0), 0.5, 0.05) == 0.0  # nothing matched: blind
    # two photos: the density is per photo
    two = expected_changes(near + far, drift, 0.5, 0.05)
    assert two == pytest.approx(1 - np.exp(-7 / 0.9 / 2 * 0.01))


def test_the_drift_pairs_detections_by_class_and_overlap() -> None:
    clock = FakeClock()
    reference = FakePredictor(clock, 1).predict(PHOTO, 0.05)
    moved = FakePredictor(clock, 1, drift=0.02).predict(PHOTO, 0.05)
    diffs = score_drift(reference, moved)
    assert np.allclose(np.sort(np.abs(diffs)), 0.02) and len(diffs) == 7
    shifted = Detections(moved.boxes + 15, moved.scores, moved.labels, moved.class_names)
    assert len(score_drift(reference, shifted)) == 0  # IoU 0.14 or less: not the same peaks
    other = Detections(moved.boxes, moved.scores, moved.labels + 1, moved.class_names)
    assert len(score_drift(reference, other)) == 0


def test_a_runtime_not_clearly_faster_leaves_the_reference() -> None:
    clock = FakeClock()
    choice = fastest_runtime(
        [_candidate("onnxruntime fp32", clock, 90), _candidate("openvino f32", clock, 85)],
        [PHOTO],
        clock=clock,
    )
    assert choice.name == "onnxruntime fp32"
    assert "none 1.1x faster" in choice.reason


def test_an_unavailable_runtime_is_skipped_with_a_note() -> None:
    clock = FakeClock()

    def missing():
        raise ImportError("No module named 'openvino'")

    choice = fastest_runtime(
        [_candidate("onnxruntime fp32", clock, 90), Candidate("openvino f32", missing)],
        [PHOTO],
        clock=clock,
    )
    assert choice.name == "onnxruntime fp32"
    assert "the only runtime that kept the counts" in choice.reason
    assert choice.notes == ["openvino f32 could not load (ImportError: No module named 'openvino')"]


def test_without_a_photo_the_reference_serves_untimed() -> None:
    clock = FakeClock()
    choice = fastest_runtime(
        [_candidate("onnxruntime fp32", clock, 90), _candidate("openvino bf16", clock, 10)],
        [],
        clock=clock,
    )
    assert choice.name == "onnxruntime fp32" and choice.timings_ms == {}
    assert choice.reason == "not measured (no photo given)"


# ----------------------------------------------------------------------------- real files


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    array = (np.random.default_rng(3).random((160, 200, 3)) * 255).astype(np.uint8)
    return Image.fromarray(array)


@pytest.fixture(autouse=True)
def fresh_cache():
    runtime_choice._CHOSEN.clear()
    yield
    runtime_choice._CHOSEN.clear()


def test_auto_on_a_tiny_model_serves_a_working_predictor(tiny_export, photo) -> None:
    onnx_file = tiny_export[0]
    choice = choose_runtime(onnx_file, [photo], "auto", threads=2, calls=2)
    assert choice.name in choice.timings_ms or choice.timings_ms == {}
    assert choice.name.split()[0] in ("onnxruntime", "openvino")
    # the chosen runtime kept ONNX Runtime fp32's count (same file, input and threads as the
    # reference inside the choice, so equality is exact)
    expected = OnnxPredictor(onnx_file, threads=2).predict(photo).count
    assert choice.predictor.predict(photo).count == expected
    assert choose_runtime(onnx_file, [photo], "auto", threads=2) is choice  # once per process


def test_a_forced_runtime_is_honoured_untimed(tiny_export, photo) -> None:
    onnx_file = tiny_export[0]
    ort = choose_runtime(onnx_file, [photo], "onnxruntime", threads=1)
    assert (ort.name, ort.forced, ort.timings_ms) == ("onnxruntime fp32", True, {})
    assert ort.predictor.runtime == "onnxruntime"
    if importlib.util.find_spec("openvino") is not None:
        ov = choose_runtime(onnx_file, [photo], "openvino", threads=1)
        assert (ov.name, ov.predictor.runtime, ov.predictor.precision) == (
            "openvino f32",
            "openvino",
            "f32",
        )


def test_a_forced_runtime_that_is_not_installed_falls_back(tiny_export, photo, monkeypatch):
    real = importlib.util.find_spec

    def without_openvino(name, *args):
        return None if name == "openvino" else real(name, *args)

    monkeypatch.setattr(runtime_choice.importlib.util, "find_spec", without_openvino)
    choice = choose_runtime(tiny_export[0], [photo], "openvino", threads=1)
    assert choice.name == "onnxruntime fp32" and not choice.forced
    assert "openvino was asked for but openvino is not installed" in choice.notes
    assert any("openvino is not installed" in note for note in choice.notes)


def test_the_environment_variable_is_read_and_checked(monkeypatch) -> None:
    from utils.config import runtime_choice as from_env

    monkeypatch.setenv("COURSE_RUNTIME", "OpenVINO")
    assert from_env() == "openvino"
    monkeypatch.setenv("COURSE_RUNTIME", "tensorrt")
    with pytest.raises(ValueError, match="COURSE_RUNTIME='tensorrt' is not a runtime"):
        from_env()
    monkeypatch.delenv("COURSE_RUNTIME")
    assert from_env() == "auto" and "auto" in RUNTIME_CHOICES


def test_count_names_a_forced_runtime_on_stderr(tiny_export, photo, tmp_path, capsys) -> None:
    picture = tmp_path / "photo.png"
    photo.save(picture)
    code = cli.main(
        ["count", "--checkpoint", str(tiny_export[0]), str(picture), "--runtime", "onnxruntime"]
    )
    out, err = capsys.readouterr()
    assert code == 0 and out.splitlines()[0] == "file,count,error"
    assert err.splitlines() == ["runtime: onnxruntime fp32: forced (onnxruntime)"]
    code = cli.main(
        [
            "count",
            "--checkpoint",
            str(tiny_export[0]),
            str(picture),
            "--runtime",
            "openvino",
            "--engine",
            "plain",
        ]
    )
    assert code == 1 and "--runtime chooses the plain count" in capsys.readouterr().err


def test_count_of_a_few_photos_is_not_measured(
    tiny_export, photo, tmp_path, capsys, monkeypatch
) -> None:
    """Timing the runtimes costs more than it saves below ``cli.CHOICE_MIN_PHOTOS`` photos."""
    picture = tmp_path / "photo.png"
    photo.save(picture)
    calls: list[tuple] = []
    real = runtime_choice.fastest_runtime

    def spy(candidates, photos, *args, **kwargs):
        calls.append(tuple(photos))
        return real(candidates, photos, *args, **kwargs)

    monkeypatch.setattr(runtime_choice, "fastest_runtime", spy)
    monkeypatch.delenv("COURSE_RUNTIME", raising=False)
    assert cli.main(["count", "--checkpoint", str(tiny_export[0]), str(picture)]) == 0
    assert calls == [()]  # no photo handed to the measurement: the reference serves
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "file,count,error" and "per call" not in err


def test_the_app_says_which_runtime_serves(tiny_export) -> None:
    from utils.app import build_demo

    predictor = OnnxPredictor(tiny_export[0], threads=1)
    demo = build_demo(predictor, runtime_note="onnxruntime fp32: forced (onnxruntime)")
    info = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model_info")
    assert "Runtime: onnxruntime fp32: forced (onnxruntime)." in info.value


def test_the_app_command_serves_its_choice(tiny_export, monkeypatch, capsys) -> None:
    """``python -m utils.app`` (``launch.main``) chooses on an example photo and shows why."""
    from utils.app import launch

    built: dict = {}

    class NoServer:
        def launch(self, **options) -> None:
            built["launched"] = True

    def fake_build_demo(predictor, examples=None, runtime_note=""):
        built.update(predictor=predictor, note=runtime_note, examples=examples)
        return NoServer()

    monkeypatch.setattr(launch, "build_demo", fake_build_demo)
    monkeypatch.setattr(launch, "default_examples", lambda: [])  # nothing to time on
    monkeypatch.delenv("COURSE_RUNTIME", raising=False)
    assert launch.main(["--model", str(tiny_export[0]), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert built["launched"] and built["predictor"].runtime == "onnxruntime"
    assert built["note"].startswith("onnxruntime fp32: not measured (no photo given)")
    assert f"Serving {Path(tiny_export[0]).name} with {built['note']}" in out
