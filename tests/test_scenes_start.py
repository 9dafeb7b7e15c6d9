"""The generated-scene start the package ships (``--pretrained scenes``): it fits the model.

The file's accuracy is a benchmark question (docs/real_data.md, BCCD); these tests check that
it is there, fits today's heatmap counter (a layer change without re-shipping fails here) and
is what ``pretrained="scenes"`` starts from (``auto`` offline stays random).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torchvision.models import ResNet18_Weights

from utils import cli
from utils.centernet import CenterNet
from utils.checkpoint import CheckpointError, save_checkpoint
from utils.hub.card import training_summary
from utils.model import DEFAULT_MODEL, build_model
from utils.processing import InferenceConfig
from utils.warmstart import COPIED, SCENES_START, START_FORMAT, write_start


def _shipped() -> dict[str, torch.Tensor]:
    return torch.load(SCENES_START, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture
def offline(monkeypatch):
    """ImageNet weights unreachable, whatever this machine's network or cache."""

    def refuse(*args, **kwargs):
        raise OSError("no network (test)")

    monkeypatch.setattr(ResNet18_Weights.IMAGENET1K_V1, "get_state_dict", refuse)


def test_the_shipped_start_is_small_and_fits_the_heatmap_counter() -> None:
    assert SCENES_START.stat().st_size < 2.5e6  # float16, copied tensors only
    payload = torch.load(SCENES_START, map_location="cpu", weights_only=True)
    assert payload["format"] == START_FORMAT and payload["model_name"] == "centernet_resnet18"
    wanted = {k: v for k, v in CenterNet(1).state_dict().items() if k.startswith(COPIED)}
    state = payload["state_dict"]
    assert set(state) == set(wanted)
    for key, value in state.items():
        assert value.shape == wanted[key].shape, key
        assert value.dtype == (torch.float16 if wanted[key].is_floating_point() else torch.int64)
    # trained, not random: BatchNorm statistics moved away from their 0/1 start
    means = [v for k, v in state.items() if k.endswith("running_mean")]
    assert max(float(v.abs().max()) for v in means) > 0.1


def _copied_equal(model: torch.nn.Module, source: dict[str, torch.Tensor]) -> bool:
    state = model.state_dict()
    return all(torch.equal(state[k], source[k].to(state[k].dtype)) for k in source)


def test_scenes_starts_the_counter_from_the_shipped_start(capsys) -> None:
    shipped = _shipped()
    model = build_model("centernet_resnet18", 2, 256, pretrained="scenes")
    printed = capsys.readouterr().out
    assert _copied_equal(model, shipped)
    assert printed.count("\n") == 1 and "scenes_start.pt: 72 tensors" in printed
    assert model.state_dict()["heatmap.2.weight"].shape[0] == 2  # its own classes, fresh
    assert "generated-scene" in model.start  # what training records for the model card
    assert not _copied_equal(build_model("centernet_resnet18", 1, 256, pretrained=False), shipped)


def test_the_stride_4_start_gives_the_stride_2_default_the_same_boxes(capsys) -> None:
    """The default heatmap is at stride 2; the shipped start was trained at stride 4. Its box
    head's last layer is laid out for the 2x2 sub-locations of each stride-4 point, so every
    sub-location starts with that point's distances. Tolerance 1e-4: two 1x1 convolutions of
    different widths may sum in another order on another CPU, and exp() scales that (1e-6 here);
    a wrong layout differs by whole pixels."""
    four = build_model("centernet_resnet18", 1, 128, pretrained="scenes").eval()
    two = build_model(DEFAULT_MODEL, 1, 128, pretrained="scenes").eval()
    assert two.stride == 2 and four.stride == 4
    shipped = _shipped()
    unchanged = {k: v for k, v in shipped.items() if not k.startswith("box.2.")}
    assert _copied_equal(two, unchanged) and _copied_equal(four, shipped)
    batch = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, d4 = four.raw(batch)
        _, d2 = two.raw(batch)
    assert d2.shape == (1, 4, 64, 64) and d4.shape == (1, 4, 32, 32)
    spread = d4.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.allclose(d2, spread, rtol=1e-4, atol=1e-4)


def test_auto_offline_starts_from_random_weights(offline, capsys) -> None:
    """The shipped start is an option, not the default: docs/real_data.md has why."""
    model = build_model("centernet_resnet18", 1, 256, pretrained="auto")
    printed = capsys.readouterr().out
    assert "random weights" in printed and model.start == "random weights"
    assert not _copied_equal(model, _shipped())


def test_auto_offline_keeps_random_weights_for_the_box_detectors(offline, capsys) -> None:
    build_model("fcos_resnet18", 1, 256, pretrained="auto")
    printed = capsys.readouterr().out
    assert "random weights" in printed and "generated-scene" not in printed
    assert build_model("fcos_resnet18", 1, 256, pretrained=False).start == "random weights"


def test_the_model_card_says_what_the_weights_started_from_and_how_wide_its_targets() -> None:
    start = "the course's generated-scene weights (utils/weights/scenes_start.pt)"
    recorded = SimpleNamespace(extra={"plan": {"start": start, "gaussian_alpha": 0.8}}, history=[])
    summary = training_summary(recorded)
    assert summary["from"] == start
    assert [v for k, v in summary.items() if k.startswith("heatmap target width")] == [0.8]
    older = SimpleNamespace(extra={"plan": {}}, history=[])  # a checkpoint from before 0.2.0
    assert "as available" in training_summary(older)["from"]


def test_cli_takes_scenes_as_a_start() -> None:
    args = cli.build_parser().parse_args(
        ["train", "--data", "d", "--out", "o", "--pretrained", "scenes"]
    )
    assert args.pretrained == "scenes"


def test_write_start_keeps_the_copied_tensors_in_half_precision(tmp_path) -> None:
    detector = build_model("centernet_resnet18", 3, 256, pretrained=False)
    config = InferenceConfig("centernet_resnet18", ("a", "b", "c"), 256)
    checkpoint = save_checkpoint(tmp_path / "m.pt", detector, config)
    out = write_start(checkpoint, tmp_path / "start.pt")
    state = torch.load(out, map_location="cpu", weights_only=True)["state_dict"]
    assert state and all(k.startswith(COPIED) for k in state)
    assert {v.dtype for v in state.values()} == {torch.float16, torch.int64}
    # and a new model starts from it like from the shipped one (values within float16)
    model = build_model("centernet_resnet18", 1, 256, pretrained=str(out))
    key = "body.conv1.weight"
    assert torch.allclose(model.state_dict()[key], detector.state_dict()[key], atol=1e-3)

    fcos = build_model("fcos_resnet18", 1, 256, pretrained=False)
    other = save_checkpoint(
        tmp_path / "f.pt", fcos, InferenceConfig("fcos_resnet18", ("a",), 256)
    )
    with pytest.raises(CheckpointError, match="f.pt holds fcos_resnet18"):
        write_start(other, tmp_path / "nope.pt")
