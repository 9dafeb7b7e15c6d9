"""What the exported model needs to know (:class:`InferenceConfig`, stored in the file)
and what counting returns (:class:`Detections`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InferenceConfig:
    """All that inference needs besides the weights; stored in checkpoints and ONNX metadata."""

    model_name: str
    class_names: tuple[str, ...]
    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    score_threshold: float = 0.5  # the counting threshold, chosen in training (fit)
    nms_iou: float = 0.6
    max_detections: int = 300
    min_score: float = 0.05  # candidates below this are never kept, whatever the slider says
    # Tiling (see the module docstring). None: fit the whole photo into one input (older models).
    scale: float | None = None  # working pixels per photo pixel, chosen from the training boxes
    tile_overlap: int = 64  # working pixels shared by neighbouring tiles: more than a cell
    cell_size: float | None = None  # median cell side sqrt(w h) in working pixels, in training
    # Average each tile with its three flips inside the graph (CenterNet.raw_flipped): a little
    # more accurate, four times the network's time. Off by default; ``--tta`` turns it on.
    flip_tta: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InferenceConfig:
        known = {f for f in cls.__dataclass_fields__}
        missing = {"model_name", "class_names", "image_size"} - set(data)
        if missing:
            raise ValueError(f"inference config lacks {sorted(missing)}; re-export the model")
        values = {k: v for k, v in data.items() if k in known}
        values["class_names"] = tuple(values["class_names"])
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)


@dataclass
class Detections:
    """Boxes in original-image pixels (x1, y1, x2, y2), scores in [0, 1], 0-based labels."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    class_names: tuple[str, ...] = ()
    tiles: int = 1  # how many S x S inputs the photo took
    scale: float = 1.0  # working pixels per photo pixel that it was counted at
    note: str = ""  # one sentence when the photo looks unlike the training photos
    better_scale: float | None = None  # the scale the note suggests, when there is a note

    @property
    def count(self) -> int:
        """Number of detected objects: the cell count."""
        return int(len(self.scores))

    def above(self, threshold: float) -> Detections:
        """Only the detections scoring at least ``threshold``."""
        keep = self.scores >= threshold
        return Detections(
            self.boxes[keep],
            self.scores[keep],
            self.labels[keep],
            self.class_names,
            self.tiles,
            self.scale,
            self.note,
            self.better_scale,
        )

    def label_names(self) -> list[str]:
        """The class name of each detection (its index as text when the model names none)."""
        names = self.class_names
        return [names[lab] if 0 <= lab < len(names) else str(lab) for lab in self.labels.tolist()]

    def counts_by_class(self) -> dict[str, int]:
        """Detections per class, every class of the model listed (0 when none), in its order.

        The one place that counts by class: the app, the batch table, the pre-labels and
        the card all read it, so a class never goes missing from one of them.
        """
        counts = dict.fromkeys(self.class_names, 0)
        for name in self.label_names():
            counts[name] = counts.get(name, 0) + 1
        return counts

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per detection, for tables and JSON."""
        return [
            {
                "label": name,
                "score": round(float(s), 4),
                "x1": round(float(b[0]), 1),
                "y1": round(float(b[1]), 1),
                "x2": round(float(b[2]), 1),
                "y2": round(float(b[3]), 1),
            }
            for b, s, name in zip(self.boxes, self.scores, self.label_names())
        ]
