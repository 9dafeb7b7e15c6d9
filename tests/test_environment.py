"""environment.yml (conda users) must list exactly what pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _normalise(requirement: str) -> str:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return re.sub(r"[-_.]+", "-", name).lower() + spec.replace(" ", "")


def pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {_normalise(r) for r in reqs}


def environment_requirements() -> set[str]:
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    block = text.split("- pip:", 1)[1]
    items = re.findall(r"^\s+-\s+(?!-e\b)(\S.*?)\s*$", block, re.M)
    return {_normalise(item) for item in items}


def test_environment_yml_matches_pyproject() -> None:
    missing = pyproject_requirements() - environment_requirements()
    extra = environment_requirements() - pyproject_requirements()
    assert not missing and not extra, (
        f"environment.yml drifted from pyproject.toml: missing {sorted(missing)}, "
        f"extra {sorted(extra)}"
    )


def test_parser_sees_every_requirement() -> None:
    # Guard against a parser that silently reads nothing (an empty set would "match").
    assert len(pyproject_requirements()) >= 20
    assert "torch>=2.5,<3" in environment_requirements()
