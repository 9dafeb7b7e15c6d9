"""Badges, the pinned Colab install line and the README table are generated from pyproject.toml."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("sync_links", ROOT / "scripts" / "sync_links.py")
sync_links = importlib.util.module_from_spec(spec)
sys.modules["sync_links"] = sync_links
spec.loader.exec_module(sync_links)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _src(cell: dict) -> str:
    return "".join(cell["source"])


def test_notebooks_and_readme_agree_with_pyproject() -> None:
    assert sync_links.out_of_date() == []


def test_each_notebook_has_badge_header_and_guarded_setup() -> None:
    repo = sync_links.repository_url().removeprefix("https://github.com/")
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        cells = _cells(path)
        header = _src(cells[0])
        assert (
            f"colab.research.google.com/github/{repo}/blob/main/notebooks/{path.name}" in header
        ), path.name
        for part in ("**You will learn", "**Time", "**Prerequisites"):
            assert part in header, f"{path.name}: header lacks {part}"
        setup = _src(cells[1])
        pin = f"git+https://github.com/{repo}@{sync_links.release_tag()}"
        assert '"google.colab" in sys.modules' in setup and pin in setup, path.name
        install = next(line for line in setup.splitlines() if "%pip install" in line)
        assert "torch" not in install.replace(repo, ""), "setup must not reinstall torch"


def test_no_sys_path_hacks_or_machine_paths() -> None:
    for path in NOTEBOOKS:
        text = path.read_text(encoding="utf-8")
        assert "sys.path" not in text, path.name
        for needle in ("/root/", "/home/", "/work/"):
            assert needle not in text, f"{path.name} contains a machine path ({needle})"
        nb = json.loads(text)
        assert "widgets" not in nb["metadata"], f"{path.name}: widget state committed"
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                assert out.get("output_type") != "error", f"{path.name}: error output committed"


def test_check_mode_detects_a_stale_badge(tmp_path, monkeypatch) -> None:
    nb = json.loads(NOTEBOOKS[0].read_text(encoding="utf-8"))
    nb["cells"][0]["source"] = [
        "[![Open In Colab](x)](https://colab.research.google.com/github/someone/else)\n",
        "# title\n",
    ]
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / NOTEBOOKS[0].name).write_text(json.dumps(nb), encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    monkeypatch.setattr(sync_links, "ROOT", tmp_path)
    monkeypatch.setattr(sync_links, "NOTEBOOKS", tmp_path / "notebooks")
    monkeypatch.setattr(sync_links, "README", tmp_path / "README.md")
    assert sync_links.out_of_date() == [f"notebooks/{NOTEBOOKS[0].name}"]
    assert sync_links.main([]) == 0
    assert sync_links.out_of_date() == []
