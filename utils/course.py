"""The course at a glance: what this machine offers, and the road map picture of notebook 00."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import textwrap
from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

LIBRARIES = (
    "torch",
    "torchvision",
    "torchmetrics",
    "onnx",
    "onnxruntime",
    "openvino",
    "nncf",
    "huggingface_hub",
    "gradio",
    "gradio_client",
    "numpy",
    "pillow",
    "matplotlib",
)


@dataclass(frozen=True)
class Stage:
    """One notebook of the course: what it is called on the road map, what it uses and leaves."""

    file: str  # the notebook's file in notebooks/ (tests check that every file has a stage)
    title: str
    modules: str
    leaves: str

    @property
    def notebook(self) -> str:
        return self.file[:2]


# Every notebook in notebooks/, in order (tests/test_notebook_text.py checks the folder).
STAGES: tuple[Stage, ...] = (
    Stage("00_start_here.ipynb", "Set up", "config, course", "—"),
    Stage(
        "01_data.ipynb",
        "Data: 17 images",
        "synth, annotations, dataset, viz",
        "(`data/` holds the images)",
    ),
    Stage("02_train.ipynb", "Train + count", "model, train, evaluate, checkpoint", "`model.pt`"),
    Stage("03_export.ipynb", "Export to ONNX", "export, runtime, processing", "`model.onnx`"),
    Stage("04_hub.ipynb", "Hugging Face Hub", "hub", "a model repo on the Hub"),
    Stage("05_demo.ipynb", "Gradio demo + Space", "app, space, images", "`space/`"),
    Stage("06_edge.ipynb", "Edge: INT8, OpenVINO", "edge", "INT8 / OpenVINO models (`edge/`)"),
    Stage("07_api_clients.ipynb", "API clients (phone app)", "app, clients/", "—"),
    Stage("08_static_space.ipynb", "Free static Space (browser)", "web, space", "`static_space/`"),
    Stage(
        "09_archive.ipynb",
        "Count an archive (Ray)",
        "batch, prelabels",
        "`archive/`: a table of counts, pre-labels",
    ),
)


def in_colab() -> bool:
    return importlib.util.find_spec("google.colab") is not None


def environment() -> dict[str, str]:
    """Python, library versions, CPU threads and accelerator: what the numbers in this course depend on."""
    info = {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "where": "Google Colab" if in_colab() else "local machine",
        "cpu threads": str(os.cpu_count()),
    }
    for name in LIBRARIES:
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = "not installed"
    try:
        import torch

        info["accelerator"] = (
            f"CUDA GPU: {torch.cuda.get_device_name(0)}"
            if torch.cuda.is_available()
            else "none (CPU only: fine for this course)"
        )
    except ImportError:
        info["accelerator"] = "unknown (torch not installed)"
    return info


def print_environment() -> None:
    for key, value in environment().items():
        print(f"{key:>16}: {value}")


def roadmap_table() -> str:
    """The road map as a Markdown table, one row per notebook (notebook 00 displays it)."""
    rows = [
        "| notebook | stage | `utils` module(s) | leaves in `artifacts/` |",
        "|---|---|---|---|",
    ]
    rows += [f"| {s.notebook} | {s.title} | {s.modules} | {s.leaves} |" for s in STAGES]
    return "\n".join(rows)


def show_roadmap_table() -> None:
    """Display :func:`roadmap_table` in a notebook (Markdown, and the same text where a viewer
    shows plain text only); print it elsewhere."""
    table = roadmap_table()
    try:
        from IPython.display import display
    except ImportError:
        print(table)
        return
    display({"text/markdown": table, "text/plain": table}, raw=True)


def _box(ax, x: float, y: float, w: float, h: float, stage: Stage, color: str) -> None:
    """One notebook: its number and title, and the ``utils`` modules it uses."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=color, ec="#555"))
    ax.text(
        x + w / 2,
        y + 0.68 * h,
        textwrap.fill(f"{stage.notebook} · {stage.title}", 20),
        ha="center",
        va="center",
        fontsize=9,
        weight="bold",
    )
    ax.text(
        x + w / 2,
        y + 0.25 * h,
        textwrap.fill(f"utils: {stage.modules}", 26),
        ha="center",
        va="center",
        fontsize=7,
        color="#333",
    )


def _arrow(ax, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="#444"))


def plot_roadmap() -> Figure:
    """The course as one picture: 01-05 from 17 images to a Space; below, what the exported
    model feeds (06 the edge, 08 the browser, 09 an archive) and what the app serves (07)."""
    fig, ax = plt.subplots(figsize=(11, 3.9), dpi=90)
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 3.9)
    ax.axis("off")
    by_number = {stage.notebook: stage for stage in STAGES}
    top = ("01", "02", "03", "04", "05")
    colors = ["#cfe8d5", "#fde2b3", "#cfe0f5", "#f5d0e0", "#e3d7f5"]
    xs = {n: 0.2 + 2.15 * i for i, n in enumerate(top)}
    for (number, x), color in zip(xs.items(), colors):
        _box(ax, x, 2.2, 1.8, 1.2, by_number[number], color)
    for a, b in zip(top, top[1:]):
        _arrow(ax, (xs[a] + 1.85, 2.8), (xs[b] - 0.05, 2.8))
    # (notebook, x of its box, the top-row notebook it starts from, colour)
    below = (("06", 2.3, "03", "#d9f0f0"), ("08", 4.45, "03", "#e8f0d9"))
    below += (("09", 6.6, "03", "#f0e0d9"), ("07", 8.75, "05", "#f0ead9"))
    for number, x, source, color in below:
        _box(ax, x, 0.2, 1.95, 1.2, by_number[number], color)
        _arrow(ax, (xs[source] + 0.9, 2.15), (x + 0.97, 1.45))
    ax.text(
        0.1,
        0.8,
        "the ONNX model\n(03) runs in\nONNX Runtime,\nOpenVINO, a\nbrowser, Ray",
        fontsize=8,
        va="center",
        color="#333",
    )
    ax.set_title(
        f"Deploy a deep-learning model without tears: the road map ({len(STAGES)} notebooks, "
        f"00 = this one)",
        fontsize=11,
    )
    fig.tight_layout()
    return fig
