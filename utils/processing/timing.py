"""Where one request's milliseconds go: a per-call record of named parts, cheap enough to leave on.

The app opens a record around each request (:func:`recording`); the shared code marks its
steps (``with part("graph"): ...``). A context variable carries the record, so each request
(each worker thread) fills its own, the ``Predictor`` interface stays as it is, and with no
record open a ``part`` costs one lookup. Parts never nest: a part opened inside another is
counted by the outer one only, so the parts of a call never sum to more than its wall time.

    with recording() as times:
        result = count_cells(predictor, photo)
    times.ms()  # {"decode": 4.1, "preprocess": 3.0, "graph": 88.2, ...}
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

# The steps of one count, in the order a request goes through them (``bench api`` prints
# them in this order): decode the upload, resize and cut tiles, run the graph, threshold +
# NMS + the table, draw the boxes, encode the annotated picture.
PARTS = ("decode", "preprocess", "graph", "postprocess", "draw", "encode")


@dataclass
class CallTimes:
    """Seconds spent in each part of one call (a part may be entered several times)."""

    seconds: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0  # seconds inside ``recording``: the parts plus the code between them
    active: str | None = None  # the part being timed now: inner parts are not counted twice

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def total(self) -> float:
        """Seconds in all parts together (at most :attr:`wall`: parts never overlap)."""
        return sum(self.seconds.values())

    def untimed(self) -> float:
        """Seconds of the recorded block outside every part (checks, glue, the table)."""
        return max(0.0, self.wall - self.total())

    def ms(self) -> dict[str, float]:
        """Milliseconds per part, every part of :data:`PARTS` listed (0.0 when not entered)."""
        out = {name: 0.0 for name in PARTS}
        for name, seconds in self.seconds.items():
            out[name] = seconds * 1000
        return out


_CURRENT: ContextVar[CallTimes | None] = ContextVar("call_times", default=None)


@contextmanager
def recording(record: CallTimes | None = None) -> Iterator[CallTimes]:
    """Collect the parts timed inside this block (in this thread/context) into one record."""
    record = record if record is not None else CallTimes()
    token = _CURRENT.set(record)
    start = time.perf_counter()
    try:
        yield record
    finally:
        record.wall += time.perf_counter() - start
        _CURRENT.reset(token)


def current() -> CallTimes | None:
    """The record being filled in this context, if any."""
    return _CURRENT.get()


@contextmanager
def part(name: str) -> Iterator[None]:
    """Time the block as ``name`` in the open record; free when none is open or when nested."""
    record = _CURRENT.get()
    if record is None or record.active is not None:
        yield
        return
    record.active = name
    start = time.perf_counter()
    try:
        yield
    finally:
        record.add(name, time.perf_counter() - start)
        record.active = None
