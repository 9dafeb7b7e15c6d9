"""The generated Space folder: its files, card, requirements, a torch-free run, and a push."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_app import THRESHOLD, held_out_images, untrained_onnx
from utils import space
from utils.images import load_image

# Makes ``import torch`` fail in a child process, as on a Space without torch installed.
BLOCK_TORCH = "import sys\nfor _name in ('torch', 'torchvision'):\n    sys.modules[_name] = None\n"


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> Path:
    return untrained_onnx(tmp_path_factory)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    return held_out_images(tmp_path_factory)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, onnx_file, images) -> Path:
    return space.write_space(tmp_path_factory.mktemp("spaces") / "space", onnx_file, images)


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("no_torch")
    (site / "sitecustomize.py").write_text(BLOCK_TORCH)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), GRADIO_ANALYTICS_ENABLED="False")
    return env


def test_files(folder, images):
    names = {name for name, _ in space.list_files(folder)}
    expected = {"app.py", "requirements.txt", "README.md", "model.onnx"}
    expected |= {f"course/{m}.py" for m in ("__init__", *space.SPACE_MODULES)}
    expected |= {f"examples/{p.name}" for p in images}
    assert expected <= names, expected - names
    assert not any(n.startswith("course/") and n.endswith(("model.py", "train.py")) for n in names)


def test_card_front_matter(folder):
    from huggingface_hub import metadata_load

    meta = metadata_load(folder / "README.md")
    import gradio

    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == gradio.__version__
    assert meta["app_file"] == "app.py"
    assert meta["license"] == "apache-2.0"
    assert meta["pinned"] is False
    for key in ("title", "emoji", "colorFrom", "colorTo", "short_description"):
        assert meta[key], key
    assert len(meta["short_description"]) <= 60


def test_requirements_have_no_torch(folder):
    lines = (folder / "requirements.txt").read_text().split()
    names = {line.split("=")[0].split(">")[0].split("<")[0].lower() for line in lines}
    assert {"gradio", "onnxruntime", "numpy", "pillow"} <= names
    assert not names & {"torch", "torchvision", "onnx", "openvino"}


def test_rewrite_replaces_only_generated_folders(tmp_path, onnx_file):
    out = space.write_space(tmp_path / "s", onnx_file)
    assert space.write_space(out, onnx_file) == out  # an earlier Space is replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not a generated Space folder"):
        space.write_space(other, onnx_file)
    assert (other / "thesis.tex").exists()


def test_app_builds_without_torch(folder, no_torch_env):
    code = (
        "import sys, app\n"
        "assert sys.modules.get('torch') is None\n"
        "print(type(app.demo).__name__, app.predictor.runtime)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=no_torch_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Blocks onnxruntime" in done.stdout


def test_space_app_serves_without_torch(folder, no_torch_env, images):
    """Run ``python app.py`` as the Space would (torch blocked) and count through the API."""
    from gradio_client import handle_file

    from utils.app import free_port
    from utils.runtime import OnnxPredictor

    port = free_port()
    env = {**no_torch_env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        client = _connect(url, process)
        try:
            _, count, _, _ = client.predict(
                image=handle_file(str(images[0])), threshold=THRESHOLD, api_name="/count"
            )
        finally:
            client.close()
        direct = OnnxPredictor(folder / "model.onnx").predict(
            load_image(images[0]).image, THRESHOLD
        )
        assert int(count) == direct.count
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _connect(url: str, process: subprocess.Popen, timeout: float = 120.0):
    import requests
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"the Space app exited with {process.returncode}:\n{output[-3000:]}")
        try:
            if requests.get(url + "config", timeout=2).ok:
                return Client(url, verbose=False, analytics_enabled=False)
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    pytest.fail("the Space app did not start within 2 minutes")


def test_push_to_the_local_hub(folder):
    endpoint = os.environ.get("HF_ENDPOINT", "")
    assert endpoint.startswith("http://127.0.0.1"), (
        "conftest.py should start the local Hub test server and set HF_ENDPOINT"
    )
    from huggingface_hub import HfApi

    result = space.push_space(folder, "microalgae-counter-space")
    api = HfApi(endpoint=endpoint)
    files = set(api.list_repo_files(result.repo_id, repo_type="space"))
    for name in ("app.py", "README.md", "requirements.txt", "model.onnx", "course/app.py"):
        assert name in files, (name, sorted(files))
    assert any(f.startswith("examples/") for f in files)
    card = Path(api.hf_hub_download(result.repo_id, "README.md", repo_type="space"))
    assert "sdk: gradio" in card.read_text(encoding="utf-8")
