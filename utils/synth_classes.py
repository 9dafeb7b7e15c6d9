"""A generated data set with three classes: needles, round cells and small specks.

Learners bring photos with several classes (BCCD: RBC, WBC, Platelets); the course's own
photos hold one. This set exercises every multi-class path (per-class counts in the app, the
page, ``count``'s table, the pre-labels, the card) on data that is small and quick to make:
the eyepiece scene of :mod:`utils.synth` with fewer needles (``Microalgae``), plus round
reddish cells (``Round``) and small dark specks (``Speck``), each class with its own look so
that a model can tell them apart. The names are in alphabetical order, the order in which
``load_annotations`` lists the classes of a VOC folder, so label ids agree both ways.

    python -m utils.synth_classes --out data3 --images 8 --size 256 [--coco]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .annotations import AnnotatedImage, AnnotationSet, write_coco, write_voc
from .config import display_path
from .synth import CLASS_NAME, Cell, Scene, _overlap, _sample_cell, render, sample_scene

CLASS_NAMES = (CLASS_NAME, "Round", "Speck")  # sorted, as load_annotations orders a VOC folder
DEFAULT_SIZE = 256  # small: a test set of a few photos takes well under a second each
FIRST_SEED = 5000  # away from the single-class train/test seeds
FILE_PATTERN = "mixed_{index:03d}"
# Objects of each class per photo (inclusive ranges): sparse enough that most do not touch.
PER_CLASS = {CLASS_NAME: (6, 12), "Round": (5, 10), "Speck": (5, 12)}


def _disc(
    rng: np.random.Generator, centre: np.ndarray, radius: float, squash: float
) -> np.ndarray:
    """Outline of a slightly squashed, turned disc (relative units)."""
    t = np.linspace(0.0, 2 * math.pi, 28, endpoint=False)
    angle = rng.uniform(0.0, math.pi)
    local = np.stack([radius * np.cos(t), radius * squash * np.sin(t)], 1)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return local @ rot.T + centre


def round_cell(rng: np.random.Generator, centre: np.ndarray) -> Cell:
    """A round reddish cell with a pale middle (like a red blood cell), about 6 % of the frame."""
    radius = float(rng.uniform(0.024, 0.034))
    outline = _disc(rng, centre, radius, rng.uniform(0.85, 1.0))
    spine = np.stack([centre + [-radius * 0.3, 0.0], centre + [radius * 0.3, 0.0]])
    granules = np.zeros((0, 3))
    fill = (int(rng.uniform(185, 210)), int(rng.uniform(95, 120)), int(rng.uniform(105, 130)))
    edge = (int(rng.uniform(110, 130)), int(rng.uniform(40, 60)), int(rng.uniform(50, 70)))
    return Cell(outline, spine, granules, fill, edge, 0.0, rng.uniform(0.85, 1.0))


def speck(rng: np.random.Generator, centre: np.ndarray) -> Cell:
    """A small dark purple speck (like a platelet), about 2 % of the frame: far above dust."""
    radius = float(rng.uniform(0.008, 0.012))
    outline = _disc(rng, centre, radius, rng.uniform(0.7, 1.0))
    spine = np.stack([centre, centre + [radius * 0.2, 0.0]])
    fill = (int(rng.uniform(80, 100)), int(rng.uniform(40, 60)), int(rng.uniform(115, 140)))
    edge = (50, 25, 80)
    return Cell(outline, spine, np.zeros((0, 3)), fill, edge, 0.0, rng.uniform(0.9, 1.0))


def sample_mixed_scene(seed: int) -> tuple[Scene, list[str]]:
    """The scene of ``synth.sample_scene(seed)`` with the three classes; and each cell's class."""
    base = sample_scene(seed)
    rng = np.random.default_rng([seed, 3])
    wanted = {name: int(rng.integers(lo, hi + 1)) for name, (lo, hi) in PER_CLASS.items()}
    makers = {CLASS_NAME: _sample_cell, "Round": round_cell, "Speck": speck}
    cells: list[Cell] = []
    kinds: list[str] = []
    for name, number in wanted.items():
        for _ in range(number * 30):  # attempts; a crowded field keeps what fits
            if kinds.count(name) >= number:
                break
            r = base.radius * 0.9 * math.sqrt(rng.random())
            a = rng.uniform(0, 2 * math.pi)
            centre = np.array([base.centre[0] + r * math.cos(a), base.centre[1] + r * math.sin(a)])
            cell = makers[name](rng, centre)
            dist = np.hypot(cell.outline[:, 0] - base.centre[0], cell.outline[:, 1] - base.centre[1])
            if dist.max() > base.radius * 0.975 or _overlap(cell.box, [c.box for c in cells], 0.2):
                continue
            cells.append(cell)
            kinds.append(name)
    return dataclasses.replace(base, cells=cells, pointer=None), kinds


def generate_mixed_image(
    seed: int, size: int = DEFAULT_SIZE
) -> tuple[Image.Image, np.ndarray, list[str]]:
    """One three-class photo, its boxes (float32 ``[N, 4]`` pixels) and their class names."""
    scene, kinds = sample_mixed_scene(seed)
    boxes = np.asarray([c.box for c in scene.cells], np.float64).reshape(-1, 4)
    boxes = np.clip(boxes * size, 0, size).astype(np.float32)
    return render(scene, size, seed), boxes, kinds


def write_mixed_dataset(
    folder: str | Path,
    count: int = 6,
    size: int = DEFAULT_SIZE,
    first_seed: int = FIRST_SEED,
    coco: bool = False,
) -> AnnotationSet:
    """``count`` JPEG photos with labelImg VOC XML files (and ``annotations.json`` in COCO
    when ``coco``) in ``folder``, named ``mixed_000.jpg`` ...; returns the set."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for index in range(count):
        image, boxes, labels = generate_mixed_image(first_seed + index, size)
        path = folder / f"{FILE_PATTERN.format(index=index)}.jpg"
        image.save(path, quality=92)
        images.append(AnnotatedImage(path, size, size, boxes, labels))
    aset = AnnotationSet(CLASS_NAMES, images)
    write_voc(aset, folder, copy_images=False)
    if coco:
        write_coco(aset, folder / "annotations.json")
    return aset


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate a small three-class photo set.")
    parser.add_argument("--out", required=True, help="folder for the photos and their labels")
    parser.add_argument("--images", type=int, default=6, help="how many photos (default 6)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="image side in px")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED, help="seed of the first")
    parser.add_argument("--coco", action="store_true", help="also write annotations.json (COCO)")
    args = parser.parse_args(argv)
    if not 64 <= args.size <= 8192:
        parser.error(f"--size must be between 64 and 8192 px, got {args.size}")
    if args.images < 1:
        parser.error(f"--images must be at least 1, got {args.images}")

    start = time.perf_counter()
    aset = write_mixed_dataset(args.out, args.images, args.size, args.first_seed, args.coco)
    per_class = {name: sum(lab == name for img in aset for lab in img.labels) for name in CLASS_NAMES}
    shown = ", ".join(f"{n} {name}" for name, n in per_class.items())
    print(
        f"Wrote {len(aset)} photos ({shown}) to {display_path(Path(args.out))} "
        f"in {time.perf_counter() - start:.1f} s."
    )


if __name__ == "__main__":
    main()
