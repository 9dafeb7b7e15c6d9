"""What keeps a public app up: size limits, a bounded session store, memory handed back.

Every launch of :func:`~utils.app.ui.build_demo`'s app gets :func:`launch_limits`: Gradio's
upload limit, :class:`BodySizeLimit` (HTTP 413 for any body over ``MAX_BODY_BYTES`` before it
is parsed), a 422 answer that names the field without echoing the body, and a lifespan task
that sweeps finished API sessions (:class:`SessionSweeper`) and trims glibc's heap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..images import MAX_SIDE
from .core import MAX_BODY_BYTES, MAX_FILE_SIZE, MAX_UPLOAD_MB

CONCURRENCY = 2  # requests decoded and counted at once: bounds memory to ~2 x APP_MAX_PIXELS
SESSION_CAPACITY = 64  # browser sessions kept (the app keeps no per-session data of its own)
CACHE_SWEEP = (300, 900)  # every 5 min, delete uploads and pictures older than 15 min
MAX_QUEUE = 128  # waiting requests; more get HTTP 503 (each holds its body: <= 128 x 34 MB)
ANALYTICS_EVENTS = 1000  # events Gradio keeps timings of (its default: 10,000)
SWEEP_SECONDS = 2.0  # how often finished API sessions are dropped from Gradio's queue
UNCLAIMED_SECONDS = 300.0  # a result no client fetched is dropped after this


def forget_session(holder: Any, session: Any) -> None:
    """Drop a session's Gradio state (``holder``: a Blocks or its ``StateHolder``).

    Gradio keeps every session's inputs and outputs (a 13 MB base64 body, the returned
    picture) and opens one session per API call: without this, memory grows by the
    request size per call until 10,000 sessions. The app keeps nothing per session, so a
    browser tab loses nothing (a running event holds its own reference to the state).
    ``session``: the session hash, or a ``gr.Request``.
    """
    session_hash = getattr(session, "session_hash", session)
    holder = getattr(holder, "state_holder", holder)
    if not isinstance(session_hash, str) or not hasattr(holder, "session_data"):
        return
    with holder.lock:
        holder.session_data.pop(session_hash, None)
        holder.time_last_used.pop(session_hash, None)


class SessionSweeper:
    """Drops the queue's per-session mailboxes once their results are delivered.

    Gradio keeps, for every session, a message queue and a set of event ids; the ``/call``
    routes open one session per call and nothing removes them (~5 KB per call, and a
    result nobody came for keeps its whole answer). A session with no queued or running
    event is dropped once its mailbox is empty for ``grace`` seconds, or after
    ``unclaimed`` seconds whatever it holds.
    """

    def __init__(self, grace: float = SWEEP_SECONDS, unclaimed: float = UNCLAIMED_SECONDS):
        self.grace = grace
        self.unclaimed = unclaimed
        self.first_idle: dict[str, float] = {}

    def sweep(self, queue: Any, now: float, states: Any = None) -> int:
        """One pass over ``queue`` (a Gradio ``Queue``); returns how many sessions it dropped.

        ``states`` (the ``StateHolder``) loses those sessions too: a call that failed before
        our handler ran (a malformed file field) never reached :func:`forget_session`.
        """
        mailboxes = queue.pending_messages_per_session
        pending = queue.pending_event_ids_session
        dropped = 0
        for session in set(mailboxes) | set(pending):
            ids = pending.get(session) or set()
            if any(i in queue.event_ids_to_events for i in ids):  # queued or running
                self.first_idle.pop(session, None)
                continue
            mailbox = mailboxes.get(session)
            delivered = mailbox is None or mailbox.empty()
            idle = now - self.first_idle.setdefault(session, now)
            if (delivered and idle >= self.grace) or idle >= self.unclaimed:
                mailboxes.pop(session, None)
                pending.pop(session, None)
                self.first_idle.pop(session, None)
                if states is not None:
                    forget_session(states, session)
                dropped += 1
        for session in set(self.first_idle) - set(mailboxes) - set(pending):
            del self.first_idle[session]
        return dropped


async def _sweep_forever(app: Any) -> None:
    sweeper = SessionSweeper()
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            blocks = app.get_blocks()
            queue = blocks._queue
            async with queue.pending_message_lock:
                dropped = sweeper.sweep(
                    queue, time.monotonic(), getattr(blocks, "state_holder", None)
                )
            if dropped:
                trim_heap()
        except Exception:  # housekeeping must never stop the server
            logging.getLogger("utils.app").exception("session sweep failed")


def trim_heap() -> bool:
    """glibc: hand the free pages of its heaps back to the OS (``malloc_trim``).

    Requests free thousands of small objects (bodies, JSON, pictures) that leave holes
    glibc would otherwise keep; after a sweep is a quiet moment to return them.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):
        return False


@contextlib.asynccontextmanager
async def _lifespan(app: Any):
    """Runs :class:`SessionSweeper` every ``SWEEP_SECONDS`` while the server is up."""
    task = asyncio.create_task(_sweep_forever(app))
    try:
        yield
    finally:
        task.cancel()


def launch_limits() -> dict[str, Any]:
    """The limits every launch gets: upload size, request body size, a bounded session store.

    ``show_error=False``: Gradio's own errors (a malformed file field, say) would show the
    client's input and server paths; ours never raise, they come back as one sentence.
    """
    from fastapi.exceptions import RequestValidationError
    from starlette.middleware import Middleware

    return {
        "max_file_size": MAX_FILE_SIZE,
        "state_session_capacity": SESSION_CAPACITY,
        "show_error": False,
        "app_kwargs": {
            "middleware": [Middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)],
            "exception_handlers": {RequestValidationError: _invalid_request},
            "lifespan": _lifespan,
        },
    }


def return_big_buffers_to_the_os(threshold: int = 1 << 20) -> bool:
    """glibc: serve allocations over ``threshold`` bytes by mmap, so they go back when freed.

    glibc otherwise raises its mmap threshold after the first big free and keeps later
    decodes in its heap arenas: two 62 MP images at a time left the server at 1.1 GB, then
    1.5 GB; with this it returns to ~280 MB after each. False where there is no glibc.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl (Alpine) has no mallopt
        return False
    m_mmap_threshold = -3  # from <malloc.h>
    return bool(mallopt(m_mmap_threshold, threshold))


def with_limits(launch: Callable[..., Any], routes: Sequence[Any] = ()) -> Callable[..., Any]:
    """``demo.launch`` with :func:`launch_limits` (a caller may only set a smaller file size).

    ``routes``: the app's own routes (``rest``), served before Gradio's, under the same limits.
    """

    @functools.wraps(launch)
    def launch_with_limits(*args: Any, **kwargs: Any) -> Any:
        return_big_buffers_to_the_os()
        limits = launch_limits()
        kwargs.setdefault("max_file_size", limits.pop("max_file_size"))
        limits["app_kwargs"]["routes"] = list(routes)
        kwargs.update(limits)
        return launch(*args, **kwargs)

    return launch_with_limits


def body_too_large_message(max_bytes: int = MAX_BODY_BYTES) -> str:
    return (
        f"The request body is larger than {max_bytes / 2**20:.0f} MB; send an image of at most "
        f"{MAX_UPLOAD_MB} MB (its base64 is a third larger), e.g. a JPEG at most {MAX_SIDE} px "
        "on the longer side."
    )


class BodySizeLimit:
    """ASGI middleware: any request body over ``max_bytes`` gets HTTP 413 before it is parsed.

    Gradio's ``max_file_size`` guards only its upload route; a base64 image in a JSON body
    would otherwise be read whole, whatever its size. Checks ``Content-Length`` first and
    counts the bytes of bodies sent without it.
    """

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = refused = False

        async def counting_receive() -> dict:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now and tell the app the client left: a route that parses
                    # the body would turn an exception into its own 400 answer.
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if refused:
                return  # the client already has its 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:  # after our 413 the app may complain about the "disconnect"
                raise

    async def _refuse(self, send: Callable) -> None:
        body = json.dumps({"error": body_too_large_message(self.max_bytes)}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _invalid_request(request: Any, error: Any) -> Any:
    """FastAPI's 422 answer echoes the whole request body back; name the field only."""
    from fastapi.responses import JSONResponse

    first = (error.errors() or [{}])[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")[:60]
    problem = str(first.get("msg", "invalid value"))[:120]
    message = (
        f"The request does not match this route ({where or 'body'}: {problem}); send the body "
        'the app\'s API page shows (e.g. /count_base64 takes {"data": [image, threshold]}).'
    )
    return JSONResponse({"error": message}, status_code=422)
