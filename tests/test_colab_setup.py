"""The guarded Colab setup cell (written by scripts/sync_links.py): what it tells the learner."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sync_links", ROOT / "scripts" / "sync_links.py")
sync_links = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("sync_links", sync_links)
_spec.loader.exec_module(sync_links)

CONFLICT = (
    "ERROR: pip's dependency resolver does not currently take into account all the packages "
    "that are installed. This behaviour is the source of the following dependency conflicts.\n"
    "tensorflow 2.19.0 requires numpy<2.2.0,>=1.26.0, but you have numpy 2.4.6 which is "
    "incompatible.\n"
)


def _cell() -> dict:
    """The cell's functions, defined by running its source outside Colab (nothing installs)."""
    namespace: dict = {"__name__": "colab_setup_cell"}
    exec(compile(sync_links.setup_source(), "<colab-setup>", "exec"), namespace)
    return namespace


def test_cell_is_plain_python_and_does_nothing_outside_colab(capsys) -> None:
    source = sync_links.setup_source()
    assert "%pip" not in source and " -q" not in source, "pip's output must not be hidden"
    _cell()
    assert capsys.readouterr().out == ""


def test_replaced_preinstalled_package_asks_for_a_restart(capsys) -> None:
    cell = _cell()
    before = {"numpy": "2.0.2", "gradio": "5.49.1", "pandas": "2.2.2"}
    after = {"numpy": "2.4.6", "gradio": "6.31.0", "pandas": "2.2.2", "openvino": "2026.4.1"}
    assert cell["report_changes"](before, after, CONFLICT) is True
    out = capsys.readouterr().out
    assert "replaced gradio 5.49.1 -> 6.31.0" in out
    assert "replaced numpy 2.0.2 -> 2.4.6" in out
    assert "pandas" not in out
    assert "added: openvino 2026.4.1" in out
    assert "tensorflow 2.19.0 requires numpy<2.2.0" in out
    assert "Restart the runtime" in out


def test_only_new_packages_need_no_restart(capsys) -> None:
    cell = _cell()
    package = sync_links.package_name()
    before = {"numpy": "2.4.6", package: "0.0.9"}
    after = {"numpy": "2.4.6", package: "0.1.0", "nncf": "3.4.0"}
    assert cell["report_changes"](before, after, "") is False
    out = capsys.readouterr().out
    assert "added: nncf 3.4.0" in out
    assert "Restart" not in out and "replaced" not in out


def test_nothing_changed_says_so(capsys) -> None:
    cell = _cell()
    assert cell["report_changes"]({"numpy": "2.4.6"}, {"numpy": "2.4.6"}, "") is False
    assert "Nothing changed" in capsys.readouterr().out


def test_a_learners_utils_py_is_named(tmp_path) -> None:
    cell = _cell()
    own = tmp_path / "utils.py"
    own.write_text("print('mine')\n")
    course = ROOT / "utils" / "__init__.py"
    message = cell["shadowing_message"](str(own), str(course))
    assert message is not None and str(own) in message and "rename your own" in message
    assert cell["shadowing_message"](str(course), str(course)) is None
    assert "finds nothing" in cell["shadowing_message"](None, str(course))


def test_on_colab_it_installs_visibly_and_checks_import_utils(monkeypatch, capsys) -> None:
    """Pretend to be Colab: pip is faked; the course package is this checkout (editable)."""
    colab = types.ModuleType("google.colab")
    colab.__spec__ = importlib.machinery.ModuleSpec("google.colab", None)
    google = types.ModuleType("google")
    google.__spec__ = importlib.machinery.ModuleSpec("google", None, is_package=True)
    google.__path__ = []
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    calls = []

    def fake_run(args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, stdout="Successfully installed x-1\n", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.chdir(ROOT)
    _cell()
    out = capsys.readouterr().out
    assert calls and calls[0][1:4] == ["-m", "pip", "install"] and "-q" not in calls[0]
    assert "Nothing changed" in out
    assert "`import utils` is the course package." in out


def test_failed_install_raises_one_clear_sentence(monkeypatch, capsys) -> None:
    colab = types.ModuleType("google.colab")
    colab.__spec__ = importlib.machinery.ModuleSpec("google.colab", None)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda args, **kw: subprocess.CompletedProcess(args, 1, "", "ERROR: No matching distribution"),
    )
    with pytest.raises(RuntimeError, match="pip could not install the course package"):
        _cell()
    assert "No matching distribution" in capsys.readouterr().out
