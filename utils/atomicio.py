"""Atomic writes for every file the course produces (models, metrics, CSVs, cards).

A reader (a notebook, the app, the Hub upload) must never see half a file, even when a run
is killed mid-write or two runs write the same file. Each write goes to a temporary file in
the *same folder* (``os.replace`` is atomic only within one file system) with a unique name,
is flushed and fsynced, then renamed over the target. Temporary files left by a killed run
are removed the next time the same target is written.

No torch or gradio here: the Space copies nothing from this module, but the app may use it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"
STALE_SECONDS = 3600.0  # older temp files of the same target are left-overs of a killed run


def _prefix(target: Path) -> str:
    return f".{target.name}."


def temp_name(target: str | Path, suffix: str = "") -> Path:
    """A unique, not yet existing temp path beside ``target`` (hidden, ends in .tmp + suffix).

    Removes what a killed run left for the same target first (see :func:`clean_stale`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    handle, name = tempfile.mkstemp(
        prefix=_prefix(target), suffix=TMP_SUFFIX + suffix, dir=target.parent
    )
    os.close(handle)
    os.unlink(name)  # libraries that write by path (torch, onnx, OpenVINO) create it themselves
    return Path(name)


def clean_stale(target: str | Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove temp files a killed run left for ``target`` (ours and the old fixed ``.tmp``)."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    now = time.time()
    removed: list[Path] = []
    candidates = list(target.parent.glob(_prefix(target) + "*" + TMP_SUFFIX + "*"))
    candidates.append(target.with_name(target.name + TMP_SUFFIX))  # the former fixed name
    for path in candidates:
        try:
            if path.is_file() and now - path.stat().st_mtime >= older_than:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # another process removed or renamed it first
    return removed


def fsync_path(path: str | Path) -> None:
    """Flush a file written by someone else's code (``torch.save``, ``onnx.save``) to disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX only; Windows cannot open folders)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: str | Path, target: str | Path) -> Path:
    """fsync ``tmp`` and rename it over ``target`` (same folder): the atomic step."""
    target = Path(target)
    fsync_path(tmp)
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    return target


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path to write by path; on success it replaces ``target``, else it is removed.

    ``suffix`` keeps an extension some writers need (``.xml`` for OpenVINO, ``.onnx``).
    """
    target = Path(target)
    tmp = temp_name(target, suffix)
    try:
        yield tmp
        commit(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(target: str | Path, data: bytes) -> Path:
    """``Path.write_bytes``, atomically."""
    with atomic_path(target) as tmp:
        with open(tmp, "xb") as handle:
            handle.write(data)
    return Path(target)


def write_text(target: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """``Path.write_text``, atomically (newlines written as given)."""
    return write_bytes(target, text.encode(encoding))


@contextlib.contextmanager
def atomic_openvino(xml_target: str | Path) -> Iterator[Path]:
    """Yield a temp ``.xml`` path for ``openvino.save_model``; the IR pair replaces the target.

    OpenVINO writes the ``.bin`` (weights) beside the ``.xml`` (graph) under the same stem.
    The ``.bin`` is renamed first, so a reader that finds the new ``.xml`` finds its weights.
    """
    xml_target = Path(xml_target)
    tmp_xml = temp_name(xml_target, ".xml")
    tmp_bin = tmp_xml.with_suffix(".bin")
    try:
        yield tmp_xml
        commit(tmp_bin, xml_target.with_suffix(".bin"))
        commit(tmp_xml, xml_target)
    finally:
        for path in (tmp_xml, tmp_bin):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
