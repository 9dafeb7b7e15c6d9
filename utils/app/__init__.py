"""The cell-counting demo: one Gradio app for the notebook, ``make demo``, the Space and the API.

``build_demo(predictor)`` runs on any :class:`~utils.runtime.Predictor` (PyTorch, ONNX
Runtime, OpenVINO). The Space copies this package together with ``processing``,
``runtime``, ``modelfile``, ``images``, ``viz`` and ``config`` and runs it on ONNX Runtime,
so nothing here imports torch, and gradio itself is imported only when an app is built.

One module per job, imported in this order (each only from the ones before it):
``core`` (counting without gradio: inputs, CountResult, drawing, data URLs, thread safety),
``limits`` (size limits, session sweeping, memory), ``rest`` (the plain route), ``ui``
(``build_demo``), ``launch`` (background launch, ``main``) and ``clients`` (Python, HTTP,
base64, plain-route and Node.js callers).

Two named Gradio API endpoints, and one plain route:

* ``/count`` (the UI's button): image file, threshold, show boxes, show scores ->
  annotated image, count, detections table, notes. ``gradio_client`` and ``@gradio/client``
  call it with ``handle_file(path)``; raw HTTP uploads the file first (``call_with_requests``).
* ``/count_base64``: one JSON-friendly call for phone apps: a ``data:image/...;base64,``
  string in, ``{"count", "detections", "notes", "image"}`` out - what the talk's Flutter
  app sent to Gradio 2's ``/api/predict``, on today's routes.
* ``POST /api/count`` (``rest``): the photo's bytes as the body (or a form's ``image``
  field), the same JSON back, in one request and outside Gradio's queue (its own limits):
  the fastest way to call the app from a phone or ``curl``.

A model of several classes (e.g. BCCD's RBC, WBC, Platelets) answers the same, plus its
count per class: a ``class`` column in the detections table (and each JSON detection), the
per-class counts in the notes, and ``"counts": {"RBC": 12, ...}`` in the JSON (every class
listed, 0 included). ``count`` stays the total. A one-class model's answers are unchanged.

Run it: ``python -m utils.app [--model artifacts/model.onnx] [--port 7860] [--host 127.0.0.1]``.
"""

from __future__ import annotations

from .clients import (
    call_base64_with_requests,
    call_rest_with_requests,
    call_with_client,
    call_with_node,
    call_with_requests,
    read_sse_result,
    shorten,
)
from .core import (
    API_NAME,
    APP_MAX_PIXELS,
    BASE64_API_NAME,
    CLASS_TABLE_COLUMNS,
    MAX_BODY_BYTES,
    MAX_FILE_BYTES,
    MAX_FILE_SIZE,
    MAX_UPLOAD_MB,
    TABLE_COLUMNS,
    CountResult,
    Guarded,
    InputError,
    check_threshold,
    count_cells,
    decode_data_url,
    guarded,
    table_columns,
)
from .launch import (
    default_examples,
    free_port,
    launch_in_background,
    main,
)
from .limits import (
    ANALYTICS_EVENTS,
    CACHE_SWEEP,
    CONCURRENCY,
    MAX_QUEUE,
    SWEEP_SECONDS,
    UNCLAIMED_SECONDS,
    SessionSweeper,
    return_big_buffers_to_the_os,
)
from .rest import REST_PATH, rest_route
from .ui import (
    build_demo,
)

__all__ = [
    "ANALYTICS_EVENTS",
    "API_NAME",
    "APP_MAX_PIXELS",
    "BASE64_API_NAME",
    "CACHE_SWEEP",
    "CLASS_TABLE_COLUMNS",
    "CONCURRENCY",
    "CountResult",
    "Guarded",
    "InputError",
    "MAX_BODY_BYTES",
    "MAX_FILE_BYTES",
    "MAX_FILE_SIZE",
    "MAX_QUEUE",
    "MAX_UPLOAD_MB",
    "REST_PATH",
    "SWEEP_SECONDS",
    "SessionSweeper",
    "TABLE_COLUMNS",
    "UNCLAIMED_SECONDS",
    "build_demo",
    "call_base64_with_requests",
    "call_rest_with_requests",
    "call_with_client",
    "call_with_node",
    "call_with_requests",
    "check_threshold",
    "count_cells",
    "decode_data_url",
    "default_examples",
    "free_port",
    "guarded",
    "launch_in_background",
    "main",
    "read_sse_result",
    "rest_route",
    "return_big_buffers_to_the_os",
    "shorten",
    "table_columns",
]
