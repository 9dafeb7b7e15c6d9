"""Synthetic microscope photos of needle-shaped microalgae, with exact boxes.

The talk's 17 real photos cannot be shipped (no licence), so the course makes its own that
look like them (see ``REAL_PROFILE``): a photo through the eyepiece of a hemocytometer - a
bright warm-grey circular field of view, black outside, a thin coloured rim, faint grid lines
about 1/8 of the field apart, dust, sometimes the eyepiece's pointer - and 30-100 thin,
dark-outlined, greenish spindle-shaped cells at random angles, some curved, some touching,
some out of focus.

Every shape is drawn from geometry sampled in *relative* units (fractions of the frame), so a
seed gives the same scene and the same relative boxes at any ``size``; each box is the tight
axis-aligned box of the drawn cell outline. Pixels are rendered at 2x and downsampled for
anti-aliasing, with NumPy and Pillow only. 47 images take a few seconds.

    python -m utils.synth --out data --size 640     # what ``make data`` runs

Several classes (needles, round cells, specks) for the multi-class paths: ``utils.synth_classes``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .annotations import AnnotatedImage, AnnotationSet, write_voc
from .config import artifacts_dir, display_path
from .config import data_dir as default_dir

CLASS_NAME = "Microalgae"
TRAIN_SEEDS = tuple(range(17))  # the 17 training images, like the talk's
TEST_SEEDS = tuple(range(1000, 1030))  # a held-out test set the talk did not have
DEFAULT_SIZE = 640
FILE_PATTERN = "microalgae_{index:03d}"

# Measured on the talk's 17 real photos (2794 x 2793 px, 1,224 boxes). Box sizes are
# fractions of the image side; percentiles 5/25/50/75/95.
REAL_PROFILE: dict[str, tuple[float, ...]] = {
    "width_pct": (0.018, 0.032, 0.052, 0.067, 0.083),
    "height_pct": (0.016, 0.029, 0.045, 0.061, 0.080),
    "ratio_pct": (2.0, 5.0),  # median and 95th percentile of long/short box side
    "counts_range": (33, 77, 103),  # min, median, max cells per image
}


# ---------------------------------------------------------------- the scene, in relative units


@dataclass
class Cell:
    """One cell: its outline polygon (relative coordinates) and how it is drawn."""

    outline: np.ndarray  # [K, 2] x, y in 0..1
    spine: np.ndarray  # [M, 2] centre line, for the pale inner stripe
    granules: np.ndarray  # [G, 3] x, y, radius of the darker chloroplast granules
    fill: tuple[int, int, int]
    edge: tuple[int, int, int]
    blur: float  # 0 = in focus; else Gaussian radius as a fraction of the frame
    opacity: float
    labelled: bool = True

    @property
    def box(self) -> np.ndarray:
        lo, hi = self.outline.min(0), self.outline.max(0)
        return np.asarray([lo[0], lo[1], hi[0], hi[1]], np.float64)


@dataclass
class Scene:
    centre: tuple[float, float]
    radius: float
    background: tuple[float, float, float]
    rim: tuple[int, int, int]
    grid_angle: float
    grid_offset: tuple[float, float]
    grid_strength: float
    dust: np.ndarray  # [D, 4] x, y, radius, darkness
    pointer: np.ndarray | None  # polygon [K, 2] or None
    cells: list[Cell]
    vignette: float
    shading: np.ndarray  # [8, 8] low-frequency illumination pattern


def _spindle(
    rng: np.random.Generator, centre: np.ndarray, length: float, width: float, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """Outline + spine of a pointed spindle, bent along a gentle arc."""
    t = np.linspace(0.0, 1.0, 25)
    s = (t - 0.5) * length
    bend = rng.normal(0.0, 0.35) if rng.random() < 0.3 else rng.normal(0.0, 0.06)
    offset = bend * (s**2 - (length / 2) ** 2) / length  # a parabola: 0 at both tips
    taper = np.sin(np.pi * t) ** rng.uniform(0.9, 1.4)
    half = 0.5 * width * taper
    # Normal of the bent spine (derivative of the offset) so the body bends with it.
    slope = 2 * bend * s / length
    norm = 1.0 / np.sqrt(1 + slope**2)
    nx, ny = -slope * norm, norm
    upper = np.stack([s + nx * half, offset + ny * half], 1)
    lower = np.stack([s - nx * half, offset - ny * half], 1)[::-1]
    local = np.concatenate([upper, lower[1:-1]])
    spine = np.stack([s, offset], 1)[3:-3]
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return local @ rot.T + centre, spine @ rot.T + centre


def _sample_cell(rng: np.random.Generator, centre: np.ndarray) -> Cell:
    length = float(np.clip(rng.lognormal(math.log(0.072), 0.2), 0.035, 0.1))
    aspect = float(np.clip(rng.lognormal(math.log(4.3), 0.25), 2.8, 9.0))
    width = max(length / aspect, 0.0075)
    angle = rng.uniform(0.0, math.pi)  # a slide has no "up"
    outline, spine = _spindle(rng, centre, length, width, angle)
    n_gran = int(rng.integers(5, 12))
    granules = np.concatenate(
        [
            spine[rng.integers(0, len(spine), n_gran)] + rng.normal(0, 0.0012, (n_gran, 2)),
            rng.uniform(0.0006, 0.0014, (n_gran, 1)),
        ],
        1,
    )
    out_of_focus = rng.random() < 0.16
    g = rng.uniform(0.9, 1.12)
    fill = (int(rng.uniform(100, 125) * g), int(138 * g), int(rng.uniform(68, 90) * g))
    edge = (int(rng.uniform(30, 55)), int(rng.uniform(45, 70)), int(rng.uniform(28, 45)))
    if out_of_focus:
        blur = rng.uniform(0.0018, 0.0035)
        return Cell(outline, spine, granules, fill, edge, blur, rng.uniform(0.5, 0.75))
    return Cell(outline, spine, granules, fill, edge, 0.0, rng.uniform(0.85, 1.0))


def _overlap(box: np.ndarray, boxes: list[np.ndarray], limit: float) -> bool:
    """True when ``box`` covers more than ``limit`` of itself or of another box."""
    for other in boxes:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw <= 0 or ih <= 0:
            continue
        inter = iw * ih
        a1 = (box[2] - box[0]) * (box[3] - box[1])
        a2 = (other[2] - other[0]) * (other[3] - other[1])
        if inter / min(a1, a2) > limit:
            return True
    return False


def _pointer(rng: np.random.Generator, centre: tuple[float, float], radius: float) -> np.ndarray:
    """The eyepiece pointer: a dark tapered needle from the field's edge towards the middle."""
    angle = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    base = np.asarray(centre) + direction * (radius + 0.05)
    tip = np.asarray(centre) + direction * radius * rng.uniform(-0.15, 0.35)
    half = rng.uniform(0.010, 0.016)
    shoulder = base + (tip - base) * 0.85
    return np.array(
        [
            base + normal * half,
            shoulder + normal * half * 0.7,
            tip,
            shoulder - normal * half * 0.7,
            base - normal * half,
        ]
    )


def _point_in_polygon(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test for many points against one polygon."""
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x1, y1 = poly[:, 0][None], poly[:, 1][None]
    x2, y2 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    crosses = ((y1 > y) != (y2 > y)) & (x < (x2 - x1) * (y - y1) / (y2 - y1 + 1e-12) + x1)
    return crosses.sum(1) % 2 == 1


def sample_scene(seed: int, unlabeled_prob: float = 0.0) -> Scene:
    """Everything about one image, in relative units, from one seed."""
    rng = np.random.default_rng(seed)
    centre = (0.5 + rng.uniform(-0.012, 0.012), 0.5 + rng.uniform(-0.012, 0.012))
    radius = rng.uniform(0.455, 0.49)
    tint = rng.uniform(-6, 6)
    background = (206 + tint + rng.uniform(0, 8), 199 + tint, 186 + tint - rng.uniform(0, 10))
    rims = [(90, 200, 170), (80, 150, 220), (120, 210, 110), (200, 150, 80)]
    rim = rims[int(rng.integers(len(rims)))]
    n_dust = int(rng.integers(25, 70))
    dust_r = np.sqrt(rng.uniform(0, 1, n_dust)) * radius * 0.97
    dust_a = rng.uniform(0, 2 * math.pi, n_dust)
    dust = np.stack(
        [
            centre[0] + dust_r * np.cos(dust_a),
            centre[1] + dust_r * np.sin(dust_a),
            rng.lognormal(math.log(0.0012), 0.5, n_dust),
            rng.uniform(0.15, 0.6, n_dust),
        ],
        1,
    )
    pointer = _pointer(rng, centre, radius) if rng.random() < 0.3 else None

    n_cells = int(np.clip(round(rng.normal(75, 17)), 33, 103))
    cells: list[Cell] = []
    boxes: list[np.ndarray] = []
    attempts = 0
    while len(cells) < n_cells and attempts < n_cells * 30:
        attempts += 1
        if cells and rng.random() < 0.18:  # touching neighbours: near an existing cell
            near = cells[int(rng.integers(len(cells)))].box
            c = np.array([(near[0] + near[2]) / 2, (near[1] + near[3]) / 2])
            c = c + rng.normal(0, 0.03, 2)
        else:
            r = radius * 0.93 * math.sqrt(rng.random())
            a = rng.uniform(0, 2 * math.pi)
            c = np.array([centre[0] + r * math.cos(a), centre[1] + r * math.sin(a)])
        cell = _sample_cell(rng, c)
        dist = np.hypot(cell.outline[:, 0] - centre[0], cell.outline[:, 1] - centre[1])
        if dist.max() > radius * 0.975:
            continue
        if pointer is not None and _point_in_polygon(cell.outline, pointer).any():
            continue
        if _overlap(cell.box, boxes, 0.45):
            continue
        if cell.blur > 0 and rng.random() < unlabeled_prob:
            cell.labelled = False
        cells.append(cell)
        boxes.append(cell.box)
    return Scene(
        centre=centre,
        radius=radius,
        background=background,
        rim=rim,
        grid_angle=rng.uniform(-0.08, 0.08),
        grid_offset=(rng.uniform(0, 1), rng.uniform(0, 1)),
        grid_strength=rng.uniform(0.05, 0.11),
        dust=dust,
        pointer=pointer,
        cells=cells,
        vignette=rng.uniform(0.12, 0.25),
        shading=rng.normal(0, 1, (8, 8)),
    )


# ---------------------------------------------------------------- rendering


def _poly(points: np.ndarray, scale: float) -> list[tuple[float, float]]:
    return [(float(x * scale), float(y * scale)) for x, y in points]


def _draw_cell(draw: ImageDraw.ImageDraw, cell: Cell, scale: float, alpha: int) -> None:
    """A bright halo, a translucent greenish body with granules, a thin dark wall."""
    edge_w = max(1, round(0.0015 * scale))
    outline = _poly(cell.outline, scale)
    closed = outline + outline[:1]
    draw.line(closed, fill=(238, 236, 222, int(alpha * 0.35)), width=3 * edge_w, joint="curve")
    draw.polygon(outline, fill=(*cell.fill, int(alpha * 0.5)))
    pale = tuple(min(255, int(v * 1.3)) for v in cell.fill)
    draw.line(_poly(cell.spine, scale), fill=(*pale, int(alpha * 0.45)), width=edge_w)
    dark = tuple(int(v * 0.55) for v in cell.fill)
    for x, y, r in cell.granules * scale:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(*dark, int(alpha * 0.45)))
    draw.line(closed, fill=(*cell.edge, alpha), width=edge_w, joint="curve")


def render(scene: Scene, size: int, seed: int = 0) -> Image.Image:
    """Pixels of a scene at ``size`` x ``size``.

    Smooth things (illumination, grid, field stop) are computed at ``size``; the cells are
    drawn at twice the size and downsampled, which anti-aliases their thin walls.
    """
    ss = 2 if size <= 1024 else 1
    big = size * ss
    rng = np.random.default_rng([seed, size])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx, cy = scene.centre
    rr = np.hypot(xx - cx, yy - cy) / scene.radius

    # Illumination: warm grey, darker towards the rim, slow blotches.
    shade = Image.fromarray(scene.shading.astype(np.float32), mode="F").resize(
        (size, size), Image.Resampling.BICUBIC
    )
    light = 1.0 - scene.vignette * rr**2 + 0.025 * np.asarray(shade)
    base = np.asarray(scene.background, np.float32)[None, None, :] * light[..., None]

    # Hemocytometer grid: faint darker lines, 1/8 of the field apart, slightly turned.
    spacing = 2 * scene.radius / 8
    ca, sa = math.cos(scene.grid_angle), math.sin(scene.grid_angle)
    u = (xx * ca + yy * sa) / spacing + scene.grid_offset[0]
    v = (-xx * sa + yy * ca) / spacing + scene.grid_offset[1]
    line_w = max(0.0018, 0.8 / size) / spacing
    du, dv = np.abs(u - np.round(u)), np.abs(v - np.round(v))
    grid = np.exp(-((np.minimum(du, dv) / line_w) ** 2))
    base *= (1.0 - scene.grid_strength * grid)[..., None]
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")

    # Dust: small dark specks, some soft.
    dust_layer = Image.new("L", (big, big), 0)
    dd = ImageDraw.Draw(dust_layer)
    for x, y, r, dark in scene.dust:
        r_px = max(0.6, r * big)
        dd.ellipse(
            (x * big - r_px, y * big - r_px, x * big + r_px, y * big + r_px), fill=int(dark * 255)
        )
    dust_layer = dust_layer.resize((size, size), Image.Resampling.BOX)
    dust_layer = dust_layer.filter(ImageFilter.GaussianBlur(0.6))
    image = Image.composite(Image.new("RGB", (size, size), (70, 66, 60)), image, dust_layer)

    # Cells: out-of-focus ones first (blurred, fainter), then the sharp ones on top.
    image = image.convert("RGBA")
    for blurred in (True, False):
        group = [c for c in scene.cells if (c.blur > 0) == blurred]
        if not group:
            continue
        layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        for cell in group:
            _draw_cell(draw, cell, big, int(255 * cell.opacity))
        if ss > 1:
            layer = layer.resize((size, size), Image.Resampling.BOX)
        radius = float(np.mean([c.blur for c in group]) if blurred else 0.0008) * size
        layer = layer.filter(ImageFilter.GaussianBlur(radius))
        image = Image.alpha_composite(image, layer)
    image = image.convert("RGB")

    # The pointer, dark and slightly soft.
    if scene.pointer is not None:
        layer = Image.new("L", (size, size), 0)
        ImageDraw.Draw(layer).polygon(_poly(scene.pointer, size), fill=255)
        layer = layer.filter(ImageFilter.GaussianBlur(max(1.0, 0.002 * size)))
        image = Image.composite(Image.new("RGB", (size, size), (28, 26, 24)), image, layer)

    # Field stop: black outside the circle, a thin coloured rim just inside it.
    arr = np.asarray(image).astype(np.float32)
    edge = 1.0 / (scene.radius * size)  # one pixel, in units of the radius
    inside = np.clip((1.0 - rr) / edge + 0.5, 0, 1)[..., None]
    rim = 0.7 * np.exp(-(((rr - 0.994) / max(0.006, edge)) ** 2))[..., None]
    arr = arr * (1 - rim) + np.asarray(scene.rim, np.float32) * rim
    arr = arr * inside + 6.0 * (1 - inside)

    # Sensor noise.
    arr += rng.normal(0, 2.5, (size, size, 1)).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def scene_boxes(scene: Scene, size: int) -> tuple[np.ndarray, list[str]]:
    """Pixel boxes (x1, y1, x2, y2) of the labelled cells, clipped to the image."""
    boxes = np.asarray([c.box for c in scene.cells if c.labelled], np.float64).reshape(-1, 4)
    boxes = np.clip(boxes * size, 0, size).astype(np.float32)
    return boxes, [CLASS_NAME] * len(boxes)


def generate_image(
    seed: int, size: int = DEFAULT_SIZE, unlabeled_prob: float = 0.0
) -> tuple[Image.Image, np.ndarray, list[str]]:
    """One synthetic photo, its cell boxes (float32 ``[N, 4]`` pixels) and labels.

    ``unlabeled_prob`` leaves that fraction of the out-of-focus cells without a box, like
    the incomplete labels of real hand-labelled data (default 0: every cell is labelled).
    """
    scene = sample_scene(seed, unlabeled_prob)
    boxes, labels = scene_boxes(scene, size)
    return render(scene, size, seed), boxes, labels


def write_dataset(
    folder: str | Path,
    seeds: Sequence[int],
    size: int = DEFAULT_SIZE,
    quality: int = 90,
    unlabeled_prob: float = 0.0,
) -> AnnotationSet:
    """JPEG images + labelImg VOC XML files in ``folder``, named ``microalgae_000.jpg`` ..."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for index, seed in enumerate(seeds):
        image, boxes, labels = generate_image(seed, size, unlabeled_prob)
        path = folder / f"{FILE_PATTERN.format(index=index)}.jpg"
        image.save(path, quality=quality, optimize=True)
        images.append(AnnotatedImage(path, size, size, boxes, labels))
    aset = AnnotationSet((CLASS_NAME,), images)
    write_voc(aset, folder, copy_images=False)
    return aset


def make_course_data(
    data_dir: str | Path | None = None,
    size: int | None = None,
    train: int | None = None,
    test: int | None = None,
) -> Path:
    """``data/train`` (17 images, seeds 0-16) and ``data/test`` (30 images, seeds 1000-1029).

    At ``size`` 2800 these are the same scenes as full-resolution photos (the talk's are
    2794 px): everything is drawn in relative units, so cells, outlines, blur and grid keep
    their proportions. ``train``/``test`` take the first N seeds of each list (or more).
    """

    root = Path(data_dir) if data_dir is not None else default_dir()
    size = size or DEFAULT_SIZE
    train_seeds = TRAIN_SEEDS if train is None else _seeds(TRAIN_SEEDS, train)
    test_seeds = TEST_SEEDS if test is None else _seeds(TEST_SEEDS, test)
    write_dataset(root / "train", train_seeds, size)
    write_dataset(root / "test", test_seeds, size)
    return root


def _seeds(base: Sequence[int], n: int) -> list[int]:
    """The first ``n`` seeds of ``base``, continued past its end when ``n`` is larger."""
    return [base[0] + i for i in range(n)] if n > len(base) else list(base[:n])


def ensure_highres_data(data_dir: str | Path | None = None, size: int = 2800) -> Path:
    """The full-resolution twin of ``data/`` (same 17 + 30 scenes at ``size`` px), made on demand.

    About 3 s per photo and 1 MB each as JPEG, so it is not committed:
    ``artifacts/data_<size>/`` by default.
    """

    root = Path(data_dir) if data_dir is not None else artifacts_dir() / f"data_{size}"
    wanted = {"train": len(TRAIN_SEEDS), "test": len(TEST_SEEDS)}
    if all(len(list((root / sub).glob("*.xml"))) >= n for sub, n in wanted.items()):
        return root
    start = time.perf_counter()
    make_course_data(root, size)
    print(
        f"Generated {sum(wanted.values())} photos of {size} px in {display_path(root)} "
        f"({time.perf_counter() - start:.0f} s)."
    )
    return root


def ensure_course_data(data_dir: str | Path | None = None) -> Path:
    """Generate ``data/`` if it is missing (e.g. on Colab, where only the package is installed)."""

    root = Path(data_dir) if data_dir is not None else default_dir()
    wanted = {"train": len(TRAIN_SEEDS), "test": len(TEST_SEEDS)}
    if all(len(list((root / sub).glob("*.xml"))) >= n for sub, n in wanted.items()):
        return root
    start = time.perf_counter()
    make_course_data(root)
    print(
        f"Generated the synthetic data set in {display_path(root)} "
        f"({time.perf_counter() - start:.0f} s)."
    )
    return root


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the course's synthetic microscope data.")
    parser.add_argument("--out", default=None, help="data folder (default: the course's data/)")
    parser.add_argument(
        "--size", type=int, default=None, help="image side (default 640; the talk's: 2794)"
    )
    parser.add_argument(
        "--images",
        type=int,
        default=None,
        help="write N photos straight into --out (seeds from --first-seed) instead of train/ and test/",
    )
    parser.add_argument("--first-seed", type=int, default=2000, help="first seed for --images")
    parser.add_argument("--train", type=int, help=f"training photos (default {len(TRAIN_SEEDS)})")
    parser.add_argument("--test", type=int, help=f"held-out photos (default {len(TEST_SEEDS)})")
    args = parser.parse_args(argv)
    if args.size is not None and not 64 <= args.size <= 8192:
        parser.error(f"--size must be between 64 and 8192 px, got {args.size}")
    start = time.perf_counter()

    if args.images is not None:
        if args.out is None:
            parser.error("--images needs --out (a folder for the photos)")
        seeds = range(args.first_seed, args.first_seed + args.images)
        write_dataset(args.out, list(seeds), args.size or DEFAULT_SIZE)
        shown = display_path(Path(args.out))
        print(f"Wrote {args.images} photos to {shown} in {time.perf_counter() - start:.1f} s.")
        return
    root = make_course_data(args.out, args.size, args.train, args.test)
    print(f"Wrote {display_path(root)}/train and /test in {time.perf_counter() - start:.1f} s.")


if __name__ == "__main__":
    main()
