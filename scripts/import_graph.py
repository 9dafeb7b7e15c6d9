"""The import graph of ``utils/``: who imports whom, at module level and inside functions.

    python scripts/import_graph.py          # edges, then cycles (module level), then long modules

Reads the source with ``ast`` (nothing is imported): ``from .x import``, ``from ..x import``,
``from . import x`` and ``import utils.x``. A module-level import runs when the module is
imported, so a cycle among them is a real circle; a function-level import runs only when the
function is called and is listed apart (each should point down, or be explained in
docs/CONVENTIONS.md). ``tests/test_imports.py`` fails on any module-level cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "utils"
PACKAGE = "utils"
MAX_LINES = 500


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(current: str, is_package: bool, node: ast.ImportFrom, modules: set[str]) -> list[str]:
    """The ``utils`` modules one ``from ... import ...`` statement loads."""
    if node.level == 0:
        base = node.module or ""
        if not base.startswith(PACKAGE):
            return []
    else:
        anchor = current.split(".")
        if not is_package:
            anchor = anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    found = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        found.append(candidate if candidate in modules else base)
    return [name for name in found if name in modules]


def _imports(path: Path, modules: set[str]) -> tuple[set[str], set[str]]:
    """(module-level, function-level) ``utils`` imports of one file; TYPE_CHECKING skipped."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    current = module_name(path)
    is_package = path.name == "__init__.py"
    top: set[str] = set()
    inner: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child, in_function)
            return
        if isinstance(node, ast.ImportFrom):
            (inner if in_function else top).update(_resolve(current, is_package, node, modules))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    (inner if in_function else top).add(alias.name)
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    top.discard(current)
    inner.discard(current)
    return top, inner - top


def graph(root: Path = ROOT) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(module_level, function_level)``: module -> the ``utils`` modules it imports."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)
    top, inner = {}, {}
    for name, path in files.items():
        top[name], inner[name] = _imports(path, modules)
    # ``from .pkg import x`` loads pkg/__init__ first: a module inside a package that imports
    # its own package's __init__ is the usual re-export, not a circle, so drop it.
    for name in top:
        top[name] = {t for t in top[name] if not name.startswith(t + ".")}
        inner[name] = {t for t in inner[name] if not name.startswith(t + ".")}
    return top, inner


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def long_modules(root: Path = ROOT, limit: int = MAX_LINES) -> dict[str, int]:
    """Modules over ``limit`` lines."""
    sizes = {module_name(p, root): len(p.read_text(encoding="utf-8").splitlines())
             for p in sorted(root.rglob("*.py"))}
    return {name: n for name, n in sizes.items() if n > limit}


def main() -> int:
    top, inner = graph()
    print("# module-level imports")
    for name in sorted(top):
        if top[name]:
            print(f"{name} -> {', '.join(sorted(top[name]))}")
    print("\n# function-level imports (run only when called)")
    for name in sorted(inner):
        if inner[name]:
            print(f"{name} -> {', '.join(sorted(inner[name]))}")
    found = cycles(top)
    print("\n# module-level cycles:", "none" if not found else "")
    for component in found:
        print("  " + " <-> ".join(component))
    both = {name: top[name] | inner[name] for name in top}
    print("# cycles counting function-level imports too:")
    for component in cycles(both) or [["none"]]:
        print("  " + " <-> ".join(component))
    long = long_modules()
    print(f"# modules over {MAX_LINES} lines:", "none" if not long else "")
    for name, n in long.items():
        print(f"  {name}: {n}")
    return 1 if found or long else 0


if __name__ == "__main__":
    raise SystemExit(main())
