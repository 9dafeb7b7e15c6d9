"""Load any of the course's model files by its type: ``.pt``, ``.onnx``, ``.xml``.

``load_predictor`` sits above both loaders it chooses between - ``runtime`` (ONNX Runtime,
OpenVINO) and ``checkpoint`` (PyTorch) - so neither has to import the other. It is the one
``load_predictor``: notebooks, model cards and the Space import it from here.

Threads are set here, in one place, for every runtime (``threads=None``: ``OMP_NUM_THREADS``
when set, else the runtime's own choice, one per core):

* ONNX Runtime: ``SessionOptions.intra_op_num_threads`` (and one inter-op thread), per session;
* OpenVINO: ``INFERENCE_NUM_THREADS``, per compiled model;
* PyTorch: ``torch.set_num_threads``, which is process-wide - PyTorch has no per-model
  setting - so it is applied only when ``threads`` is given, and it then holds for every
  PyTorch model in the process (what a benchmark wants; an app loads one model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import display_path
from .modelfile import ModelFileError
from .runtime import RUNTIMES, OnnxPredictor, OpenVinoPredictor, Predictor


def set_torch_threads(threads: int | None) -> None:
    """PyTorch's intra-op threads for the whole process (None: leave PyTorch's default)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def load_predictor(
    path: str | Path, runtime: str | None = None, threads: int | None = None, **kwargs: Any
) -> Predictor:
    """A Predictor for any of the course's model files, chosen by suffix.

    ``.pt`` -> PyTorch (the checkpoint), ``.onnx`` -> ONNX Runtime (or OpenVINO with
    ``runtime="openvino"``), ``.xml`` -> OpenVINO IR. ``threads``: see the module docstring.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if runtime is not None and runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {list(RUNTIMES)}")
    if suffix in (".pt", ".pth"):
        if runtime not in (None, "pytorch"):
            raise ModelFileError(
                f"{display_path(path)} is a PyTorch checkpoint; export it to ONNX first "
                f"(utils.export.export_onnx) to run it with {runtime}"
            )
        from .checkpoint import predictor  # torch: imported only for a .pt file

        set_torch_threads(threads)
        return predictor(path)
    if suffix == ".onnx":
        if runtime == "openvino":
            return OpenVinoPredictor(path, threads=threads, **kwargs)
        if runtime == "pytorch":
            raise ModelFileError("an .onnx file cannot run in PyTorch; pass the .pt checkpoint")
        return OnnxPredictor(path, threads=threads, **kwargs)
    if suffix == ".xml":
        if runtime not in (None, "openvino"):
            raise ModelFileError(f"{display_path(path)} is an OpenVINO IR; use runtime='openvino'")
        return OpenVinoPredictor(path, threads=threads, **kwargs)
    raise ModelFileError(
        f"{display_path(path)}: unknown model file type {suffix or '(no suffix)'!r}; expected "
        ".pt (PyTorch checkpoint), .onnx (ONNX) or .xml (OpenVINO IR)"
    )
