"""One Predictor interface for every runtime: PyTorch, ONNX Runtime, OpenVINO.

A Predictor only knows how to run the exported core on a preprocessed batch (``run``);
everything else - letterbox, normalise, threshold, NMS, rescale - is the shared code in
``processing``, so all runtimes count the same cells on the same image.

    predictor.predict(image, threshold) -> Detections(boxes, scores, labels) with .count
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .processing import Detections, InferenceConfig, postprocess, preprocess

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
        self, images: Sequence[ImageLike], threshold: float | None = None
    ) -> list[Detections]:
        """Detections per image; ``threshold`` defaults to the stored counting threshold."""
        if len(images) == 0:
            return []
        batch, scales, sizes = preprocess(images, self.config)
        boxes, scores = self.run(batch)
        return postprocess(boxes, scores, self.config, scales, sizes, threshold)

    def predict(self, image: ImageLike, threshold: float | None = None) -> Detections:
        """Detections on one image (any size; it is letterboxed to the model's input size)."""
        return self.predict_batch([image], threshold)[0]

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
