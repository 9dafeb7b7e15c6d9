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
import base64
import binascii
import contextlib
import io
import json
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

from .images import MAX_SIDE, ImageError, load_image

if TYPE_CHECKING:
    import gradio as gr

    from .runtime import Predictor

API_NAME = "count"
BASE64_API_NAME = "count_base64"
TITLE = "Microalgae cell counter"
MAX_FILE_SIZE = "25mb"  # a phone photo is 2-8 MB; larger uploads are refused before decoding
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

    def notes_markdown(self) -> str:
        if self.error:
            lines = [f"**Could not count this upload.** {self.error}"]
        elif self.count is None:
            lines = ["Upload a photo (or pick an example) to count the cells."]
        else:
            cells = "cell" if self.count == 1 else "cells"
            lines = [f"**{self.count} {cells}** found in {self.seconds * 1000:.0f} ms."]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)

    def to_json(self, with_image: bool = True) -> dict[str, Any]:
        """The ``/count_base64`` answer: plain JSON, the picture as a JPEG data URL."""
        out: dict[str, Any] = {
            "count": self.count,
            "detections": [dict(zip(TABLE_COLUMNS, row)) for row in self.rows],
            "notes": self.notes,
            "error": self.error,
        }
        if with_image:
            out["image"] = to_data_url(self.image) if self.image is not None else None
        return out


def count_cells(
    predictor: Predictor,
    image: Any,
    threshold: float | None = None,
    show_boxes: bool = True,
    show_scores: bool = True,
    display_side: int = DISPLAY_SIDE,
    max_side: int = MAX_SIDE,
) -> CountResult:
    """Load any upload, detect, draw: the whole request, without gradio.

    Bad uploads never raise: the result carries ``error`` (the :class:`ImageError` message)
    so the UI and the API can show it and the server keeps serving.
    """
    start = time.perf_counter()
    if image is None or (isinstance(image, str) and not image.strip()):
        return CountResult(None, None)
    threshold = _threshold(predictor, threshold)
    try:
        loaded = load_image(image, max_side=max_side)
    except ImageError as error:
        return CountResult(None, None, error=str(error), seconds=time.perf_counter() - start)
    detections = predictor.predict(loaded.image, threshold)
    annotated = annotate(loaded.image, detections, show_boxes, show_scores, display_side)
    rows = [
        [i + 1, round(float(s), 3), *(round(float(v), 1) for v in box)]
        for i, (box, s) in enumerate(zip(detections.boxes, detections.scores))
    ]
    return CountResult(
        annotated, detections.count, rows, loaded.notes, seconds=time.perf_counter() - start
    )


def _threshold(predictor: Predictor, value: float | None) -> float:
    if value is None:
        return float(predictor.config.score_threshold)
    return float(min(1.0, max(0.0, float(value))))


def annotate(image: Image.Image, detections, show_boxes: bool, show_scores: bool, side: int):
    """Boxes drawn on a copy at most ``side`` px (smaller pictures travel and draw faster)."""
    from .viz import draw_detections

    scale = min(1.0, side / max(image.size))
    boxes = np.asarray(detections.boxes, np.float32)
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        boxes = boxes * scale
    return draw_detections(
        image, boxes, detections.scores, show_scores=show_scores, show_boxes=show_boxes
    )


def to_data_url(image: Image.Image, quality: int = 90) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_data_url(text: str) -> bytes:
    """``data:image/jpeg;base64,....`` (or bare base64) -> bytes; ImageError if it is not base64."""
    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    try:
        return base64.b64decode(payload.strip(), validate=False)
    except (binascii.Error, ValueError) as error:
        raise ImageError(
            "the image string is not valid base64; send 'data:image/jpeg;base64,<base64 of the "
            "JPEG file>'"
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
                return decode_data_url(payload.url)
            return str(payload.path) if payload.path else None

    _PHOTO_INPUT = PhotoInput
    return PhotoInput


_PHOTO_INPUT = None


def build_demo(
    predictor: Predictor,
    examples: Sequence[str | Path] | None = None,
    title: str = TITLE,
    description: str = DESCRIPTION,
    concurrency_limit: int | None = None,
    max_queue: int = 64,
) -> gr.Blocks:
    """The Blocks app: inputs, outputs, examples, the two API endpoints and the queue."""
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

    def on_count(image, threshold, show_boxes, show_scores):
        result = count_cells(guarded, image, threshold, bool(show_boxes), bool(show_scores))
        if result.error:
            gr.Warning(result.error)
        return result.image, result.count, _table(result.rows), result.notes_markdown()

    def count_base64(image: str, threshold: float = default) -> dict:
        """Count cells in a base64 image (a data URL); returns count, detections, notes, image."""
        try:
            data = decode_data_url(image or "")
        except ImageError as error:
            return CountResult(None, None, error=str(error)).to_json()
        return count_cells(guarded, data, threshold).to_json()

    photo_input = _photo_input_class()
    runtime = getattr(predictor, "runtime", "?")
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
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
                threshold = gr.Slider(
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
    limit = concurrency_limit or (2 if lock is None else 1)
    demo.queue(default_concurrency_limit=limit, max_size=max_queue)
    demo.course_concurrency_limit = limit  # read by utils.bench.api
    return demo


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
        "max_file_size": MAX_FILE_SIZE,
        "show_error": True,
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
