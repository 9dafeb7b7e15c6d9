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
    notebook: str
    title: str
    modules: str


STAGES: tuple[Stage, ...] = (
    Stage("00", "Set up", "config, course"),
    Stage("01", "Data: 17 images", "synth, annotations, dataset, viz"),
    Stage("02", "Train + count", "model, train, evaluate, checkpoint"),
    Stage("03", "Export to ONNX", "export, runtime"),
    Stage("04", "Hugging Face Hub", "hub"),
    Stage("05", "Gradio demo + Space", "app, space, images"),
    Stage("06", "Edge: INT8, OpenVINO", "edge"),
    Stage("07", "API clients (phone app)", "app, clients/"),
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


def plot_roadmap() -> Figure:
    """The course as one picture: the data flow from 17 images to a phone, the browser and the edge."""
    fig, ax = plt.subplots(figsize=(11, 3.6), dpi=90)
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 3.6)
    ax.axis("off")
    main = STAGES[1:6]
    xs = [0.2 + 2.15 * i for i in range(len(main))]
    colors = ["#cfe8d5", "#fde2b3", "#cfe0f5", "#f5d0e0", "#e3d7f5"]
    for x, stage, color in zip(xs, main, colors):
        ax.add_patch(
            FancyBboxPatch((x, 1.9), 1.8, 1.2, boxstyle="round,pad=0.05", fc=color, ec="#555")
        )
        ax.text(
            x + 0.9,
            2.75,
            textwrap.fill(f"{stage.notebook} · {stage.title}", 20),
            ha="center",
            va="center",
            fontsize=9,
            weight="bold",
        )
        ax.text(
            x + 0.9,
            2.25,
            textwrap.fill(f"utils: {stage.modules}", 26),
            ha="center",
            va="center",
            fontsize=7,
            color="#333",
        )
    for a, b in zip(xs, xs[1:]):
        ax.add_patch(
            FancyArrowPatch(
                (a + 1.85, 2.5), (b - 0.05, 2.5), arrowstyle="-|>", mutation_scale=14, color="#444"
            )
        )
    edge, api = STAGES[6], STAGES[7]
    for x, stage, color, src in ((4.5, edge, "#d9f0f0", xs[2]), (8.8, api, "#f0ead9", xs[4])):
        ax.add_patch(
            FancyBboxPatch((x, 0.2), 1.9, 1.1, boxstyle="round,pad=0.05", fc=color, ec="#555")
        )
        ax.text(
            x + 0.95,
            0.95,
            textwrap.fill(f"{stage.notebook} · {stage.title}", 22),
            ha="center",
            va="center",
            fontsize=9,
            weight="bold",
        )
        ax.text(
            x + 0.95,
            0.5,
            f"utils: {stage.modules}",
            ha="center",
            va="center",
            fontsize=7,
            color="#333",
        )
        ax.add_patch(
            FancyArrowPatch(
                (src + 0.9, 1.85),
                (x + 0.95, 1.35),
                arrowstyle="-|>",
                mutation_scale=14,
                color="#444",
            )
        )
    ax.text(
        0.2,
        0.75,
        "ONNX model:\nPyTorch -> ONNX Runtime,\nOpenVINO, a browser,\na phone app via REST",
        fontsize=8,
        va="center",
        color="#333",
    )
    ax.set_title("Deploy a deep-learning model without tears: the road map", fontsize=11)
    fig.tight_layout()
    return fig
