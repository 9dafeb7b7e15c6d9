"""``train --data ROOT`` / ``--val``: a data set's own validation split (``utils.cli_data``)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from tests.test_cli import SIZE, _tiny
from utils import cli
from utils.annotations import AnnotatedImage, AnnotationSet, write_coco, write_voc, write_yolo
from utils.annotations.splits import find_splits
from utils.cli_data import DataError, training_sets


def _photos(folder: Path, seeds, names=("Microalgae",)) -> AnnotationSet:
    """``test_cli``'s generated photos; boxes labelled in turn with ``names``."""
    items = [
        AnnotatedImage(
            i.image_path,
            i.width,
            i.height,
            i.boxes,
            [names[k % len(names)] for k in range(len(i.boxes))],
        )
        for i in _tiny(folder, seeds).images
    ]
    return AnnotationSet(tuple(names), items)


def _roboflow_yolo(root: Path, tmp: Path) -> Path:
    """train/ (3 photos), valid/ (2), test/ (1) and a data.yaml, as Roboflow's YOLO export."""
    for split, seeds in (("train", (3, 4, 5)), ("valid", (6, 7)), ("test", (8,))):
        write_yolo(_photos(tmp / split, seeds), root / split)
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n"
        "nc: 1\nnames: ['Microalgae']\n"
    )
    return root


def _args(data, val=None, val_fraction=None, seed=0) -> argparse.Namespace:
    return argparse.Namespace(
        data=str(data), val=val and str(val), val_fraction=val_fraction, seed=seed
    )


@pytest.fixture(scope="module")
def roboflow(tmp_path_factory) -> Path:
    return _roboflow_yolo(tmp_path_factory.mktemp("roboflow"), tmp_path_factory.mktemp("photos"))


def test_a_data_set_root_trains_on_train_and_validates_on_valid(roboflow, capsys) -> None:
    for data in (roboflow, roboflow / "data.yaml"):
        train, val, about = training_sets(_args(data))
        assert sorted(i.name for i in train.images) == ["photo_3.jpg", "photo_4.jpg", "photo_5.jpg"]
        assert sorted(i.name for i in val.images) == ["photo_6.jpg", "photo_7.jpg"]
        assert about.startswith("3 images") and "validation: 2 images" in about
        said = capsys.readouterr().out
        assert "training on" in said and "train" in said and "validating on" in said
        assert "test is left for evaluate" in said


def test_the_root_with_a_fraction_holds_back_from_train_instead(roboflow, capsys) -> None:
    train, val, _ = training_sets(_args(roboflow, val_fraction=0.34))
    assert len(train) == 2 and len(val) == 1  # from train/'s 3 photos; valid/ is not read
    assert {i.name for i in [*train.images, *val.images]} == {f"photo_{s}.jpg" for s in (3, 4, 5)}
    assert "held back by --val-fraction" in capsys.readouterr().out


def test_ultralytics_and_coco_roots(tmp_path) -> None:
    """images/train + labels/train (Ultralytics) and train/_annotations.coco.json (Roboflow)."""
    written = _roboflow_yolo(tmp_path / "roboflow", tmp_path / "photos")
    ultra = tmp_path / "ultralytics"
    for split, name in (("train", "train"), ("valid", "val")):
        shutil.copytree(written / split / "images", ultra / "images" / name)
        shutil.copytree(written / split / "labels", ultra / "labels" / name)
    (ultra / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames: [Microalgae]\n"
    )
    found = find_splits(ultra / "data.yaml")
    assert found is not None and found.train == ultra / "images" / "train"
    assert found.val == ultra / "images" / "val" and found.test is None

    other = tmp_path / "coco_style"  # names a data.yaml lists, not ``train``/``val``
    for split, name in (("train", "train2017"), ("valid", "val2017")):
        shutil.copytree(written / split / "images", other / "images" / name)
        shutil.copytree(written / split / "labels", other / "labels" / name)
    (other / "data.yaml").write_text(
        f"path: {other}\ntrain: images/train2017\nval: images/val2017\nnames: [Microalgae]\n"
    )
    found = find_splits(other)
    assert found is not None and found.train == other / "images" / "train2017"
    assert found.val == other / "images" / "val2017"
    roboflow = find_splits(written / "data.yaml")  # ``../train/images``: the split beside it
    assert roboflow is not None and roboflow.train == written / "train"

    coco = tmp_path / "coco"
    for split, seeds in (("train", (3, 4)), ("valid", (5,))):
        aset = _photos(coco / split, seeds)
        write_coco(aset, coco / split / "_annotations.coco.json")
    found = find_splits(coco)
    assert found is not None and (found.train, found.val) == (coco / "train", coco / "valid")
    train, val, _ = training_sets(_args(coco))
    assert (len(train), len(val)) == (2, 1)


def test_what_is_not_a_root(roboflow, tmp_path, capsys) -> None:
    assert find_splits(roboflow / "train") is None  # one split: loaded as it is
    voc = tmp_path / "voc"
    write_voc(_photos(voc, (3, 4)), voc, copy_images=False)
    assert find_splits(voc) is None
    only = tmp_path / "trainval_only"  # Pascal VOC's trainval + test: a fifth held back
    write_voc(_photos(only / "trainval", (3, 4, 5, 6, 7)), only / "trainval", copy_images=False)
    found = find_splits(only)
    assert found is not None and found.train == only / "trainval" and found.val is None
    train, val, _ = training_sets(_args(only))
    assert (len(train), len(val)) == (4, 1)
    assert "held back from it (no validation split found)" in capsys.readouterr().out


def test_val_folder_in_the_models_class_order_and_its_errors(tmp_path) -> None:
    """--val: its own folder, scored in the training classes' order; clear errors."""
    train_dir, val_dir = tmp_path / "train", tmp_path / "val"
    write_voc(_photos(train_dir, (3, 4), ("Diatom", "Microalgae")), train_dir, copy_images=False)
    write_voc(_photos(val_dir, (5,), ("Microalgae",)), val_dir, copy_images=False)
    train, val, _ = training_sets(_args(train_dir, val=val_dir))
    assert train.class_names == val.class_names == ("Diatom", "Microalgae")
    assert len(train) == 2 and len(val) == 1  # every --data photo trains
    with pytest.raises(DataError, match="--val and --val-fraction"):
        training_sets(_args(train_dir, val=val_dir, val_fraction=0.2))
    odd = tmp_path / "odd"
    write_voc(_photos(odd, (6,), ("Rotifer",)), odd, copy_images=False)
    with pytest.raises(DataError, match=r"odd: classes \['Rotifer'\] are not among"):
        training_sets(_args(train_dir, val=odd))


def test_train_command_on_a_roots_splits(roboflow, tmp_path, capsys) -> None:
    """The whole command: 3 training photos, the 2 of valid/ validated and swept."""
    argv = ["train", "--data", roboflow, "--out", tmp_path / "run", "--epochs", "1"]
    code = cli.main([str(a) for a in [*argv, "--size", SIZE, "--pretrained", "no", "--quiet"]])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Training on 3 images, validating on 2" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_images"] == 3 and metrics["val_images"] == 2
    assert metrics["threshold_photos"]["validation"] == 2
    code = cli.main([str(a) for a in [*argv, "--val-fraction", "0.5", "--val", roboflow / "valid"]])
    assert code == 1 and "--val and --val-fraction" in capsys.readouterr().err

    # evaluate on the root: its test split (1 photo), said on stderr; stdout starts with JSON
    model = tmp_path / "run" / "model.pt"
    code = cli.main(["evaluate", "--checkpoint", str(model), "--data", str(roboflow)])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out.splitlines()[0])["images"] == 1
    assert "evaluating on its test split" in err
    no_test = tmp_path / "no_test"
    shutil.copytree(roboflow / "train", no_test / "train")
    shutil.copytree(roboflow / "valid", no_test / "valid")
    code = cli.main(["evaluate", "--checkpoint", str(model), "--data", str(no_test)])
    err = capsys.readouterr().err
    assert code == 1 and "without a test split" in err and "valid" in err


def test_a_zip_is_unpacked_beside_it_once(roboflow, tmp_path, capsys) -> None:
    """Roboflow's download as it comes: the .zip of the root; a damaged one is refused."""
    zipped = Path(shutil.make_archive(str(tmp_path / "export"), "zip", roboflow))
    train, val, _ = training_sets(_args(zipped))
    assert (len(train), len(val)) == (3, 2)
    assert "unpacked into" in capsys.readouterr().out
    assert (tmp_path / "export" / "valid" / "data.yaml").is_file()
    training_sets(_args(zipped))  # the second time: the folder, not a second unpacking
    assert "unpacked before" in capsys.readouterr().out
    cut = tmp_path / "cut.zip"
    cut.write_bytes(zipped.read_bytes()[: zipped.stat().st_size // 2])  # a download cut short
    with pytest.raises(DataError, match=r"cut\.zip is not a readable \.zip"):
        training_sets(_args(cut))
    assert not (tmp_path / "cut").exists()
