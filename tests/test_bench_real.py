"""``python -m utils.bench real``: the default train command on a labelled folder, per class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from utils.annotations import AnnotatedImage, AnnotationSet, write_voc
from utils.bench import real
from utils.bench.__main__ import main as bench_main
from utils.synth import generate_image

SIZE = 160


def _two_class_folder(folder: Path, seeds) -> Path:
    """Generated photos whose larger half of cells is "Big" and the rest "Small"."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for seed in seeds:
        image, boxes, _ = generate_image(seed, SIZE)
        path = folder / f"photo_{seed}.jpg"
        image.save(path, quality=92)
        side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        labels = ["Big" if s >= np.median(side) else "Small" for s in side]
        items.append(AnnotatedImage(path, SIZE, SIZE, boxes, labels))
    return write_voc(AnnotationSet(("Big", "Small"), items), folder, copy_images=False)


def _row(map_50: float, seconds: float) -> dict:
    return {"seed": 0, "map": 0.61, "map_50": map_50, "cli_seconds": seconds}


def test_goals_are_met_or_not_by_the_numbers() -> None:
    met = real.goals([_row(0.95, 300.0)])
    assert [line.startswith("met") for line in met] == [True, True, True]
    slow = real.goals([_row(0.95, 601.0)])  # the accuracy, but past the 10 minutes
    assert not any(line.startswith("met") for line in slow)
    short = real.goals([_row(0.93, 300.0), _row(0.95, 300.0)])  # mean 0.94
    assert [line.startswith("met") for line in short] == [True, True, False]
    flipped = dict(_row(0.89, 300.0), tta={"map": 0.62, "map_50": 0.91})  # only with --tta
    lines = real.goals([flipped])
    assert [line.startswith("met") for line in lines] == [False, True, False]
    assert "(with --tta: 0.910, met)" in lines[0] and "(with --tta: 0.910, not met)" in lines[2]


def test_bench_real_runs_the_cli_and_reports_each_class(tmp_path, monkeypatch, capsys) -> None:
    train = _two_class_folder(tmp_path / "train", (1, 2, 3))
    test = _two_class_folder(tmp_path / "test", (4, 5))
    monkeypatch.setattr("utils.config.artifacts_dir", lambda: tmp_path / "artifacts")
    argv = ["real", "--train", str(train), "--test", str(test), "--minutes", "1e-6", "--quiet"]
    assert bench_main([*argv, "--pretrained", "scenes", "--val-fraction", "0"]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "artifacts" / "bench_real.json").read_text())
    (run,) = report["runs"]
    assert run["budget"]["limited_by"] == "minutes"  # the clock, not the plan's epochs
    assert report["pretrained"] == "scenes" and "scenes_start.pt: 72 tensors" in out
    assert report["val_fraction"] == 0 and "Training on 3 images, no validation" in out
    assert set(run["ap_per_class"]) == set(run["count_per_class"]) == {"Big", "Small"}
    assert 0 <= run["map"] <= run["map_50"] <= 1 and run["test_images"] == 2
    assert 0 <= run["tta"]["map"] <= run["tta"]["map_50"] <= 1 and "with --tta" in out
    for name in ("Big", "Small"):
        assert f"  {name}" in out
    assert len(report["goals"]) == 3 and "goals" in out and str(tmp_path) not in out


@pytest.mark.parametrize("missing", ["--train", "--test"])
def test_bench_real_needs_both_folders(missing, capsys) -> None:
    argv = ["real", "--train", "a", "--test", "b"]
    argv.remove(missing)
    argv.remove("a" if missing == "--train" else "b")
    with pytest.raises(SystemExit):
        bench_main(argv)
    assert missing in capsys.readouterr().err


def test_bench_real_passes_a_validation_folder_to_train(monkeypatch, tmp_path) -> None:
    """``--val`` reaches ``train`` as a learner would type it (and only when given)."""
    seen: list[list[str]] = []
    monkeypatch.setattr("utils.cli.main", lambda argv: seen.append(argv) or 0)
    real.train_cli(tmp_path / "d", tmp_path / "o", 0, None, True, val=tmp_path / "v")
    real.train_cli(tmp_path / "d", tmp_path / "o", 0, None, True)
    assert seen[0][seen[0].index("--val") + 1] == str(tmp_path / "v")
    assert "--val" not in seen[1]
