"""A torch Dataset over an :class:`~utils.annotations.AnnotationSet`, with box-aware augmentation.

Every image is first resized the way inference resizes it, so training and serving see
identical pixels: to the **working scale** (``scale``, chosen by :func:`working_scale` from the
training boxes so that the median cell is ``TARGET_CELL_PX`` wide whatever the photo's
resolution), or, without a scale, letterboxed whole into ``image_size`` as older models were.
At the working scale a 2,800 px photo is not shrunk to the input size: training draws random
crops of it at that scale, as inference cuts it into tiles (square crops, no larger than
most photos at that scale: :func:`fitted_crop_size`). Training then adds
torchvision ``transforms.v2`` augmentations that move the boxes with the pixels:

- horizontal and vertical flips and random 90-degree turns: a microscope slide has no "up";
  arbitrary angles are left out because the box of a turned box is no longer tight;
- a mild zoom (0.8-1.25x) and shift, so cell sizes stay in the range the camera produces;
- colour jitter and an occasional slight blur (focus and white balance vary between photos);
- ``SanitizeBoundingBoxes`` drops boxes pushed out of the frame.

With 17 images, decoded resized images are cached in memory. Augmentation draws from
torch's global RNG, so ``torch.manual_seed`` makes a run repeatable (``num_workers=0``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from .annotations import AnnotatedImage, AnnotationError, AnnotationSet
from .processing import InferenceConfig, letterbox, plan_tiles, working_image

Target = dict[str, torch.Tensor]

# The median cell side sqrt(w h), in working pixels, that the heatmap counter is
# trained at. 22.5 px is what the course's 640 px photos (median cell 28 px) become at a
# 512 px input, the setting measured best in docs/model_choice.md (512 px beat 384 px:
# count error 2.1 % against 3.7 %): so 640 px photos train exactly as before, and a 2,800 px
# photo of the same field is brought to the same cell size instead of being shrunk whole.
TARGET_CELL_PX = 22.5


def cell_sides(aset: AnnotationSet) -> np.ndarray:
    """Every box's side ``sqrt(w h)`` in photo pixels (the size of a cell, whatever its angle)."""
    sides = [
        np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None))
        for b in (img.boxes.reshape(-1, 4) for img in aset.images)
    ]
    return np.concatenate(sides) if sides else np.zeros((0,), np.float32)


# Several classes of different sizes (BCCD: platelets 39 px, red cells 102 px, white cells
# 190 px): the median of all boxes is the commonest class's, and at 22.5 px for it the small
# class shrinks to a few heatmap points. So the scale is raised until the smallest class's
# median reaches ``MIN_CLASS_PX``, as long as the largest class's median stays within
# ``MAX_CLASS_PX`` (the ~100 px receptive field of the network's stride-8 layer).
MIN_CLASS_PX = 16.0
MAX_CLASS_PX = 96.0


def class_median_sides(aset: AnnotationSet) -> dict[str, float]:
    """Each class's median box side ``sqrt(w h)`` in photo pixels (classes with boxes only)."""
    sides: dict[str, list[float]] = {}
    for img in aset.images:
        b = img.boxes.reshape(-1, 4)
        side = np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None))
        for name, value in zip(img.labels, side.tolist()):
            if value > 0:
                sides.setdefault(name, []).append(value)
    return {name: float(np.median(values)) for name, values in sides.items()}


def working_scale(aset: AnnotationSet, cell_px: float = TARGET_CELL_PX) -> float:
    """Working pixels per photo pixel that bring the median training cell to ``cell_px``.

    With several classes, raised so that the smallest class's median is ``MIN_CLASS_PX``
    at least, within the limit ``MAX_CLASS_PX`` for the largest class's (one class: unchanged).
    """
    sides = cell_sides(aset)
    sides = sides[sides > 0]
    if len(sides) == 0:
        raise AnnotationError(["no boxes to choose the working scale from; label some cells"])
    scale = float(cell_px / np.median(sides))
    medians = class_median_sides(aset)
    if len(medians) > 1:
        small = MIN_CLASS_PX / min(medians.values())
        limit = MAX_CLASS_PX / max(medians.values())
        scale = max(scale, min(small, limit))
    return scale


# Training crops are square, a multiple of 32 px, and no larger than most photos at the
# working scale: the part of a crop beyond the photo is black padding that costs as much as
# pixels. BCCD's 640 x 480 photos at 0.41x are 260 x 195 px, so a 256 px crop was 24 % padding;
# a 192 px crop makes a training step 1.6x cheaper (0.33 -> 0.20 s with its loading,
# docs/real_data.md) and the clock fits that many more steps. The course's photos (512 px at
# their working scale) keep their 256 px crops.
CROP_MULTIPLE = 32
MIN_CROP_PX = 64


def fitted_crop_size(aset: AnnotationSet, scale: float, crop_size: int, image_size: int) -> int:
    """``crop_size``, or the median photo's shorter side at the working scale if smaller.

    Measured from the annotations' width and height (no pixel is decoded); floored to a
    multiple of ``CROP_MULTIPLE``, never under ``MIN_CROP_PX``. Photos smaller than the crop
    are padded as before.
    """
    from .processing import ScaleError
    from .processing.tiling import working_size

    crop = min(int(crop_size), int(image_size))
    config = InferenceConfig("training", aset.class_names, image_size, scale=scale)
    sides = []
    for img in aset.images:
        try:
            fitted = plan_tiles(img.width, img.height, config).scale
        except ScaleError:  # a thumbnail: refused with its name when its pixels are loaded
            continue
        sides.append(min(working_size(img.width, img.height, fitted)))
    if not sides:
        return crop
    side = int(np.median(sides)) // CROP_MULTIPLE * CROP_MULTIPLE
    return max(min(crop, MIN_CROP_PX), min(crop, side))


def tile_overlap(aset: AnnotationSet, scale: float, image_size: int) -> int:
    """Tile overlap in working pixels: the longest box side seen (99th percentile), so that a
    cell on a seam lies whole inside the tile that owns it; a multiple of 8, 32 to S/2."""
    boxes = [img.boxes.reshape(-1, 4) for img in aset.images]
    longest = np.concatenate([np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) for b in boxes])
    need = float(np.percentile(longest, 99)) * scale if len(longest) else 32.0
    return int(min(image_size // 2, max(32, 8 * math.ceil(need / 8))))


def train_transforms(crop_size: int | None = None) -> v2.Transform:
    """The training augmentations (after letterbox, on uint8 images + BoundingBoxes).

    ``crop_size``: train on random square crops of the letterboxed image. A fully
    convolutional detector learns the same thing from a crop at a fraction of the cost, so
    the same minute buys several times more (and more varied) steps.
    """
    crop = [v2.RandomCrop(crop_size)] if crop_size else []  # first: the rest then costs less
    return v2.Compose(
        [
            *crop,
            v2.RandomHorizontalFlip(0.5),
            v2.RandomVerticalFlip(0.5),
            v2.RandomAffine(degrees=0, translate=(0.08, 0.08), scale=(0.8, 1.25), fill=5),
            v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.2),
            v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.3, 1.0))], p=0.2),
            v2.ClampBoundingBoxes(),
            v2.SanitizeBoundingBoxes(min_size=2.0),
        ]
    )


def rotate90(image: torch.Tensor, boxes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a ``[C, H, W]`` image and its XYXY boxes by ``k`` quarter turns (exact)."""
    for _ in range(k % 4):
        width = image.shape[-1]
        image = torch.rot90(image, 1, dims=(-2, -1))  # counter-clockwise
        x1, y1, x2, y2 = boxes.unbind(-1)
        boxes = torch.stack([y1, width - x2, y2, width - x1], dim=-1)
    return image, boxes


class CellDataset(Dataset):
    """``(image, target)`` pairs ready for torchvision detectors.

    ``image``: ``tv_tensors.Image`` float32 ``[3, S, S]`` in 0..1 (letterboxed), or with a
    working ``scale``: the photo at that scale (training: a random ``crop_size`` crop, or an
    ``image_size`` one without ``crop_size``, as inference's tiles).
    ``target``: ``{"boxes": BoundingBoxes XYXY [N, 4], "labels": int64 [N]}`` with labels
    1..C (0 is torchvision's background), following ``class_names`` (default: the set's).
    """

    def __init__(
        self,
        aset: AnnotationSet,
        image_size: int,
        train: bool = False,
        class_names: Sequence[str] | None = None,
        crop_size: int | None = None,
        repeats: int = 1,
        scale: float | None = None,
    ):
        self.aset = aset
        self.image_size = int(image_size)
        self.train = train
        self.scale = scale
        if crop_size is not None and crop_size < 32:
            raise ValueError(f"crop_size must be at least 32 px, got {crop_size}")
        if scale is not None:  # every training sample is a square crop of the working image
            side = crop_size or self.image_size
            self.crop_size = fitted_crop_size(aset, scale, side, self.image_size) if train else None
        else:  # a crop as large as the image is no crop: small images train whole
            self.crop_size = crop_size if crop_size and crop_size < self.image_size else None
        self.repeats = max(1, int(repeats)) if train else 1
        self.class_names = tuple(class_names) if class_names is not None else aset.class_names
        unknown = {n for img in aset.images for n in img.labels} - set(self.class_names)
        if unknown:
            raise AnnotationError(
                [f"classes {sorted(unknown)} are not in class_names {list(self.class_names)}"]
            )
        self._index = {name: i + 1 for i, name in enumerate(self.class_names)}
        self.transforms = train_transforms(self.crop_size) if train else None
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        """Images x ``repeats``: in training each image is drawn (cropped) several times an epoch."""
        return len(self.aset) * self.repeats

    def letterboxed(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """uint8 image ``[3, H, W]``, boxes in input pixels, 1-based labels (cached, no augmentation).

        Letterboxed to ``S x S``, or resized to the working scale and padded black (right and
        bottom, like inference's tiles) to at least the crop size.
        """
        if index not in self._cache:
            item: AnnotatedImage = self.aset.images[index]
            if self.scale is None:
                boxed, scale = letterbox(item.load_image(), self.image_size)
            else:
                boxed, scale = self._at_working_scale(item)
            image = torch.from_numpy(np.array(boxed, dtype=np.uint8)).permute(2, 0, 1).contiguous()
            boxes = torch.from_numpy(item.boxes * np.float32(scale)).reshape(-1, 4)
            labels = torch.tensor([self._index[n] for n in item.labels], dtype=torch.int64)
            self._cache[index] = (image, boxes, labels)
        return self._cache[index]

    def _at_working_scale(self, item: AnnotatedImage) -> tuple[np.ndarray, float]:
        """The photo at the scale inference will count it at, and that scale.

        ``processing.plan_tiles`` decides it, so a photo that inference fits into one input
        (a few percent smaller than the working scale) is trained at that size too: measured
        on the 2,800 px photos, training at one scale and counting 3 % smaller raised the
        count error from 1.6 % to 2.3 %.
        """

        photo = item.load_image()
        config = InferenceConfig("training", self.class_names, self.image_size, scale=self.scale)
        scale = plan_tiles(photo.width, photo.height, config).scale
        work = working_image(photo, scale)
        side = self.crop_size or 0
        if work.shape[0] >= side and work.shape[1] >= side:
            return work, scale
        padded = np.zeros((max(side, work.shape[0]), max(side, work.shape[1]), 3), np.uint8)
        padded[: work.shape[0], : work.shape[1]] = work
        return padded, scale

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, Target]:
        image, boxes, labels = self.letterboxed(index % len(self.aset))
        if self.train:
            k = int(torch.randint(0, 4, (1,)).item())
            image, boxes = rotate90(image, boxes, k)
        image = tv_tensors.Image(image)
        target: Target = {
            "boxes": tv_tensors.BoundingBoxes(
                boxes.clone(), format="XYXY", canvas_size=tuple(image.shape[-2:])
            ),
            "labels": labels.clone(),
        }
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        image = tv_tensors.Image(v2.functional.to_dtype(image, torch.float32, scale=True))
        return image, target

    def __repr__(self) -> str:
        mode = "train (augmented)" if self.train else "eval"
        crop = f", {self.crop_size}px crops x{self.repeats}" if self.crop_size else ""
        size = f"scale {self.scale:.3g}" if self.scale else f"{self.image_size}px"
        return f"CellDataset({len(self.aset)} images, {size}{crop}, {mode})"


def collate(
    batch: Sequence[tuple[torch.Tensor, Target]],
) -> tuple[list[torch.Tensor], list[Target]]:
    """Lists of images and targets: detectors take a list (boxes per image differ in number)."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


# The CLI's validation split: a fifth of the photos, at most MAX_VAL_PHOTOS of them.
VAL_FRACTION = 0.2
# Why a cap: a fifth of BCCD's 292 photos is 58 left out of training; 20 are enough to choose
# the counting threshold on and to draw the validation curve, and with the 38 more training
# photos test mAP rose on all three seeds (0.595 / 0.604 / 0.600 -> 0.609 / 0.610 / 0.610,
# docs/real_data.md, "Validation capped at 20 photos").
MAX_VAL_PHOTOS = 20


def split(
    aset: AnnotationSet, val_fraction: float = VAL_FRACTION, seed: int = 0, most: int | None = None
) -> tuple[AnnotationSet, AnnotationSet]:
    """A deterministic train/validation split of the images (at least one on each side).

    ``most``: at most this many validation images (the CLI's default split uses
    ``MAX_VAL_PHOTOS``); the same seed then holds back the first ``most`` of the same order.
    """
    n = len(aset)
    if n < 2:
        raise ValueError(f"need at least 2 images to split, got {n}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    n_val = min(n - 1, max(1, round(n * val_fraction)), most or n)
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = sorted(order[:n_val].tolist()), sorted(order[n_val:].tolist())
    return aset.subset(train_idx), aset.subset(val_idx)


def split_or_all(
    aset: AnnotationSet, val_fraction: float | None, seed: int = 0
) -> tuple[AnnotationSet, AnnotationSet | None]:
    """:func:`split`, or with ``val_fraction`` 0 every image for training and no validation.

    ``None`` (the CLI's default): ``VAL_FRACTION`` of the images, at most ``MAX_VAL_PHOTOS``.
    Why 0: once the last weights are kept and the threshold is chosen on training photos too,
    validation only reports. On 17 real photos training on all of them gave the same test mAP
    and slightly steadier counts (``docs/real_data.md``, *Seventeen real photos*).
    """
    if val_fraction is None:
        return split(aset, VAL_FRACTION, seed, most=MAX_VAL_PHOTOS)
    if val_fraction == 0:
        return aset, None
    if not 0 < val_fraction < 1:
        raise ValueError(
            f"--val-fraction must be 0 (train on every image, no validation) or between 0 and 1, "
            f"got {val_fraction}"
        )
    return split(aset, val_fraction, seed)


def make_loader(
    dataset: Dataset, batch_size: int = 2, shuffle: bool = False, seed: int = 0
) -> DataLoader:
    """A single-process DataLoader with :func:`collate` and a seeded shuffle order."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate,
        num_workers=0,
        generator=generator,
    )
