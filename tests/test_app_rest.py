"""``POST /api/count``: the app's one-request route, over real HTTP on 127.0.0.1.

Same model as ``test_app`` (an untrained detector exported to ONNX): its counts mean nothing,
but the route must answer exactly what the predictor and the ``/count_base64`` endpoint do,
refuse bad requests with a sentence and a status, and keep its own concurrency limit.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from utils import app
from utils.images import load_image

THRESHOLD = 0.1  # an untrained model scores ~0.1: a threshold that leaves some boxes


def post(url: str, **kwargs) -> requests.Response:
    return requests.post(f"{url.rstrip('/')}{app.REST_PATH}", timeout=60, **kwargs)


def expected(predictor, path: Path, threshold: float | None = THRESHOLD) -> int:
    return predictor.predict(load_image(path).image, threshold).count


def test_one_request_answers_what_the_base64_endpoint_does(server, predictor, images):
    record: list[dict] = []
    answer = app.call_rest_with_requests(server, images[0], THRESHOLD, record=record)
    assert [r["request"].split()[:2] for r in record] == [["POST", app.REST_PATH]]
    assert answer["count"] == expected(predictor, images[0]) and answer["error"] is None
    assert answer["image"].startswith("data:image/jpeg;base64,")
    base64 = app.call_base64_with_requests(server, images[0], THRESHOLD)
    for key in ("count", "detections", "notes", "error", "tiles"):
        assert answer[key] == base64[key], key
    assert set(answer) == set(base64)


def test_a_form_upload_and_no_picture(server, predictor, images):
    with images[1].open("rb") as handle:
        response = post(
            server, files={"image": handle}, params={"threshold": THRESHOLD, "picture": "false"}
        )
    assert response.status_code == 200
    answer = response.json()
    assert answer["count"] == expected(predictor, images[1])
    assert "image" not in answer  # picture=false: the JSON only


def test_the_models_threshold_when_none_is_sent(server, predictor, images):
    response = post(server, data=images[0].read_bytes())
    assert response.status_code == 200
    assert response.json()["count"] == expected(predictor, images[0], None)


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [
        ({"data": b""}, 400, "the request has no photo"),
        ({"files": {"photo": ("a.jpg", b"\xff\xd8")}}, 400, "no file field named 'image'"),
        (
            {"data": b"--x\r\nno headers", "headers": {"Content-Type": "multipart/form-data"}},
            400,
            "the multipart form could not be read",
        ),
        ({"data": b"x", "params": {"threshold": "half"}}, 400, "threshold must be a number"),
        ({"data": b"x", "params": {"picture": "maybe"}}, 400, "picture must be true or false"),
        ({"data": b"lab notes, not a picture\n"}, 400, "not an image file"),
        ({"data": b"\xff\xd8\xff" + b"\x00" * (26 << 20)}, 413, "larger than 25 MB"),
    ],
    ids=["empty", "wrong-field", "broken-form", "threshold-text", "picture-word", "text", "too-large"],
)
def test_bad_requests_get_a_status_and_a_sentence(
    server, predictor, images, request_kwargs, status, message
):
    response = post(server, **request_kwargs)
    assert response.status_code == status
    answer = response.json()
    assert answer["count"] is None and message in answer["error"], answer
    good = post(server, data=images[0].read_bytes(), params={"threshold": THRESHOLD})
    assert good.json()["count"] == expected(predictor, images[0])  # the server keeps serving


def test_a_threshold_out_of_range_is_refused_after_reading(server, images):
    response = post(server, data=images[0].read_bytes(), params={"threshold": "2"})
    assert response.status_code == 400
    assert "between 0 and 1 (got 2)" in response.json()["error"]


class HeldPredictor:
    """The real predictor, held until the test releases it, recording how many ran at once."""

    thread_safe = True
    runtime = "held"

    def __init__(self, inner):
        self.config = inner.config
        self.inner = inner
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def predict(self, image, threshold=None):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            assert self.release.wait(120), "the test never released the predictor"
            return self.inner.predict(image, threshold)
        finally:
            with self.lock:
                self.running -= 1


def test_its_own_concurrency_limit_and_a_bounded_wait(predictor, images):
    """One at a time, one waiting: of 5 requests sent at once, 2 are counted, 3 get 503.

    The predictor is held until the 3 refusals are back, so no timing can change the answer.
    """
    held = HeldPredictor(predictor)
    demo = app.build_demo(held, concurrency_limit=1, max_queue=1)
    url, close = app.launch_in_background(demo)
    body = images[0].read_bytes()
    try:
        with ThreadPoolExecutor(5) as pool:
            futures = [pool.submit(post, url, data=body) for _ in range(5)]
            deadline = time.monotonic() + 120
            while sum(f.done() for f in futures) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            early = [f.result().status_code for f in futures if f.done()]
            held.release.set()
            responses = [f.result() for f in futures]
    finally:
        held.release.set()
        close()
    assert early == [503, 503, 503], early
    assert sorted(r.status_code for r in responses) == [200, 200, 503, 503, 503]
    assert held.most == 1
    busy = [r.json()["error"] for r in responses if r.status_code == 503]
    assert all("the server is busy" in error for error in busy)


def test_one_gate_for_both_ways_in(predictor, images):
    """With a limit of 1, a Gradio call waits while a plain-route call counts (and vice versa):
    memory stays bounded by the limit whichever routes the clients use."""
    held = HeldPredictor(predictor)
    demo = app.build_demo(held, concurrency_limit=1)
    url, close = app.launch_in_background(demo)
    try:
        held.release.set()  # warm both ways in first, so neither is slow to arrive below
        assert app.call_base64_with_requests(url, images[0], THRESHOLD)["error"] is None
        assert post(url, data=images[0].read_bytes()).status_code == 200
        held.release.clear()
        held.most = 0
        with ThreadPoolExecutor(2) as pool:
            plain = pool.submit(post, url, data=images[0].read_bytes())
            by_gradio = pool.submit(app.call_base64_with_requests, url, images[0], THRESHOLD)
            deadline = time.monotonic() + 3.0  # without one gate, both count within this
            while time.monotonic() < deadline and held.most < 2:
                time.sleep(0.02)
            held.release.set()
            assert plain.result().status_code == 200
            assert by_gradio.result()["error"] is None
    finally:
        held.release.set()
        close()
    assert held.most == 1


class FakePool:
    """A thread-safe predictor with a thread pool and a twin maker, held until released."""

    thread_safe = True
    runtime = "fake"

    def __init__(self, threads: int, name: str = "pool"):
        self.config = None
        self.threads = threads
        self.name = name
        self.release = threading.Event()
        self.entered = threading.Event()
        self.twins: list[FakePool] = []

    def with_threads(self, threads: int) -> FakePool:
        twin = FakePool(threads, "twin")
        twin.release = self.release
        self.twins.append(twin)
        return twin

    def predict(self, image, threshold=None):
        self.entered.set()
        assert self.release.wait(60)
        return self.name


def test_a_call_made_while_another_counts_runs_on_the_fewer_thread_twin():
    pool = FakePool(threads=2)
    safe = app.guarded(pool, concurrency=2)
    assert [t.threads for t in pool.twins] == [1]  # 2 threads shared by 2 calls
    pool.release.set()
    assert [safe.predict(None) for _ in range(3)] == ["pool"] * 3  # one at a time: the pool
    pool.release.clear()
    with ThreadPoolExecutor(2) as executor:
        first = executor.submit(safe.predict, None)
        assert pool.entered.wait(60)  # the first call holds the pool
        second = executor.submit(safe.predict, None)
        deadline = time.monotonic() + 60
        while not pool.twins[0].entered.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        pool.release.set()
        assert (first.result(), second.result()) == ("pool", "twin")
    assert safe.twin_calls == 1


@pytest.mark.parametrize(
    ("threads", "concurrency", "twin_threads"),
    [(2, 1, []), (1, 2, []), (8, 2, [4]), (2, 2, [1])],
)
def test_a_twin_only_where_it_has_fewer_threads(threads, concurrency, twin_threads):
    pool = FakePool(threads)
    app.guarded(pool, concurrency)
    assert [t.threads for t in pool.twins] == twin_threads


def test_the_onnx_twin_computes_what_the_model_does(untrained_onnx, images):
    """Same graph, same config, fewer threads: the same outputs (to float32 rounding)."""
    import numpy as np

    from utils.runtime import OnnxPredictor

    model = OnnxPredictor(untrained_onnx, threads=2)
    twin = model.with_threads(1)
    assert twin.threads == 1 and twin.config == model.config
    batch = np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)
    for ours, theirs in zip(model.run(batch), twin.run(batch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
