"""Committed notebooks show the truth: what a learner reads on GitHub or in Colab before running.

A saved notebook must not carry what only made sense while it ran, or what must never leave the
machine: a progress bar frozen part-way (reads as "training never ran"), an iframe to a server
on 127.0.0.1 (blank in every saved view), an error, an absolute path of the author's machine,
a Hugging Face token, or widget state. ``notebook_problems`` names each one with its cell.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# tqdm's text: "  0%|          | 0/10 [00:00<?, ?it/s]"; anything below 100% is frozen when saved
FROZEN_BAR = re.compile(r"(?<![\d.])(\d{1,2}(?:\.\d+)?)%\|")
LOCAL_IFRAME = re.compile(
    r"<iframe\b[^>]*\bsrc\s*=\s*[\"']?https?://(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\])",
    re.I,
)
MACHINE_PATH = re.compile(r"(?:/root/|/home/|/work/|/Users/|[A-Za-z]:\\\\Users\\\\)")
HF_TOKEN = re.compile(r"hf_[A-Za-z0-9]{30,}")
WIDGET_MIME = (
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _shown(text: str) -> str:
    """What a terminal shows of a stream: per line, the part after the last carriage return."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _output_texts(out: dict) -> list[tuple[str, str]]:
    """(kind, text) of one output: the stream, or each textual MIME type of a display/result."""
    if out.get("output_type") == "stream":
        return [("stream", _shown(_text(out.get("text"))))]
    if out.get("output_type") == "error":
        return [("error", "\n".join(_text(t) for t in out.get("traceback", [])))]
    data = out.get("data") or {}
    return [(mime, _text(v)) for mime, v in data.items() if isinstance(v, (str, list))]


def notebook_problems(path: Path) -> list[str]:
    """Everything in the saved notebook that misleads a reader or leaks the author's machine."""
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    name = path.name
    problems = []
    if HF_TOKEN.search(text):
        problems.append(f"{name}: a Hugging Face token (hf_...): revoke it, then clear the output")
    if "widgets" in nb.get("metadata", {}):
        problems.append(
            f"{name}: widget state in the metadata: run `python scripts/sync_links.py`"
        )
    for index, cell in enumerate(nb.get("cells", [])):
        where = f"{name} cell {index}"
        source = _text(cell.get("source"))
        if match := MACHINE_PATH.search(source):
            problems.append(f"{where}: source has a machine path ({match.group()}...)")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"{where}: error output ({out.get('ename')}): fix and re-run")
            for mime in WIDGET_MIME:
                if mime in (out.get("data") or {}):
                    problems.append(f"{where}: widget output ({mime}): re-run with plain tqdm text")
            for kind, shown in _output_texts(out):
                if kind == "stream" and "Traceback (most recent call last)" in shown:
                    problems.append(f"{where}: a traceback in {out.get('name', 'a stream')}")
                if bar := FROZEN_BAR.search(shown):
                    problems.append(
                        f"{where}: progress bar frozen at {bar.group(1)}% ({kind}): "
                        "print the final state (plain-text tqdm or a closing line)"
                    )
                if LOCAL_IFRAME.search(shown):
                    problems.append(
                        f"{where}: iframe to a local server ({kind}): no saved view can show it; "
                        "show a screenshot of the running app instead"
                    )
                if match := MACHINE_PATH.search(shown):
                    problems.append(f"{where}: output has a machine path ({match.group()}...)")
    return problems


# ---------------------------------------------------------------- the committed notebooks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_is_clean(path: Path) -> None:
    problems = notebook_problems(path)
    assert not problems, "\n".join(problems)


def test_there_are_notebooks_to_scan() -> None:
    assert len(NOTEBOOKS) >= 9


# ---------------------------------------------------------------- the scanner catches each kind


def _notebook(outputs: list[dict], source: str = "print('hi')", metadata: dict | None = None):
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": metadata or {},
        "cells": [
            {"cell_type": "markdown", "id": "a", "metadata": {}, "source": "# title"},
            {
                "cell_type": "code",
                "id": "b",
                "metadata": {},
                "execution_count": 1,
                "source": source,
                "outputs": outputs,
            },
        ],
    }


def _stream(text: str, name: str = "stderr") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def _display(data: dict) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": data}


TOKEN = "hf_" + "AbCdEf0123456789" * 2 + "xyz"  # built here so no scanner flags this file

BAD = {
    "tqdm text frozen at 0%": (
        _notebook([_stream("  0%|          | 0/10 [00:00<?, ?it/s]")]),
        "frozen at 0%",
    ),
    "tqdm widget fallback frozen at 0%": (
        _notebook(
            [
                _display(
                    {
                        "text/plain": "  0%|          | 0/5 [00:00<?, ?it/s]",
                        "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                    }
                )
            ]
        ),
        "frozen at 0%",
    ),
    "carriage-return bar stopped at 40%": (
        _notebook([_stream("  0%|   | 0/5\r 40%|## | 2/5")]),
        "frozen at 40%",
    ),
    "iframe to 127.0.0.1": (
        _notebook([_display({"text/html": '<iframe src="http://127.0.0.1:7860/" width="100%">'})]),
        "iframe to a local server",
    ),
    "iframe to localhost": (
        _notebook([_display({"text/html": "<iframe width=800 src='http://localhost:8000/'>"})]),
        "iframe to a local server",
    ),
    "error output": (
        _notebook(
            [{"output_type": "error", "ename": "NameError", "evalue": "x", "traceback": ["..."]}]
        ),
        "error output (NameError)",
    ),
    "traceback in stderr": (
        _notebook([_stream("Traceback (most recent call last):\n  File ...\nValueError: x")]),
        "a traceback in stderr",
    ),
    "home path in an output": (
        _notebook([_stream("saved /home/alice/course/artifacts/model.pt\n", "stdout")]),
        "machine path (/home/",
    ),
    "root path in an output": (
        _notebook([_display({"text/plain": "PosixPath('/root/course/model.onnx')"})]),
        "machine path (/root/",
    ),
    "work path in a source": (
        _notebook([], source="open('/work/main/data/x.jpg')"),
        "source has a machine path (/work/",
    ),
    "token in an output": (
        _notebook([_stream(f"token: {TOKEN}\n", "stdout")]),
        "a Hugging Face token",
    ),
    "widget state in the metadata": (
        _notebook([], metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {}}}),
        "widget state in the metadata",
    ),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_scanner_flags_a_planted_bad_notebook(kind: str, tmp_path: Path) -> None:
    nb, expected = BAD[kind]
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    problems = notebook_problems(path)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("bad.ipynb") for p in problems)


def test_scanner_passes_a_clean_notebook(tmp_path: Path) -> None:
    nb = _notebook(
        [
            _stream("100%|##########| 10/10 [00:05<00:00,  2.0it/s]\n"),
            _stream("epoch 10/10: loss 0.41, val mAP 0.27 (done)\n", "stdout"),
            _display({"text/html": '<img src="data:image/png;base64,iVBOR"/>'}),
            _display({"text/plain": "artifacts/model.onnx: 17.4 MB, hf_****"}),
        ]
    )
    path = tmp_path / "clean.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert notebook_problems(path) == []
