"""A centre-heatmap cell detector (CenterNet / TTFNet style): every cell is a peak.

Why not only FCOS: FCOS calls a location positive only if it lies inside the box *and*
within 1.5 strides of its centre, so a thin diagonal needle at stride 8 gets one positive
location or none, and the box head learns from almost nothing. Here the network predicts, at
stride 2 (the default) or 4, a heatmap with a Gaussian bump on every cell centre (TTFNet's
elliptical Gaussian, shaped like the box) and, at every location near a centre, the distances
to the box's four sides. Every cell, however thin, gets a dense, smooth target, which from
random weights converges several times faster on this data (see ``docs/model_choice.md``).

Why stride 2: at stride 4, two touching cells whose centres fall in the same point (or in
neighbouring ones) got a single peak, and most of the cells the counter missed were such
pairs. The features stay at stride 4 (no extra cost in the trunk); each point's last 1x1
layers predict its 2x2 sub-locations, rearranged by a pixel shuffle. On the course's photos
this took the full plan's mAP@.5 from 0.968 to 0.980 (``docs/model_choice.md``).

Counting is finding the peaks: a location counts when it is the maximum of its 3x3
neighbourhood (a max-pool, inside the exported graph) and scores above the threshold. The
graph keeps the course's interface - ``boxes [N, A, 4]`` and ``scores [N, A, C]`` with
non-peaks scored 0 - so the shared NumPy post-processing (threshold, NMS as a safety net for
flat-topped peaks, rescale) and the browser port run it unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import generalized_box_iou_loss
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork

from .processing import IMAGENET_MEAN, IMAGENET_STD, letterbox

STRIDE = 4  # the features' stride: the FPN output, and the heatmap of centernet_resnet18
# Test-time flips (raw_flipped): the dims flipped, and the order that puts the flipped view's
# distances (left, top, right, bottom) back on the photo's sides.
FLIPS = (((3,), [2, 1, 0, 3]), ((2,), [0, 3, 2, 1]), ((2, 3), [2, 3, 0, 1]))
GAUSSIAN_ALPHA = 0.54  # TTFNet: sigma = alpha * side / 6, so the bump covers ~half the box
# The full plan's wider bump (TrainingPlan.gaussian_alpha): better boxes when there are steps to
# learn them (BCCD test mAP +0.008 to +0.016 on three seeds; docs/real_data.md), but worse counts
# on the fast plan's 210 steps (docs/model_choice.md).
WIDE_GAUSSIAN_ALPHA = 0.8
BOX_LOSS_WEIGHT = 5.0  # TTFNet weighs its GIoU box loss 5x the heatmap loss
MAX_LOG_DISTANCE = 5.0  # exp(5) * stride: 594 px (297 at stride 2) per side; exp stays finite


def _head(channels: int, out: int, bias: float) -> nn.Sequential:
    """3x3 conv + ReLU + 1x1 conv, the CenterNet head; ``bias`` sets the first prediction."""
    head = nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, out, 1),
    )
    nn.init.constant_(head[-1].bias, bias)
    nn.init.normal_(head[-1].weight, std=0.01)
    return head


class CenterNet(nn.Module):
    """ResNet-18 (to layer2) + FPN merged down to stride 4 + heatmap and box heads at ``stride``.

    Only ``layer1`` and ``layer2`` (strides 4 and 8) are kept by default: their receptive field
    (~100 px) already spans the largest cell at 512 px, and dropping ``layer3`` made a training
    step ~27 % cheaper with no loss of accuracy on this data (``docs/model_choice.md``).

    ``forward(images, targets)`` in training returns the losses, like torchvision's detectors
    (``images``: list of ``[3, H, W]`` tensors in 0..1, all the same size; ``targets``: dicts
    with ``boxes`` XYXY and ``labels`` 1..C). ``decode(batch)`` takes a normalised batch and
    returns boxes and peak scores for every location, which is what gets exported.
    """

    def __init__(
        self,
        num_classes: int,
        weights=None,
        channels: int = 64,
        trunk_layers: int = 2,
        stride: int = STRIDE,
    ):
        super().__init__()
        if stride not in (2, 4):
            raise ValueError(f"CenterNet's heatmap stride must be 2 or 4, got {stride}")
        self.num_classes = num_classes
        self.stride = stride
        # stride 2: the stride-4 features predict 2x2 sub-locations each (pixel shuffle), so
        # touching cells whose centres share a stride-4 point get a peak each.
        self.shuffle = STRIDE // stride
        self.gaussian_alpha = GAUSSIAN_ALPHA  # the training targets' width; fit sets the plan's
        trunk = resnet18(weights=weights, norm_layer=nn.BatchNorm2d)
        layers = {f"layer{i + 1}": str(i) for i in range(trunk_layers)}
        self.body = IntermediateLayerGetter(trunk, return_layers=layers)
        self.fpn = FeaturePyramidNetwork([64, 128, 256, 512][:trunk_layers], channels)
        outputs = self.shuffle**2
        self.heatmap = _head(channels, num_classes * outputs, bias=-math.log((1 - 0.05) / 0.05))
        # exp(bias) * stride = 8 px from the centre to each side: a typical small cell.
        self.box = _head(channels, 4 * outputs, bias=math.log(8 / stride))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ network

    def raw(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised batch -> heatmap logits ``[N, C, H, W]`` and distances ``[N, 4, H, W]``."""
        features = self.fpn(self.body(batch))["0"]
        logits, log_distances = self.heatmap(features), self.box(features)
        if self.shuffle > 1:
            logits = F.pixel_shuffle(logits, self.shuffle)
            log_distances = F.pixel_shuffle(log_distances, self.shuffle)
        distances = torch.exp(log_distances.clamp(max=MAX_LOG_DISTANCE)) * self.stride
        return logits, distances

    def raw_flipped(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`raw` averaged over the photo and its three flips (test-time augmentation).

        Why: a cell seen mirrored is still a cell, and four looks at it give a steadier peak and
        box than one (on BCCD +0.011 mAP, +0.016 mAP@.5; ``docs/real_data.md``) for four times
        the network's time. Each flipped view is flipped back, with the distances to the left
        and right (top and bottom) sides swapped, before the average; a stride-4 (or stride-2)
        grid maps onto itself under a flip because the input side is a multiple of 4.
        """
        logits, distances = self.raw(batch)
        for dims, sides in FLIPS:
            flipped_logits, flipped_distances = self.raw(batch.flip(dims))
            logits = logits + flipped_logits.flip(dims)
            distances = distances + flipped_distances.flip(dims)[:, sides]
        return logits / (len(FLIPS) + 1), distances / (len(FLIPS) + 1)

    def decode(
        self, batch: torch.Tensor, centres: torch.Tensor | None = None, flips: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised batch -> ``boxes [N, H*W, 4]`` (input pixels), ``scores [N, H*W, C]``.

        Scores are the heatmap where it is a 3x3 local maximum and 0 elsewhere, so a
        threshold alone counts the peaks. ``centres`` (``[H*W, 2]``) can be passed in as a
        constant for export; otherwise it is computed from the feature size. ``flips``: average
        the photo with its flips first (:meth:`raw_flipped`).
        """
        logits, distances = self.raw_flipped(batch) if flips else self.raw(batch)
        heat = torch.sigmoid(logits)
        peaks = torch.where(F.max_pool2d(heat, 3, stride=1, padding=1) == heat, heat, 0.0)
        n, c, h, w = heat.shape
        if centres is None:
            centres = location_centres(h, w, heat.device, self.stride)
        d = distances.flatten(2).transpose(1, 2)  # [N, H*W, 4]: left, top, right, bottom
        boxes = torch.cat([centres - d[..., :2], centres + d[..., 2:]], dim=-1)
        return boxes, peaks.flatten(2).transpose(1, 2)

    # ------------------------------------------------------------------ training

    def forward(self, images, targets=None):
        batch = ((torch.stack(list(images)) - self.mean) / self.std).contiguous(
            memory_format=torch.channels_last
        )
        if not self.training:
            return self.decode(batch)
        if targets is None:
            raise ValueError("CenterNet in training mode needs targets")
        logits, distances = self.raw(batch)
        heat_t, box_t, weight_t = build_targets(
            targets,
            self.num_classes,
            logits.shape[-2:],
            logits.device,
            self.gaussian_alpha,
            self.stride,
        )
        return {
            "heatmap": focal_loss(logits, heat_t),
            "box_giou": BOX_LOSS_WEIGHT * box_loss(distances, box_t, weight_t, self.stride),
        }


def location_centres(height: int, width: int, device=None, stride: int = STRIDE) -> torch.Tensor:
    """Input-pixel centre of every heatmap location, row-major: ``[H*W, 2]`` (x, y)."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)


@torch.no_grad()
def build_targets(
    targets, num_classes: int, size, device, alpha: float = GAUSSIAN_ALPHA, stride: int = STRIDE
):
    """Heatmap (max of the cells' Gaussians), box per location, and regression weights.

    Each cell's Gaussian peaks at exactly 1 on the location that holds its centre, with
    sigmas of ``alpha * side / 6`` (TTFNet). A location near several cells regresses the box
    of the one whose Gaussian is highest there; its weight is that Gaussian value, scaled so
    each cell weighs ``log(area)`` in total (larger cells get a little more say, as in TTFNet).
    """
    h, w = int(size[0]), int(size[1])
    ys = torch.arange(h, device=device, dtype=torch.float32)
    xs = torch.arange(w, device=device, dtype=torch.float32)
    heats, boxes, weights = [], [], []
    for target in targets:
        gt = target["boxes"].to(device).float().reshape(-1, 4)
        labels = target["labels"].to(device).long().reshape(-1) - 1
        heat = torch.zeros(num_classes, h, w, device=device)
        box = torch.zeros(h, w, 4, device=device)
        weight = torch.zeros(h, w, device=device)
        if len(gt):
            bw = (gt[:, 2] - gt[:, 0]).clamp(min=1.0) / stride
            bh = (gt[:, 3] - gt[:, 1]).clamp(min=1.0) / stride
            cx = ((gt[:, 0] + gt[:, 2]) / 2 / stride).floor().clamp(0, w - 1)
            cy = ((gt[:, 1] + gt[:, 3]) / 2 / stride).floor().clamp(0, h - 1)
            sx = (alpha * bw / 6).clamp(min=0.3)
            sy = (alpha * bh / 6).clamp(min=0.3)
            gx = torch.exp(-((xs[None, :] - cx[:, None]) ** 2) / (2 * sx[:, None] ** 2))
            gy = torch.exp(-((ys[None, :] - cy[:, None]) ** 2) / (2 * sy[:, None] ** 2))
            gauss = gy[:, :, None] * gx[:, None, :]  # [K, H, W]
            for k in range(num_classes):
                mine = labels == k
                if mine.any():
                    heat[k] = gauss[mine].amax(0)
            best, owner = gauss.max(0)
            near = best > 0.01
            area = (bw * bh * stride * stride).clamp(min=2.0)
            share = torch.zeros(len(gt), device=device).index_add_(0, owner[near], best[near])
            norm = torch.log(area) / share.clamp(min=1e-6)
            weight[near] = best[near] * norm[owner[near]]
            box = gt[owner]  # [H, W, 4]
        heats.append(heat)
        boxes.append(box)
        weights.append(weight)
    return torch.stack(heats), torch.stack(boxes), torch.stack(weights)


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of cells."""
    pred = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg_weight = (1 - target) ** 4
    pos_loss = torch.log(pred) * (1 - pred) ** 2 * pos
    neg_loss = torch.log(1 - pred) * pred**2 * neg_weight * (1 - pos)
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def box_loss(
    distances: torch.Tensor, target_boxes: torch.Tensor, weight: torch.Tensor, stride: int = STRIDE
):
    """Weighted GIoU between each location's predicted box and the box it is assigned."""
    n, _, h, w = distances.shape
    mask = weight > 0
    if not mask.any():
        return distances.sum() * 0.0
    centres = location_centres(h, w, distances.device, stride).view(1, h, w, 2).expand(n, h, w, 2)
    d = distances.float().permute(0, 2, 3, 1)
    pred = torch.cat([centres - d[..., :2], centres + d[..., 2:]], dim=-1)
    loss = generalized_box_iou_loss(pred[mask], target_boxes[mask], reduction="none")
    return (loss * weight[mask]).sum() / weight[mask].sum().clamp(min=1e-6)


@torch.no_grad()
def heatmaps(detector: CenterNet, image, boxes, image_size: int):
    """(letterboxed image, target heatmap, predicted heatmap) for one photo, as NumPy arrays.

    What notebook 02 draws to show what the network is asked to predict: one Gaussian bump
    per labelled cell (``boxes`` in the photo's pixels), and what it predicts after training.
    """
    import numpy as np


    boxed, scale = letterbox(image, image_size)
    pixels = torch.from_numpy(np.asarray(boxed, np.float32) / 255.0).permute(2, 0, 1)
    scaled = torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4) * scale)
    side = image_size // detector.stride
    target, _, _ = build_targets(
        [{"boxes": scaled, "labels": torch.ones(len(scaled), dtype=torch.int64)}],
        detector.num_classes,
        (side, side),
        "cpu",
        detector.gaussian_alpha,
    )
    was_training = detector.training
    detector.eval()
    device = next(detector.parameters()).device
    batch = ((pixels[None].to(device) - detector.mean) / detector.std).float()
    predicted = torch.sigmoid(detector.raw(batch)[0]).cpu()
    detector.train(was_training)
    return np.asarray(boxed), target[0].max(0).values.numpy(), predicted[0].max(0).values.numpy()
