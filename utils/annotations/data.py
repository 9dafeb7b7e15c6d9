"""The data model every reader returns: images with pixel boxes and class names, and the error."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import display_path


class AnnotationError(ValueError):
    """Annotations that cannot be used; the message lists every problem, one file per line."""

    def __init__(self, problems: Sequence[str], source: str | Path | None = None):
        self.problems = list(problems)
        where = f" in {display_path(source)}" if source is not None else ""
        head = f"{len(self.problems)} annotation problem(s){where}:"
        tail = "Fix the files listed above (or remove them from the folder) and load again."
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems), tail]))


@dataclass
class AnnotatedImage:
    """One image file and its boxes (x1, y1, x2, y2 in pixels of the photo upright).

    ``orientation``: the file's EXIF orientation tag (``annotations.orientation``); when it is
    not 1, ``width``, ``height`` and the boxes are those of the photo turned upright, as
    ``load_image`` returns it and as the app counts it.
    """

    image_path: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: list[str] = field(default_factory=list)
    orientation: int = 1

    def __post_init__(self) -> None:
        self.image_path = Path(self.image_path)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = [str(x) for x in self.labels]
        if len(self.labels) != len(self.boxes):
            raise ValueError(
                f"{self.image_path.name}: {len(self.boxes)} boxes but {len(self.labels)} labels"
            )

    def load_image(self) -> Image.Image:
        """The photo as the app and ``count`` see it (``utils.images.load_image``), at full size:
        8-bit RGB, upright (EXIF orientation applied, as the boxes are), 16-bit and float camera
        frames scaled by their range, transparency on black, the first page of a TIFF.

        Why: training on other pixels than those served teaches the wrong thing silently; a
        16-bit microscope TIFF opened with Pillow's ``convert("RGB")`` is white all over.
        """
        from ..images import load_image

        # No downsizing and no size limits: the boxes are in the file's full-size pixels, and
        # a labelled file is the learner's own (Pillow's decompression-bomb check still holds).
        return load_image(self.image_path, max_side=1 << 30, max_pixels=1 << 40, min_side=1).image

    @property
    def name(self) -> str:
        return self.image_path.name


@dataclass
class AnnotationSet:
    """Images + boxes + the ordered class names (label id ``i`` is ``class_names[i]``)."""

    class_names: tuple[str, ...]
    images: list[AnnotatedImage]

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> AnnotatedImage:
        return self.images[index]

    def __iter__(self):
        return iter(self.images)

    @property
    def num_boxes(self) -> int:
        return int(sum(len(img.boxes) for img in self.images))

    def label_ids(self, img: AnnotatedImage) -> np.ndarray:
        """0-based class indices of an image's boxes."""
        index = {name: i for i, name in enumerate(self.class_names)}
        try:
            return np.asarray([index[name] for name in img.labels], dtype=np.int64)
        except KeyError as err:
            raise AnnotationError(
                [f"{img.name}: class {err.args[0]!r} is not one of {list(self.class_names)}"]
            ) from None

    def subset(self, indices: Iterable[int]) -> AnnotationSet:
        """A new set with the images at ``indices`` (same class names)."""
        return AnnotationSet(self.class_names, [self.images[i] for i in indices])

    def boxes_per_class(self) -> dict[str, int]:
        """Boxes of each class, every class listed (0 for one without boxes)."""
        counts = dict.fromkeys(self.class_names, 0)
        for img in self.images:
            for label in img.labels:
                counts[label] = counts.get(label, 0) + 1
        return counts

    def summary(self) -> str:
        """One line: images, boxes, classes; with several classes the boxes of each, since a
        rare class (one white cell a photo) learns from far fewer examples than the others."""
        line = f"{len(self)} images, {self.num_boxes} boxes, classes {list(self.class_names)}"
        if len(self.class_names) > 1:
            line += f" ({', '.join(f'{n} {k}' for k, n in self.boxes_per_class().items())})"
        return line
