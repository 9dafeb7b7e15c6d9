"""Hostile traffic against the Gradio app: bounded memory, one size limit, one-sentence errors.

Runs the app on 127.0.0.1 with the seeded, untrained ONNX model of ``test_app.py``. Every bad
input gets one sentence naming the field; nothing echoes the request or shows server paths;
the server still counts afterwards. The soak is bounded in calls, not in time.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import tempfile
import time
import zlib
from pathlib import Path

import pytest
import requests

from tests.test_app import THRESHOLD, expected
from utils import app
from utils.bench.api import base64_body, base64_call, rss_mb

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(predictor):
    return app.build_demo(predictor, delete_cache=(1, 2))


@pytest.fixture(scope="module")
def server(demo):
    url, close = app.launch_in_background(demo)
    try:
        yield url.rstrip("/")
    finally:
        close()


def data_url(path: Path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def call_base64(server: str, payload: bytes) -> tuple[int, dict | str]:
    """POST a raw JSON body to /count_base64; (200, answer) or (status, response text)."""
    response = requests.post(
        f"{server}/gradio_api/call/{app.BASE64_API_NAME}",
        data=payload,
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    if response.status_code != 200:
        return response.status_code, response.text
    event, data = app.read_sse_result(
        requests, f"{server}/gradio_api/call/{app.BASE64_API_NAME}/{response.json()['event_id']}"
    )
    assert event == "complete", data
    return 200, data[0]


def leaks(text: str) -> list[str]:
    """Server paths that must never reach a client."""
    places = [str(ROOT), tempfile.gettempdir(), str(Path.home()), "/etc/passwd"]
    return [place for place in places if place and place in text]


def one_sentence(message: str) -> bool:
    return bool(message) and "\n" not in message and len(message) < 300


def huge_png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height``: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (float("nan"), "got nan"),
        (float("inf"), "got inf"),
        (-1, "got -1"),
        (2, "got 2"),
        ("abc", "got text"),
        (True, "got true/false"),
        ([0.5], "got a list"),
    ],
)
def test_bad_thresholds_are_refused_in_one_sentence(value, shown):
    with pytest.raises(app.InputError) as raised:
        app.check_threshold(value, 0.5)
    message = str(raised.value)
    assert message.startswith("threshold must be a number between 0 and 1") and shown in message
    assert one_sentence(message)


def test_good_thresholds_pass_unchanged():
    assert app.check_threshold(None, 0.45) == 0.45
    assert [app.check_threshold(v, 0.5) for v in (0, 0.3, 1)] == [0.0, 0.3, 1.0]


@pytest.mark.parametrize(
    ("value", "expected_message"),
    [
        (5, "image must be a string 'data:image/jpeg;base64,"),
        (None, "image must be a string"),
        ({"path": "/etc/passwd"}, "image must be a string"),
        ("%%% not base64 %%%", "image is not valid base64"),
        ("data:image/jpeg;base64," + "A" * (app.MAX_FILE_BYTES * 4 // 3 + 8), "larger than 25 MB"),
    ],
)
def test_bad_image_strings_are_refused_before_decoding(value, expected_message):
    with pytest.raises(app.InputError, match=expected_message) as raised:
        app.decode_data_url(value)
    assert one_sentence(str(raised.value)) and not leaks(str(raised.value))


def test_nan_threshold_no_longer_counts_every_candidate(predictor, images):
    result = app.count_cells(predictor, images[0], float("nan"))
    assert result.count is None and "threshold" in result.error


def test_decoding_is_bounded_before_any_pixel_is_decoded(predictor):
    bomb = huge_png_header(13_000, 13_000)  # 169 MP in 100 bytes: ~500 MB once decoded
    result = app.count_cells(predictor, bomb, 0.5)
    assert result.count is None
    assert "13000 x 13000 px, more than the 64 megapixels" in result.error
    assert app.APP_MAX_PIXELS * 3 < 200e6  # one request decodes at most ~190 MB of RGB


# ----------------------------------------------------------------------------- over HTTP


def test_every_bad_base64_input_gets_one_sentence_and_the_server_keeps_counting(
    server, predictor, images
):
    good = data_url(images[0])
    cases = {
        "nan threshold": ([good, float("nan")], "threshold"),
        "negative threshold": ([good, -1], "threshold"),
        "threshold above 1": ([good, 2], "threshold"),
        "text threshold": ([good, "abc"], "threshold"),
        "number as image": ([7, 0.5], "image must be a string"),
        "not base64": (["data:image/png;base64,#!?", 0.5], "image is not valid base64"),
        "not an image": (["data:image/jpeg;base64,bm90IGFuIGltYWdl", 0.5], "not an image file"),
    }
    for name, (data, words) in cases.items():
        status, answer = call_base64(server, json.dumps({"data": data}).encode())
        assert status == 200, (name, answer)
        assert answer["count"] is None and words in answer["error"], (name, answer)
        assert one_sentence(answer["error"]) and not leaks(json.dumps(answer)), name
    status, answer = call_base64(server, json.dumps({"data": [good, THRESHOLD]}).encode())
    assert answer["error"] is None and answer["count"] == expected(predictor, images[0])


def test_the_ui_endpoint_checks_the_threshold_too(server, images):
    record: list[dict] = []
    for value in ("abc", -1, 2):
        answer = app.call_with_requests(server, images[0], value, record=record)  # type: ignore[arg-type]
        assert answer["count"] is None, value
        assert "threshold must be a number between 0 and 1" in answer["notes"], value
        assert not leaks(answer["notes"])
    assert app.call_with_requests(server, images[0], THRESHOLD)["count"] is not None


def test_malformed_request_is_not_echoed(server):
    padding = "x" * 80_000
    status, text = call_base64(server, json.dumps({"data": padding}).encode())
    assert status == 422 and padding[:100] not in text and len(text) < 600
    message = json.loads(text)["error"]
    assert one_sentence(message) and "data" in message


def test_gradio_errors_show_no_paths(server):
    body = {"data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, 0.5, 1, 1]}
    response = requests.post(f"{server}/gradio_api/call/{app.API_NAME}", json=body, timeout=60)
    event, data = app.read_sse_result(
        requests, f"{server}/gradio_api/call/{app.API_NAME}/{response.json()['event_id']}"
    )
    assert event == "error" and not leaks(json.dumps(data))


def test_one_size_limit_on_every_route(server):
    too_big = app.MAX_BODY_BYTES + 1024
    image = "data:image/jpeg;base64," + "A" * too_big
    status, text = call_base64(server, json.dumps({"data": [image, 0.5]}).encode())
    assert status == 413 and "larger than" in json.loads(text)["error"]

    def chunks():  # no Content-Length: the limit counts the bytes as they arrive
        for _ in range(too_big // 2**20 + 1):
            yield b"A" * 2**20

    response = requests.post(
        f"{server}/gradio_api/call/{app.BASE64_API_NAME}",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    upload = requests.post(
        f"{server}/gradio_api/upload",
        files={"files": ("big.jpg", b"\xff\xd8\xff" + b"\0" * (app.MAX_FILE_BYTES + 10))},
        timeout=60,
    )
    assert upload.status_code == 413
    status, answer = call_base64(server, json.dumps({"data": [image[:1000], 0.5]}).encode())
    assert status == 200  # still serving


def test_the_base64_image_limit_matches_the_upload_limit():
    assert app.MAX_FILE_SIZE == f"{app.MAX_UPLOAD_MB}mb"
    assert app.MAX_FILE_BYTES * 4 / 3 < app.MAX_BODY_BYTES < app.MAX_FILE_BYTES * 1.5


# ----------------------------------------------------------------------------- memory


def test_api_calls_leave_no_session_state(server, demo, images):
    body = base64_body(images[0], THRESHOLD)
    http = requests.Session()
    for _ in range(5):
        assert base64_call(http, server, body) is None
    queue = demo._queue
    deadline = time.monotonic() + 60  # the sweeper runs every SWEEP_SECONDS
    while queue.pending_messages_per_session and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not queue.pending_messages_per_session and not queue.pending_event_ids_session
    assert len(demo.state_holder.session_data) == 0


class _Mailbox(list):
    def empty(self) -> bool:
        return not self


class _FakeQueue:
    def __init__(self):
        self.pending_messages_per_session = {
            "done": _Mailbox(),
            "running": _Mailbox(),
            "unclaimed": _Mailbox(["result"]),
        }
        self.pending_event_ids_session = {"done": set(), "running": {"e1"}, "unclaimed": {"e2"}}
        self.event_ids_to_events = {"e1": object()}


def test_sweeper_drops_delivered_and_unclaimed_sessions_only():
    queue = _FakeQueue()
    sweeper = app.SessionSweeper(grace=2, unclaimed=300)
    assert sweeper.sweep(queue, now=0) == 0  # seen once: a call may be just starting
    assert sweeper.sweep(queue, now=3) == 1  # "done" is delivered and idle
    assert set(queue.pending_messages_per_session) == {"running", "unclaimed"}
    assert sweeper.sweep(queue, now=301) == 1  # nobody came for "unclaimed"
    assert set(queue.pending_messages_per_session) == {"running"}  # a running call stays


def test_soak_memory_stays_flat(server, images):
    """200 base64 calls after a warm-up: RSS within 10 MB (the leak was ~0.3 MB a call: 60 MB)."""
    body = base64_body(images[0], THRESHOLD)
    http = requests.Session()
    errors = [base64_call(http, server, body) for _ in range(100)]  # warm-up: allocator, caches
    time.sleep(2 * app.SWEEP_SECONDS)
    before = rss_mb()
    errors += [base64_call(http, server, body) for _ in range(200)]
    time.sleep(2 * app.SWEEP_SECONDS)
    growth = rss_mb() - before
    assert [e for e in errors if e] == []
    assert growth < 10, f"RSS grew {growth:.1f} MB over 200 calls"


def test_uploads_do_not_pile_up(server, demo):
    assert demo.delete_cache == (1, 2)
    assert app.build_demo.__defaults__ and app.CACHE_SWEEP in app.build_demo.__defaults__
    paths = []
    for k in range(3):
        response = requests.post(
            f"{server}/gradio_api/upload",
            files={"files": (f"junk_{k}.jpg", b"junk" * 1000)},
            timeout=30,
        )
        paths.append(Path(response.json()[0]))
    assert all(p.exists() for p in paths)
    deadline = time.monotonic() + 60  # delete_cache=(1, 2): swept every second after 2 s
    while any(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(p.exists() for p in paths)


def test_concurrency_is_bounded(demo):
    assert demo.course_concurrency_limit == app.CONCURRENCY
    assert app.MAX_QUEUE >= 100  # a burst of 100 calls waits instead of getting HTTP 503
    assert math.isfinite(app.UNCLAIMED_SECONDS)


def test_big_decodes_go_back_to_the_os_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's; other C libraries return big blocks on their own")
    assert app.return_big_buffers_to_the_os() is True


def test_gradio_routes_that_skip_the_queue_are_closed_as_on_a_space(server, images):
    """Gradio serves ``POST /gradio_api/run/<name>`` (and ``/api/<name>``) outside its queue
    unless the queue is closed to them, as Gradio does on a Space by default: open, they
    bypassed the queue's concurrency limit and line. Closed here too; the queued call counts."""
    body = base64_body(images[1], THRESHOLD)
    for route in ("run", "api"):
        response = requests.post(
            f"{server}/gradio_api/{route}/{app.BASE64_API_NAME}",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert response.status_code == 404, (route, response.status_code, response.text[:200])
    status, answer = call_base64(server, body)
    assert status == 200 and answer["count"] >= 0


def test_a_burst_of_100_calls_is_queued_not_refused(server, images):
    """100 clients at the same moment: every one is counted (HTTP 503 'queue full' = error)."""
    from utils.bench.api import burst

    result = burst(server, base64_body(images[1], THRESHOLD), 100)
    assert result["errors"] == 0, result["error_kinds"]


def test_a_burst_of_100_plain_route_calls_waits_its_turn(server, images):
    """The same burst on POST /api/count, which has its own queue of the same size."""
    from utils.bench.api import burst, rest_call

    result = burst(server, images[1].read_bytes(), 100, rest_call)
    assert result["errors"] == 0, result["error_kinds"]


def test_gradio_keeps_timings_of_a_bounded_number_of_events(demo):
    assert demo._queue.ANALYTICS_MAX_EVENTS <= app.ANALYTICS_EVENTS
