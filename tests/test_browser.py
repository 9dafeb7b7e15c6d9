"""The demo in a real browser: upload a photo, click, read the count (headless Chromium).

Needs the Debian/Ubuntu ``chromium`` package (``make browser`` installs it; CI does too);
Playwright's Python package drives it without downloading a browser of its own. Without
Chromium this test fails and says how to install it: a skipped UI test would hide a broken UI.

``UPDATE_SCREENSHOTS=1`` saves the picture the README shows (docs/images/demo_screenshot.png).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chromium import CHROMIUM_ARGS, chromium_path
from tests.test_app import THRESHOLD
from utils.images import load_image

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "images" / "demo_screenshot.png"


NO_CHROMIUM = (
    "Chromium is not installed, so the browser test cannot run. Install it with "
    "`make browser` or `sudo apt-get install -y chromium chromium-driver` "
    "(or set CHROMIUM_PATH to a Chromium/Chrome binary)."
)


UPDATE = os.environ.get("UPDATE_SCREENSHOTS") == "1"
TRAINED = ROOT / "artifacts" / "model.onnx"
TRAINED_SHOT = UPDATE and TRAINED.exists()  # README screenshots show the trained model


@pytest.fixture(scope="module")
def predictor(request):
    """The untrained test model; the trained one for README screenshots when it exists."""
    from utils.runtime import OnnxPredictor

    path = TRAINED if TRAINED_SHOT else request.getfixturevalue("untrained_onnx")
    return OnnxPredictor(path, threads=2)


@pytest.fixture(scope="module")
def page():
    """A headless Chromium page, or None when Chromium is missing (the tests then fail)."""
    executable = chromium_path()
    if executable is None:
        yield None
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            yield context.new_page()
        finally:
            browser.close()


def _set_threshold(page, value: float) -> None:
    page.locator("#threshold input[type=range]").fill(str(value))
    number = page.locator("#threshold input[type=number]")
    page.wait_for_function(
        "v => Number(document.querySelector('#threshold input[type=number]').value) === v",
        arg=value,
        timeout=10_000,
    )
    assert float(number.input_value()) == value


def test_upload_click_and_read_the_count(page, server, predictor, images, tmp_path):
    if page is None:
        pytest.fail(NO_CHROMIUM)
    threshold = None if TRAINED_SHOT else THRESHOLD  # None: the slider's default
    page.goto(server, wait_until="networkidle")
    page.locator("#photo input[type=file]").set_input_files(str(images[0]))
    page.locator("#photo img").first.wait_for(timeout=30_000)  # the upload has finished
    if threshold is not None:
        _set_threshold(page, threshold)
    page.get_by_role("button", name="Count cells").click()
    page.locator("#notes").get_by_text("found in").wait_for(timeout=60_000)
    shown = int(float(page.locator("#count input").input_value()))
    expected = predictor.predict(load_image(images[0]).image, threshold).count
    assert shown == expected
    page.locator("#annotated img").first.wait_for(timeout=30_000)
    assert "cell" in page.locator("#notes").inner_text()
    target = SCREENSHOT if UPDATE else tmp_path / "demo.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(target), full_page=False)
    assert target.stat().st_size > 10_000


def test_non_image_upload_shows_the_message(page, server, tmp_path):
    if page is None:
        pytest.fail(NO_CHROMIUM)
    notes = tmp_path / "notes.jpg"
    notes.write_text("lab notes, not a photo\n")
    page.goto(server, wait_until="networkidle")
    page.locator("#photo input[type=file]").set_input_files(str(notes))
    page.locator("#photo img").first.wait_for(state="attached", timeout=30_000)
    page.get_by_role("button", name="Count cells").click()
    message = page.locator("#notes")
    message.get_by_text("Could not count this upload").wait_for(timeout=60_000)
    assert "notes.jpg is not an image file" in message.inner_text()
