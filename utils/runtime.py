"""One Predictor interface for every runtime: PyTorch, ONNX Runtime, OpenVINO.

A Predictor only knows how to run the exported core on a preprocessed batch (``run``), and
which form of pixels its graph takes (``pixels``: normalised floats, or uint8 bytes for an
OpenVINO IR that standardises them itself); everything else - letterbox, normalise, threshold,
NMS, rescale - is the shared code in ``processing``, so all runtimes count the same cells on
the same image.

    predictor.predict(image, threshold) -> Detections(boxes, scores, labels) with .count
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .config import default_threads, display_path, precision_choice
from .modelfile import (
    CONFIG_KEY,
    OV_CONFIG_PATH,
    ModelFileError,
    config_from_metadata,
    corrupt_error,
    read_model_bytes,
    sniff_format,
)
from .processing import NORMALIZED, UINT8, Detections, InferenceConfig, count_tiled, preprocess

ImageLike = Image.Image | np.ndarray


class Predictor(ABC):
    """Run a detector on images; subclasses implement ``run`` for one runtime."""

    runtime: str = "?"
    # The form of the pixels ``run`` takes (``processing.pixels``): NORMALIZED, float32
    # [N, 3, S, S] standardised in NumPy; or UINT8, [N, S, S, 3] bytes the graph standardises.
    pixels: str = NORMALIZED
    # May ``predict`` run from several threads at once? ONNX Runtime sessions may; OpenVINO's
    # single infer request and eager PyTorch may not, so a server serialises them
    # (``app.core.Guarded``). Threads *inside* one call: ``loading`` (docs/CONVENTIONS.md).
    thread_safe: bool = False

    def __init__(self, config: InferenceConfig):
        self.config = config

    @abstractmethod
    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A batch from :meth:`prepare` -> (``boxes [N, A, 4]``, ``scores [N, A, C]``)."""

    def prepare(
        self, images: Sequence[ImageLike]
    ) -> tuple[np.ndarray, list[float], list[tuple[int, int]]]:
        """Letterboxed graph inputs in this predictor's ``pixels`` form, scales, photo sizes."""
        return preprocess(images, self.config, self.pixels)

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
        return count_tiled(self.run, images, self.config, threshold, scale, pixels=self.pixels)

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
        core = DetectorCore(detector, config.image_size, flips=config.flip_tta)
        self.core = core.to(self.device).eval()

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self.torch.inference_mode():
            boxes, scores = self.core(self.torch.from_numpy(batch).to(self.device))
        return boxes.float().cpu().numpy(), scores.float().cpu().numpy()


def _config_from_props(props: dict[str, str], shown: str) -> InferenceConfig:
    return config_from_metadata(props, shown)


# ----------------------------------------------------------------------------- ONNX Runtime


class OnnxPredictor(Predictor):
    """ONNX Runtime on an exported ``.onnx`` file (or its bytes); config from its metadata.

    ``threads`` sets ONNX Runtime's intra-op thread pool (None: ``OMP_NUM_THREADS``, else one per core);
    benchmarks use 2. ``providers`` defaults to the CPU provider, which is what a laptop,
    a free Space and a Raspberry Pi have. ``spinning``: let the pool's threads spin-wait for
    work after each run (ONNX Runtime's default). Off here: on a 2-core machine the spinning
    threads take the cores from whatever runs next, the app's decoding, drawing and HTTP
    (medians of 21 alternating calls on a busy 2-core machine: a plain HTTP call to the demo
    233 -> 202 ms, the model alone 185 -> 190 ms, within noise).
    """

    runtime = "onnxruntime"
    thread_safe = True  # InferenceSession.run may be called concurrently

    def __init__(
        self,
        path_or_bytes: str | Path | bytes,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        config: InferenceConfig | None = None,
        spinning: bool = False,
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
        self._origin = (path_or_bytes, providers, spinning)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no warnings about unused initializers
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if spinning else "0"
        )
        threads = threads or default_threads()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.threads = threads
        try:
            self.session = ort.InferenceSession(
                data, options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as error:  # InvalidProtobuf, Fail, InvalidGraph ...
            raise corrupt_error(shown, error) from error
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        super().__init__(config or _config_from_props(props, shown))
        self.metadata = props
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def with_threads(self, threads: int) -> OnnxPredictor:
        """A second session of the same model and config with ``threads`` intra-op threads.

        A server counting two photos at once runs them faster on two 1-thread sessions than
        on one session whose pool both share (``app.core.Guarded``).
        """
        source, providers, spinning = self._origin
        return OnnxPredictor(source, threads, providers, self.config, spinning)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.session.run(
            self.output_names, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        )
        return boxes, scores


# ----------------------------------------------------------------------------- OpenVINO


def input_pixels(model: Any) -> str:
    """The pixel form an OpenVINO model takes: UINT8 for the course's IRs, which standardise
    the bytes inside (``edge.openvino_ir``); NORMALIZED for an ONNX file or an IR made elsewhere."""
    import openvino as ov

    return UINT8 if model.input(0).get_element_type() == ov.Type.u8 else NORMALIZED


def fix_batch_at_one(model: Any) -> bool:
    """Reshape ``model`` to a batch of one when the batch is its only dynamic dimension.

    Why: OpenVINO's CPU plugin fuses the decoding's element-wise ops (sigmoid, the peak test,
    the box corners) into one generated kernel only for static shapes; with the batch left
    dynamic each runs on its own. The INT8 counter's graph took 6.2 ms instead of 8.4 (FP32:
    48.5 instead of 51.5; README, "On another CPU"). A batch's photos then run one at a time.
    """
    shape = model.input(0).get_partial_shape()
    dims = list(shape)
    if shape.rank.is_dynamic or not dims[0].is_dynamic or any(d.is_dynamic for d in dims[1:]):
        return False
    model.reshape({model.input(0): [1] + [d.get_length() for d in dims[1:]]})
    return True


class OpenVinoPredictor(Predictor):
    """OpenVINO on an ``.onnx`` file or an IR (``.xml`` + ``.bin``); config from the file.

    The IR keeps the inference config in its ``rt_info`` (``edge.to_openvino`` writes it),
    so the ``.xml``/``.bin`` pair is self-describing like the ONNX file. ``precision``:
    OpenVINO on a CPU with bfloat16 support (e.g. this course's AMD EPYC, Intel Xeon 4th gen)
    silently computes in bf16 by default; we pin ``"f32"`` unless told otherwise so that
    "FP32" means FP32. Pass ``precision="bf16"`` (or None for OpenVINO's choice, f32 under
    ``COURSE_PRECISION=fp32``) to try it.
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
            raise corrupt_error(shown, error) from error
        super().__init__(config or self._read_config(model, shown))
        self.pixels = input_pixels(model)
        self._dtype = np.uint8 if self.pixels == UINT8 else np.float32
        self.one_at_a_time = fix_batch_at_one(model)
        properties: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        threads = threads or default_threads()
        if threads:
            properties["INFERENCE_NUM_THREADS"] = int(threads)
        if precision is None and precision_choice() == "fp32":
            precision = "f32"  # COURSE_PRECISION=fp32: as on a CPU without bfloat16
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
        batch = np.asarray(batch)
        if (batch.dtype == np.uint8) != (self.pixels == UINT8):
            raise ValueError(
                f"{self.source} takes {self.pixels} pixels, got a {batch.dtype} batch: "
                "make it with predictor.prepare(images)"
            )
        batch = np.ascontiguousarray(batch, dtype=self._dtype)
        if self.one_at_a_time and len(batch) > 1:
            outputs = [self.run(batch[i : i + 1]) for i in range(len(batch))]
            return tuple(np.concatenate(parts) for parts in zip(*outputs))  # type: ignore[return-value]
        self.request.infer({0: batch})
        boxes = self.request.get_output_tensor(0).data.copy()
        scores = self.request.get_output_tensor(1).data.copy()
        return boxes, scores


# ----------------------------------------------------------------------------- by file type

RUNTIMES = ("pytorch", "onnxruntime", "openvino")
