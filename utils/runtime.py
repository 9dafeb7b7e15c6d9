"""One Predictor interface for every runtime: PyTorch, ONNX Runtime, OpenVINO.

A Predictor only knows how to run the exported core on a preprocessed batch (``run``);
everything else - letterbox, normalise, threshold, NMS, rescale - is the shared code in
``processing``, so all runtimes count the same cells on the same image.

    predictor.predict(image, threshold) -> Detections(boxes, scores, labels) with .count
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .config import display_path
from .processing import Detections, InferenceConfig, count_tiled

ImageLike = Image.Image | np.ndarray


class Predictor(ABC):
    """Run a detector on images; subclasses implement ``run`` for one runtime."""

    runtime: str = "?"

    def __init__(self, config: InferenceConfig):
        self.config = config

    @abstractmethod
    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised ``[N, 3, S, S]`` float32 -> (``boxes [N, A, 4]``, ``scores [N, A, C]``)."""

    def predict_batch(
        self,
        images: Sequence[ImageLike],
        threshold: float | None = None,
        scale: float | None = None,
    ) -> list[Detections]:
        """Detections per image; ``threshold`` defaults to the stored counting threshold.

        Every photo is resized to the model's working scale (``scale`` overrides it) and
        counted in tiles: ``processing.count_tiled``, the path every runtime shares.
        """
        if len(images) == 0:
            return []
        return count_tiled(self.run, images, self.config, threshold, scale)

    def predict(
        self, image: ImageLike, threshold: float | None = None, scale: float | None = None
    ) -> Detections:
        """Detections on one photo of any size (tiled at the model's working scale)."""
        return self.predict_batch([image], threshold, scale)[0]

    def __repr__(self) -> str:
        c = self.config
        return f"{type(self).__name__}({c.model_name}, {c.image_size}px, runtime={self.runtime})"


class TorchPredictor(Predictor):
    """PyTorch eager: the trained torchvision detector, run through ``model.DetectorCore``."""

    runtime = "pytorch"

    def __init__(self, detector, config: InferenceConfig, device: str = "cpu"):
        import torch

        from .model import DetectorCore

        super().__init__(config)
        self.torch = torch
        self.device = torch.device(device)
        self.core = DetectorCore(detector, config.image_size).to(self.device).eval()

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self.torch.inference_mode():
            boxes, scores = self.core(self.torch.from_numpy(batch).to(self.device))
        return boxes.float().cpu().numpy(), scores.float().cpu().numpy()


# ----------------------------------------------------------------------------- model files


class ModelFileError(ValueError):
    """A model file that is missing, truncated, of another format, or lacks the course metadata."""


# First bytes of files that people (and browsers, and git) put where a model should be.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a zip archive (a PyTorch .pt checkpoint is one: load it with load_predictor)"),
    (b"version https://git-lfs", "a Git LFS pointer, not the model: run `git lfs pull`"),
    (b"<?xml", "an XML file (an OpenVINO IR? give it the .xml suffix)"),
    (b"<!doctype", "a web page (downloaded the page instead of the file? use the 'resolve' URL)"),
    (b"<html", "a web page (downloaded the page instead of the file? use the 'resolve' URL)"),
    (b"{", "a JSON file"),
)


def sniff_format(head: bytes) -> str | None:
    """What a file that is *not* an ONNX model looks like, from its first bytes; None if unknown."""
    lowered = head[:32].lstrip().lower()
    for magic, what in _SIGNATURES:
        if head.startswith(magic) or lowered.startswith(magic.lower()):
            return what
    return None


def read_model_bytes(path: str | Path, expected: str = "ONNX") -> bytes:
    """The bytes of a model file, or a ``ModelFileError`` that says what is wrong with it."""
    path = Path(path)
    shown = display_path(path)
    if not path.exists():
        raise ModelFileError(
            f"no model file at {shown}: export one in notebook 03 "
            "(utils.export.ensure_onnx()) or check the path"
        )
    if path.is_dir():
        raise ModelFileError(
            f"{shown} is a folder; pass the model file inside it (e.g. model.onnx)"
        )
    data = path.read_bytes()
    if not data:
        raise ModelFileError(f"{shown} is empty (0 bytes): the download or export did not finish")
    what = sniff_format(data[:64])
    if what is not None:
        raise ModelFileError(f"{shown} is not an {expected} model: it looks like {what}")
    return data


def _corrupt(shown: str, error: Exception) -> ModelFileError:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return ModelFileError(
        f"{shown} could not be parsed as an ONNX model (truncated or corrupt download?): "
        f"{first[:200]}. Download or export it again."
    )


def check_model_bytes(data: bytes, shown: str):
    """Parse ONNX bytes into an ``onnx.ModelProto``; ``ModelFileError`` if truncated or corrupt."""
    import onnx

    try:
        model = onnx.load_from_string(data)
    except Exception as error:  # google.protobuf.message.DecodeError and friends
        raise _corrupt(shown, error) from error
    if not model.graph.node or not model.opset_import:
        raise ModelFileError(
            f"{shown} parsed but holds no graph (truncated, or not an ONNX model at all)"
        )
    return model


CONFIG_KEY = "deploy_without_tears.inference_config"
OV_CONFIG_PATH = ["deploy_without_tears", "inference_config"]


def _config_from_props(props: dict[str, str], shown: str) -> InferenceConfig:
    from .export import config_from_metadata

    return config_from_metadata(props, shown)


# ----------------------------------------------------------------------------- ONNX Runtime


class OnnxPredictor(Predictor):
    """ONNX Runtime on an exported ``.onnx`` file (or its bytes); config from its metadata.

    ``threads`` sets ONNX Runtime's intra-op thread pool (None: one per core);
    benchmarks use 2. ``providers`` defaults to the CPU provider, which is what a laptop,
    a free Space and a Raspberry Pi have.
    """

    runtime = "onnxruntime"

    def __init__(
        self,
        path_or_bytes: str | Path | bytes,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        config: InferenceConfig | None = None,
    ):
        import onnxruntime as ort

        if isinstance(path_or_bytes, (bytes, bytearray)):
            data, shown = bytes(path_or_bytes), "the model bytes"
            what = sniff_format(data[:64])
            if what is not None:
                raise ModelFileError(f"{shown} are not an ONNX model: they look like {what}")
        else:
            data, shown = read_model_bytes(path_or_bytes), display_path(path_or_bytes)
        self.source = shown
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no warnings about unused initializers
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.threads = threads
        try:
            self.session = ort.InferenceSession(
                data, options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as error:  # InvalidProtobuf, Fail, InvalidGraph ...
            raise _corrupt(shown, error) from error
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        super().__init__(config or _config_from_props(props, shown))
        self.metadata = props
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.session.run(
            self.output_names, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        )
        return boxes, scores


# ----------------------------------------------------------------------------- OpenVINO


class OpenVinoPredictor(Predictor):
    """OpenVINO on an ``.onnx`` file or an IR (``.xml`` + ``.bin``); config from the file.

    The IR keeps the inference config in its ``rt_info`` (``edge.to_openvino`` writes it),
    so the ``.xml``/``.bin`` pair is self-describing like the ONNX file. ``precision``:
    OpenVINO on a CPU with bfloat16 support (e.g. this course's AMD EPYC, Intel Xeon 4th gen)
    silently computes in bf16 by default; we pin ``"f32"`` unless told otherwise so that
    "FP32" means FP32. Pass ``precision="bf16"`` (or None for OpenVINO's choice) to try it.
    """

    runtime = "openvino"

    def __init__(
        self,
        path: str | Path,
        device: str = "CPU",
        threads: int | None = None,
        precision: str | None = "f32",
        config: InferenceConfig | None = None,
    ):
        import openvino as ov

        path = Path(path)
        shown = display_path(path)
        self.source = shown
        suffix = path.suffix.lower()
        if suffix == ".xml":
            if not path.exists():
                raise ModelFileError(f"no OpenVINO IR at {shown}: convert one with utils.edge")
            if not path.with_suffix(".bin").exists():
                raise ModelFileError(
                    f"{shown} has no weights file next to it ({path.with_suffix('.bin').name}): "
                    "copy the .xml and .bin together"
                )
            head = path.read_bytes()[:64]
            if not head.lstrip().startswith(b"<?xml") and not head.lstrip().startswith(b"<net"):
                what = sniff_format(head) or "something else"
                raise ModelFileError(f"{shown} is not an OpenVINO IR: it looks like {what}")
        else:
            read_model_bytes(path)  # missing, empty or wrong-format files get a clear message
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as error:
            raise _corrupt(shown, error) from error
        super().__init__(config or self._read_config(model, shown))
        properties: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            properties["INFERENCE_NUM_THREADS"] = int(threads)
        if precision and device.upper().startswith("CPU"):
            properties["INFERENCE_PRECISION_HINT"] = precision
        self.threads, self.device, self.precision = threads, device, precision
        self.compiled = core.compile_model(model, device, properties)
        self.request = self.compiled.create_infer_request()

    @staticmethod
    def _read_config(model, shown: str) -> InferenceConfig:
        for key in (OV_CONFIG_PATH, ["framework", CONFIG_KEY]):
            if model.has_rt_info(key):
                return _config_from_props({CONFIG_KEY: model.get_rt_info(key).astype(str)}, shown)
        return _config_from_props({}, shown)  # raises the "re-export" message

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        boxes = self.request.get_output_tensor(0).data.copy()
        scores = self.request.get_output_tensor(1).data.copy()
        return boxes, scores


# ----------------------------------------------------------------------------- dispatch

RUNTIMES = ("pytorch", "onnxruntime", "openvino")


def load_predictor(
    path: str | Path, runtime: str | None = None, threads: int | None = None, **kwargs: Any
) -> Predictor:
    """A Predictor for any of the course's model files, chosen by suffix.

    ``.pt`` -> PyTorch (the checkpoint), ``.onnx`` -> ONNX Runtime (or OpenVINO with
    ``runtime="openvino"``), ``.xml`` -> OpenVINO IR.
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
        from .checkpoint import predictor

        if threads:
            import torch

            torch.set_num_threads(int(threads))
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
