"""Detectors by name, and the exportable core that every runtime runs.

The default, ``centernet_resnet18_s2``, finds each cell as a peak in a stride-2 heatmap
(CenterNet / TTFNet style, see ``centernet.py``): on 17 images of thin, dense cells it
learns to count several times faster from random weights than a box detector does
(``docs/model_choice.md`` has the measured comparison). ``centernet_resnet18`` is the same
counter with its heatmap at stride 4, the default until 2026-12-07: touching cells whose
centres share a stride-4 point got one peak between them (older checkpoints load as they
were). ``fcos_resnet18`` is torchvision's FCOS (anchor-free, one stage: the parent of the
talk's VFNet) on a ResNet-18 FPN at strides 8 and 16, and ``retinanet_resnet18`` the same
backbone with RetinaNet's anchor-based head; both stay for comparison.

ImageNet-pretrained backbone weights are used when they can be downloaded (Colab);
otherwise the backbone starts from random weights with one printed sentence. The heatmap
counter can also start from the generated-scene weights the package ships
(``pretrained="scenes"``, ``utils.warmstart.SCENES_START``; measured in docs/real_data.md).
"""

from __future__ import annotations

import contextlib
import io
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18
from torchvision.models.detection import FCOS, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.image_list import ImageList
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock

from .config import display_path
from .processing import IMAGENET_MEAN, IMAGENET_STD

DEFAULT_MODEL = "centernet_resnet18_s2"
# The heatmap counters by name, and their heatmap's stride in input pixels.
HEATMAP_STRIDES = {"centernet_resnet18_s2": 2, "centernet_resnet18": 4}
# auto / True / False: ImageNet weights; "scenes" or a path: a course start's trunk (warmstart)
Pretrained = bool | str | Path


class NoExtraLevels(ExtraFPNBlock):
    """Keep the FPN at the returned levels (torchvision adds a stride-32 pool level by default)."""

    def forward(self, results, x, names):  # type: ignore[override]
        return results, names


def resnet18_fpn(pretrained: Pretrained = "auto", channels: int = 128) -> BackboneWithFPN:
    """ResNet-18 + a 128-channel FPN on layer2/layer3 (strides 8 and 16).

    BatchNorm stays trainable: torchvision's helpers default to FrozenBatchNorm, which
    would freeze random statistics when training from scratch. layer4 is never built into
    the graph, which keeps the model at about 4 M parameters.
    """
    weights = _pretrained_weights(pretrained)
    body = resnet18(weights=weights, norm_layer=nn.BatchNorm2d)
    backbone = BackboneWithFPN(
        body,
        return_layers={"layer2": "0", "layer3": "1"},
        in_channels_list=[128, 256],
        out_channels=channels,
        extra_blocks=NoExtraLevels(),
    )
    backbone.start = _start_name(weights)
    return backbone


def _pretrained_weights(pretrained: Pretrained) -> ResNet18_Weights | None:
    """ImageNet weights if asked for and reachable, else None with a one-line message."""
    if pretrained is False:
        return None
    if isinstance(pretrained, Path) or pretrained not in ("auto", True):
        raise ValueError(  # a checkpoint path: only the heatmap counter copies one (warmstart)
            f"pretrained={str(pretrained)!r}: starting from a checkpoint file works for "
            f"the heatmap counters only ({', '.join(HEATMAP_STRIDES)}); use auto, True or False "
            "for this model"
        )
    weights = ResNet18_Weights.IMAGENET1K_V1
    try:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(5)
        try:
            # torch.hub prints 'Downloading: <url> to <this machine's cache path>': keep it quiet.
            with contextlib.redirect_stdout(io.StringIO()):
                weights.get_state_dict(progress=False, check_hash=True)
        finally:
            socket.setdefaulttimeout(previous)
        return weights
    except Exception as error:  # no network, blocked host, broken cache
        if pretrained is True:
            raise RuntimeError(f"could not download ImageNet weights: {error}") from error
        print(
            "ImageNet weights could not be downloaded (offline?): "
            "the backbone starts from random weights, which works but needs more epochs."
        )
        return None


def _common(image_size: int) -> dict:
    """Settings both detectors share: fixed square input, ImageNet normalisation, up to 300 cells."""
    return dict(
        min_size=image_size,
        max_size=image_size,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        score_thresh=0.05,
        nms_thresh=0.6,
        detections_per_img=300,
        topk_candidates=1000,
    )


def _fcos(num_classes: int, image_size: int, pretrained: Pretrained) -> nn.Module:
    anchors = AnchorGenerator(sizes=((8,), (16,)), aspect_ratios=((1.0,),) * 2)
    backbone = resnet18_fpn(pretrained)
    detector = FCOS(backbone, num_classes, anchor_generator=anchors, **_common(image_size))
    detector.start = backbone.start
    # torchvision starts the ReLU box distances near 0: zero-size boxes whose GIoU gradient
    # vanishes. On thin cells (smaller than one anchor size) the outputs then drift below zero
    # and stay "dead" (GIoU loss stuck at 1.0, mAP 0). A bias of one anchor size gives every
    # location a real box, and a gradient, from the first step.
    nn.init.constant_(detector.head.regression_head.bbox_reg.bias, 1.0)
    return detector


def _retinanet(num_classes: int, image_size: int, pretrained: Pretrained) -> nn.Module:
    sizes = tuple((s, int(s * 1.26), int(s * 1.59)) for s in (16, 32))
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * 2)
    backbone = resnet18_fpn(pretrained)
    detector = RetinaNet(backbone, num_classes, anchor_generator=anchors, **_common(image_size))
    detector.start = backbone.start
    return detector


def is_heatmap_model(name: str) -> bool:
    """True for the heatmap counters (random crops, working scale, warm starts, flips)."""
    return name in HEATMAP_STRIDES


def _centernet(
    num_classes: int, image_size: int, pretrained: Pretrained, stride: int = 4
) -> nn.Module:
    from .centernet import CenterNet
    from .warmstart import SCENES_START, copy_pretrained, is_checkpoint_start

    shipped = pretrained == "scenes"
    if shipped:
        pretrained = SCENES_START
    if is_checkpoint_start(pretrained):
        # no ImageNet download: the file gives the trunk
        model = CenterNet(num_classes - 1, stride=stride)
        copy_pretrained(model, pretrained)  # type: ignore[arg-type]
        source = "the course's generated-scene weights" if shipped else display_path(pretrained)
        model.start = f"{source} (trunk, FPN and box head copied)"
        return model
    weights = _pretrained_weights(pretrained)
    model = CenterNet(num_classes - 1, weights=weights, stride=stride)
    model.start = _start_name(weights)
    return model


def _start_name(weights: ResNet18_Weights | None) -> str:
    """What a model's weights started from, in words: the model card's "from" line."""
    return "ImageNet weights (ResNet-18 trunk)" if weights is not None else "random weights"


MODELS: dict[str, Callable[[int, int, Pretrained], nn.Module]] = {
    **{name: partial(_centernet, stride=stride) for name, stride in HEATMAP_STRIDES.items()},
    "fcos_resnet18": _fcos,
    "retinanet_resnet18": _retinanet,
}


def build_model(
    name: str = DEFAULT_MODEL,
    num_classes: int = 1,
    image_size: int = 512,
    pretrained: Pretrained = "auto",
) -> nn.Module:
    """A torchvision detector by name; ``num_classes`` excludes the background.

    Training targets use labels 1..num_classes (0 is torchvision's background slot).
    ``pretrained``: "auto" / True / False for ImageNet weights, or the path of a course
    checkpoint whose trunk, FPN and box head start the heatmap counter (``utils.warmstart``).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
    return MODELS[name](num_classes + 1, image_size, pretrained)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class DetectorCore(nn.Module):
    """Network + box decoding at a fixed input size: what gets exported and what every runtime runs.

    ``flips``: the heatmap counter averages the photo with its flips (``InferenceConfig.flip_tta``),
    inside the graph, so every runtime and the browser run the same test-time augmentation.

    Input: a normalised ``[N, 3, S, S]`` batch (see ``processing.preprocess``). Output:
    ``boxes [N, A, 4]`` in input pixels and ``scores [N, A, C]`` per class (background
    dropped). Thresholds, NMS and rescaling happen in ``processing.postprocess``.
    """

    def __init__(self, detector: nn.Module, image_size: int, flips: bool = False):
        super().__init__()
        from .centernet import CenterNet, location_centres

        self.image_size = image_size
        self.centernet = detector if isinstance(detector, CenterNet) else None
        if flips and self.centernet is None:
            raise ValueError(
                "flip test-time augmentation (flip_tta) is built for the heatmap counter "
                f"(centernet_resnet18), not {type(detector).__name__}; turn it off for this model"
            )
        self.flips = flips
        if self.centernet is not None:
            side, device = image_size // detector.stride, next(detector.parameters()).device
            centres = location_centres(side, side, device, detector.stride)
            self.register_buffer("anchors", centres, persistent=False)
            return
        self.backbone = detector.backbone
        self.head = detector.head
        self.box_coder = detector.box_coder
        self.is_fcos = isinstance(detector, FCOS)
        self.register_buffer("anchors", self._anchors(detector, image_size), persistent=False)

    @torch.no_grad()
    def _anchors(self, detector: nn.Module, size: int) -> torch.Tensor:
        was_training = detector.training
        detector.eval()
        # On the detector's device, so a model trained on a GPU can be wrapped as it is.
        dummy = torch.zeros(1, 3, size, size, device=next(detector.parameters()).device)
        features = list(detector.backbone(dummy).values())
        anchors = detector.anchor_generator(ImageList(dummy, [(size, size)]), features)[0]
        detector.train(was_training)
        return anchors

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.centernet is not None:  # peaks of the heatmap: see utils/centernet.py
            return self.centernet.decode(images, self.anchors, flips=self.flips)
        features = list(self.backbone(images).values())
        out = self.head(features)
        batch = images.shape[0]
        regression = out["bbox_regression"].reshape(-1, 4)
        anchors = self.anchors.repeat(batch, 1)
        if self.is_fcos:  # BoxLinearCoder: distances to the four sides, scaled by anchor size
            boxes = self.box_coder.decode(regression, anchors)
        else:  # BoxCoder: centre shift and log-scale of the anchor box
            boxes = self.box_coder.decode_single(regression, anchors)
        boxes = boxes.reshape(batch, -1, 4)
        probs = torch.sigmoid(out["cls_logits"])
        if self.is_fcos:
            probs = torch.sqrt(probs * torch.sigmoid(out["bbox_ctrness"]))
        return boxes, probs[:, :, 1:]
