"""The shape of ``utils/``: no import circle at module level, no module over 500 lines.

The graph comes from ``scripts/import_graph.py`` (ast, nothing imported); run the script to
see the edges, the function-level imports and any cycle.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"


def _script():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_graph", module)
    spec.loader.exec_module(module)
    return module


def test_no_module_level_cycle() -> None:
    graph = _script()
    top, _ = graph.graph()
    assert graph.cycles(top) == []


def test_the_graph_sees_the_imports() -> None:
    """A guard for the guard: the parser finds edges we know exist."""
    top, inner = _script().graph()
    assert "utils.modelfile" in top["utils.runtime"]
    assert "utils.processing" in top["utils.modelfile"] or any(
        name.startswith("utils.processing") for name in top["utils.modelfile"]
    )
    assert "utils.checkpoint" in inner["utils.loading"]


def test_modelfile_and_runtime_import_nothing_above_them() -> None:
    """The Space's serving core: model files and runtimes never reach up to export or training."""
    top, inner = _script().graph()
    above = {"utils.export", "utils.train", "utils.checkpoint", "utils.handoff", "utils.hub"}
    assert not (top["utils.modelfile"] | inner["utils.modelfile"]) & above
    assert not top["utils.runtime"] & above
    assert not inner["utils.runtime"] & (above | {"utils.loading"})  # one load_predictor, in loading


def test_no_module_over_500_lines() -> None:
    long = _script().long_modules()
    assert long == {}, long
