"""Write every place that depends on the course's public address, from pyproject.toml alone.

The GitHub path lives once, in ``[project.urls] Repository``. From it this script writes:
- the "Open in Colab" badge, the first line of each notebook's first cell;
- the guarded Colab setup cell (the code cell tagged ``colab-setup``), which installs the
  release tagged ``v<version>`` (pyproject's ``[project] version``) and calls ``utils.colab.setup``;
- the course table in README.md (between the ``course-table`` markers).
It also strips what must not be committed: widget state and per-cell execution timestamps.

    python scripts/sync_links.py          # rewrite in place
    python scripts/sync_links.py --check  # exit 1 and list what is out of date (used by tests)

Cutting a release: bump ``version`` in pyproject.toml (and ``utils.__version__``), run this
script, commit, then ``git tag -a v<version>`` on that commit and push the tag with it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
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


def _project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]


def package_name() -> str:
    return _project()["name"]


def release_tag() -> str:
    """The git tag the Colab cell installs: ``v`` + pyproject's version (cut with this script)."""
    return f"v{_project()['version']}"


def colab_url(notebook: Path) -> str:
    github_path = repository_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{github_path}/blob/main/notebooks/{notebook.name}"


def badge(notebook: Path) -> str:
    return f"[![Open In Colab]({BADGE_IMG})]({colab_url(notebook)})"


# The Colab cell: Colab only (local machines, CI and nbval skip it), the course's pinned release,
# then one call that checks the runtime and raises when it must restart (utils/colab.py).
SETUP_TEMPLATE = """\
import sys

if "google.colab" in sys.modules:  # Colab only: install this course's pinned release, then check it
    %pip install -q "__REQUIREMENT__"
    from utils.colab import setup  # failing? see pip's error above, or rename your own utils.py
    setup()  # raises (and stops "Run all") when the runtime must restart first"""


# Optional extras (pyproject.toml) a notebook's Colab cell installs with the course package.
NOTEBOOK_EXTRAS = {"09_archive.ipynb": ("scale",)}


def setup_source(notebook: str | None = None) -> str:
    """The guarded Colab cell of one notebook, pinned to this version's release tag."""
    extras = NOTEBOOK_EXTRAS.get(notebook or "", ())
    name = package_name() + (f"[{','.join(extras)}]" if extras else "")
    requirement = f"{name} @ git+{repository_url()}@{release_tag()}"
    return SETUP_TEMPLATE.replace("__REQUIREMENT__", requirement)


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
    setup[0]["execution_count"] = None
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
