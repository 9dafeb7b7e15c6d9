"""``POST /api/count``: one plain HTTP request in, the JSON answer out, beside Gradio's routes.

Gradio's own API takes two or three requests per count (upload, call, then a server-sent
event stream to read): what its queue and browser UI need, but about a quarter of a call's
time beyond the model (``python -m utils.bench api``). A phone app or ``curl`` wants one
request, so the app also serves this route, on the same predictor and limits:

    curl --data-binary @photo.jpg -H "Content-Type: image/jpeg" http://127.0.0.1:7860/api/count
    curl -F image=@photo.jpg "http://127.0.0.1:7860/api/count?threshold=0.4&picture=false"

The body is the photo's bytes, or a multipart form whose ``image`` field holds them. Query
parameters: ``threshold`` (0..1; the model's own if absent) and ``picture`` (``false``: no
annotated JPEG in the answer). The answer is ``/count_base64``'s JSON (``count``,
``detections``, ``notes``, ``error``, ``image``; ``counts`` per class for a model of several
classes) with HTTP 200, 400 for a bad photo or field (``error`` says which and what to do), 413
for a photo over the size limit, 500 for an internal error, 503 when too many wait.

It bypasses Gradio's queue, so it keeps its own limits: at most ``limit`` requests decode and
count at once (the queue's concurrency) and at most ``max_waiting`` wait for their turn. The
app's ``count`` function also passes one gate shared with Gradio's routes (``ui``), so both
ways in together never count more than ``limit`` photos at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..processing import CallTimes, recording
from .core import INTERNAL_ERROR, MAX_FILE_BYTES, MAX_UPLOAD_MB, CountResult

REST_PATH = "/api/count"
FORM_FIELD = "image"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class RequestError(ValueError):
    """A request this route refuses before counting; ``status`` is its HTTP code."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def picture_wanted(value: str | None) -> bool:
    """The ``picture`` query parameter: absent means yes."""
    if value is None:
        return True
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise RequestError(400, f"picture must be true or false (got {value[:40]!r})")


def threshold_value(text: str | None) -> float | None:
    """The ``threshold`` query parameter as a number (its range is checked with the count's)."""
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise RequestError(
            400, f"threshold must be a number between 0 and 1 (got {text[:40]!r}); send e.g. 0.5"
        ) from None


async def photo_bytes(request: Any) -> bytes:
    """The photo: the raw body, or the ``image`` field of a multipart form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=8)
        except Exception as error:  # a broken multipart body (starlette's MultiPartException)
            raise RequestError(
                400,
                "the multipart form could not be read; send the photo as -F "
                f"{FORM_FIELD}=@photo.jpg, or as the whole body (--data-binary @photo.jpg)",
            ) from error
        upload = form.get(FORM_FIELD)
        if upload is None or not hasattr(upload, "read"):
            raise RequestError(
                400,
                f"the form has no file field named '{FORM_FIELD}'; send the photo as "
                f"-F {FORM_FIELD}=@photo.jpg, or as the whole body (--data-binary @photo.jpg)",
            )
        data = await upload.read()
    else:
        data = await request.body()
    if not data:
        raise RequestError(
            400, "the request has no photo; send its bytes as the body (--data-binary @photo.jpg)"
        )
    if len(data) > MAX_FILE_BYTES:
        raise RequestError(413, f"the photo is larger than {MAX_UPLOAD_MB} MB; send a smaller JPEG")
    return data


def status_of(result: CountResult) -> int:
    if result.error is None:
        return 200
    return 500 if result.error == INTERNAL_ERROR else 400


def rest_route(
    count: Callable[[bytes, float | None], CountResult],
    limit: int,
    max_waiting: int,
    call_times: Any = None,
    path: str = REST_PATH,
) -> Any:
    """The Starlette route around ``count`` (photo bytes, threshold -> :class:`CountResult`,
    never raising: e.g. :func:`~utils.app.core.count_safely` on a guarded predictor).

    ``call_times`` (a deque) receives each call's timing record, as the Gradio routes' do.
    """
    import anyio
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    limiter = anyio.CapacityLimiter(limit)
    state = {"waiting": 0}

    def answer_for(data: bytes, threshold: float | None, picture: bool) -> tuple[dict, int]:
        with recording() as times:
            result = count(data, threshold)
            answer = result.to_json(with_image=picture)
        _keep(call_times, times)
        return answer, status_of(result)

    async def endpoint(request: Any) -> Any:
        try:
            picture = picture_wanted(request.query_params.get("picture"))
            threshold = threshold_value(request.query_params.get("threshold"))
            data = await photo_bytes(request)
            if state["waiting"] >= max_waiting + limit:
                raise RequestError(503, "the server is busy (too many requests wait); try again")
        except RequestError as error:
            return JSONResponse(_refusal(str(error)), status_code=error.status)
        state["waiting"] += 1
        try:
            answer, status = await anyio.to_thread.run_sync(
                answer_for, data, threshold, picture, limiter=limiter
            )
        except Exception:  # count_safely catches the counting's; this is the thread pool's
            logging.getLogger("utils.app").exception("the REST route failed")
            answer, status = _refusal(INTERNAL_ERROR), 500
        finally:
            state["waiting"] -= 1
        return JSONResponse(answer, status_code=status)

    return Route(path, endpoint, methods=["POST"], name="course_count")


def _refusal(message: str) -> dict[str, Any]:
    return CountResult(None, None, error=message).to_json(with_image=False)


def _keep(call_times: Any, times: CallTimes) -> None:
    if call_times is not None:
        call_times.append(times)
