"""The Gradio app over real HTTP on 127.0.0.1: gradio_client, raw requests, bad uploads.

The model is an untrained detector exported to ONNX (seeded, so deterministic): its counts
mean nothing, but the app must return exactly what the Predictor computes directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils import app
from utils.images import load_image

THRESHOLD = 0.1  # an untrained model scores ~0.1: a threshold that leaves some boxes
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.jpg"
    text.write_text("lab notes, not a picture\n")
    tiny = folder / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    cut = folder / "cut.jpg"
    array = (np.random.default_rng(0).random((200, 300, 3)) * 255).astype(np.uint8)
    Image.fromarray(array).save(cut, quality=90)
    cut.write_bytes(cut.read_bytes()[:3000])
    return {"text": text, "tiny": tiny, "truncated": cut}


def expected(predictor, path: Path, threshold: float | None = THRESHOLD) -> int:
    return predictor.predict(load_image(path).image, threshold).count


def test_count_cells_without_a_server(predictor, images, bad_files):
    result = app.count_cells(predictor, images[0], THRESHOLD)
    assert result.count == expected(predictor, images[0])
    assert len(result.rows) == result.count
    assert result.image is not None and result.image.mode == "RGB"
    assert f"**{result.count} cell" in result.notes_markdown()
    empty = app.count_cells(predictor, None)
    assert empty.count is None and "Upload a photo" in empty.notes_markdown()
    bad = app.count_cells(predictor, bad_files["text"])
    assert bad.count is None and "notes.jpg is not an image file" in bad.error
    assert "Could not count" in bad.notes_markdown()


def test_named_endpoints(server):
    from gradio_client import Client

    client = Client(server, verbose=False, analytics_enabled=False)
    try:
        info = client.view_api(print_info=False, return_format="dict")
    finally:
        client.close()
    names = set(info["named_endpoints"])
    assert {f"/{app.API_NAME}", f"/{app.BASE64_API_NAME}"} <= names
    params = [p["parameter_name"] for p in info["named_endpoints"]["/count"]["parameters"]]
    assert params == ["image", "threshold", "show_boxes", "show_scores"]


def test_gradio_client_counts_equal_predictor(server, predictor, images):
    for path in images:
        result = app.call_with_client(server, path, THRESHOLD)
        assert result["count"] == expected(predictor, path), path.name
        assert len(result["table"]["data"]) == result["count"]
        assert result["table"]["headers"] == app.TABLE_COLUMNS  # one class: no class column
        assert Path(result["image"]).is_file()  # the client downloaded the annotated picture


def test_default_threshold_is_the_models(server, predictor, images):
    result = app.call_with_client(server, images[0])  # no threshold: the slider's default
    assert result["count"] == expected(predictor, images[0], None)


def test_raw_http_counts_equal_predictor(server, predictor, images):
    record: list[dict] = []
    result = app.call_with_requests(server, images[0], THRESHOLD, record=record)
    assert result["count"] == expected(predictor, images[0])
    assert [r["request"].split()[0] for r in record] == ["POST", "POST", "GET"]
    assert "complete" in record[-1]["response"]


def test_base64_endpoint_counts_equal_predictor(server, predictor, images):
    answer = app.call_base64_with_requests(server, images[1], THRESHOLD)
    assert answer["count"] == expected(predictor, images[1])
    assert len(answer["detections"]) == answer["count"]
    assert answer["image"].startswith("data:image/jpeg;base64,")
    assert answer["error"] is None
    # one class: the answer of before issue 19 (no "counts", no "class"; see test_multiclass)
    assert "counts" not in answer
    assert all(list(d) == app.TABLE_COLUMNS for d in answer["detections"])


def test_standalone_requests_client(server, predictor, images):
    script = ROOT / "clients" / "python_requests.py"
    for extra in ([], ["--base64"], ["--rest"]):
        done = subprocess.run(
            [sys.executable, str(script), *extra, server, str(images[0]), str(THRESHOLD)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert f'"count": {expected(predictor, images[0])}' in done.stdout


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("text", "notes.jpg is not an image file"),
        ("tiny", "tiny.png is only 1 x 1 px"),
        ("truncated", "cut.jpg looks like a JPEG file but its pixel data is truncated"),
    ],
)
def test_bad_upload_gives_a_message_and_the_server_keeps_serving(
    server, predictor, images, bad_files, kind, message
):
    by_client = app.call_with_client(server, bad_files[kind])
    assert by_client["count"] is None
    assert "Could not count this upload" in by_client["notes"] and message in by_client["notes"]
    by_http = app.call_with_requests(server, bad_files[kind])
    assert by_http["count"] is None and message in by_http["notes"]
    good = app.call_with_client(server, images[0], THRESHOLD)
    assert good["count"] == expected(predictor, images[0])


def test_bad_base64_gives_an_error_field(server):
    import requests

    base = server.rstrip("/")
    for value in ("data:image/jpeg;base64,bm90IGFuIGltYWdl", "%%% not base64 %%%"):
        response = requests.post(
            f"{base}/gradio_api/call/{app.BASE64_API_NAME}", json={"data": [value, 0.5]}, timeout=30
        )
        response.raise_for_status()
        event, data = app.read_sse_result(
            requests, f"{base}/gradio_api/call/{app.BASE64_API_NAME}/{response.json()['event_id']}"
        )
        assert event == "complete"
        assert data[0]["count"] is None and data[0]["error"]


def test_upload_size_limit(server):
    import requests

    base = server.rstrip("/")
    big = b"\xff\xd8\xff" + b"\x00" * (26 * 1024 * 1024)
    response = requests.post(
        f"{base}/gradio_api/upload", files={"files": ("huge.jpg", big)}, timeout=60
    )
    assert response.status_code == 413


def test_app_modules_import_without_torch(no_torch_env):
    """The Space copies these modules and has no torch: they must not import it."""
    code = (
        "import sys\n"
        "import utils.app, utils.images, utils.runtime, utils.viz, utils.processing, utils.space\n"
        "assert sys.modules.get('torch') is None\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=no_torch_env,
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_command_line_app_serves(predictor, images, untrained_onnx):
    """``python -m utils.app --model ... --port ...`` is what ``make demo`` runs."""
    import time

    import requests

    port = app.free_port()
    model = untrained_onnx
    process = subprocess.Popen(
        [sys.executable, "-m", "utils.app", "--model", str(model), "--port", str(port)],
        cwd=ROOT,
        # ONNX Runtime named (COURSE_RUNTIME): the count is compared with ONNX Runtime's at a
        # threshold amid an untrained model's scores, where bf16 compute would move it
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "COURSE_RUNTIME": "onnxruntime"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()[-3000:]
            try:
                if requests.get(url + "config", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the app did not start within 2 minutes"
            time.sleep(0.5)
        result = app.call_with_requests(url, images[0], THRESHOLD)
        assert result["count"] == expected(predictor, images[0])
        plain = app.call_rest_with_requests(url, images[0], THRESHOLD)  # the command serves it too
        assert plain["count"] == result["count"]
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "Serving" in output and "onnxruntime fp32: forced (onnxruntime)" in output


def test_event_stream_is_read_in_large_reads():
    """The result line carries the annotated picture (~140 KB of base64); requests' default
    512-byte reads made parsing it cost about 9 ms of Python a call. Both clients ask for
    large reads and still find the result after other events."""
    import importlib.util

    lines = ["event: heartbeat", "data: null", "", "event: complete", 'data: [1, {"a": 2}]']
    asked: list[int] = []

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def raise_for_status(self):
            return None

        def iter_lines(self, chunk_size=512, decode_unicode=False):
            asked.append(chunk_size)
            yield from lines

    class Http:
        def get(self, url, stream=False, timeout=None):
            return Response()

    assert app.read_sse_result(Http(), "http://x") == ("complete", [1, {"a": 2}])
    spec = importlib.util.spec_from_file_location(
        "python_requests", Path(__file__).resolve().parents[1] / "clients" / "python_requests.py"
    )
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    assert client.read_result(Http(), "http://x") == [1, {"a": 2}]
    assert len(asked) == 2 and min(asked) >= 1 << 14
