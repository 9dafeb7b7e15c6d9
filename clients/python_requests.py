"""Count cells with plain HTTP (``requests`` only): what any language or phone app can do.

    python clients/python_requests.py [--base64|--rest] http://127.0.0.1:7860/ photo.jpg [threshold]

Gradio 6 serves every named endpoint at ``/gradio_api/call/<api_name>``; files travel
separately. Three requests:

1. ``POST /gradio_api/upload`` with the image as multipart ``files`` -> ``["<server path>"]``
2. ``POST /gradio_api/call/count`` with ``{"data": [<file>, threshold, show_boxes,
   show_scores]}`` -> ``{"event_id": "..."}``
3. ``GET /gradio_api/call/count/<event_id>``: a server-sent-event stream whose last message
   is ``event: complete`` with ``data: [<annotated image>, <count>, <table>, <notes>]``
   (or ``event: error``).

``--base64`` uses the app's second endpoint instead, ``/gradio_api/call/count_base64``,
which takes the picture inside the JSON as a data URL - the shape of request the talk's
Flutter app sent to Gradio 2's ``/api/predict`` - and answers with plain JSON.

``--rest`` uses the app's own plain route: one ``POST /api/count`` with the photo's bytes as
the body, the same JSON back in the same response (the fastest: no upload step, no event
stream; ``?threshold=0.5``, and ``&picture=false`` to leave the annotated JPEG out).

Deliberately standalone (no course imports), so it can be copied anywhere.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import requests


def read_result(session: requests.Session, url: str) -> list:
    """Follow the event stream until the result (``complete``) or an ``error``."""
    event = None
    with session.get(url, stream=True, timeout=120) as response:
        response.raise_for_status()
        # 64 KB reads: the result line holds the annotated picture (~140 KB of base64), and
        # requests' default 512-byte reads made parsing it cost about 9 ms of Python.
        for line in response.iter_lines(chunk_size=1 << 16, decode_unicode=True):
            if line.startswith("event:"):
                event = line[len("event:") :].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = json.loads(line[len("data:") :].strip() or "null")
                if event == "error":
                    raise RuntimeError(f"the app reported an error: {data}")
                return data
    raise RuntimeError("the event stream ended without a result")


def count_file(base: str, image: Path, threshold: float = 0.5) -> dict:
    """Upload, call ``/count``, read the result: ``{"count", "notes", "detections"}``."""
    session = requests.Session()
    with image.open("rb") as handle:
        upload = session.post(f"{base}/gradio_api/upload", files={"files": (image.name, handle)})
    upload.raise_for_status()
    server_path = upload.json()[0]
    file_data = {"path": server_path, "orig_name": image.name, "meta": {"_type": "gradio.FileData"}}
    call = session.post(
        f"{base}/gradio_api/call/count", json={"data": [file_data, threshold, True, True]}
    )
    call.raise_for_status()
    event_id = call.json()["event_id"]
    annotated, count, table, notes = read_result(
        session, f"{base}/gradio_api/call/count/{event_id}"
    )
    return {"count": count, "notes": notes, "detections": len(table["data"])}


def count_base64(base: str, image: Path, threshold: float = 0.5) -> dict:
    """One JSON request with the picture inside (the phone-app way)."""
    session = requests.Session()
    data = image.read_bytes()
    mime = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
    data_url = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    call = session.post(
        f"{base}/gradio_api/call/count_base64", json={"data": [data_url, threshold]}
    )
    call.raise_for_status()
    event_id = call.json()["event_id"]
    (answer,) = read_result(session, f"{base}/gradio_api/call/count_base64/{event_id}")
    answer.pop("image", None)  # the annotated JPEG as a data URL: long, not printed here
    answer["detections"] = len(answer["detections"])
    return answer


def count_rest(base: str, image: Path, threshold: float = 0.5) -> dict:
    """One request, one answer: the photo as the body of ``POST /api/count``."""
    call = requests.post(
        f"{base}/api/count",
        data=image.read_bytes(),
        params={"threshold": threshold, "picture": "false"},
        headers={"Content-Type": "application/octet-stream"},
        timeout=120,
    )
    answer = call.json()  # 400/413/503 answer JSON too, with "error" saying what to do
    if answer.get("error"):
        raise RuntimeError(f"the app said (HTTP {call.status_code}): {answer['error']}")
    answer["detections"] = len(answer["detections"])
    return answer


def main(argv: list[str]) -> int:
    args = [a for a in argv if a not in ("--base64", "--rest")]
    if len(args) not in (2, 3):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    base, image = args[0].rstrip("/"), Path(args[1])
    threshold = float(args[2]) if len(args) == 3 else 0.5
    call = count_base64 if "--base64" in argv else count_rest if "--rest" in argv else count_file
    print(json.dumps(call(base, image, threshold)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
