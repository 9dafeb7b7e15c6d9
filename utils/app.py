"""The cell-counting demo: one Gradio app for the notebook, ``make demo``, the Space and the API.

``build_demo(predictor)`` runs on any :class:`~utils.runtime.Predictor` (PyTorch, ONNX
Runtime, OpenVINO). The Space copies this module together with ``processing``,
``runtime``, ``images``, ``viz`` and ``config`` and runs it on ONNX Runtime, so nothing here
imports torch, and gradio itself is imported only when an app is built.

Two API endpoints, both named:

* ``/count`` (the UI's button): image file, threshold, show boxes, show scores ->
  annotated image, count, detections table, notes. ``gradio_client`` and ``@gradio/client``
  call it with ``handle_file(path)``; raw HTTP uploads the file first (``call_with_requests``).
* ``/count_base64``: one JSON-friendly call for phone apps: a ``data:image/...;base64,``
  string in, ``{"count", "detections", "notes", "image"}`` out - what the talk's Flutter
  app sent to Gradio 2's ``/api/predict``, on today's routes.

Run it: ``python -m utils.app [--model artifacts/model.onnx] [--port 7860] [--host 127.0.0.1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import functools
import io
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .images import MAX_SIDE, load_image
from .processing import ScaleError

if TYPE_CHECKING:
    import gradio as gr

    from .runtime import Predictor

API_NAME = "count"
BASE64_API_NAME = "count_base64"
TITLE = "Microalgae cell counter"
MAX_UPLOAD_MB = 25  # one limit per image on every route: a phone photo is 2-8 MB
MAX_FILE_SIZE = f"{MAX_UPLOAD_MB}mb"  # Gradio's upload route answers 413 above this
MAX_FILE_BYTES = MAX_UPLOAD_MB * 1024 * 1024
# Any request body (the base64 JSON of /count_base64 included): the base64 of a 25 MB image
# is 4/3 as long, plus room for the JSON around it. Larger bodies get 413 before parsing.
MAX_BODY_BYTES = MAX_FILE_BYTES * 4 // 3 + 256 * 1024
APP_MAX_PIXELS = 64_000_000  # decoded per request (~190 MB of RGB); see images.MAX_PIXELS
CONCURRENCY = 2  # requests decoded and counted at once: bounds memory to ~2 x APP_MAX_PIXELS
SESSION_CAPACITY = 64  # browser sessions kept (the app keeps no per-session data of its own)
CACHE_SWEEP = (300, 900)  # every 5 min, delete uploads and pictures older than 15 min
MAX_QUEUE = 128  # waiting requests; more get HTTP 503 (each holds its body: <= 128 x 34 MB)
ANALYTICS_EVENTS = 1000  # events Gradio keeps timings of (its default: 10,000)
SWEEP_SECONDS = 2.0  # how often finished API sessions are dropped from Gradio's queue
UNCLAIMED_SECONDS = 300.0  # a result no client fetched is dropped after this
INTERNAL_ERROR = (
    "the server could not count this image (an internal error, logged on the server); "
    "try again, or report it with the image"
)
DISPLAY_SIDE = 1600  # the annotated picture is sent at most this big (boxes drawn at that size)
IMAGE_HEIGHT = 420  # px on screen; the pictures keep their full resolution
TABLE_COLUMNS = ["#", "score", "x1", "y1", "x2", "y2"]

DESCRIPTION = """\
Upload a photo of a microalgae sample taken through the microscope (or use the webcam,
paste from the clipboard, or pick an example). The detector draws a box around every cell
it finds and counts those scoring at least the **detection threshold**.
"""


# ----------------------------------------------------------------------------- counting


@dataclass
class CountResult:
    """What one request produces; ``count`` is None when the upload could not be used."""

    image: Image.Image | None
    count: int | None
    rows: list[list[float | int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    tiles: int = 0  # model inputs the photo took at the working scale
    scale: float = 0.0  # working pixels per photo pixel

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
            ]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)

    def to_json(self, with_image: bool = True) -> dict[str, Any]:
        """The ``/count_base64`` answer: plain JSON, the picture as a JPEG data URL."""
        out: dict[str, Any] = {
            "count": self.count,
            "detections": [dict(zip(TABLE_COLUMNS, row)) for row in self.rows],
            "notes": self.notes,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "tiles": self.tiles,
        }
        if with_image:
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
        loaded = load_image(image, max_side=max_side, max_pixels=max_pixels)
    except ValueError as error:  # InputError, ImageError
        return CountResult(None, None, error=str(error), seconds=time.perf_counter() - start)
    try:
        detections = predictor.predict(loaded.image, value)
    except ScaleError as error:  # a thumbnail, a panorama needing too many tiles
        return CountResult(None, None, error=str(error), seconds=time.perf_counter() - start)
    seconds = time.perf_counter() - start  # decode + count: what the person waited for
    annotated = annotate(loaded.image, detections, show_boxes, show_scores, display_side)
    rows = [
        [i + 1, round(float(s), 3), *(round(float(v), 1) for v in box)]
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
    from .viz import overview_with_closeup

    return overview_with_closeup(
        image,
        detections.boxes,
        detections.scores,
        side=side,
        show_scores=show_scores,
        show_boxes=show_boxes,
    )


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


def _gradio():
    """``import gradio``, without tqdm's "IProgress not found" warning in notebooks."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import gradio

    return gradio


def _photo_input_class():
    """``gr.Image`` that hands the uploaded file over untouched.

    Plain ``gr.Image(type="filepath")`` opens the file with Pillow first, so a non-image
    fails inside Gradio with a generic error, before our message can say what is wrong.
    ``is_template`` keeps the browser side identical to ``gr.Image``.
    """
    gr = _gradio()

    global _PHOTO_INPUT
    if _PHOTO_INPUT is not None:
        return _PHOTO_INPUT

    class PhotoInput(gr.Image):
        is_template = True

        def preprocess(self, payload):  # type: ignore[override]
            if payload is None:
                return None
            if payload.url and payload.url.startswith("data:"):
                return payload.url  # decoded (and checked) by the handler, errors in the notes
            return str(payload.path) if payload.path else None

    _PHOTO_INPUT = PhotoInput
    return PhotoInput


_PHOTO_INPUT = None
_THRESHOLD_INPUT = None


def _threshold_input_class():
    """``gr.Slider`` that hands the raw value to the handler, which checks it in one sentence.

    Plain ``gr.Slider`` answers a string with a Python ``TypeError`` text and lets NaN through.
    """
    gr = _gradio()

    global _THRESHOLD_INPUT
    if _THRESHOLD_INPUT is None:

        class ThresholdInput(gr.Slider):
            is_template = True

            def preprocess(self, payload):  # type: ignore[override]
                return payload

        _THRESHOLD_INPUT = ThresholdInput
    return _THRESHOLD_INPUT


def build_demo(
    predictor: Predictor,
    examples: Sequence[str | Path] | None = None,
    title: str = TITLE,
    description: str = DESCRIPTION,
    concurrency_limit: int | None = None,
    max_queue: int = MAX_QUEUE,
    delete_cache: tuple[int, int] | None = CACHE_SWEEP,
) -> gr.Blocks:
    """The Blocks app: inputs, outputs, examples, the two API endpoints and the queue.

    Its ``launch`` applies :func:`launch_limits` (size limit on every route, bounded session
    store) unless told otherwise, so every entry point, the Space included, gets them.
    """
    # Gradio keeps per-event timing for its ETA estimates, up to 10,000 events (~3 KB of
    # memory per call until then); the last 1,000 estimate just as well.
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", str(ANALYTICS_EVENTS))
    gr = _gradio()

    default = float(predictor.config.score_threshold)
    lock = None if getattr(predictor, "runtime", "") == "onnxruntime" else threading.Lock()
    # ONNX Runtime sessions may run from several threads; OpenVINO's single infer request
    # and eager PyTorch are serialised by a lock.

    def predict(image: Any, threshold: float | None) -> Any:
        if lock is None:
            return predictor.predict(image, threshold)
        with lock:
            return predictor.predict(image, threshold)

    guarded = _Guarded(predictor, predict)

    def on_count(image, threshold, show_boxes, show_scores, request=None):
        try:
            result = _count_safely(guarded, image, threshold, bool(show_boxes), bool(show_scores))
        finally:
            forget_session(demo, request)
        if result.error:
            gr.Warning(result.error)
        return result.image, result.count, _table(result.rows), result.notes_markdown()

    def count_base64(image: str, threshold: float = default, request=None) -> dict:
        """Count cells in a base64 image (a data URL); returns count, detections, notes, image."""
        try:
            return _count_safely(guarded, image, threshold, base64_input=True).to_json()
        finally:
            forget_session(demo, request)

    # Gradio passes the request to a parameter annotated gr.Request (resolved at runtime).
    on_count.__annotations__["request"] = gr.Request
    count_base64.__annotations__["request"] = gr.Request

    photo_input = _photo_input_class()
    runtime = getattr(predictor, "runtime", "?")
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=delete_cache) as demo:
        gr.Markdown(f"# {title}\n{description}")
        with gr.Row():
            with gr.Column():
                image = photo_input(
                    label="Microscope photo",
                    type="filepath",
                    sources=["upload", "webcam", "clipboard"],
                    height=IMAGE_HEIGHT,
                    elem_id="photo",
                )
                threshold = _threshold_input_class()(
                    0.0,
                    1.0,
                    value=default,
                    step=0.01,
                    label="Detection threshold",
                    info=f"Count boxes scoring at least this (the model's choice: {default:.3g})",
                    elem_id="threshold",
                )
                with gr.Row():
                    show_boxes = gr.Checkbox(value=True, label="Show boxes", elem_id="show_boxes")
                    show_scores = gr.Checkbox(
                        value=True, label="Show scores", elem_id="show_scores"
                    )
                button = gr.Button("Count cells", variant="primary", elem_id="submit")
            with gr.Column():
                annotated = gr.Image(
                    label="Detections",
                    type="pil",
                    format="jpeg",
                    interactive=False,
                    height=IMAGE_HEIGHT,
                    elem_id="annotated",
                )
                count = gr.Number(label="Cell count", precision=0, elem_id="count")
                notes = gr.Markdown(elem_id="notes")
        table = gr.Dataframe(
            headers=TABLE_COLUMNS,
            label="Detections (box corners in image pixels)",
            interactive=False,
            elem_id="detections",
        )
        if examples:
            gr.Examples(
                examples=[[str(p)] for p in examples],
                inputs=[image],
                label="Held-out test images",
                examples_per_page=8,
            )
        gr.Markdown(
            f"Model: `{predictor.config.model_name}` at {predictor.config.image_size} px, "
            f"run by **{runtime}**. API: `/{API_NAME}` (files) and `/{BASE64_API_NAME}` "
            "(a base64 data URL in, JSON out) - see *Use via API* below."
        )
        button.click(
            on_count,
            [image, threshold, show_boxes, show_scores],
            [annotated, count, table, notes],
            api_name=API_NAME,
            concurrency_limit=concurrency_limit or "default",
        )
        gr.api(count_base64, api_name=BASE64_API_NAME)
    limit = concurrency_limit or (CONCURRENCY if lock is None else 1)
    demo.queue(default_concurrency_limit=limit, max_size=max_queue)
    demo.course_concurrency_limit = limit  # read by utils.bench.api
    demo.launch = _with_limits(demo.launch)
    return demo


def _count_safely(
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
            image = decode_data_url(image)
        return count_cells(predictor, image, threshold, show_boxes, show_scores)
    except InputError as error:
        return CountResult(None, None, error=str(error))
    except Exception:
        logging.getLogger(__name__).exception("counting failed")
        return CountResult(None, None, error=INTERNAL_ERROR)


def forget_session(holder: Any, session: Any) -> None:
    """Drop a session's Gradio state (``holder``: a Blocks or its ``StateHolder``).

    Gradio keeps every session's inputs and outputs (a 13 MB base64 body, the returned
    picture) and opens one session per API call: without this, memory grows by the
    request size per call until 10,000 sessions. The app keeps nothing per session, so a
    browser tab loses nothing (a running event holds its own reference to the state).
    ``session``: the session hash, or a ``gr.Request``.
    """
    session_hash = getattr(session, "session_hash", session)
    holder = getattr(holder, "state_holder", holder)
    if not isinstance(session_hash, str) or not hasattr(holder, "session_data"):
        return
    with holder.lock:
        holder.session_data.pop(session_hash, None)
        holder.time_last_used.pop(session_hash, None)


class SessionSweeper:
    """Drops the queue's per-session mailboxes once their results are delivered.

    Gradio keeps, for every session, a message queue and a set of event ids; the ``/call``
    routes open one session per call and nothing removes them (~5 KB per call, and a
    result nobody came for keeps its whole answer). A session with no queued or running
    event is dropped once its mailbox is empty for ``grace`` seconds, or after
    ``unclaimed`` seconds whatever it holds.
    """

    def __init__(self, grace: float = SWEEP_SECONDS, unclaimed: float = UNCLAIMED_SECONDS):
        self.grace = grace
        self.unclaimed = unclaimed
        self.first_idle: dict[str, float] = {}

    def sweep(self, queue: Any, now: float, states: Any = None) -> int:
        """One pass over ``queue`` (a Gradio ``Queue``); returns how many sessions it dropped.

        ``states`` (the ``StateHolder``) loses those sessions too: a call that failed before
        our handler ran (a malformed file field) never reached :func:`forget_session`.
        """
        mailboxes = queue.pending_messages_per_session
        pending = queue.pending_event_ids_session
        dropped = 0
        for session in set(mailboxes) | set(pending):
            ids = pending.get(session) or set()
            if any(i in queue.event_ids_to_events for i in ids):  # queued or running
                self.first_idle.pop(session, None)
                continue
            mailbox = mailboxes.get(session)
            delivered = mailbox is None or mailbox.empty()
            idle = now - self.first_idle.setdefault(session, now)
            if (delivered and idle >= self.grace) or idle >= self.unclaimed:
                mailboxes.pop(session, None)
                pending.pop(session, None)
                self.first_idle.pop(session, None)
                if states is not None:
                    forget_session(states, session)
                dropped += 1
        for session in set(self.first_idle) - set(mailboxes) - set(pending):
            del self.first_idle[session]
        return dropped


async def _sweep_forever(app: Any) -> None:
    sweeper = SessionSweeper()
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            blocks = app.get_blocks()
            queue = blocks._queue
            async with queue.pending_message_lock:
                dropped = sweeper.sweep(
                    queue, time.monotonic(), getattr(blocks, "state_holder", None)
                )
            if dropped:
                trim_heap()
        except Exception:  # housekeeping must never stop the server
            logging.getLogger(__name__).exception("session sweep failed")


def trim_heap() -> bool:
    """glibc: hand the free pages of its heaps back to the OS (``malloc_trim``).

    Requests free thousands of small objects (bodies, JSON, pictures) that leave holes
    glibc would otherwise keep; after a sweep is a quiet moment to return them.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):
        return False


@contextlib.asynccontextmanager
async def _lifespan(app: Any):
    """Runs :class:`SessionSweeper` every ``SWEEP_SECONDS`` while the server is up."""
    task = asyncio.create_task(_sweep_forever(app))
    try:
        yield
    finally:
        task.cancel()


def launch_limits() -> dict[str, Any]:
    """The limits every launch gets: upload size, request body size, a bounded session store.

    ``show_error=False``: Gradio's own errors (a malformed file field, say) would show the
    client's input and server paths; ours never raise, they come back as one sentence.
    """
    from fastapi.exceptions import RequestValidationError
    from starlette.middleware import Middleware

    return {
        "max_file_size": MAX_FILE_SIZE,
        "state_session_capacity": SESSION_CAPACITY,
        "show_error": False,
        "app_kwargs": {
            "middleware": [Middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)],
            "exception_handlers": {RequestValidationError: _invalid_request},
            "lifespan": _lifespan,
        },
    }


def return_big_buffers_to_the_os(threshold: int = 1 << 20) -> bool:
    """glibc: serve allocations over ``threshold`` bytes by mmap, so they go back when freed.

    glibc otherwise raises its mmap threshold after the first big free and keeps later
    decodes in its heap arenas: two 62 MP images at a time left the server at 1.1 GB, then
    1.5 GB; with this it returns to ~280 MB after each. False where there is no glibc.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl (Alpine) has no mallopt
        return False
    m_mmap_threshold = -3  # from <malloc.h>
    return bool(mallopt(m_mmap_threshold, threshold))


def _with_limits(launch: Callable[..., Any]) -> Callable[..., Any]:
    """``demo.launch`` with :func:`launch_limits` (a caller may only set a smaller file size)."""

    @functools.wraps(launch)
    def launch_with_limits(*args: Any, **kwargs: Any) -> Any:
        return_big_buffers_to_the_os()
        limits = launch_limits()
        kwargs.setdefault("max_file_size", limits.pop("max_file_size"))
        kwargs.update(limits)
        return launch(*args, **kwargs)

    return launch_with_limits


def body_too_large_message(max_bytes: int = MAX_BODY_BYTES) -> str:
    return (
        f"The request body is larger than {max_bytes / 2**20:.0f} MB; send an image of at most "
        f"{MAX_UPLOAD_MB} MB (its base64 is a third larger), e.g. a JPEG at most {MAX_SIDE} px "
        "on the longer side."
    )


class BodySizeLimit:
    """ASGI middleware: any request body over ``max_bytes`` gets HTTP 413 before it is parsed.

    Gradio's ``max_file_size`` guards only its upload route; a base64 image in a JSON body
    would otherwise be read whole, whatever its size. Checks ``Content-Length`` first and
    counts the bytes of bodies sent without it.
    """

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = refused = False

        async def counting_receive() -> dict:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now and tell the app the client left: a route that parses
                    # the body would turn an exception into its own 400 answer.
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if refused:
                return  # the client already has its 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:  # after our 413 the app may complain about the "disconnect"
                raise

    async def _refuse(self, send: Callable) -> None:
        body = json.dumps({"error": body_too_large_message(self.max_bytes)}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _invalid_request(request: Any, error: Any) -> Any:
    """FastAPI's 422 answer echoes the whole request body back; name the field only."""
    from fastapi.responses import JSONResponse

    first = (error.errors() or [{}])[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")[:60]
    problem = str(first.get("msg", "invalid value"))[:120]
    message = (
        f"The request does not match this route ({where or 'body'}: {problem}); send the body "
        'the app\'s API page shows (e.g. /count_base64 takes {"data": [image, threshold]}).'
    )
    return JSONResponse({"error": message}, status_code=422)


class _Guarded:
    """The predictor seen through ``predict`` (lock or not), with the same config/runtime."""

    def __init__(self, predictor: Predictor, predict: Callable[..., Any]):
        self.config = predictor.config
        self.runtime = getattr(predictor, "runtime", "?")
        self.predict = predict


def _table(rows: list[list[float | int]]):
    import pandas as pd

    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


# ----------------------------------------------------------------------------- running


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def launch_kwargs(host: str = "127.0.0.1", port: int | None = None) -> dict[str, Any]:
    """The launch settings every entry point shares (limits, no telemetry, errors shown)."""
    return {
        "server_name": host,
        "server_port": port,
        **launch_limits(),
        "quiet": True,
        "footer_links": ["api", "gradio"],
    }


def launch_in_background(
    predictor_or_demo: Any,
    port: int | None = None,
    host: str = "127.0.0.1",
    examples: Sequence[str | Path] | None = None,
    inline: bool = False,
    **kwargs: Any,
) -> tuple[str, Callable[[], None]]:
    """Start the app without blocking; returns (url, close). Loopback by default.

    ``inline=True`` also shows the app inside the notebook (an IFrame output).
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = predictor_or_demo
    if not hasattr(demo, "launch"):
        demo = build_demo(predictor_or_demo, examples=examples)
    options = launch_kwargs(host, port or free_port(host))
    options.update(kwargs)
    demo.launch(prevent_thread_lock=True, inline=inline, **options)
    url = f"http://{host}:{options['server_port']}/"

    def close() -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # "Closing server running on port ..."
            demo.close()

    return url, close


def default_examples(limit: int = 6) -> list[Path]:
    """A few held-out test images (``data/test``), if they exist."""
    from .config import test_dir

    folder = test_dir()
    images = (
        sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif"}
        )
        if folder.exists()
        else []
    )
    return images[:limit]


# ----------------------------------------------------------------------------- clients


def call_with_client(url: str, image_path: str | Path, threshold: float | None = None) -> dict:
    """``gradio_client``: the official Python client (it uploads the file for us)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, analytics_enabled=False)
    try:
        kwargs: dict[str, Any] = {"image": handle_file(str(image_path))}
        if threshold is not None:
            kwargs["threshold"] = threshold
        picture, count, table, notes = client.predict(**kwargs, api_name=f"/{API_NAME}")
    finally:
        client.close()
    return {"count": _as_count(count), "image": picture, "table": table, "notes": notes}


def call_with_requests(
    url: str,
    image_path: str | Path,
    threshold: float = 0.5,
    show_boxes: bool = True,
    show_scores: bool = True,
    timeout: float = 60.0,
    session: Any = None,
    record: list[dict[str, Any]] | None = None,
) -> dict:
    """Plain HTTP, the three requests any language can make (see ``clients/python_requests.py``).

    1. ``POST /gradio_api/upload`` (multipart ``files``) -> ``["<server path>"]``
    2. ``POST /gradio_api/call/count`` ``{"data": [FileData, threshold, boxes, scores]}``
       -> ``{"event_id": ...}``
    3. ``GET /gradio_api/call/count/<event_id>`` -> a server-sent-event stream ending in
       ``event: complete`` + ``data: [image, count, table, notes]`` (or ``event: error``).

    ``record`` (a list) receives each request and response for display.
    """
    import requests

    http = session or requests.Session()
    base = url.rstrip("/")
    path = Path(image_path)
    with path.open("rb") as handle:
        response = http.post(
            f"{base}/gradio_api/upload", files={"files": (path.name, handle)}, timeout=timeout
        )
    response.raise_for_status()
    server_path = response.json()[0]
    _record(
        record, "POST", "/gradio_api/upload", f"<multipart: files={path.name}>", response.json()
    )
    body = {
        "data": [
            {"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}},
            threshold,
            show_boxes,
            show_scores,
        ]
    }
    response = http.post(f"{base}/gradio_api/call/{API_NAME}", json=body, timeout=timeout)
    response.raise_for_status()
    event_id = response.json()["event_id"]
    _record(record, "POST", f"/gradio_api/call/{API_NAME}", body, response.json())
    event, data = read_sse_result(http, f"{base}/gradio_api/call/{API_NAME}/{event_id}", timeout)
    _record(record, "GET", f"/gradio_api/call/{API_NAME}/<event_id>", None, {event: data})
    if event != "complete":
        raise RuntimeError(f"the app answered {event}: {data}")
    picture, count, table, notes = data
    return {"count": _as_count(count), "image": picture, "table": table, "notes": notes}


def call_base64_with_requests(
    url: str,
    image_path: str | Path,
    threshold: float | None = None,
    timeout: float = 60.0,
    session: Any = None,
    record: list[dict[str, Any]] | None = None,
) -> dict:
    """The phone-app way: a base64 data URL in one JSON body to ``/count_base64``."""
    import requests

    http = session or requests.Session()
    base = url.rstrip("/")
    data = Path(image_path).read_bytes()
    mime = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
    image = f"data:{mime};base64," + base64.b64encode(data).decode()
    body: dict[str, Any] = {"data": [image, threshold]}
    response = http.post(f"{base}/gradio_api/call/{BASE64_API_NAME}", json=body, timeout=timeout)
    response.raise_for_status()
    event_id = response.json()["event_id"]
    _record(record, "POST", f"/gradio_api/call/{BASE64_API_NAME}", body, response.json())
    event, answer = read_sse_result(
        http, f"{base}/gradio_api/call/{BASE64_API_NAME}/{event_id}", timeout
    )
    _record(record, "GET", f"/gradio_api/call/{BASE64_API_NAME}/<event_id>", None, {event: answer})
    if event != "complete":
        raise RuntimeError(f"the app answered {event}: {answer}")
    return answer[0]


def read_sse_result(http: Any, url: str, timeout: float = 60.0) -> tuple[str, Any]:
    """Read a Gradio server-sent-event stream until ``complete`` or ``error``."""
    event = None
    with http.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        for raw in response.iter_lines(decode_unicode=True):
            if not raw:
                continue
            if raw.startswith("event:"):
                event = raw.split(":", 1)[1].strip()
            elif raw.startswith("data:") and event in ("complete", "error"):
                payload = raw.split(":", 1)[1].strip()
                return event, json.loads(payload) if payload else None
    raise RuntimeError(f"the event stream ended without a result (last event: {event})")


def _as_count(value: Any) -> int | None:
    return None if value is None else int(round(float(value)))


def _record(record: list | None, method: str, route: str, body: Any, answer: Any) -> None:
    if record is not None:
        record.append({"request": f"{method} {route}", "body": body, "response": answer})


def shorten(value: Any, limit: int = 80, rows: int = 3) -> Any:
    """A JSON value made printable: long strings (base64) cut, server paths and URLs
    replaced by placeholders (they name this machine's folders and a volatile port),
    long lists (detections) cut to ``rows`` items."""
    if isinstance(value, str):
        if "/gradio_api/file=" in value:
            return "<app url>/gradio_api/file=<server path>/" + value.rsplit("/", 1)[-1]
        if value.startswith(("http://127.0.0.1", "http://localhost")):
            return "<app url>/" + value.split("/", 3)[-1]
        if value.startswith(("/", "\\")) or (len(value) > 2 and value[1:3] in (":\\", ":/")):
            return "<server path>/" + Path(value).name
        return value if len(value) <= limit else value[:limit] + f"...(+{len(value) - limit} chars)"
    if isinstance(value, dict):
        return {k: shorten(v, limit, rows) for k, v in value.items()}
    if isinstance(value, list):
        head = [shorten(v, limit, rows) for v in value[:rows]]
        if len(value) > rows and all(isinstance(v, (list, dict)) for v in value[:rows]):
            return head + [f"... {len(value) - rows} more"]
        return head + [shorten(v, limit, rows) for v in value[rows:]]
    return value


def call_with_node(
    url: str, image_path: str | Path, threshold: float | None = None, timeout: float = 120.0
) -> dict | None:
    """Run ``clients/js/count.mjs`` (``@gradio/client``); None, with the install line, if absent."""
    import shutil
    import subprocess

    from .config import course_root

    folder = course_root() / "clients" / "js"
    if not shutil.which("node"):
        print("Node.js is not installed: install Node 18+ to run the JavaScript client.")
        return None
    if not (folder / "node_modules" / "@gradio" / "client").is_dir():
        print("The JavaScript client is not installed yet: run `cd clients/js && npm ci` once.")
        return None
    args = ["node", "count.mjs", url, str(Path(image_path).resolve())]
    if threshold is not None:
        args.append(str(threshold))
    done = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"node count.mjs failed: {done.stderr.strip()[-1000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.app", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model", default=None, help="model file (.onnx, .pt, .xml); default: artifacts/model.onnx"
    )
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve your network")
    parser.add_argument("--threads", type=int, default=None, help="inference threads")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

    from .config import display_path
    from .runtime import load_predictor

    if args.model is None:
        from .export import ensure_onnx

        model = ensure_onnx()
    else:
        model = Path(args.model)
    predictor = load_predictor(model, threads=args.threads)
    print(
        f"Serving {display_path(model)} with {predictor.runtime} on http://{args.host}:{args.port}/"
    )
    demo = build_demo(predictor, examples=default_examples())
    demo.launch(**launch_kwargs(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
