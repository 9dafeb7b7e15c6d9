"""The Gradio app: ``build_demo(predictor)`` and the two input components it needs.

Gradio is imported only here, and only when an app is built; the counting itself is
``core`` (no gradio) and every launch gets ``limits``.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..processing import CallTimes, part, recording
from .core import (
    API_NAME,
    BASE64_API_NAME,
    CountResult,
    count_safely,
    guarded,
    save_picture,
    table_columns,
)
from .limits import (
    ANALYTICS_EVENTS,
    CACHE_SWEEP,
    CONCURRENCY,
    MAX_QUEUE,
    forget_session,
    with_limits,
)
from .rest import REST_PATH, rest_route

if TYPE_CHECKING:
    import gradio as gr

    from ..runtime import Predictor

TITLE = "Microalgae cell counter"
IMAGE_HEIGHT = 420  # px on screen; the pictures keep their full resolution
CALL_TIMES_KEPT = 256  # the last calls' timing records (``demo.course_call_times``)

DESCRIPTION = """\
Upload a photo of a microalgae sample taken through the microscope (or use the webcam,
paste from the clipboard, or pick an example). The detector draws a box around every cell
it finds and counts those scoring at least the **detection threshold**.
"""


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
            return photo_value(payload)

    _PHOTO_INPUT = PhotoInput
    return PhotoInput


def photo_value(payload: Any) -> str | None:
    """What the handler counts: a data URL as sent, or the uploaded file's path (None: none).

    ``payload``: Gradio's ``ImageData``, or its dict when the event skips Gradio's
    preprocessing (``/count`` does: see :func:`build_demo`). A data URL is decoded and
    checked by the handler, so a bad one gets its sentence in the notes.
    """
    if payload is None:
        return None
    fields = payload if isinstance(payload, dict) else vars(payload)
    url, path = fields.get("url"), fields.get("path")
    if isinstance(url, str) and url.startswith("data:"):
        return url
    return str(path) if path else None


def _serialized(value: Any) -> Any:
    """A component's postprocessed value as Gradio sends it (its models as plain dicts)."""
    return value.model_dump() if hasattr(value, "model_dump") else value


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
    runtime_note: str = "",
) -> gr.Blocks:
    """The Blocks app: inputs, outputs, examples, the two API endpoints and the queue.

    ``runtime_note``: which runtime serves and why (``RuntimeChoice.describe()``), shown
    under the app so a reader knows what the timings in the notes ran on.

    Its ``launch`` applies :func:`launch_limits` (size limit on every route, bounded session
    store) unless told otherwise, so every entry point, the Space included, gets them.
    """
    # Gradio keeps per-event timing for its ETA estimates, up to 10,000 events (~3 KB of
    # memory per call until then); the last 1,000 estimate just as well.
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", str(ANALYTICS_EVENTS))
    gr = _gradio()

    default = float(predictor.config.score_threshold)
    classes = tuple(predictor.config.class_names)
    columns = table_columns(classes)
    # Predictor.thread_safe: ONNX Runtime sessions may run from several threads; OpenVINO's
    # single infer request and eager PyTorch are serialised by a lock (core.Guarded).
    thread_safe = getattr(predictor, "thread_safe", False)
    limit = concurrency_limit or (CONCURRENCY if thread_safe else 1)
    safe = guarded(predictor, limit)
    # One gate for every way in (Gradio's queue and POST /api/count): at most ``limit`` photos
    # decoded and counted at once in all, so memory stays bounded by ~limit x APP_MAX_PIXELS.
    gate = threading.BoundedSemaphore(limit)

    def counted(image: Any, threshold: Any, *args: Any, **kwargs: Any) -> CountResult:
        with gate:
            return count_safely(safe, image, threshold, *args, **kwargs)
    # Where each call's milliseconds went (processing.timing), newest last: a few hundred
    # small dicts, read by ``python -m utils.bench api``.
    call_times: deque[CallTimes] = deque(maxlen=CALL_TIMES_KEPT)

    def on_count(image, threshold, show_boxes, show_scores, request=None):
        # Gradio's pre- and post-processing of the 4 inputs and 4 outputs happens here, in this
        # one worker thread (the event has preprocess=False, postprocess=False): Gradio hops to
        # a thread for each of them, 8 hops per call (measured on a busy 2-core machine: its
        # pre- + post-processing 9.4 ms per call, 1.3 ms with this). Same components, same
        # calls, so the answer is the same; Gradio still checks that an upload is its own.
        with recording() as times:
            try:
                photo = photo_value(image)
                result = counted(photo, threshold, bool(show_boxes), bool(show_scores))
                picture = save_picture(result.image, annotated.GRADIO_CACHE)
                with part("postprocess"):
                    outputs = [
                        annotated.postprocess(picture),
                        count.postprocess(result.count),
                        table.postprocess({"headers": columns, "data": result.rows}),
                        notes.postprocess(result.notes_markdown()),
                    ]
            finally:
                forget_session(demo, request)
        call_times.append(times)
        if result.error:
            gr.Warning(result.error)
        return [_serialized(value) for value in outputs]

    def count_base64(image: str, threshold: float = default, request=None) -> dict:
        """Count cells in a base64 image (a data URL); returns count, detections, notes, image."""
        with recording() as times:
            try:
                answer = counted(image, threshold, base64_input=True).to_json()
            finally:
                forget_session(demo, request)
        call_times.append(times)
        return answer

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
                count_label = "Cell count (all classes)" if len(classes) > 1 else "Cell count"
                count = gr.Number(label=count_label, precision=0, elem_id="count")
                notes = gr.Markdown(elem_id="notes")
        table = gr.Dataframe(
            headers=columns,
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
            f"Model: `{predictor.config.model_name}` at {predictor.config.image_size} px"
            + (f" (classes: {', '.join(classes)})" if len(classes) > 1 else "")
            + ", "
            f"run by **{runtime}**. API: `/{API_NAME}` (files) and `/{BASE64_API_NAME}` "
            "(a base64 data URL in, JSON out) - see *Use via API* below; or one plain request, "
            f"`POST {REST_PATH}` with the photo as the body, JSON out."
            + (f"\n\nRuntime: {runtime_note}." if runtime_note else ""),
            elem_id="model_info",
        )
        button.click(
            on_count,
            [image, threshold, show_boxes, show_scores],
            [annotated, count, table, notes],
            api_name=API_NAME,
            concurrency_limit=concurrency_limit or "default",
            preprocess=False,  # done by on_count, in its own thread (see there)
            postprocess=False,
        )
        gr.api(count_base64, api_name=BASE64_API_NAME)
    # api_open=False: Gradio's queue-less POST /gradio_api/run/<name> stays closed, as on a Space
    # (where Gradio closes it by default); open, it skipped the queue's bounds on this machine.
    demo.queue(default_concurrency_limit=limit, max_size=max_queue, api_open=False)
    demo.course_concurrency_limit = limit  # read by utils.bench.api
    demo.course_call_times = call_times  # read by utils.bench.api
    demo.course_guarded = safe  # its twin_calls: read by utils.bench.api
    # POST /api/count: one plain request per count, bypassing the queue with its own limits.
    route = rest_route(counted, limit, max_queue, call_times)
    demo.launch = with_limits(demo.launch, routes=[route])
    return demo
