"""A simulated time series for notebook 09, its plot, and the cloud cost on paper."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .rows import Row

# ----------------------------------------------------------------------------- a time series


def make_time_series(
    folder: str | Path, days: int = 24, size: int = 384, pool: int | None = None, seed: int = 0
) -> list[Path]:
    """A simulated time series: ``day_000.jpg`` ... whose cell counts grow with the day.

    ``utils.synth`` draws each scene from a seed; we draw ``pool`` scenes and name them in
    order of their number of cells, with a little noise, as if a culture grew day by day.
    """
    import numpy as np

    from ..synth import generate_image, sample_scene

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    candidates = [int(s) for s in rng.choice(100_000, size=pool or days * 3, replace=False)]
    cells = {s: sum(c.labelled for c in sample_scene(s).cells) for s in candidates}
    ranked = sorted(candidates, key=lambda s: cells[s] + rng.normal(0, 2))
    picks = [ranked[round(i * (len(ranked) - 1) / max(days - 1, 1))] for i in range(days)]
    paths = []
    for day, scene_seed in enumerate(picks):
        path = folder / f"day_{day:03d}.jpg"
        if not path.exists():
            image, _, _ = generate_image(scene_seed, size)
            image.save(path, quality=90)
        paths.append(path)
    return paths


def plot_counts(rows: Sequence[Row], ax=None, title: str = "Cells per photo over time"):
    """Counts in file-name order (a time series named ``day_000`` ...); errors marked in red."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3), dpi=90)
    rows = sorted(rows, key=lambda r: r["file"])
    ok = [(i, r["count"]) for i, r in enumerate(rows) if not r.get("error")]
    ax.plot([i for i, _ in ok], [c for _, c in ok], "o-", ms=3, label="counted")
    bad = [i for i, r in enumerate(rows) if r.get("error")]
    if bad:
        top = max((c for _, c in ok), default=1)
        ax.plot(bad, [0] * len(bad), "x", color="red", label=f"error ({len(bad)})")
        ax.set_ylim(-0.05 * top, 1.1 * top)
    ax.set_xlabel("photo (time order)")
    ax.set_ylabel("cells")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return ax


def cost_estimate(
    seconds_per_image: float,
    photos: int = 100_000,
    price_per_vcpu_hour: float = 0.05,
    vcpus: int = 32,
) -> dict[str, float]:
    """CPU hours, money and wall time for ``photos`` at a measured per-image CPU time.

    ``seconds_per_image`` is one image on one thread (what each Ray actor uses); the price is
    an assumption to replace with your provider's (on-demand, per vCPU-hour); ``vcpus`` the
    size of the cluster. Ray's own start-up and the driver are left out.
    """
    cpu_hours = photos * seconds_per_image / 3600
    return {
        "photos": photos,
        "cpu_hours": round(cpu_hours, 2),
        "cost": round(cpu_hours * price_per_vcpu_hour, 2),
        "wall_minutes_on_cluster": round(60 * cpu_hours / vcpus, 1),
    }
