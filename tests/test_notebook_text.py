"""What the committed notebooks say matches what they show, where a machine can check it.

A learner reads the text next to the saved outputs (on GitHub, in Colab before running): a
sentence that quotes a number the outputs contradict teaches the wrong thing. The rules
(docs/CONVENTIONS.md, *Notebooks*): a cell prints the figures it computes; a markdown sentence
that quotes an output marks the quote with ``<!-- output: "exact text" -->``; numbers from the code
are printed from the constant. This file checks:

- the road map (``utils/course.py`` and notebook 00's outputs) lists every notebook file;
- every ``<!-- output: "..." -->`` quote is in that notebook's outputs, and a sentence quoting
  "our run" / "the committed run" with a number carries one;
- a parity claim ("differs by ~1e-5") covers the difference printed under it, and one that
  points at notebook 03 covers what notebook 03 printed;
- figures that come from the code (the app's limits, the cell size, the fit slack, the
  onnxruntime-web version) are the code's;
- known stale sentences do not come back; pictures load in Colab (no relative paths); every
  notebook has a Try-it prompt.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from utils import course  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BY_NAME = {p.stem: p for p in NOTEBOOKS}

# <!-- output: "text that one of the notebook's outputs contains" -->
OUTPUT_MARKER = re.compile(r'<!--\s*output:\s*"(.+?)"\s*-->', re.S)
# Phrases that announce a figure of one particular run: its sentence needs an output marker.
RUN_QUOTE = re.compile(r"\bin (?:the committed|our(?: fast-mode| full-mode)?|that) run\b", re.I)
# "differs by ~1e-5", "agree to ~1e-5", "below 1e-2": the scales a parity sentence claims
PARITY_CLAIM = re.compile(
    r"(?:~|≈|about|up to|below|under|within|less than|<=?)\s*\**(\d(?:\.\d+)?[eE]-\d+)", re.I
)
# "max |scores diff| = 3.6e-03", "max difference: 2e-05": a difference a cell printed
PRINTED_DIFF = re.compile(r"diff\w*\|?\s*[=:]\s*(\d(?:\.\d+)?[eE][-+]?\d+)", re.I)
# "~1e-5" means "of that order": a printed value within a factor of sqrt(10) still agrees.
ORDER = 10**0.5
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)|<img\b[^>]*\bsrc\s*=\s*[\"']([^\"']+)", re.I)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _squash(text: str) -> str:
    return " ".join(text.split())


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _outputs(cell: dict) -> str:
    """Every text a code cell's outputs show: streams and the textual MIME types."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(_text(out.get("text")))
        for mime, value in (out.get("data") or {}).items():
            if mime.startswith("text/"):
                parts.append(_text(value))
    return "\n".join(parts)


def _all_outputs(cells: list[dict]) -> str:
    return _squash("\n".join(_outputs(c) for c in cells if c["cell_type"] == "code"))


def _markdown(cells: list[dict]) -> list[tuple[int, str]]:
    return [(i, _text(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence around ``text[start:end]`` (from the previous '. ' to the next)."""
    left = max(text.rfind(". ", 0, start), text.rfind("\n\n", 0, start))
    right = min(
        (i for i in (text.find(". ", end), text.find("\n\n", end)) if i != -1), default=len(text)
    )
    return text[left + 1 : right + 1]


def _scale(value: str) -> float:
    return float(value.replace(" ", ""))


# ---------------------------------------------------------------- the checks, one notebook each


def marker_problems(path: Path) -> list[str]:
    """Output quotes that the outputs no longer show, and run quotes without a marker."""
    cells = _cells(path)
    shown = _all_outputs(cells)
    problems = []
    for index, source in _markdown(cells):
        for quote in OUTPUT_MARKER.findall(source):
            if _squash(quote) not in shown:
                problems.append(
                    f"{path.name} cell {index}: quotes {quote!r}, which no output shows any more: "
                    "update the sentence and its marker from the outputs"
                )
        for match in RUN_QUOTE.finditer(source):
            sentence = _sentence(source, match.start(), match.end())
            if re.search(r"\d", sentence) and not OUTPUT_MARKER.search(sentence):
                problems.append(
                    f"{path.name} cell {index}: {match.group()!r} quotes a run's figure without "
                    '<!-- output: "..." -->: print it from a cell, or mark the quote'
                )
    return problems


def parity_problems(path: Path) -> list[str]:
    """A printed difference larger than the scale its introducing markdown cell claims."""
    cells = _cells(path)
    problems = []
    intro: tuple[int, str] | None = None
    for index, cell in enumerate(cells):
        if cell["cell_type"] == "markdown":
            intro = (index, _text(cell["source"]))
            continue
        printed = [_scale(v) for v in PRINTED_DIFF.findall(_outputs(cell))]
        claims = [_scale(v) for v in PARITY_CLAIM.findall(intro[1])] if intro else []
        if printed and claims and max(printed) > ORDER * max(claims):
            problems.append(
                f"{path.name} cell {intro[0]}: claims differences of ~{max(claims):.0e} at most, "
                f"cell {index} prints {max(printed):.1e}: state the tolerance the outputs show"
            )
    return problems


def printed_differences(path: Path) -> list[float]:
    return [_scale(v) for c in _cells(path) for v in PRINTED_DIFF.findall(_outputs(c))]


def cross_reference_problems(path: Path, notebook: str, printed: list[float]) -> list[str]:
    """Sentences that name ``notebook`` and claim a parity scale its printed outputs exceed."""
    if not printed:
        return []
    problems = []
    for index, source in _markdown(_cells(path)):
        for match in re.finditer(rf"notebook {notebook}\b", source):
            sentence = _sentence(source, match.start(), match.end())
            claims = [_scale(v) for v in PARITY_CLAIM.findall(sentence)]
            if claims and max(printed) > ORDER * max(claims):
                problems.append(
                    f"{path.name} cell {index}: says notebook {notebook} showed ~{max(claims):.0e}, "
                    f"it printed {max(printed):.1e}"
                )
    return problems


# ---------------------------------------------------------------- the road map


def test_every_notebook_file_is_on_the_road_map() -> None:
    assert [stage.file for stage in course.STAGES] == [p.name for p in NOTEBOOKS]


def test_the_road_map_picture_draws_every_notebook() -> None:
    fig = course.plot_roadmap()
    drawn = _squash(" ".join(t.get_text() for t in fig.axes[0].texts))
    for stage in course.STAGES[1:]:  # 00 is the notebook that shows the picture
        assert _squash(f"{stage.notebook} · {stage.title}") in drawn, stage.file
    assert f"{len(course.STAGES)} notebooks" in fig.axes[0].get_title()


def test_notebook_00_shows_every_notebook() -> None:
    shown = _all_outputs(_cells(BY_NAME["00_start_here"]))
    for stage in course.STAGES:
        assert _squash(f"| {stage.notebook} | {stage.title} |") in shown, (
            f"notebook 00's saved road map lacks {stage.file}: re-run it "
            "(python scripts/run_course.py --fast --inplace notebooks/00_start_here.ipynb)"
        )


# ---------------------------------------------------------------- quotes, parity, constants


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_quoted_outputs_are_in_the_outputs(path: Path) -> None:
    problems = marker_problems(path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_parity_claims_cover_the_printed_differences(path: Path) -> None:
    problems = parity_problems(path)
    problems += cross_reference_problems(path, "03", printed_differences(BY_NAME["03_export"]))
    assert not problems, "\n".join(problems)


def _code_figures() -> list[tuple[re.Pattern, float, str]]:
    """(pattern whose group is a figure, the code's value, where it lives)."""
    from utils import app
    from utils.dataset import TARGET_CELL_PX
    from utils.processing.tiling import FIT_SLACK

    lock = json.loads((ROOT / "web" / "package-lock.json").read_text(encoding="utf-8"))
    ort_web = lock["packages"]["node_modules/onnxruntime-web"]["version"]
    major_minor = float(".".join(ort_web.split(".")[:2]))
    return [
        (
            re.compile(r"(\d+) requests (?:may )?wait|up to (\d+) waiting"),
            app.MAX_QUEUE,
            "MAX_QUEUE",
        ),
        (re.compile(r"uploads? (?:above|over|up to) (\d+) MB"), app.MAX_UPLOAD_MB, "MAX_UPLOAD_MB"),
        (
            re.compile(r"median cell(?: of| is)? (\d+(?:\.\d+)?) px"),
            TARGET_CELL_PX,
            "TARGET_CELL_PX",
        ),
        (re.compile(r"at most (\d+) ?% larger"), round((FIT_SLACK - 1) * 100), "FIT_SLACK"),
        (re.compile(r"onnxruntime-web (\d+\.\d+)"), major_minor, "web/package-lock.json"),
    ]


def _texts_to_check() -> list[tuple[str, str]]:
    texts = [
        (f"{p.name} cell {i}", source) for p in NOTEBOOKS for i, source in _markdown(_cells(p))
    ]
    return [*texts, ("README.md", (ROOT / "README.md").read_text(encoding="utf-8"))]


def test_figures_from_the_code_are_the_code_s() -> None:
    problems = []
    for pattern, value, where in _code_figures():
        for name, text in _texts_to_check():
            for match in pattern.finditer(text):
                quoted = float(next(g for g in match.groups() if g is not None))
                if quoted != value:
                    problems.append(f"{name}: {match.group()!r}, the code says {value} ({where})")
    assert not problems, "\n".join(problems)


# Sentences that contradicted their notebook's outputs (issue 21); they must not come back.
STALE = {
    "02_train": ["about 3x faster", "447 for 75 cells", "gives 70 of the 75"],
    "05_demo": ["64 requests", "17 cells instead of 67", "six-line"],
    "06_edge": ["same speed on a CPU", "A 4× smaller file", "no accuracy loss"],
    "08_static_space": ["take a few milliseconds", "downloads the same bytes"],
}


@pytest.mark.parametrize("name", sorted(STALE))
def test_stale_sentences_stay_gone(name: str) -> None:
    text = _squash(" ".join(source for _, source in _markdown(_cells(BY_NAME[name]))))
    assert [phrase for phrase in STALE[name] if phrase in text] == []


# ---------------------------------------------------------------- pictures and prompts


def _repository() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^Repository\s*=\s*"https://github\.com/([^"]+?)/?"', text, re.M)
    assert match, "pyproject.toml: [project.urls] Repository missing"
    return match.group(1)


def test_pictures_in_the_text_load_in_colab() -> None:
    """Colab opens one notebook file: a relative path shows nothing. Pictures of the repository
    are linked by their raw URL, built from pyproject's Repository, to a file that exists."""
    raw = f"https://raw.githubusercontent.com/{_repository()}/main/"
    problems = []
    for path in NOTEBOOKS:
        for index, source in _markdown(_cells(path)):
            for groups in IMAGE.findall(source):
                url = next(g for g in groups if g)
                where = f"{path.name} cell {index}: {url}"
                if url.startswith(raw):
                    if not (ROOT / url.removeprefix(raw)).is_file():
                        problems.append(f"{where}: no such file in the repository")
                elif not url.startswith(("https://", "data:image/")):
                    problems.append(f"{where}: relative path; use {raw}<path>")
    assert not problems, "\n".join(problems)


def test_every_notebook_has_a_try_it_prompt() -> None:
    missing = [
        p.name
        for p in NOTEBOOKS
        if not any("**Try it" in source for _, source in _markdown(_cells(p)))
    ]
    assert missing == []


# ---------------------------------------------------------------- the checks can fail


def _planted(tmp_path: Path, cells: list[tuple[str, str, str]]) -> Path:
    """A notebook of (kind, source, printed output) cells."""
    nb_cells = []
    for kind, source, printed in cells:
        cell = {"cell_type": kind, "metadata": {}, "source": source}
        if kind == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": printed}]
        nb_cells.append(cell)
    path = tmp_path / "planted.ipynb"
    path.write_text(json.dumps({"cells": nb_cells}), encoding="utf-8")
    return path


def test_a_quote_the_outputs_no_longer_show_is_flagged(tmp_path: Path) -> None:
    path = _planted(
        tmp_path,
        [
            ("markdown", 'It counts 67 cells<!-- output: "67 cells" -->.', ""),
            ("code", "print(count)", "92 cells\n"),
        ],
    )
    assert any("quotes '67 cells'" in p for p in marker_problems(path))
    path = _planted(
        tmp_path,
        [
            ("markdown", 'It counts 92\ncells<!-- output: "92   cells" -->.', ""),
            ("code", "print(count)", "92 cells\n"),
        ],
    )
    assert marker_problems(path) == []


def test_a_run_quote_without_a_marker_is_flagged(tmp_path: Path) -> None:
    text = "The count drops: in our fast-mode run, 17 cells instead of 67. The model sees no green."
    path = _planted(tmp_path, [("markdown", text, "")])
    assert any("in our fast-mode run" in p for p in marker_problems(path))


def test_a_parity_claim_below_the_printed_difference_is_flagged(tmp_path: Path) -> None:
    claim = "Float32 arithmetic in another order differs by ~1e-5; near 1e-2 would be a bug."
    printed = "max |boxes diff| = 6.1e-05 px, max |scores diff| = 3.6e-03\n"
    path = _planted(tmp_path, [("markdown", claim, ""), ("code", "parity()", printed)])
    assert any("prints 3.6e-03" in p for p in parity_problems(path))
    honest = "Here scores differ by up to ~5e-3 (bfloat16); a broken export by ~1e-1."
    path = _planted(tmp_path, [("markdown", honest, ""), ("code", "parity()", printed)])
    assert parity_problems(path) == []
    pointer = "The float runtimes count the same cells (notebook 03 checked they agree to ~1e-5)."
    path = _planted(tmp_path, [("markdown", pointer, "")])
    assert cross_reference_problems(path, "03", [3.6e-3]) != []
    assert cross_reference_problems(path, "03", [2e-5]) == []
