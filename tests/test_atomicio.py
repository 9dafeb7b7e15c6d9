"""Atomic writes: a reader never sees half a file, a killed run's temp files go away."""

from __future__ import annotations

import os
import time

import pytest

from utils import atomicio


def _temps(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_write_text_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    atomicio.write_text(target, '{"map": 0.5}\n')
    assert target.read_text() == '{"map": 0.5}\n' and _temps(tmp_path) == []


def test_temp_names_are_unique_and_beside_the_target(tmp_path):
    target = tmp_path / "sub" / "model.onnx"
    first, second = atomicio.temp_name(target, ".onnx"), atomicio.temp_name(target, ".onnx")
    assert first != second and first.parent == second.parent == target.parent
    assert first.name.startswith(".model.onnx.") and first.name.endswith(".tmp.onnx")


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"good model")
    with pytest.raises(RuntimeError), atomicio.atomic_path(target) as tmp:
        tmp.write_bytes(b"half a mod")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"good model" and _temps(tmp_path) == []


def test_stale_temps_are_cleaned_on_the_next_write_fresh_ones_kept(tmp_path):
    target = tmp_path / "model.onnx"
    stale = [tmp_path / "model.onnx.tmp", tmp_path / ".model.onnx.abc123.tmp.onnx"]
    fresh = tmp_path / ".model.onnx.writing.tmp.onnx"  # another writer, right now
    other = tmp_path / ".other.onnx.abc.tmp"  # another target's temp: not ours to remove
    old = time.time() - 2 * atomicio.STALE_SECONDS
    for path in [*stale, fresh, other]:
        path.write_bytes(b"partial")
    for path in [*stale, other]:
        os.utime(path, (old, old))
    atomicio.write_bytes(target, b"model")
    assert target.read_bytes() == b"model"
    assert _temps(tmp_path) == sorted([fresh.name, other.name])


def test_openvino_pair_is_committed_together(tmp_path):
    xml = tmp_path / "model_ov_fp32.xml"
    with atomicio.atomic_openvino(xml) as tmp:
        assert tmp.suffix == ".xml" and tmp.parent == tmp_path
        tmp.write_text("<net/>")  # what openvino.save_model writes: graph + weights
        tmp.with_suffix(".bin").write_bytes(b"weights")
        assert not xml.exists()  # nothing under the final names until both are written
    assert xml.read_text() == "<net/>" and xml.with_suffix(".bin").read_bytes() == b"weights"
    assert _temps(tmp_path) == []
