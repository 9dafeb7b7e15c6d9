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
from utils.runtime import OnnxPredictor
from utils.runtime_choice import Candidate, choose_runtime, fastest_runtime


class FakeClock:
    """Milliseconds that the fake predictors spend, advanced by them, never by the machine."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeDetections:
    def __init__(self, count: int) -> None:
        self.count = count

    def counts_by_class(self) -> dict[str, int]:
        return {"Microalgae": self.count}


class FakePredictor:
    def __init__(self, clock: FakeClock, ms: float, count: int, low: int | None = None) -> None:
        self.clock, self.ms, self.count = clock, ms, count
        self.low = count if low is None else low  # its count at threshold 0.05

    def predict(self, image, threshold=None) -> FakeDetections:
        self.clock.now += self.ms / 1000
        return FakeDetections(self.low if threshold == 0.05 else self.count)


def _candidate(
    name: str, clock: FakeClock, ms: float, count: int = 7, low: int | None = None
) -> Candidate:
    return Candidate(name, lambda: FakePredictor(clock, ms, count, low))


PHOTO = Image.new("RGB", (64, 64))


def test_a_faster_runtime_that_changes_the_count_is_refused() -> None:
    clock = FakeClock()
    choice = fastest_runtime(
        [
            _candidate("onnxruntime fp32", clock, 90),
            _candidate("openvino bf16", clock, 40, count=6),  # faster, one cell fewer
            _candidate("openvino f32", clock, 60),
        ],
        [PHOTO],
        clock=clock,
    )
    assert choice.name == "openvino f32"
    assert set(choice.timings_ms) == {"onnxruntime fp32", "openvino f32"}
    assert any("openvino bf16 refused" in note and "6, not 7" in note for note in choice.notes)
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
    assert "same counts on 2 photos (7)" in choice.reason


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
    assert at_low.notes == ["openvino bf16 refused: it counted 31, not 30, on the given photo"]


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
    assert "the only runtime that kept the count" in choice.reason
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
