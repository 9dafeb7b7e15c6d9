"""Test session set-up shared by the unit tests and the notebooks run by nbval.

* A local Hugging Face Hub (``utils/hub/local_server``) runs for the whole session, and
  ``HF_ENDPOINT`` points huggingface_hub at it. huggingface_hub reads ``HF_ENDPOINT`` once,
  when it is first imported, so this happens when this file is imported (at the latest in
  ``pytest_configure``), before any test module or notebook kernel imports it. Kernels started by nbval inherit this environment, so
  notebook 04 runs the real upload/download code against the local server.
* ``HF_TOKEN`` is a fake token that only the local server accepts (never a real secret);
  ``HF_HOME`` is a temporary folder, so a developer's stored token and cache are never used
  or touched.
* ``COURSE_FAST=1`` unless already set: tests and CI run every notebook in fast mode
  (fewer epochs/images, same code path). Set ``COURSE_FAST=0`` to test the full mode.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

_SERVER = None
_HF_HOME: str | None = None

# Ray in the tests (a local instance, the two-node cluster of test_batch_cluster) binds every
# node and driver to 127.0.0.1 (Ray's single-machine mode, read once when ray is imported),
# so no test traffic uses an address other than loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def _start_local_hub() -> None:
    """Start the session's local Hub and point the environment at it (once)."""
    global _SERVER, _HF_HOME
    if _SERVER is not None:
        return
    from utils.hub.local_server import TEST_TOKEN, HubTestServer

    if "huggingface_hub" in sys.modules:  # too late for HF_ENDPOINT: fail loudly, not silently
        raise pytest.UsageError(
            "huggingface_hub was imported before conftest.py could set HF_ENDPOINT; "
            "a plugin imports it: run pytest with -p no:<plugin>"
        )
    _SERVER = HubTestServer().start()
    _HF_HOME = tempfile.mkdtemp(prefix="hf_home_")
    os.environ["HF_ENDPOINT"] = _SERVER.url
    os.environ["HF_TOKEN"] = TEST_TOKEN
    os.environ["HF_HOME"] = _HF_HOME
    os.environ.pop("HF_HUB_OFFLINE", None)
    no_proxy = os.environ.get("NO_PROXY", "")  # the local Hub must never go through a proxy
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(
        p for p in (no_proxy, "127.0.0.1", "localhost") if p
    )
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    # Tests and CI run the notebooks in fast mode; COURSE_FAST=0 forces the full mode.
    os.environ.setdefault("COURSE_FAST", "1")


def pytest_configure(config: pytest.Config) -> None:
    # Usually already done when this file was imported (before tests/conftest.py files,
    # which may import gradio and with it huggingface_hub); kept here for clarity.
    _start_local_hub()


_start_local_hub()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _SERVER, _HF_HOME
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None
    if _HF_HOME is not None:
        shutil.rmtree(_HF_HOME, ignore_errors=True)
        _HF_HOME = None


@pytest.fixture(scope="session")
def hub_server():
    """The session's local Hub (``utils.hub.local_server.HubTestServer``): ``.url``, ``.repos``, ``.log``."""
    if _SERVER is None:
        pytest.fail("the local Hub was not started (conftest.pytest_configure did not run)")
    return _SERVER
