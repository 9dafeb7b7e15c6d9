"""Where the browser tests find Chromium, and how they start it (shared by test_browser, test_web).

As root and with no network, Chromium needs --no-sandbox and must not try background
connections. Playwright drives this system binary; its own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from utils.web import CHROMIUM_ARGS  # one list for the course's own browser runs and its tests

__all__ = ["CHROMIUM_ARGS", "chromium_path"]


def chromium_path() -> str | None:
    """CHROMIUM_PATH, else Debian's chromium; None when there is none (callers fail, not skip)."""
    for candidate in (
        os.environ.get("CHROMIUM_PATH"),
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        shutil.which("chromium") or "",
        shutil.which("chromium-browser") or "",
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None
