"""The course modules a Gradio Space runs, copied from ``utils`` with what they import."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Sequence
from pathlib import Path

from .common import MARKER

PACKAGE = "course"  # the copied modules' package name inside the Space
# What the app needs at run time; ``_closure`` adds whatever they import at module level.
SPACE_MODULES = (
    "app",
    "images",
    "viz",
    "processing",
    "runtime",
    "runtime_choice",
    "modelfile",
    "loading",
    "config",
)


def _files(source: Path, name: str) -> list[Path]:
    """The files of module or package ``name`` in ``source`` (empty if it is neither)."""
    if (source / f"{name}.py").is_file():
        return [source / f"{name}.py"]
    if (source / name / "__init__.py").is_file():
        return sorted((source / name).glob("*.py"))
    return []  # e.g. ``from . import __version__`` names a value, not a module


def _module_imports(path: Path, depth: int) -> set[str]:
    """Course modules imported at module level; ``depth``: 1 for ``utils/x.py``, 2 inside a
    package (``from ..x import``; ``from .y import`` stays inside the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == depth:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def _closure(source: Path, modules: Sequence[str]) -> list[str]:
    """``modules`` and every course module or package they import at module level."""
    todo, seen = list(modules), set()
    while todo:
        name = todo.pop()
        files = _files(source, name)
        if name in seen or name == "__init__" or not files:
            continue
        seen.add(name)
        depth = 1 if files[0].parent == source else 2
        for path in files:
            todo.extend(_module_imports(path, depth) - seen)
    return sorted(seen)


def copy_course_modules(out_dir: Path, modules: Sequence[str] = SPACE_MODULES) -> list[str]:
    """Copy the app's modules and packages from ``utils`` into ``out_dir/course`` (a package)."""
    source = Path(__file__).resolve().parents[1]  # utils/
    target = out_dir / PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    names = _closure(source, modules)
    init = (source / "__init__.py").read_text(encoding="utf-8")
    (target / "__init__.py").write_text(
        init + f"\n# Copied into the Space ({MARKER}); the originals live in utils/.\n",
        encoding="utf-8",
    )
    for name in names:
        for path in _files(source, name):
            copied = target / path.relative_to(source)
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copied)
    return names
