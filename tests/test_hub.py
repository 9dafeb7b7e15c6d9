"""utils.hub against the local Hub of utils/hub/local_server (HF_ENDPOINT, set by conftest.py).

Everything here runs the real huggingface_hub code: create_repo, upload_folder, create_tag,
hf_hub_download, model_info, ModelCard.validate.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import HfApi, ModelCard, hf_hub_download, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results
from PIL import Image

from utils import hub
from utils.hub.local_server import READ_ONLY_TOKEN, TEST_TOKEN, TEST_USER, HubTestServer
from utils.processing import InferenceConfig

METRICS = {
    "map": 0.41234,
    "map_50": 0.7891,
    "map_75": 0.3512,
    "count_mae": 2.25,
    "count_mape": 7.5,
    "threshold": 0.45,
    "images": 4,
    "per_image": [{"image": "a.jpg", "true": 10, "predicted": 9}],
}


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> tuple[Path, InferenceConfig]:
    """A real (random-weight, 128 px) ONNX model exported by utils.export: a stand-in for the course's."""
    from utils.export import export_onnx
    from utils.model import build_model

    # min_score 0 and a low threshold so random weights still give non-zero, image-dependent counts
    config = InferenceConfig(
        "fcos_resnet18",
        ("Microalgae",),
        128,
        score_threshold=0.0103,
        min_score=0.0,
        max_detections=50,
    )
    detector = build_model("fcos_resnet18", 1, 128, pretrained=False)
    path = export_onnx(detector, config, tmp_path_factory.mktemp("tiny") / "model.onnx")
    return path, config


@pytest.fixture(scope="session")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (96, 120, 3), dtype=np.uint8)) for _ in range(3)]


@pytest.fixture()
def config() -> InferenceConfig:
    return InferenceConfig("fcos_resnet18", ("Microalgae",), 384, score_threshold=0.45)


@pytest.fixture()
def model_folder(tmp_path, config) -> Path:
    """An upload folder with arbitrary model bytes (no torch needed)."""
    onnx = tmp_path / "src.onnx"
    onnx.write_bytes(b"not really onnx " + uuid.uuid4().bytes * 1000)
    ckpt = tmp_path / "src.pt"
    ckpt.write_bytes(b"checkpoint " + uuid.uuid4().bytes * 100)
    card = hub.build_model_card(config, METRICS, f"{TEST_USER}/whatever")
    return hub.prepare_upload_folder(tmp_path / "upload", onnx, ckpt, card, config, METRICS)


# -- the card -------------------------------------------------------------------------------
def test_card_metadata_holds_the_measured_numbers(config):
    card = hub.build_model_card(config, METRICS, f"{TEST_USER}/counter")
    meta = card.data.to_dict()
    assert meta["license"] == "apache-2.0"
    assert meta["library_name"] == "onnx"
    assert meta["pipeline_tag"] == "object-detection"
    assert {"object-detection", "onnx", "microscopy", "cell-counting"} <= set(meta["tags"])
    assert meta["datasets"] == [hub.DATASET_ID]
    _, results = model_index_to_eval_results(meta["model-index"])
    values = {r.metric_name: r.metric_value for r in results}
    assert values["mAP@[.5:.95]"] == round(METRICS["map"], 4)
    assert values["mAP@.5"] == round(METRICS["map_50"], 4)
    assert values["count MAE (cells per image)"] == METRICS["count_mae"]
    assert all(r.task_type == "object-detection" and r.dataset_split == "test" for r in results)
    text = str(card)
    for section in (
        "## Intended use",
        "## Limits",
        "## How to use it (5 lines)",
        "## How it was trained",
    ):
        assert section in text
    for limit in ("synthetic", "out-of-focus", "border", "Clumps", "incomplete"):
        assert limit in text
    # offline round trip of the YAML block
    assert ModelCard(text).data.to_dict() == meta


def test_card_rejects_metrics_without_numbers(config):
    with pytest.raises(ValueError, match="evaluate"):
        hub.build_model_card(config, {"per_image": []}, "x/y")


def test_card_validates_on_the_local_hub(config):
    hub.build_model_card(config, METRICS, f"{TEST_USER}/counter").validate()
    broken = ModelCard("---\nlicense:\n- apache-2.0\n- mit\n---\n# two licenses\n")
    with pytest.raises(ValueError, match="license"):
        broken.validate()


# -- push / pull ----------------------------------------------------------------------------
def test_upload_and_download_pinned_to_the_tag(model_folder, hub_server):
    repo = unique("counter")
    result = hub.push_folder(model_folder, repo, tag="v1")
    assert result.repo_id == f"{TEST_USER}/{repo}"
    assert result.revision == "v1" and len(result.commit_sha) == 40
    assert {"model.onnx", "model.pt", "config.json", "README.md"} <= set(result.files)

    # a second version on main must not change what the tag gives back
    original = (model_folder / "model.onnx").read_bytes()
    (model_folder / "model.onnx").write_bytes(b"version two")
    second = hub.push_folder(model_folder, repo, tag="v2")
    assert second.commit_sha != result.commit_sha

    pulled = hub.pull_model(result.repo_id, "v1")
    assert pulled.read_bytes() == original
    assert hub.pull_model(result.repo_id, result.commit_sha).read_bytes() == original
    assert hub.pull_model(result.repo_id, "v2").read_bytes() == b"version two"
    stored = hub_server.repo(result.repo_id)
    assert stored.files("v1")["model.onnx"] == original
    assert stored.tags == {"v1": result.commit_sha, "v2": second.commit_sha}


def test_card_round_trip_through_the_hub(model_folder):
    result = hub.push_folder(model_folder, unique("card"), tag="v1")
    readme = hf_hub_download(result.repo_id, "README.md", revision="v1")
    sent = metadata_load(model_folder / "README.md")
    assert metadata_load(readme) == sent
    _, results = model_index_to_eval_results(sent["model-index"])
    assert {r.metric_name: r.metric_value for r in results}["count MAE (cells per image)"] == 2.25
    info = HfApi().model_info(result.repo_id, revision="v1")
    assert info.sha == result.commit_sha
    assert info.card_data.to_dict()["license"] == "apache-2.0"
    assert info.pipeline_tag == "object-detection" and info.library_name == "onnx"


def test_allow_list_keeps_secrets_and_clutter_out(model_folder, hub_server):
    (model_folder / ".env").write_text(f"HF_TOKEN={TEST_TOKEN}\n")
    (model_folder / "hf_token.txt").write_text(TEST_TOKEN)
    (model_folder / "my.token").write_text(TEST_TOKEN)
    (model_folder / "secrets.json").write_text('{"token": "x"}')
    (model_folder / ".ipynb_checkpoints").mkdir()
    (model_folder / ".ipynb_checkpoints" / "config-checkpoint.json").write_text("{}")
    (model_folder / "__pycache__").mkdir()
    (model_folder / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (model_folder / "notes.txt").write_text("not on the allow-list")
    (model_folder / "examples").mkdir()
    (model_folder / "examples" / "cells.jpg").write_bytes(b"jpeg")

    planned = [path for path, _ in hub.upload_plan(model_folder)]
    assert planned == ["README.md", "config.json", "examples/cells.jpg", "model.onnx", "model.pt"]
    result = hub.push_folder(model_folder, unique("allow"))
    uploaded = hub_server.repo(result.repo_id).files()
    assert set(uploaded) == {".gitattributes", *planned}
    assert not any(TEST_TOKEN.encode() in data for data in uploaded.values())


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("credentials.json", '{"user": "me"}', "name"),
        ("service_account.json", "{}", "name"),
        ("My_Credentials.json", "{}", "name"),  # names are matched whatever their case
        (
            "gcp.json",
            '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----"}',
            "contains",
        ),
        ("notes.json", '{"hub": "hf_' + "A1b2C3d4E5" * 4 + '"}', "contains"),
        ("examples/README.md", "ghp_" + "x" * 36, "contains"),
    ],
)
def test_credentials_are_skipped_by_name_and_content(
    model_folder, hub_server, capsys, name, content, reason
):
    path = model_folder / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(content)
    planned = [p for p, _ in hub.upload_plan(model_folder, [*hub.ALLOW_PATTERNS, "*.md"])]
    assert name not in planned and "config.json" in planned
    skipped = hub.skipped_credentials(model_folder, [*hub.ALLOW_PATTERNS, "*.md"])
    assert [p for p, _ in skipped] == [name] and reason in skipped[0][1]

    result = hub.push_folder(
        model_folder, unique("creds"), allow_patterns=[*hub.ALLOW_PATTERNS, "*.md"]
    )
    assert name not in hub_server.repo(result.repo_id).files()
    said = capsys.readouterr().out
    assert f"Not uploading 1 file(s) that look like credentials: {name}" in said
    assert content not in said  # names the file, never shows what is in it


def test_model_files_are_not_scanned_as_text(model_folder):
    """Weights are random bytes: they may hold a token-like run, and they are never skipped."""
    (model_folder / "model.onnx").write_bytes(b"\0hf_" + b"A" * 40 + b"\0")
    assert "model.onnx" in [p for p, _ in hub.upload_plan(model_folder)]


def test_space_push(tmp_path, hub_server):
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "app.py").write_text("import gradio as gr\n")
    (folder / "requirements.txt").write_text("onnxruntime\n")
    (folder / "README.md").write_text(
        "---\ntitle: Counter\nsdk: gradio\napp_file: app.py\n---\n# Counter\n"
    )
    (folder / "model.onnx").write_bytes(b"onnx bytes")
    (folder / ".env").write_text("HF_TOKEN=nope\n")
    result = hub.push_folder(
        folder, unique("space"), repo_type="space", space_sdk="gradio", tag="v1"
    )
    stored = hub_server.repo(result.repo_id, "space")
    assert stored.sdk == "gradio"
    assert set(stored.files()) == {
        ".gitattributes",
        "app.py",
        "requirements.txt",
        "README.md",
        "model.onnx",
    }
    path = hf_hub_download(result.repo_id, "app.py", repo_type="space", revision="v1")
    assert Path(path).read_text() == "import gradio as gr\n"
    assert HfApi().space_info(result.repo_id).sdk == "gradio"


def test_explicit_tag_never_moves(model_folder):
    repo = unique("tags")
    hub.push_folder(model_folder, repo, tag="v1")
    hub.push_folder(model_folder, repo, tag="v1")  # same content, same commit: fine
    (model_folder / "model.onnx").write_bytes(b"changed")
    with pytest.raises(hub.TagExistsError, match="pick a new one"):
        hub.push_folder(model_folder, repo, tag="v1")


def test_verify_roundtrip_with_a_real_onnx_model(tiny_model, images, tmp_path):
    from utils.loading import load_predictor

    onnx, config = tiny_model
    folder = hub.prepare_upload_folder(tmp_path / "up", onnx, None, None, config, METRICS)
    result = hub.push_folder(folder, unique("verify"), tag="v1")
    local = load_predictor(onnx)
    check = hub.verify_roundtrip(result.repo_id, "v1", local, images, local_onnx=onnx)
    assert check["counts_identical"] and check["bytes_identical"]
    assert check["remote_counts"] == [local.predict(image).count for image in images]


# -- share_model: the notebook's call ---------------------------------------------------------
def test_share_model_pushes_tags_pulls_and_verifies(
    tiny_model, images, tmp_path, capfd, hub_server
):
    from utils.loading import load_predictor

    onnx, config = tiny_model
    name = unique("share")
    kwargs = dict(
        images=images, local_predictor=load_predictor(onnx), out_dir=tmp_path / "up", repo_name=name
    )
    first = hub.share_model(onnx, config, METRICS, **kwargs)
    assert first.pushed and first.push.tag == "v1"
    assert first.verification["counts_identical"] and first.verification["bytes_identical"]
    repo = hub_server.repo(f"{TEST_USER}/{name}")
    assert 'revision="v1"' in repo.files("v1")["README.md"].decode()

    again = hub.share_model(
        onnx, config, METRICS, **kwargs
    )  # nothing changed: same commit, same tag
    assert again.push.tag == "v1" and again.push.commit_sha == first.push.commit_sha
    assert len(repo.commits) == 2  # the repo's initial commit + one upload

    changed = dict(METRICS, count_mae=1.5)
    third = hub.share_model(onnx, config, changed, **kwargs)
    assert third.push.tag == "v2" and third.push.commit_sha != first.push.commit_sha
    assert 'revision="v2"' in repo.files("v2")["README.md"].decode()

    out, err = capfd.readouterr()
    assert "a local test server (HF_ENDPOINT)" in out
    assert not first.local and first.reason == "token"
    assert first.hub == "Hub: a local test server (HF_ENDPOINT), with a token (hf_****)."
    assert out.count(first.hub) == 3  # one Hub: line per call
    assert hub_server.url.split("//")[1] not in out  # no address or port in the output
    assert TEST_TOKEN not in out + err


def test_no_token_and_no_fallback_prints_one_sentence_and_uploads_nothing(
    tiny_model, tmp_path, monkeypatch, capfd, hub_server
):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert hub.get_token() is None  # HF_HOME is a temporary folder: no stored token either
    onnx, config = tiny_model
    before = len(hub_server.log)
    result = hub.share_model(
        onnx,
        config,
        METRICS,
        out_dir=tmp_path / "up",
        repo_name=unique("none"),
        local_fallback=False,
    )
    out, err = capfd.readouterr()
    assert not result.pushed and result.reason == "no token"
    assert len(out.strip().splitlines()) == 1
    assert (
        out.startswith("No Hugging Face token found")
        and "model.onnx (" in out
        and "config.json (" in out
    )
    assert len(hub_server.log) == before  # not a single request


class _RecordedServer(HubTestServer):
    """The local Hub that share_model starts, remembered so the test can see it stopped."""

    started: list[_RecordedServer] = []

    def start(self) -> HubTestServer:
        super().start()
        self.bound_port = self.url.rsplit(":", 1)[1]
        _RecordedServer.started.append(self)
        return self


def test_no_token_runs_the_round_trip_on_a_local_hub_and_says_so(
    tiny_model, images, tmp_path, monkeypatch, capfd, hub_server
):
    from huggingface_hub import constants

    from utils.loading import load_predictor

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("utils.hub.share.HubTestServer", _RecordedServer)
    _RecordedServer.started.clear()
    onnx, config = tiny_model
    before = len(hub_server.log)
    name = unique("local")
    result = hub.share_model(
        onnx,
        config,
        METRICS,
        images=images,
        local_predictor=load_predictor(onnx),
        out_dir=tmp_path / "up",
        repo_name=name,
        endpoint=hub.PUBLIC_ENDPOINT,  # what a learner has; without a token it is never called
    )
    out, err = capfd.readouterr()
    lines = out.strip().splitlines()
    assert result.pushed and result.local and result.reason == "no token"
    assert (
        lines[0]
        == result.hub
        == (
            "Hub: a local test server on 127.0.0.1 (no HF_TOKEN found); "
            "the same calls go to huggingface.co when you have a token."
        )
    )
    assert sum(line.startswith("Hub:") for line in lines) == 1
    assert result.push.repo_id == f"{TEST_USER}/{name}" and result.push.tag == "v1"
    assert "on the local test server" in lines[1]
    check = result.verification
    assert check["counts_identical"] and check["bytes_identical"]
    assert check["remote_counts"] == [load_predictor(onnx).predict(image).count for image in images]
    # its own server, stopped when the call returned: the session's Hub saw no request
    assert len(hub_server.log) == before
    (server,) = _RecordedServer.started
    assert server._httpd is None and any(path.endswith("/commit/main") for _, path, _ in server.log)
    # no port, no token, no path in the output; the fake repo stayed out of the HF cache
    assert server.bound_port not in out and "127.0.0.1:" not in out
    assert TEST_TOKEN not in out + err and str(tmp_path) not in out
    assert not list(Path(constants.HF_HUB_CACHE).glob(f"models--{TEST_USER}--{name}"))


def test_unreachable_hub_without_fallback_prints_one_sentence(tiny_model, tmp_path, capfd):
    onnx, config = tiny_model
    result = hub.share_model(
        onnx,
        config,
        METRICS,
        out_dir=tmp_path / "up",
        endpoint=_closed_endpoint(),
        timeout=1,
        local_fallback=False,
    )
    out, _ = capfd.readouterr()
    assert not result.pushed and result.reason == "hub unreachable"
    assert len(out.strip().splitlines()) == 1 and "cannot be reached" in out
    assert "127.0.0.1:" not in out


def test_unreachable_hub_falls_back_to_a_local_hub(tiny_model, tmp_path, capfd):
    onnx, config = tiny_model
    endpoint = _closed_endpoint()
    result = hub.share_model(
        onnx, config, METRICS, out_dir=tmp_path / "up", endpoint=endpoint, timeout=1
    )
    out, _ = capfd.readouterr()
    assert result.pushed and result.local and result.reason == "hub unreachable"
    assert out.startswith("Hub: a local test server on 127.0.0.1 (") and "did not answer" in out
    assert endpoint.rsplit(":", 1)[1] not in out and "127.0.0.1:" not in out


def test_offline_mode_uploads_nothing_anywhere(
    tiny_model, tmp_path, monkeypatch, capfd, hub_server
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    onnx, config = tiny_model
    before = len(hub_server.log)
    result = hub.share_model(onnx, config, METRICS, out_dir=tmp_path / "up")
    out, _ = capfd.readouterr()
    assert not result.pushed and result.reason == "offline mode"
    assert len(out.strip().splitlines()) == 1 and out.startswith("HF_HUB_OFFLINE is set")
    assert len(hub_server.log) == before


def _closed_endpoint() -> str:
    """A local URL that nothing listens on: connection refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_offline_mode_counts_as_unreachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.hub_reachable() is False


def test_local_hub_is_reachable_and_named_without_its_address():
    assert hub.hub_reachable()
    assert hub.endpoint_label() == "a local test server (HF_ENDPOINT)"
    assert hub.endpoint_label("https://huggingface.co") == "the Hugging Face Hub"


# -- errors -----------------------------------------------------------------------------------
def test_missing_token_says_what_to_do(model_folder, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(hub.MissingTokenError, match="HF_TOKEN") as info:
        hub.push_folder(model_folder, unique("x"))
    assert "Colab" in str(info.value) and "settings/tokens" in str(info.value)


@pytest.mark.parametrize(
    ("owner", "token", "error", "words"),
    [
        pytest.param(
            "",
            "hf_this_token_is_not_known_anywhere",
            hub.TokenRejectedError,
            "401",
            id="unknown-401",
        ),
        pytest.param("", READ_ONLY_TOKEN, hub.TokenPermissionError, "write", id="read-only"),
        pytest.param("someone-else/", None, hub.TokenPermissionError, "403", id="other-namespace"),
    ],
)
def test_refused_push_is_a_clear_error(model_folder, capfd, owner, token, error, words):
    with pytest.raises(error, match=words) as info:
        hub.push_folder(model_folder, f"{owner}{unique('x')}", token=token)
    out, err = capfd.readouterr()
    assert (token or TEST_TOKEN) not in str(info.value) + out + err  # a token is never shown


@pytest.mark.parametrize("bad", ["with space", "a/b/c", "double--dash", "x" * 100])
def test_invalid_repo_name(model_folder, bad):
    with pytest.raises(hub.InvalidRepoIdError, match="not valid"):
        hub.push_folder(model_folder, bad)


def test_token_is_masked_and_never_logged(hub_server):
    assert hub.describe_token(TEST_TOKEN) == "a token (hf_****)"
    assert hub.describe_token(None) == "no token"
    token, source = hub.token_and_source()
    assert token == TEST_TOKEN and source == "the HF_TOKEN environment variable"
    assert not any(TEST_TOKEN in path for _, path, _ in hub_server.log)
    for repo in list(hub_server.repos.values()):  # whatever this session uploaded so far
        for commit in list(repo.commits.values()):
            assert not any(TEST_TOKEN.encode() in data for data in commit.files.values())


def test_a_server_that_is_not_a_hub_counts_as_unreachable():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotFound(BaseHTTPRequestHandler):  # like a captive portal or a proxy's error page
        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert not hub.hub_reachable(f"http://127.0.0.1:{server.server_address[1]}", timeout=1)
    finally:
        server.shutdown()
        server.server_close()
