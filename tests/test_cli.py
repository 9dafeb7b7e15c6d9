"""``python -m utils train | evaluate | count`` on tiny VOC and COCO data, and its errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from utils import cli
from utils.annotations import AnnotatedImage, AnnotationSet, write_coco, write_voc
from utils.checkpoint import predictor as checkpoint_predictor
from utils.checkpoint import save_checkpoint
from utils.model import build_model
from utils.processing import InferenceConfig
from utils.synth import generate_image

SIZE = 128
ROOT = Path(__file__).resolve().parents[1]


def _tiny(folder: Path, seeds=(3, 4, 5)) -> AnnotationSet:
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for seed in seeds:
        image, boxes, labels = generate_image(seed, SIZE)
        path = folder / f"photo_{seed}.jpg"
        image.save(path, quality=92)
        items.append(AnnotatedImage(path, SIZE, SIZE, boxes, labels))
    return AnnotationSet(("Microalgae",), items)


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("voc")
    write_voc(_tiny(folder), folder, copy_images=False)
    return folder


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("coco")
    aset = _tiny(folder / "images", seeds=(6, 7, 8))
    return write_coco(aset, folder / "labels.json")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _train(capsys, data: Path, out: Path) -> Path:
    code, stdout, err = _run(
        capsys,
        "train",
        "--data",
        data,
        "--out",
        out,
        "--epochs",
        "1",
        "--size",
        SIZE,
        "--val-fraction",
        "0.34",
        "--pretrained",
        "no",
        "--quiet",
    )
    assert code == 0, err
    assert "Wrote" in stdout and str(out) not in stdout  # relative paths only
    return out / "model.pt"


@pytest.mark.parametrize("kind", ["voc", "coco"])
def test_train_evaluate_count(kind, voc, coco, tmp_path, capsys) -> None:
    data = voc if kind == "voc" else coco
    model = _train(capsys, data, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["image_size"] == SIZE
    assert metrics["train_images"] == 2 and metrics["val_images"] == 1
    assert len(metrics["history"]) == 1 and metrics["sweep"]

    code, out, err = _run(capsys, "evaluate", "--checkpoint", model, "--data", data)
    assert code == 0, err
    first, text = out.strip().splitlines()[:2]
    scores = json.loads(first)
    assert {"map", "map_50", "count_mae", "count_mape"} <= set(scores)
    assert scores["images"] == 3 and 0 <= scores["map"] <= scores["map_50"] <= 1
    assert "mAP@[.5:.95]" in text and "count MAE" in text

    images = voc if kind == "voc" else coco.parent / "images"
    code, out, err = _run(capsys, "count", "--checkpoint", model, images, "--threshold", "0.1")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["file", "count", "error"] and len(rows) == 4
    predictor = checkpoint_predictor(model)
    for name, count, error in rows[1:]:
        assert error == ""
        from PIL import Image

        with Image.open(name) as image:
            assert int(count) == predictor.predict(image.convert("RGB"), 0.1).count

    out_csv = tmp_path / "counts.csv"
    one = sorted(images.glob("*.jpg"))[0]
    code, out, err = _run(capsys, "count", "--checkpoint", model, one, "--out", out_csv)
    assert code == 0, err
    assert "wrote" in out and out_csv.read_text().splitlines()[0] == "file,count,error"
    assert len(out_csv.read_text().splitlines()) == 2


def test_train_on_every_image_without_validation(voc, tmp_path, capsys) -> None:
    """--val-fraction 0: all 3 images train, the threshold is chosen on them, no val figures."""
    argv = ["train", "--data", voc, "--out", tmp_path / "all", "--epochs", "1", "--size", SIZE]
    code, out, err = _run(capsys, *argv, "--val-fraction", "0", "--pretrained", "no", "--quiet")
    assert code == 0, err
    assert "Training on 3 images, no validation" in out and "No validation: counting" in out
    metrics = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert metrics["train_images"] == 3 and "val_map" not in metrics and metrics["sweep"]
    assert metrics["threshold_photos"] == {"validation": 0, "training": 3}
    assert checkpoint_predictor(tmp_path / "all" / "model.pt").config.score_threshold == (
        metrics["threshold"]
    )
    line = _expect_error(capsys, *argv, "--val-fraction", "1.5", words=["--val-fraction", "1.5"])
    assert "0 (train on every image" in line


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    broken = folder / "broken_voc"
    broken.mkdir()
    image, _, _ = generate_image(9, 64)
    image.save(broken / "a.jpg")
    (broken / "a.xml").write_text("<annotation><object><name>Microalgae</name>", "utf-8")
    corrupt = folder / "model.pt"
    corrupt.write_bytes(np.random.default_rng(1).bytes(2000))
    text = folder / "notes.txt"
    text.write_text("not an image", "utf-8")
    return {"broken": broken, "corrupt": corrupt, "text": text, "folder": folder}


def _expect_error(capsys, *argv, words=()) -> str:
    code, out, err = _run(capsys, *argv)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_errors(bad_files, voc, tmp_path, capsys) -> None:
    b = bad_files
    _expect_error(
        capsys, "train", "--data", tmp_path / "nowhere", "--out", tmp_path / "o", words=["nowhere"]
    )
    _expect_error(capsys, "train", "--data", b["broken"], "--out", tmp_path / "o", words=["a.xml"])
    _expect_error(
        capsys,
        "evaluate",
        "--checkpoint",
        b["corrupt"],
        "--data",
        voc,
        words=["not a PyTorch checkpoint"],
    )
    _expect_error(
        capsys,
        "evaluate",
        "--checkpoint",
        tmp_path / "missing.pt",
        "--data",
        voc,
        words=["missing.pt", "not found"],
    )
    _expect_error(capsys, "count", "--checkpoint", b["corrupt"], voc, words=["model.pt"])
    message = _expect_error(capsys, "count", "--checkpoint", b["corrupt"], b["text"])
    assert str(b["folder"]) not in message


def test_non_image_and_missing_image(bad_files, voc, tmp_path, capsys) -> None:
    model = tmp_path / "untrained.pt"  # error paths need a valid checkpoint, not a good one
    detector = build_model("fcos_resnet18", 1, SIZE, pretrained=False)
    save_checkpoint(model, detector, InferenceConfig("fcos_resnet18", ("Microalgae",), SIZE))
    _expect_error(capsys, "count", "--checkpoint", model, bad_files["text"], words=["notes.txt"])
    _expect_error(
        capsys,
        "count",
        "--checkpoint",
        model,
        tmp_path / "gone.jpg",
        words=["gone.jpg", "not found"],
    )
    _expect_error(capsys, "count", "--checkpoint", model, voc, "--threshold", "2")


def test_real_process_exit_code(bad_files) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "utils",
            "count",
            "--checkpoint",
            str(bad_files["corrupt"]),
            str(bad_files["text"]),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> Path:
    """A valid checkpoint (untrained: error paths and plumbing, not accuracy)."""
    model = tmp_path_factory.mktemp("model") / "untrained.pt"
    detector = build_model("fcos_resnet18", 1, SIZE, pretrained=False)
    save_checkpoint(model, detector, InferenceConfig("fcos_resnet18", ("Microalgae",), SIZE))
    return model


def test_count_writes_an_error_row_and_goes_on(untrained, voc, tmp_path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    good = sorted(voc.glob("*.jpg"))[:2]
    for path in good:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")
    out_csv = tmp_path / "counts.csv"
    code, out, err = _run(
        capsys, "count", "--checkpoint", untrained, folder, "--threshold", "0.1", "--out", out_csv
    )
    assert code == 1
    assert err.strip().splitlines() == [
        "error: 1 of 3 images could not be counted (broken.jpg); see the error column"
    ]
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert [Path(r["file"]).name for r in rows] == ["broken.jpg", *(p.name for p in good)]
    assert rows[0]["count"] == "" and "broken.jpg" in rows[0]["error"]
    assert all(r["count"].isdigit() and r["error"] == "" for r in rows[1:])
    assert str(tmp_path) not in rows[0]["error"]  # the file name, never this machine's path
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_count_refuses_a_nan_threshold(untrained, voc, capsys) -> None:
    _expect_error(capsys, "count", "--checkpoint", untrained, voc, "--threshold", "nan")


def _relabelled(voc: Path, folder: Path, rename: dict[str, str]) -> Path:
    folder.mkdir()
    for path in voc.iterdir():
        text = path.read_bytes()
        if path.suffix == ".xml":
            for old, new in rename.items():
                text = text.replace(f"<name>{old}</name>".encode(), f"<name>{new}</name>".encode())
        (folder / path.name).write_bytes(text)
    return folder


def test_evaluate_refuses_classes_the_model_does_not_know(untrained, voc, tmp_path, capsys):
    renamed = _relabelled(voc, tmp_path / "renamed", {"Microalgae": "Diatom"})
    message = _expect_error(
        capsys, "evaluate", "--checkpoint", untrained, "--data", renamed, words=["'Diatom'"]
    )
    assert "Microalgae" in message and "does not detect" in message


def test_evaluate_with_matching_classes_runs(untrained, voc, capsys):
    code, out, err = _run(capsys, "evaluate", "--checkpoint", untrained, "--data", voc)
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["images"] == 3


def test_export_command_exists_and_the_hint_names_it(untrained, tmp_path, capsys) -> None:
    from utils.export import ModelFileError, config_from_metadata, read_onnx_config

    with pytest.raises(ModelFileError) as raised:
        config_from_metadata({})
    hinted = [w for w in str(raised.value).split("`") if w.startswith("python -m utils ")]
    assert hinted, str(raised.value)
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    for line in hinted:
        assert line.split()[3] in commands, line

    out = tmp_path / "model.onnx"
    killed = [tmp_path / "model.onnx.tmp", tmp_path / ".model.onnx.k1ll3d.tmp.onnx"]
    for path in killed:  # what an export killed mid-write left behind, an hour ago
        path.write_bytes(b"half a model")
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    code, stdout, err = _run(capsys, "export", "--checkpoint", untrained, "--out", out)
    assert code == 0, err
    assert read_onnx_config(out).class_names == ("Microalgae",)
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []
    assert str(tmp_path) not in stdout
    _expect_error(capsys, "export", "--checkpoint", tmp_path / "none.pt", words=["none.pt"])


def test_count_at_another_scale_and_a_thumbnail_row(untrained, voc, tmp_path, capsys) -> None:
    """--scale counts at that working scale; a photo too small for it becomes an error row,
    in the plain count and in the archive job alike (Ray: tests/test_batch.py)."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    photo = sorted(voc.glob("*.jpg"))[0]
    (folder / photo.name).write_bytes(photo.read_bytes())
    Image.open(photo).resize((40, 40)).save(folder / "thumb.png")
    for name, extra in (("counts.csv", ()), ("archive.csv", ("--engine", "plain", "--quiet"))):
        table = tmp_path / name
        args = ("--checkpoint", untrained, folder, "--threshold", "0.1", "--scale", "0.5")
        code, _, err = _run(capsys, "count", *args, "--out", table, *extra)
        assert code == 1 and "1 of 2 images" in err, name
        rows = {Path(r["file"]).name: r for r in csv.DictReader(io.StringIO(table.read_text()))}
        assert str(rows[photo.name]["count"]).isdigit(), name
        assert "thumbnail" in rows["thumb.png"]["error"] and rows["thumb.png"]["count"] == ""
    _expect_error(capsys, "count", "--checkpoint", untrained, voc, "--scale", "-1")


def _counts(result: tuple[int, str, str]) -> list[int]:
    code, out, err = result
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and all(row["error"] == "" for row in rows), out
    return [int(row["count"]) for row in rows]


def test_tta_flag_on_evaluate_count_and_export(voc, tmp_path, capsys) -> None:
    """``--tta``: a .pt counts with flips, ``export --tta`` bakes them into the .onnx, and an
    .onnx exported without them is refused with the command that fixes it."""
    import torch

    from utils.export import read_onnx_config

    model = tmp_path / "cn.pt"
    torch.manual_seed(0)
    detector = build_model("centernet_resnet18", 1, SIZE, pretrained=False)
    save_checkpoint(model, detector, InferenceConfig("centernet_resnet18", ("Microalgae",), SIZE))
    code, out, err = _run(capsys, "evaluate", "--checkpoint", model, "--data", voc, "--tta")
    assert code == 0, err
    plain = _counts(_run(capsys, "count", "--checkpoint", model, voc, "--threshold", "0.05"))
    flipped = _counts(
        _run(capsys, "count", "--checkpoint", model, voc, "--threshold", "0.05", "--tta")
    )
    # four views of an untrained network peak elsewhere than one (here 45-48 against 62-70)
    assert max(abs(a - b) for a, b in zip(plain, flipped)) >= 5, (plain, flipped)

    onnx_plain, onnx_flipped = tmp_path / "plain.onnx", tmp_path / "flipped.onnx"
    assert _run(capsys, "export", "--checkpoint", model, "--out", onnx_plain)[0] == 0
    assert _run(capsys, "export", "--checkpoint", model, "--out", onnx_flipped, "--tta")[0] == 0
    assert read_onnx_config(onnx_flipped).flip_tta and not read_onnx_config(onnx_plain).flip_tta
    # ONNX Runtime named: the flips are tested here, not the runtime choice (bf16 may serve)
    count_onnx = ("count", "--checkpoint", onnx_flipped, voc, "--threshold", "0.05", "--tta")
    from_onnx = _counts(_run(capsys, *count_onnx, "--runtime", "onnxruntime"))
    # the same flips in the graph: equal counts, but for a score within rounding of 0.05
    assert max(abs(a - b) for a, b in zip(from_onnx, flipped)) <= 1, (from_onnx, flipped)
    _expect_error(capsys, "count", "--checkpoint", onnx_plain, voc, "--tta", words=["export --tta"])
