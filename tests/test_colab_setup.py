"""The Colab setup cell (written by scripts/sync_links.py) and the one function it calls.

The cell is a few lines: Colab only, install the pinned release with ``%pip``, then
``utils.colab.setup()``, which raises when pip replaced a package that is already loaded
(a restart is needed) or when ``import utils`` would find a learner's own file.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from utils import colab

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sync_links", ROOT / "scripts" / "sync_links.py")
sync_links = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("sync_links", sync_links)
_spec.loader.exec_module(sync_links)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
RESTART = "Restart the runtime (Runtime > Restart session) and run this notebook from the top"


class FakeShell:
    """Stands in for get_ipython(): records the line magics the cell runs."""

    def __init__(self) -> None:
        self.magics: list[tuple[str, str]] = []

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 1) -> None:
        self.magics.append((name, line))


def _run_cell(source: str) -> tuple[FakeShell, dict]:
    """Run the cell as IPython would: magics transformed into calls, then plain Python."""
    shell = FakeShell()
    namespace = {"get_ipython": lambda: shell, "__name__": "__main__"}
    exec(compile(TransformerManager().transform_cell(source), "<colab-setup>", "exec"), namespace)
    return shell, namespace


def _setup_cell(path: Path) -> str:
    cell = json.loads(path.read_text(encoding="utf-8"))["cells"][1]
    assert "colab-setup" in cell["metadata"].get("tags", []), (
        f"{path.name}: cell 1 is not the setup"
    )
    assert cell["outputs"] == [], f"{path.name}: the setup cell has outputs"
    return "".join(cell["source"])


def test_every_notebook_has_the_short_pinned_cell() -> None:
    assert NOTEBOOKS, "no notebooks found"
    pin = f'@ git+{sync_links.repository_url()}@v{VERSION}"'
    for path in NOTEBOOKS:
        source = _setup_cell(path)
        lines = source.splitlines()
        assert len(lines) <= 6, f"{path.name}: the setup cell has {len(lines)} lines"
        assert 'if "google.colab" in sys.modules:' in source, f"{path.name}: not guarded"
        install = next(line for line in lines if "%pip install" in line)
        assert install.startswith("    ") and install.rstrip().endswith(pin), path.name
        assert "from utils.colab import setup" in source and lines[-1].strip().startswith("setup()")


def test_the_pin_is_pyprojects_version() -> None:
    import utils

    assert sync_links.release_tag() == f"v{VERSION}"
    assert utils.__version__ == VERSION, "bump utils.__version__ with pyproject's version"


def test_outside_colab_the_cell_does_nothing(monkeypatch, capsys) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    shell, namespace = _run_cell(sync_links.setup_source())
    assert shell.magics == [] and "setup" not in namespace
    assert capsys.readouterr().out == ""


def test_in_colab_the_cell_installs_the_pin_then_calls_setup(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = []
    monkeypatch.setattr(colab, "setup", lambda: calls.append("setup"))
    shell, _ = _run_cell(sync_links.setup_source("09_archive.ipynb"))
    repo = sync_links.repository_url()
    requirement = f'"deploy-without-tears[scale] @ git+{repo}@v{VERSION}"'
    assert shell.magics == [("pip", f"install -q {requirement}")]
    assert calls == ["setup"]


def _fake_replaced_package(tmp_path: Path, monkeypatch) -> None:
    """A module loaded at 1.0 whose distribution on disk now says 2.0 (what pip leaves)."""
    info = tmp_path / "dwt_fake_pkg-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dwt-fake-pkg\nVersion: 2.0\n")
    (info / "top_level.txt").write_text("dwt_fake_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = types.ModuleType("dwt_fake_pkg")
    module.__version__ = "1.0"
    monkeypatch.setitem(sys.modules, "dwt_fake_pkg", module)


def test_a_replaced_loaded_package_asks_for_a_restart(tmp_path, monkeypatch, capsys) -> None:
    _fake_replaced_package(tmp_path, monkeypatch)
    with pytest.raises(colab.RestartRequired) as raised:
        colab.setup()
    message = str(raised.value)
    assert message.startswith(RESTART) and "dwt-fake-pkg 1.0 -> 2.0" in message
    assert isinstance(raised.value, RuntimeError) and capsys.readouterr().out == ""


def test_an_unchanged_runtime_passes_with_one_line(monkeypatch, capsys, recwarn) -> None:
    import numpy  # noqa: F401  (real packages in memory: none of them may count as replaced)
    import PIL.Image  # noqa: F401

    monkeypatch.setenv("COURSE_FAST", "1")
    colab.setup()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Course {VERSION} ready"), lines
    for name in ("torch", "onnxruntime", "gradio", "fast mode ON"):
        assert name in lines[0]
    assert not [w for w in recwarn if w.filename.endswith("colab.py")]
    monkeypatch.delenv("COURSE_FAST")
    assert "COURSE_FAST=1` for a quick run" in colab.summary()


@pytest.mark.parametrize(
    ("loaded", "installed", "same"),
    [
        ("2.14.1+cu130", "2.14.1", True),  # torch's local tag (this venv)
        ("2026.4.1-22982-e213a147257-releases/2026/4", "2026.4.1", True),  # openvino
        ("2026.10.19", "2026.10.19.post1", True),  # certifi
        ("4.10.0", "4.10.0.84", True),  # opencv: fewer numbers in __version__
        ("1.0", "2.0", False),
        ("5.49.1", "6.31.0", False),
        ("2.0.2", "2.4.6", False),
    ],
)
def test_version_strings_that_are_the_same_release(loaded, installed, same) -> None:
    assert colab.same_release(loaded, installed) is same


def test_a_learners_utils_py_is_named(tmp_path, monkeypatch) -> None:
    assert colab.shadowing_message(colab.fresh_import_finds()) is None
    (tmp_path / "utils.py").write_text("print('mine')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = colab.shadowing_message(colab.fresh_import_finds())
    assert message is not None and "`import utils` finds utils.py" in message
    assert "rename your own utils.py" in message and str(tmp_path) not in message
    with pytest.raises(colab.UtilsShadowed, match="not the course package"):
        colab.setup()


def test_a_learners_utils_folder_is_named(tmp_path, monkeypatch) -> None:
    (tmp_path / "utils").mkdir()
    (tmp_path / "utils" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = colab.shadowing_message(colab.fresh_import_finds())
    assert message is not None and message.startswith("`import utils` finds utils,")
