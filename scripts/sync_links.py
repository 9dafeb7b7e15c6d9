"""Write every place that depends on the course's public address, from pyproject.toml alone.

The GitHub path lives once, in ``[project.urls] Repository``. From it this script writes:
- the "Open in Colab" badge, the first line of each notebook's first cell;
- the guarded Colab setup cell (the code cell tagged ``colab-setup``);
- the course table in README.md (between the ``course-table`` markers).
It also strips what must not be committed: widget state and per-cell execution timestamps.

    python scripts/sync_links.py          # rewrite in place
    python scripts/sync_links.py --check  # exit 1 and list what is out of date (used by tests)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- course-table:start -->", "<!-- course-table:end -->"
BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"
SETUP_TAG = "colab-setup"


def repository_url() -> str:
    """``https://github.com/OWNER/REPO`` from pyproject.toml's ``[project.urls]``."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^Repository\s*=\s*"(https://github\.com/[^"]+?)/?"', text, re.M)
    if not match:
        raise SystemExit(
            "pyproject.toml: [project.urls] Repository = 'https://github.com/...' missing"
        )
    return match.group(1)


def package_name() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^name\s*=\s*"([^"]+)"', text, re.M).group(1)


def colab_url(notebook: Path) -> str:
    github_path = repository_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{github_path}/blob/main/notebooks/{notebook.name}"


def badge(notebook: Path) -> str:
    return f"[![Open In Colab]({BADGE_IMG})]({colab_url(notebook)})"


SETUP_TEMPLATE = """\
# Setup. In Google Colab: install the course package (Colab's own torch is kept), say what
# changed, and check that `import utils` is the course. On your machine: nothing happens here
# (run `make course` or `make lab` once instead).
import importlib.metadata
import importlib.util
import pathlib
import subprocess
import sys

COURSE_PACKAGE = "__PACKAGE__"


def installed_versions() -> dict[str, str]:
    return {(d.metadata["Name"] or "").lower(): d.version for d in importlib.metadata.distributions()}


def report_changes(before: dict, after: dict, pip_log: str) -> bool:
    \"\"\"Print what pip changed; True when a preinstalled package was replaced.\"\"\"
    replaced = sorted(n for n in before.keys() & after.keys() if before[n] != after[n] and n != COURSE_PACKAGE)
    added = sorted(after.keys() - before.keys())
    for name in replaced:
        print(f"replaced {name} {before[name]} -> {after[name]}")
    if added:
        print("added:", ", ".join(f"{name} {after[name]}" for name in added))
    for line in pip_log.splitlines():
        if "which is incompatible" in line or "which is not installed" in line:
            print("pip warns (a Colab package this course does not use, usually harmless):", line.strip())
    if not (replaced or added):
        print("Nothing changed: every package the course needs was already installed.")
    if replaced:
        print("Restart the runtime now (Runtime > Restart session), then run this notebook from the top:"
              " the replaced packages are still loaded in their old versions.")
    return bool(replaced)


def shadowing_message(found: str | None, expected: str | None) -> str | None:
    \"\"\"None when `import utils` finds the course package, else one sentence saying what to do.\"\"\"
    if found and expected and pathlib.Path(found).resolve() == pathlib.Path(expected).resolve():
        return None
    return (f"`import utils` finds {found or 'nothing'}, not the course package: rename your own"
            " utils.py (or utils/ folder) in the working folder, then restart the runtime.")


if importlib.util.find_spec("google.colab"):
    print("Installing the course package; pip's summary follows when it is done...")
    before = installed_versions()
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "__REQUIREMENT__"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stdout[-3000:], pip.stderr[-3000:])
        raise RuntimeError("pip could not install the course package: read its message above.")
    report_changes(before, installed_versions(), pip.stdout + pip.stderr)
    course_files = importlib.metadata.distribution(COURSE_PACKAGE).locate_file("utils/__init__.py")
    spec = importlib.util.find_spec("utils")
    problem = shadowing_message(spec.origin if spec else None, str(course_files))
    print(problem or "`import utils` is the course package.")"""


# Optional extras (pyproject.toml) a notebook's Colab cell installs with the course package.
NOTEBOOK_EXTRAS = {"09_archive.ipynb": ("scale",)}


def setup_source(notebook: str | None = None) -> str:
    """The guarded Colab cell. Plain Python (no ``%pip -q``): it must show what pip changed."""
    extras = NOTEBOOK_EXTRAS.get(notebook or "", ())
    name = package_name() + (f"[{','.join(extras)}]" if extras else "")
    return (
        SETUP_TEMPLATE.replace("__PACKAGE__", package_name())
        .replace("__REQUIREMENT__", f"{name} @ git+{repository_url()}")
    )


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def sync_notebook(path: Path) -> dict:
    """The notebook with badge, setup cell and clean metadata as they should be."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = nb["cells"]
    header = _source(cells[0]).split("\n")
    first = header[0]
    if first.startswith("<!-- colab-badge -->") or first.startswith("[![Open In Colab]"):
        header[0] = badge(path)
    else:
        header.insert(0, badge(path))
    cells[0]["source"] = _lines("\n".join(header))
    setup = [c for c in cells if SETUP_TAG in c.get("metadata", {}).get("tags", [])]
    if not setup:
        cell = {
            "cell_type": "code",
            "execution_count": None,
            "id": "colab-setup",
            "metadata": {"tags": [SETUP_TAG]},
            "outputs": [],
            "source": [],
        }
        cells.insert(1, cell)
        setup = [cell]
    setup[0]["source"] = _lines(setup_source(path.name))
    setup[0]["outputs"] = []
    nb["metadata"].pop("widgets", None)
    for cell in cells:
        cell.get("metadata", {}).pop("execution", None)
        for out in cell.get("outputs", []):
            if isinstance(out.get("data"), dict):
                out["data"].pop("application/vnd.jupyter.widget-view+json", None)
    return nb


def dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def notebook_header(path: Path) -> dict:
    """Title, learning goals and time, read from a notebook's first cell."""
    text = _source(json.loads(path.read_text(encoding="utf-8"))["cells"][0])
    title = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), path.stem)
    time = next(
        (ln.split(":**", 1)[1].strip() for ln in text.splitlines() if ln.startswith("**Time")), ""
    )
    learn, in_list = [], False
    for line in text.splitlines():
        if line.startswith("**You will learn"):
            in_list = True
        elif in_list and line.lstrip().startswith(("- ", "* ")):
            learn.append(line.strip()[2:])
        elif in_list and line.strip() and learn:
            break
    return {"title": title, "time": time, "learn": learn}


def readme_table() -> str:
    rows = [
        "| # | Notebook | You will learn | Time | Colab |",
        "|---|---|---|---|---|",
    ]
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        head = notebook_header(path)
        learn = "; ".join(head["learn"][:3])
        title = head["title"].split("·", 1)[-1].strip()
        rows.append(
            f"| {path.name[:2]} | [{title}](notebooks/{path.name}) | {learn} | {head['time']} "
            f"| [![Open In Colab]({BADGE_IMG})]({colab_url(path)}) |"
        )
    return "\n".join(rows)


def synced_readme() -> str | None:
    if not README.exists():
        return None
    text = README.read_text(encoding="utf-8")
    if TABLE_START not in text:
        return text
    before, rest = text.split(TABLE_START, 1)
    _, after = rest.split(TABLE_END, 1)
    return f"{before}{TABLE_START}\n{readme_table()}\n{TABLE_END}{after}"


def out_of_date() -> list[str]:
    """Files whose generated parts differ from what pyproject.toml says they should be."""
    stale = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        if dump(sync_notebook(path)) != path.read_text(encoding="utf-8"):
            stale.append(path.relative_to(ROOT).as_posix())
    readme = synced_readme()
    if readme is not None and readme != README.read_text(encoding="utf-8"):
        stale.append("README.md")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report what is out of date")
    args = parser.parse_args(argv)
    stale = out_of_date()
    if args.check:
        for name in stale:
            print(f"out of date: {name} (run: python scripts/sync_links.py)")
        return 1 if stale else 0
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        path.write_text(dump(sync_notebook(path)), encoding="utf-8")
    readme = synced_readme()
    if readme is not None:
        README.write_text(readme, encoding="utf-8")
    print(f"synced {len(stale)} file(s): {', '.join(stale) or 'nothing to do'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
