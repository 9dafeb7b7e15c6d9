"""Where a demo API call's milliseconds go (issue 20): the timing records the app fills.

No speed thresholds here (the goal lives in ``python -m utils.bench api``'s output): these tests
check that the split is whole and honest - every part present, none negative, the parts never
more than the call - and that filling it changed nothing a client sees.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from PIL import Image

from utils import app
from utils.images import load_image
from utils.processing import PARTS, CallTimes, part, recording

THRESHOLD = 0.1  # the untrained model scores ~0.1: a threshold that leaves some boxes
COUNTED = ("decode", "preprocess", "graph", "postprocess", "draw")  # count_cells's own parts


def test_parts_outside_a_record_cost_nothing_and_nested_parts_count_once():
    with part("graph"):  # no record open: a no-op, not an error
        pass
    with recording() as times:
        with part("graph"):
            with part("postprocess"):  # inside "graph": counted by the outer part only
                time.sleep(0.01)
        with part("graph"):
            pass
    assert set(times.seconds) == {"graph"}
    assert times.seconds["graph"] >= 0.01
    assert times.total() <= times.wall
    assert times.untimed() >= 0.0
    assert list(times.ms()) == list(PARTS)  # every part listed, in the bench's order


def test_records_of_two_threads_stay_apart():
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> CallTimes:
        with recording() as times:
            with part(name):
                time.sleep(0.005)
        return times

    with ThreadPoolExecutor(2) as pool:
        draw, encode = pool.map(one, ["draw", "encode"])
    assert set(draw.seconds) == {"draw"} and set(encode.seconds) == {"encode"}


def test_count_cells_fills_every_part_and_counts_the_same(predictor, images):
    plain = app.count_cells(predictor, images[0], THRESHOLD)
    with recording() as times:
        result = app.count_cells(predictor, images[0], THRESHOLD)
        answer = result.to_json()  # /count_base64's answer: encodes the picture
    assert (
        result.count
        == plain.count
        == predictor.predict(load_image(images[0]).image, THRESHOLD).count
    )
    assert result.rows == plain.rows
    ms = times.ms()
    assert all(ms[name] > 0 for name in (*COUNTED, "encode")), ms
    assert all(value >= 0 for value in ms.values())
    assert times.total() <= times.wall
    assert answer["image"].startswith("data:image/jpeg;base64,")


def test_save_picture_writes_the_jpeg_gradio_would(tmp_path: Path, images):
    picture = load_image(images[0]).image
    with recording() as times:
        path = app.core.save_picture(picture, tmp_path)
    assert path is not None and Path(path).parent.parent == tmp_path.resolve()
    assert Path(path).name == "image.jpeg"  # the name gr.Image(format="jpeg") gives
    with Image.open(path) as saved:
        assert saved.format == "JPEG" and saved.size == picture.size
    assert times.ms()["encode"] > 0
    assert app.core.save_picture(None, tmp_path) is None


@pytest.fixture(scope="module")
def timed_app(predictor, images):
    """The app with a handle on its demo, to read the timing record of each call."""
    demo = app.build_demo(predictor, examples=images)
    url, close = app.launch_in_background(demo)
    try:
        yield url, demo
    finally:
        close()


def one_timed_call(timed_app, call):
    """One call through ``call(url)``, its answer and its split row, checked whole."""
    from utils.bench.api import split_row

    url, demo = timed_app
    demo.course_call_times.clear()
    start = time.perf_counter()
    result = call(url)
    total = time.perf_counter() - start
    assert len(demo.course_call_times) == 1  # one record per call
    record = demo.course_call_times[-1]
    row = split_row(record, total)
    assert all(row[name] > 0 for name in (*COUNTED, "encode")), row
    assert all(value >= 0 for value in row.values()), row
    parts = sum(row[name] for name in PARTS)
    assert parts <= record.wall * 1000 <= row["total"]
    assert parts + row["app_untimed"] + row["gradio_http"] == pytest.approx(row["total"])
    return result


def test_one_http_call_one_whole_split(timed_app, predictor, images):
    result = one_timed_call(
        timed_app, lambda url: app.call_with_requests(url, images[0], THRESHOLD)
    )
    # Counting with the record on changed nothing the client sees.
    direct = app.count_cells(predictor, images[0], THRESHOLD)
    assert result["count"] == direct.count
    assert result["table"]["headers"] == app.TABLE_COLUMNS
    assert result["table"]["data"] == direct.rows
    assert f"**{direct.count} cell" in result["notes"]


def test_one_plain_route_call_one_whole_split(timed_app, predictor, images):
    """``POST /api/count`` fills the same record as Gradio's routes, the picture's encoding too."""
    answer = one_timed_call(
        timed_app, lambda url: app.call_rest_with_requests(url, images[0], THRESHOLD)
    )
    assert answer["count"] == app.count_cells(predictor, images[0], THRESHOLD).count


def test_the_returned_picture_is_the_display_picture(timed_app, predictor, images):
    """The picture the client gets is the one drawn for display (at most DISPLAY_SIDE), as a JPEG."""
    import requests

    url, _ = timed_app
    result = app.call_with_requests(url, images[0], THRESHOLD)
    image = result["image"]
    assert image["orig_name"] == "image.jpeg" and image["url"].endswith("/image.jpeg")
    data = requests.get(image["url"], timeout=30).content
    with Image.open(io.BytesIO(data)) as got:
        drawn = app.count_cells(predictor, images[0], THRESHOLD).image
        assert got.format == "JPEG" and got.size == drawn.size
        assert max(got.size) <= app.core.DISPLAY_SIDE


def test_a_bad_upload_is_timed_too(timed_app, tmp_path: Path):
    url, demo = timed_app
    bad = tmp_path / "notes.jpg"
    bad.write_text("lab notes, not a picture\n")
    demo.course_call_times.clear()
    result = app.call_with_requests(url, bad)
    assert result["count"] is None and "notes.jpg is not an image file" in result["notes"]
    assert result["image"] is None
    record = demo.course_call_times[-1]
    assert record.ms()["graph"] == 0.0 and record.total() <= record.wall


def test_split_table_prints_every_part(capsys):
    from utils.bench.api import print_split
    from utils.bench.api.split import LABELS, mean_split

    record = CallTimes({"decode": 0.001, "graph": 0.09}, wall=0.1)
    rows = [split_row_for(record, 0.12)]
    split = {
        "n": 1,
        "model_p50_ms": 95.0,
        "call_p50_ms": 120.0,
        "ratio": 1.263,
        "goal_ratio": 1.3,
        "model_mean_ms": mean_split(rows),
        "call_mean_ms": mean_split(rows),
    }
    print_split(split)
    out = capsys.readouterr().out
    assert all(label in out for label in LABELS.values())
    assert "1.26x, met" in out and "Gradio's API (upload + call + SSE)" in out
    print_split({**split, "route": "rest", "call_p50_ms": 130.0, "ratio": 1.368})
    out = capsys.readouterr().out
    assert "(one POST /api/count)" in out and "1.37x, NOT met" in out


@pytest.mark.parametrize("rate,verdict", [(9.67, "69%, NOT met"), (13.0, "93%, met")])
def test_throughput_goal_compares_the_served_rate_with_the_models_own(rate, verdict):
    from utils.bench.api import throughput_goal

    goal = throughput_goal({"mean_ms": 71.2}, {"clients": 8, "requests_per_s": rate})
    assert goal["model_per_s"] == pytest.approx(1000 / 71.2, abs=0.01)
    assert goal["line"].endswith(verdict + ".") and "8 clients" in goal["line"]


def split_row_for(record: CallTimes, total: float) -> dict[str, float]:
    from utils.bench.api import split_row

    row = split_row(record, total)
    assert row["gradio_http"] == pytest.approx(20.0) and row["app_untimed"] == pytest.approx(9.0)
    return row


def test_onnx_runtime_threads_do_not_spin_by_default(untrained_onnx):
    """Set once per session: spinning pool threads would take the cores the request needs next."""
    from utils.runtime import OnnxPredictor

    key = "session.intra_op.allow_spinning"
    quiet = OnnxPredictor(untrained_onnx, threads=2)
    assert quiet.session.get_session_options().get_session_config_entry(key) == "0"
    eager = OnnxPredictor(untrained_onnx, threads=2, spinning=True)
    assert eager.session.get_session_options().get_session_config_entry(key) == "1"


def test_a_file_outside_the_uploads_is_still_refused(timed_app, images):
    """/count skips Gradio's preprocess step (done in the handler): Gradio must still refuse a
    path that it did not receive as an upload, before the handler runs."""
    import requests

    url, demo = timed_app
    base = url.rstrip("/")
    demo.course_call_times.clear()
    file = {"path": str(Path(images[0]).resolve()), "meta": {"_type": "gradio.FileData"}}
    body = {"data": [file, THRESHOLD, True, True]}
    response = requests.post(f"{base}/gradio_api/call/{app.API_NAME}", json=body, timeout=30)
    response.raise_for_status()
    event, _ = app.read_sse_result(
        requests, f"{base}/gradio_api/call/{app.API_NAME}/{response.json()['event_id']}"
    )
    assert event == "error"
    assert len(demo.course_call_times) == 0  # refused before the handler
