"""The counting core, without gradio: one request in, a :class:`CountResult` out.

Checks the inputs (threshold, base64 images) in one sentence each, loads any upload with
``images.load_image``, counts with any :class:`~utils.runtime.Predictor`, draws the boxes
(``viz``, imported when drawing) and builds the ``/count_base64`` JSON. The UI (``ui``), the
limits (``limits``), the clients and the benchmarks share it. No exception escapes
:func:`count_safely`: a server answers every upload with a count or one sentence.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..images import MAX_SIDE, load_image
from ..processing import ScaleError, part

if TYPE_CHECKING:
    from ..runtime import Predictor

API_NAME = "count"
BASE64_API_NAME = "count_base64"
MAX_UPLOAD_MB = 25  # one limit per image on every route: a phone photo is 2-8 MB
MAX_FILE_SIZE = f"{MAX_UPLOAD_MB}mb"  # Gradio's upload route answers 413 above this
MAX_FILE_BYTES = MAX_UPLOAD_MB * 1024 * 1024
# Any request body (the base64 JSON of /count_base64 included): the base64 of a 25 MB image
# is 4/3 as long, plus room for the JSON around it. Larger bodies get 413 before parsing.
MAX_BODY_BYTES = MAX_FILE_BYTES * 4 // 3 + 256 * 1024
APP_MAX_PIXELS = 64_000_000  # decoded per request (~190 MB of RGB); see images.MAX_PIXELS
INTERNAL_ERROR = (
    "the server could not count this image (an internal error, logged on the server); "
    "try again, or report it with the image"
)
DISPLAY_SIDE = 1600  # the annotated picture is sent at most this big (boxes drawn at that size)
TABLE_COLUMNS = ["#", "score", "x1", "y1", "x2", "y2"]
# A model of several classes (BCCD: RBC, WBC, Platelets) adds each box's class to the table.
CLASS_TABLE_COLUMNS = ["#", "class", "score", "x1", "y1", "x2", "y2"]


def table_columns(class_names: tuple[str, ...] | list[str]) -> list[str]:
    """The detections table's header: a ``class`` column only when the model has several."""
    return CLASS_TABLE_COLUMNS if len(class_names) > 1 else TABLE_COLUMNS


@dataclass
class CountResult:
    """What one request produces; ``count`` is None when the upload could not be used."""

    image: Image.Image | None
    count: int | None
    rows: list[list[float | int | str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    tiles: int = 0  # model inputs the photo took at the working scale
    scale: float = 0.0  # working pixels per photo pixel
    # Per class (Detections.counts_by_class), only for a model of several classes: the
    # course's one-class answers stay as they were.
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """The header of :attr:`rows`."""
        return CLASS_TABLE_COLUMNS if self.counts else TABLE_COLUMNS

    def by_class(self) -> str:
        """``Microalgae 5, Round 4, Speck 0``: the per-class counts in one phrase ('' for one class)."""
        return ", ".join(f"{name} {n}" for name, n in self.counts.items())

    def notes_markdown(self) -> str:
        if self.error:
            lines = [f"**Could not count this upload.** {self.error}"]
        elif self.count is None:
            lines = ["Upload a photo (or pick an example) to count the cells."]
        else:
            cells = "cell" if self.count == 1 else "cells"
            tiles = f"{self.tiles} tiles" if self.tiles != 1 else "1 input"
            lines = [
                f"**{self.count} {cells}** found in {self.seconds * 1000:.0f} ms "
                f"({tiles} at scale {self.scale:.3g})."
                + (f" By class: {self.by_class()}." if self.counts else "")
            ]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)

    def to_json(self, with_image: bool = True) -> dict[str, Any]:
        """The ``/count_base64`` answer: plain JSON, the picture as a JPEG data URL."""
        out: dict[str, Any] = {
            "count": self.count,
            "detections": [dict(zip(self.columns, row)) for row in self.rows],
            "notes": self.notes,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "tiles": self.tiles,
        }
        if self.counts:  # several classes: the count of each, every class listed
            out["counts"] = dict(self.counts)
        if with_image:
            with part("encode"):
                out["image"] = to_data_url(self.image) if self.image is not None else None
        return out


def count_cells(
    predictor: Predictor,
    image: Any,
    threshold: Any = None,
    show_boxes: bool = True,
    show_scores: bool = True,
    display_side: int = DISPLAY_SIDE,
    max_side: int = MAX_SIDE,
    max_pixels: int = APP_MAX_PIXELS,
) -> CountResult:
    """Check the inputs, load any upload, detect, draw: the whole request, without gradio.

    Bad inputs never raise: the result carries ``error`` (one sentence) so the UI and the
    API can show it and the server keeps serving.
    """
    start = time.perf_counter()
    if image is None or (isinstance(image, str) and not image.strip()):
        return CountResult(None, None)
    try:
        value = check_threshold(threshold, float(predictor.config.score_threshold))
        with part("decode"):
            loaded = load_image(image, max_side=max_side, max_pixels=max_pixels)
    except ValueError as error:  # InputError, ImageError
        return CountResult(None, None, error=str(error), seconds=time.perf_counter() - start)
    try:
        detections = predictor.predict(loaded.image, value)
    except ScaleError as error:  # a thumbnail, a panorama needing too many tiles
        return CountResult(None, None, error=str(error), seconds=time.perf_counter() - start)
    seconds = time.perf_counter() - start  # decode + count: what the person waited for
    with part("draw"):
        annotated = annotate(loaded.image, detections, show_boxes, show_scores, display_side)
    several = len(detections.class_names) > 1
    with part("postprocess"):  # the table's rows
        names = detections.label_names()
        rows = [
            [i + 1, *([names[i]] if several else []), round(float(s), 3)]
            + [round(float(v), 1) for v in box]
            for i, (box, s) in enumerate(zip(detections.boxes, detections.scores))
        ]
    notes = [*loaded.notes, *([detections.note] if detections.note else [])]
    return CountResult(
        annotated,
        detections.count,
        rows,
        notes,
        seconds=seconds,
        tiles=detections.tiles,
        scale=detections.scale,
        counts=detections.counts_by_class() if several else {},
    )


# ----------------------------------------------------------------------------- inputs


class InputError(ValueError):
    """A request field with the wrong type or value; the message names it in one sentence."""


def _kind(value: Any) -> str:
    """What a client sent, without echoing it (it may be megabytes long, or someone's data)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a " + type(value).__name__


def check_threshold(value: Any, default: float) -> float:
    """The threshold as a float in [0, 1]; None means the model's default.

    Never clamped: NaN would count every candidate box, and -1 or 2 would quietly mean 0 or 1.
    """
    if value is None:
        return float(default)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise InputError(
            f"threshold must be a number between 0 and 1 (got {_kind(value)}); send e.g. 0.5"
        )
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise InputError(
            f"threshold must be a number between 0 and 1 (got {number:g}); send e.g. 0.5"
        )
    return number


def check_image_string(value: Any) -> str:
    """The base64 part of a ``/count_base64`` image, refused above the upload limit undecoded."""
    if not isinstance(value, str):
        raise InputError(
            "image must be a string 'data:image/jpeg;base64,<base64 of the file>' "
            f"(got {_kind(value)})"
        )
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    if len(payload) * 3 // 4 > MAX_FILE_BYTES:
        raise InputError(
            f"image is larger than {MAX_UPLOAD_MB} MB; resize the photo to at most "
            f"{MAX_SIDE} px on the longer side, save it as JPEG and send it again"
        )
    return payload


def annotate(image: Image.Image, detections, show_boxes: bool, show_scores: bool, side: int):
    """Boxes drawn on a copy at most ``side`` px (smaller pictures travel and draw faster).

    A large photo (a 12 MP phone photo) gets the overview plus a full-resolution close-up
    of its densest part beside it, so its cells stay readable.
    """
    from ..viz import overview_with_closeup

    return overview_with_closeup(
        image,
        detections.boxes,
        detections.scores,
        side=side,
        show_scores=show_scores,
        show_boxes=show_boxes,
    )


def save_picture(image: Image.Image | None, folder: str | Path) -> str | None:
    """The annotated picture as a JPEG file in Gradio's cache folder (None: no picture).

    What ``gr.Image(format="jpeg")`` does with a returned PIL image (Pillow's JPEG, quality 75,
    a folder named by the bytes' hash), done in the handler so the encoding is timed as a
    part of the call. JPEG because it is the fastest of the formats every client shows:
    0.8 ms for a 640 px picture here, against 29 ms for WebP and 87 ms for PNG.
    """
    if image is None:
        return None
    with part("encode"):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG")
        data = buffer.getvalue()
        target = Path(folder) / hashlib.sha256(data).hexdigest()
        target.mkdir(parents=True, exist_ok=True)
        path = target / "image.jpeg"
        path.write_bytes(data)
    return str(path.resolve())


def to_data_url(image: Image.Image, quality: int = 90) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_data_url(value: Any) -> bytes:
    """``data:image/jpeg;base64,....`` (or bare base64) -> bytes, checked before decoding.

    Raises :class:`InputError` for a non-string, an image over the size limit, or text that
    is not base64 (strictly: stray characters are refused, not skipped).
    """
    payload = "".join(check_image_string(value).split())  # MIME base64 may wrap lines
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InputError(
            "image is not valid base64; send 'data:image/jpeg;base64,<base64 of the JPEG file>'"
        ) from error


# ----------------------------------------------------------------------------- the app


def count_safely(
    predictor: Any,
    image: Any,
    threshold: Any,
    show_boxes: bool = True,
    show_scores: bool = True,
    base64_input: bool = False,
) -> CountResult:
    """:func:`count_cells` for a server: data URLs decoded here, and no exception escapes.

    An unexpected error is logged (with its traceback) on the server; the client gets one
    sentence without paths or its own request echoed back.
    """
    try:
        if base64_input or (isinstance(image, str) and image.startswith("data:")):
            if base64_input:
                check_threshold(threshold, 0.0)  # one sentence for the first bad field
            with part("decode"):
                image = decode_data_url(image)
        return count_cells(predictor, image, threshold, show_boxes, show_scores)
    except InputError as error:
        return CountResult(None, None, error=str(error))
    except Exception:
        logging.getLogger("utils.app").exception("counting failed")
        return CountResult(None, None, error=INTERNAL_ERROR)


class Guarded:
    """The predictor seen through one ``predict`` that is safe to call from several threads.

    A predictor whose ``thread_safe`` is False (OpenVINO's single infer request, eager
    PyTorch) is serialised by a lock; ONNX Runtime sessions run concurrently. With
    ``concurrency`` > 1, a predictor that can make a twin with fewer threads (``with_threads``:
    ONNX Runtime) gets one of ``threads // concurrency`` threads: a photo counted alone runs on
    the whole pool (the fastest single call), a photo counted while another is in flight runs
    on the twin, so two calls share the cores instead of queueing in one pool (measured in the
    README's API section, ``python -m utils.bench api``).
    """

    def __init__(self, predictor: Predictor, concurrency: int = 1):
        self.config = predictor.config
        self.runtime = getattr(predictor, "runtime", "?")
        self.lock = None if getattr(predictor, "thread_safe", False) else threading.Lock()
        self._predictor = predictor
        # None: the runtime's own choice, one thread per core
        threads = getattr(predictor, "threads", None) or os.cpu_count() or 1
        share = threads // max(1, concurrency)
        self._twin = None
        if self.lock is None and concurrency > 1 and 0 < share < threads:
            make_twin = getattr(predictor, "with_threads", None)
            self._twin = make_twin(share) if make_twin is not None else None
        self._in_flight = 0
        self._counter = threading.Lock()
        self.twin_calls = 0  # how many calls ran on the twin (read by tests and benchmarks)

    def predict(self, image: Any, threshold: float | None = None) -> Any:
        if self.lock is not None:
            with self.lock:
                return self._predictor.predict(image, threshold)
        with self._counter:
            self._in_flight += 1
            crowded = self._in_flight > 1 and self._twin is not None
            self.twin_calls += crowded
        try:
            return (self._twin if crowded else self._predictor).predict(image, threshold)
        finally:
            with self._counter:
                self._in_flight -= 1


def guarded(predictor: Predictor, concurrency: int = 1) -> Guarded:
    """:class:`Guarded` around ``predictor`` (see there)."""
    return Guarded(predictor, concurrency)
