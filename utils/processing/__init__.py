"""The one pre- and post-processing path that every runtime shares.

The exported graph (see ``model.DetectorCore``) is the network plus box decoding at a
fixed square input size: it takes a normalised float32 batch ``[N, 3, S, S]`` (the course's
OpenVINO IRs: the uint8 pixels ``[N, S, S, 3]``, standardised inside; ``pixels``) and returns
``boxes [N, A, 4]`` (x1, y1, x2, y2 in input pixels) and ``scores [N, A, C]``. Everything
around it lives here, in NumPy, so PyTorch, ONNX Runtime, OpenVINO, the Gradio Space
(no torch) and the browser port (``web/counter.js``) all resize, tile, normalise, threshold,
suppress and rescale the same way:

    photo -> resize to the working scale -> S x S tiles -> normalise -> [graph]
          -> threshold -> keep what each tile owns -> NMS -> rescale -> Detections

One module per step, imported in this order: ``timing`` (where a request's milliseconds go:
``recording``, ``part``), ``config`` (:class:`InferenceConfig`, :class:`Detections`),
``bands`` (Pillow's resize and the normalisation in row bands, one per core), ``pixels``
(letterbox, normalise, ``preprocess``), ``boxes`` (``nms``, ``postprocess``) and
``tiling`` (the working scale, tiles, seams, ``count_tiled``, scale notes).
"""

from __future__ import annotations

from .boxes import (
    nms,
    postprocess,
    postprocess_one,
)
from .config import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Detections,
    InferenceConfig,
)
from .pixels import (
    NORMALIZED,
    PIXEL_FORMATS,
    UINT8,
    letterbox,
    normalize,
    preprocess,
    to_rgb_array,
)
from .tiling import (
    FIT_SLACK,
    ScaleError,
    TileGrid,
    count_tiled,
    merge_tiles,
    plan_tiles,
    run_tiles,
    scale_note,
    seams,
    suggested_scale,
    tile_starts,
    tiles,
    working_image,
)
from .timing import (
    PARTS,
    CallTimes,
    part,
    recording,
)

__all__ = [
    "NORMALIZED",
    "PARTS",
    "PIXEL_FORMATS",
    "UINT8",
    "CallTimes",
    "Detections",
    "FIT_SLACK",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "InferenceConfig",
    "ScaleError",
    "TileGrid",
    "count_tiled",
    "letterbox",
    "merge_tiles",
    "nms",
    "normalize",
    "part",
    "plan_tiles",
    "postprocess",
    "postprocess_one",
    "preprocess",
    "recording",
    "run_tiles",
    "scale_note",
    "seams",
    "suggested_scale",
    "tile_starts",
    "tiles",
    "to_rgb_array",
    "working_image",
]
