"""The course modules a Gradio Space runs, copied from ``utils`` with what they import."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Sequence
from pathlib import Path

from .common import MARKER

PACKAGE = "course"  # the copied modules' package name inside the Space
# What the app needs at run time; ``_closure`` adds whatever they import at module level.
SPACE_MODULES = ("app", "images", "viz", "processing", "runtime", "modelfile", "loading", "config")


def _module_imports(path: Path) -> set[str]:
    """Sibling modules imported at module level (``from .x import``, ``from . import x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def _closure(source: Path, modules: Sequence[str]) -> list[str]:
    todo, seen = list(modules), set()
    while todo:
        name = todo.pop()
        if name in seen or name == "__init__":
            continue
        if not (source / f"{name}.py").is_file():
            continue  # e.g. ``from . import __version__`` names a value, not a module
        seen.add(name)
        todo.extend(_module_imports(source / f"{name}.py") - seen)
    return sorted(seen)


def copy_course_modules(out_dir: Path, modules: Sequence[str] = SPACE_MODULES) -> list[str]:
    """Copy the app's modules from ``utils`` into ``out_dir/course`` (a package)."""
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
        shutil.copy2(source / f"{name}.py", target / f"{name}.py")
    return names
