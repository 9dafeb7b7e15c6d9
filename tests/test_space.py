"""The generated Space folders: the Gradio app (files, card, a torch-free run, a push) and the
static in-browser counter (served, opened in headless Chromium, pushed and pulled back), and
what a free account hears when the Hub answers 402 for a Gradio Space."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_app import THRESHOLD
from utils import space
from utils.images import load_image


@pytest.fixture(scope="module")
def onnx_file(untrained_onnx) -> Path:
    return untrained_onnx


@pytest.fixture(scope="module")
def folder(tmp_path_factory, onnx_file, images) -> Path:
    return space.write_space(tmp_path_factory.mktemp("spaces") / "space", onnx_file, images)


def test_files(folder, images):
    names = {name for name, _ in space.list_files(folder)}
    expected = {"app.py", "requirements.txt", "README.md", "model.onnx"}
    expected.add("course/__init__.py")
    for m in space.SPACE_MODULES:  # a module, or a package (app, ...)
        package = (Path(space.__file__).parents[1] / m).is_dir()
        expected.add(f"course/{m}/__init__.py" if package else f"course/{m}.py")
    expected |= {f"examples/{p.name}" for p in images}
    assert expected <= names, expected - names
    assert not any(n.startswith("course/") and n.endswith(("model.py", "train.py")) for n in names)
    # serving code only: no exporter, no Hub hand-off, no checkpoint (torch)
    shipped = {Path(n).stem for n in names if n.startswith("course/")}
    assert not shipped & {"export", "handoff", "checkpoint", "hub"}, shipped


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
    for name in ("app.py", "README.md", "requirements.txt", "model.onnx", "course/app/core.py"):
        assert name in files, (name, sorted(files))
    assert any(f.startswith("examples/") for f in files)
    card = Path(api.hf_hub_download(result.repo_id, "README.md", repo_type="space"))
    assert "sdk: gradio" in card.read_text(encoding="utf-8")


# -- the static Space ------------------------------------------------------------------------
N_STATIC = 8


@pytest.fixture(scope="module")
def static_images() -> list[Path]:
    found = sorted((Path(__file__).resolve().parents[1] / "data" / "test").glob("*.jpg"))
    assert len(found) >= N_STATIC, "data/test needs held-out photos: run `make data`"
    return found[:N_STATIC]


@pytest.fixture(scope="module")
def static_folder(tmp_path_factory, counting_onnx, static_images) -> Path:
    from utils.web import WebSetupError

    try:
        # fp32: float16 weights move this untrained model's crowded scores (~0.1) below its
        # threshold, which would leave nothing to compare; the trained model keeps its counts.
        return space.write_static_space(
            tmp_path_factory.mktemp("static") / "space",
            counting_onnx,
            static_images[:3],
            weights="fp32",
        )
    except WebSetupError as error:  # onnxruntime-web not installed: say how, do not skip
        pytest.fail(str(error))


def test_static_space_files_and_card(static_folder):
    from huggingface_hub import metadata_load

    from utils.web import ORT_FILES, shipped_as

    names = {name for name, _ in space.list_files(static_folder)}
    expected = {"README.md", "index.html", "counter.js", "model.onnx", "config.json"}
    expected |= {f"ort/{shipped}" for name in ORT_FILES for shipped in shipped_as(name)}
    assert expected <= names, expected - names
    assert not any(n.endswith(".py") for n in names)
    meta = metadata_load(static_folder / "README.md")
    assert meta["sdk"] == "static" and meta["app_file"] == "index.html"
    assert meta["custom_headers"]["cross-origin-embedder-policy"] == "require-corp"
    assert len(meta["short_description"]) <= 60
    page = (static_folder / "index.html").read_text()
    assert 'content="./model.onnx"' in page and "https://" not in page  # no CDN at run time


def test_static_space_counts_like_python_in_chromium(static_folder, static_images):
    """Served on 127.0.0.1, opened in headless Chromium: every count equals Python's on the
    file the Space ships."""
    from utils import web
    from utils.loading import load_predictor

    try:
        web.chromium_executable()
    except web.WebSetupError as error:
        pytest.fail(str(error))
    result = web.count_in_browser(static_folder, static_images)
    predictor = load_predictor(static_folder / "model.onnx")
    expected = [predictor.predict(load_image(p).image).count for p in static_images]
    shown = [row["count"] for row in result["rows"]]
    assert shown == expected
    assert sum(expected) >= 3 * len(expected), f"too few boxes for a real check: {expected}"
    assert result["load"]["decoded"] > (static_folder / "model.onnx").stat().st_size


def test_fp16_weights_halve_the_file_and_keep_the_config(
    tmp_path, counting_onnx, counting_candidates, static_images
):
    """The static Space's default: half the bytes, the same config, float32 outputs."""
    import numpy as np

    from utils.export import read_onnx_config
    from utils.web import fp16_weights

    folder = space.write_static_space(tmp_path / "fp16", counting_onnx, [])
    shipped = folder / "model.onnx"
    assert shipped.stat().st_size < 0.6 * counting_onnx.stat().st_size
    assert read_onnx_config(shipped) == read_onnx_config(counting_onnx)
    again = fp16_weights(counting_onnx, tmp_path / "again.onnx")
    assert again.read_bytes() == shipped.read_bytes()  # deterministic
    import onnxruntime

    from utils.processing import preprocess

    batch = preprocess([load_image(static_images[0]).image], read_onnx_config(shipped))[0]
    outputs = []
    for path in (counting_onnx, shipped):
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {session.get_inputs()[0].name: batch}))
    assert all(half.dtype == np.float32 for half in outputs[1])  # float16 storage only
    # The top scores stay close (a peak may move to a neighbouring anchor, so compare sorted).
    top_full, top_half = (np.sort(o[1].ravel())[-counting_candidates:] for o in outputs)
    assert float(np.abs(top_full - top_half).max()) <= 0.05 * float(top_full.max())


def test_cli_writes_a_static_space(tmp_path, counting_onnx, capsys):
    out = tmp_path / "cli_space"
    space.main(
        ["--sdk", "static", "--out", str(out), "--model", str(counting_onnx), "--weights", "fp32"]
    )
    assert (out / "model.onnx").read_bytes() == counting_onnx.read_bytes()
    assert space.space_sdk(out) == "static"
    printed = capsys.readouterr().out
    assert "static Space written to" in printed and str(tmp_path) not in printed


def test_static_space_with_a_hub_model_url(tmp_path, counting_onnx):
    url = "https://huggingface.co/someone/microalgae-counter/resolve/v1/model.onnx"
    folder = space.write_static_space(tmp_path / "s", counting_onnx, [], model_url=url)
    assert not (folder / "model.onnx").exists()
    assert f'<meta name="model-url" content="{url}">' in (folder / "index.html").read_text()
    assert url in (folder / "README.md").read_text()


def test_static_space_push_and_pull_give_the_same_files(static_folder, tmp_path):
    from huggingface_hub import snapshot_download

    result = space.push_space(static_folder, "microalgae-counter-static")
    assert space.space_sdk(static_folder) == "static"
    pulled = Path(
        snapshot_download(result.repo_id, repo_type="space", local_dir=tmp_path / "pulled")
    )
    local = {
        name: (static_folder / name).read_bytes() for name, _ in space.list_files(static_folder)
    }
    remote = {
        name: (pulled / name).read_bytes()
        for name, _ in space.list_files(pulled)
        if name != ".gitattributes" and not name.startswith(".cache/")
    }
    assert remote.keys() == local.keys(), set(remote) ^ set(local)
    assert all(remote[name] == local[name] for name in local)


def test_free_account_gets_one_sentence_with_three_options(folder, static_folder, hub_server):
    """The local Hub answers 402 for a Gradio Space, as huggingface.co does a free account."""
    hub_server.free_plan = True
    try:
        with pytest.raises(space.PaidSpaceError) as caught:
            space.push_space(folder, "gradio-on-a-free-account")
        pushed = space.push_space(static_folder, "static-on-a-free-account")
    finally:
        hub_server.free_plan = False
    message = str(caught.value)
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    for option in ("HTTP 402", "PRO", "ZeroGPU", "@spaces.GPU", "--sdk static"):
        assert option in message, option
    assert "index.html" in pushed.files


def test_zerogpu_space_is_created_on_a_free_account(tmp_path, onnx_file, hub_server):
    """ZeroGPU is the Gradio Space a free account may still host: it needs a @spaces.GPU function."""
    folder = space.write_space(tmp_path / "zero", onnx_file, zerogpu=True)
    app_py = (folder / "app.py").read_text()
    compile(app_py, "app.py", "exec")
    assert app_py.index("@spaces.GPU") < app_py.index('if __name__ == "__main__"')  # before launch
    assert "spaces" in (folder / "requirements.txt").read_text().split()
    hub_server.free_plan = True
    try:
        pushed = space.push_space(folder, "zerogpu-on-a-free-account")
    finally:
        hub_server.free_plan = False
    assert "app.py" in pushed.files
