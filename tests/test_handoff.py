"""utils.handoff against the local Hub (tests/hub_server.py): the learner's own model, or training."""

from __future__ import annotations

import uuid

import pytest
from huggingface_hub import HfApi

from tests.hub_server import TEST_TOKEN, TEST_USER
from utils import handoff, hub

CKPT_BYTES = b"checkpoint bytes"
ONNX_BYTES = b"onnx bytes"


def _push(name: str, files: dict[str, bytes]) -> str:
    """A model repo of the test user holding ``files`` (what notebook 04 would have pushed)."""
    api = HfApi(endpoint=hub.hub_endpoint(), token=TEST_TOKEN)
    repo_id = f"{TEST_USER}/{name}"
    api.create_repo(repo_id, exist_ok=True)
    for path, data in files.items():
        api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=repo_id)
    return repo_id


@pytest.fixture
def pushed(hub_server) -> str:
    return _push(f"counter-{uuid.uuid4().hex[:8]}", {"model.pt": CKPT_BYTES, "model.onnx": ONNX_BYTES})


def test_repo_from_the_setting_is_downloaded(pushed, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(handoff.REPO_ENV, pushed)
    ckpt, onnx = tmp_path / "artifacts" / "model.pt", tmp_path / "artifacts" / "model.onnx"
    result = handoff.fetch_own_model(checkpoint=ckpt, onnx=onnx)
    assert result and result.repo_id == pushed
    assert ckpt.read_bytes() == CKPT_BYTES and onnx.read_bytes() == ONNX_BYTES
    assert ckpt.stat().st_mtime <= onnx.stat().st_mtime  # ensure_onnx must not export again
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [result.message] and out[0].startswith("Using your model from the Hub:")
    assert pushed in out[0] and TEST_TOKEN not in out[0]
    assert not list(ckpt.parent.glob(".model*"))  # no temp files left


def test_bare_name_uses_the_tokens_account(hub_server, tmp_path, monkeypatch) -> None:
    name = f"counter-{uuid.uuid4().hex[:8]}"
    _push(name, {"model.onnx": ONNX_BYTES})
    monkeypatch.setenv(handoff.REPO_ENV, name)
    result = handoff.fetch_own_model(onnx=tmp_path / "model.onnx", verbose=False)
    assert result.repo_id == f"{TEST_USER}/{name}" and result.onnx is not None


def test_unset_setting_means_the_repo_notebook_04_pushes(hub_server, monkeypatch) -> None:
    monkeypatch.delenv(handoff.REPO_ENV, raising=False)
    repo_id, source = handoff.own_repo_id(TEST_TOKEN)
    assert repo_id == f"{TEST_USER}/{hub.DEFAULT_REPO_NAME}" == f"{TEST_USER}/microalgae-counter"
    assert "token" in source


def test_only_missing_files_are_filled(pushed, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(handoff.REPO_ENV, pushed)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"mine")
    result = handoff.fetch_own_model(checkpoint=ckpt, onnx=tmp_path / "model.onnx", verbose=False)
    assert ckpt.read_bytes() == b"mine" and result.checkpoint is None
    assert result.onnx.read_bytes() == ONNX_BYTES


def test_no_repo_on_the_hub_means_training(hub_server, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(handoff.REPO_ENV, f"{TEST_USER}/never-pushed-{uuid.uuid4().hex[:8]}")
    result = handoff.fetch_own_model(onnx=tmp_path / "model.onnx")
    assert not result and not (tmp_path / "model.onnx").exists()
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "No model found at" in out[0] and "training one in fast mode" in out[0]


def test_repo_without_the_file_means_training(hub_server, tmp_path, monkeypatch) -> None:
    repo_id = _push(f"empty-{uuid.uuid4().hex[:8]}", {"README.md": b"# nothing yet\n"})
    monkeypatch.setenv(handoff.REPO_ENV, repo_id)
    result = handoff.fetch_own_model(checkpoint=tmp_path / "model.pt", verbose=False)
    assert not result and "has no model.pt" in result.message


def test_no_setting_and_no_token_means_training(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(handoff.REPO_ENV, raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # no stored login either
    monkeypatch.setattr(hub, "get_token", lambda: None)
    result = handoff.fetch_own_model(onnx=tmp_path / "model.onnx", verbose=False)
    assert not result and "no Hub token" in result.message and "COURSE_HUB_MODEL" in result.message


def test_off_switch(pushed, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(handoff.REPO_ENV, "off")
    result = handoff.fetch_own_model(onnx=tmp_path / "model.onnx", verbose=False)
    assert not result and "turns the Hub handoff off" in result.message


def test_bad_setting_is_one_clear_sentence(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(handoff.REPO_ENV, "alice/micro/algae")
    with pytest.raises(handoff.HandoffSetupError, match="COURSE_HUB_MODEL='alice/micro/algae' is not"):
        handoff.fetch_own_model(onnx=tmp_path / "model.onnx", verbose=False)


def test_ensure_onnx_takes_the_hub_model_instead_of_training(pushed, tmp_path, monkeypatch) -> None:
    """The wiring in utils/export.py: a fresh runtime (no artifacts) gets the learner's model."""
    from utils import config, export, train

    def no_training(*args, **kwargs):
        raise AssertionError("ensure_onnx trained although the Hub had the learner's model")

    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    monkeypatch.setenv(handoff.REPO_ENV, pushed)
    monkeypatch.setattr(train, "ensure_checkpoint", no_training)
    monkeypatch.setattr(export, "export_onnx", no_training)
    path = export.ensure_onnx()
    assert path == config.onnx_path() and path.read_bytes() == ONNX_BYTES
    assert config.checkpoint_path().read_bytes() == CKPT_BYTES


def test_push_and_pull_use_the_same_setting(monkeypatch) -> None:
    monkeypatch.delenv(handoff.REPO_ENV, raising=False)
    assert handoff.push_repo_name() == hub.DEFAULT_REPO_NAME
    monkeypatch.setenv(handoff.REPO_ENV, "alice/my-counter")
    assert handoff.push_repo_name() == "alice/my-counter" == handoff.own_repo_id(None)[0]
    monkeypatch.setenv(handoff.REPO_ENV, "off")
    assert handoff.push_repo_name() == hub.DEFAULT_REPO_NAME
