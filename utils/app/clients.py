"""Calling the app from outside: the Python client, plain HTTP, base64 JSON, Node.js.

What notebook 07 and the benchmarks use; nothing here imports gradio itself.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from ..config import course_root
from .core import API_NAME, BASE64_API_NAME
from .rest import REST_PATH


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


def call_rest_with_requests(
    url: str,
    image_path: str | Path,
    threshold: float | None = None,
    picture: bool = True,
    timeout: float = 60.0,
    session: Any = None,
    record: list[dict[str, Any]] | None = None,
) -> dict:
    """One request: the photo's bytes as the body of ``POST /api/count``, the JSON answer back.

    The same answer as ``/count_base64``; an HTTP error status (400, 413, 503) comes back as
    the answer with its ``error`` set, so a caller reads one sentence, not a traceback.
    """
    import requests

    http = session or requests.Session()
    data = Path(image_path).read_bytes()
    params: dict[str, Any] = {} if threshold is None else {"threshold": threshold}
    if not picture:
        params["picture"] = "false"
    mime = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
    response = http.post(
        f"{url.rstrip('/')}{REST_PATH}",
        data=data,
        params=params,
        headers={"Content-Type": mime},
        timeout=timeout,
    )
    answer = response.json()
    _record(record, "POST", REST_PATH, f"<{mime}: {len(data)} bytes> {params}", answer)
    return answer


# How many bytes ``read_sse_result`` asks for at a time. Why: ``requests`` reads an event stream
# 512 bytes at a time by default, and the result line carries the annotated picture (about
# 140 KB of base64): reading it took 9.3 ms of Python a call against 0.2 ms in 64 KB reads (side
# script, 20 calls of /count_base64), a tenth of a whole call. Each read returns as soon as the
# server has sent something, so the first events arrive no later.
SSE_READ_BYTES = 1 << 16


def read_sse_result(http: Any, url: str, timeout: float = 60.0) -> tuple[str, Any]:
    """Read a Gradio server-sent-event stream until ``complete`` or ``error``."""
    event = None
    with http.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        for raw in response.iter_lines(chunk_size=SSE_READ_BYTES, decode_unicode=True):
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
