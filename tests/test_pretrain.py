"""``python -m utils pretrain`` and ``train --pretrained FILE.pt``: generated-scene weights as a start.

Tiny settings (2 photos, 1 epoch): plumbing and errors, not accuracy (docs/real_data.md has
the measured effect on BCCD).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

import utils.train.pretrain as pretrain_module
from utils import cli
from utils.annotations import AnnotatedImage, AnnotationSet, write_voc
from utils.centernet import CenterNet
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.model import DEFAULT_MODEL, build_model
from utils.processing import InferenceConfig
from utils.synth import generate_image
from utils.synth_classes import CLASS_NAMES
from utils.train.pretrain import pretrain
from utils.warmstart import COPIED

SIZE = 128


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """``python -m utils pretrain`` on 2 generated scenes for 1 epoch (1 validation photo, not
    8, to keep it near 15 s): a 3-class checkpoint."""
    out = tmp_path_factory.mktemp("pre") / "model.pt"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretrain_module, "pretrain", functools.partial(pretrain, val_photos=1))
        code = cli.main(
            ["pretrain", "--out", str(out), "--photos", "2", "--epochs", "1", "--quiet"]
        )
    assert code == 0
    return out


def test_pretrain_writes_a_checkpoint_that_loads(pretrained) -> None:
    loaded = load_checkpoint(pretrained)
    assert loaded.config.model_name == DEFAULT_MODEL == "centernet_resnet18_s2"
    assert tuple(loaded.config.class_names) == CLASS_NAMES
    assert loaded.metrics["epochs"] == 1
    scenes = pretrained.parent / "scenes"  # kept beside the checkpoint
    assert len(list((scenes / "train").glob("*.jpg"))) == 2
    assert len(list((scenes / "val").glob("*.jpg"))) == 1


def test_a_new_model_gets_body_fpn_box_but_not_the_heatmap_head(pretrained, capsys) -> None:
    source = torch.load(pretrained, map_location="cpu", weights_only=True)["state_dict"]
    model = build_model(DEFAULT_MODEL, 1, 256, pretrained=str(pretrained))  # 3 -> 1 class
    printed = capsys.readouterr().out
    state = model.state_dict()
    copied = [k for k in state if k.startswith(COPIED)]
    assert copied and len(copied) == len([k for k in source if k.startswith(COPIED)])
    for key in copied:
        assert torch.equal(state[key], source[key]), key
    assert f"{len(copied)} tensors" in printed and "model.pt" in printed
    assert printed.count("\n") == 1
    heat = [k for k in state if k.startswith("heatmap.")]
    # one class, fresh: one channel per stride-2 sub-location of each stride-4 point
    assert heat and model.num_classes == 1 and state[heat[-1]].shape[0] == 4
    same = [k for k in heat if state[k].shape == source[k].shape]
    assert same and not any(torch.equal(state[k], source[k]) for k in same if "weight" in k)
    # a Path works as well as a str
    again = build_model(DEFAULT_MODEL, 2, 256, pretrained=pretrained).state_dict()
    assert all(torch.equal(again[k], state[k]) for k in copied)


def _save(path: Path, detector, name: str) -> Path:
    save_checkpoint(path, detector, InferenceConfig(name, ("Microalgae",), 256))
    return path


def test_bad_files_give_errors_that_name_the_file(tmp_path) -> None:
    cases = {
        "gone.pt": ["gone.pt", "pretrain"],
        "notes.pt": ["notes.pt", "not a PyTorch checkpoint"],
        "fcos.pt": ["fcos.pt", "fcos_resnet18", "pretrain"],
        "narrow.pt": ["narrow.pt", "another architecture", "(32,", "pretrain"],
    }
    (tmp_path / "notes.pt").write_text("not weights")
    _save(
        tmp_path / "fcos.pt",
        build_model("fcos_resnet18", 1, 256, pretrained=False),
        "fcos_resnet18",
    )
    _save(tmp_path / "narrow.pt", CenterNet(1, channels=32), "centernet_resnet18")
    for name, words in cases.items():
        with pytest.raises(ValueError) as caught:
            build_model("centernet_resnet18", 1, 256, pretrained=str(tmp_path / name))
        for word in words:
            assert word in str(caught.value), (name, str(caught.value))


def test_only_the_heatmap_counter_starts_from_a_file(pretrained) -> None:
    with pytest.raises(ValueError, match="heatmap counters only"):
        build_model("fcos_resnet18", 1, 256, pretrained=str(pretrained))


def test_a_stride_2_start_cannot_start_a_stride_4_model(pretrained) -> None:
    """Which of a point's four sub-locations would the stride-4 box head take? Refused, saying
    which model the file can start."""
    with pytest.raises(ValueError) as caught:
        build_model("centernet_resnet18", 1, 256, pretrained=str(pretrained))
    message = str(caught.value)
    assert "model.pt" in message and "stride-2" in message
    assert "--model centernet_resnet18_s2" in message


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("voc")
    items = []
    for seed in (3, 4, 5):
        image, boxes, labels = generate_image(seed, SIZE)
        path = folder / f"photo_{seed}.jpg"
        image.save(path, quality=92)
        items.append(AnnotatedImage(path, SIZE, SIZE, boxes, labels))
    write_voc(AnnotationSet(("Microalgae",), items), folder, copy_images=False)
    return folder


def test_cli_train_starts_from_the_file(pretrained, voc, tmp_path, capsys) -> None:
    argv = ["--data", voc, "--epochs", "1", "--size", SIZE, "--val-fraction", "0.34", "--quiet"]
    code, out, err = _run(
        capsys, "train", *argv, "--out", tmp_path / "a", "--pretrained", pretrained
    )
    assert code == 0, err
    assert "Starting from" in out and "heatmap head starts fresh" in out
    assert load_checkpoint(tmp_path / "a" / "model.pt").config.class_names == ("Microalgae",)

    code, out, err = _run(
        capsys, "train", *argv, "--out", tmp_path / "b", "--pretrained", tmp_path / "gone.pt"
    )
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    assert "gone.pt" in err and "python -m utils pretrain" in err


def test_cli_parses_the_choices_and_a_path() -> None:
    parser = cli.build_parser()
    base = ["train", "--data", "d", "--out", "o"]
    assert parser.parse_args(base).pretrained == "auto"
    assert parser.parse_args([*base, "--pretrained", "x/model.pt"]).pretrained == "x/model.pt"
    args = parser.parse_args(["pretrain", "--out", "p/model.pt", "--photos", "4", "--quiet"])
    assert (args.photos, args.epochs, args.seed, args.quiet) == (4, 12, 0, True)


def test_cli_pretrain_refuses_bad_numbers(tmp_path, capsys) -> None:
    code, _, err = _run(capsys, "pretrain", "--out", tmp_path / "m.pt", "--photos", "0")
    assert code == 1 and "--photos" in err
