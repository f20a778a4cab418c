"""One log line per request, naming the route template (never the path: paths carry subject ids) and the
authenticated caller (never its credential); the same timing, by route template, to the metrics.

Every other line logged while the request is handled names its request id too (app/logs.py).

The same middleware is the last line of defence: an unexpected exception becomes a 500 problem that still
carries the request id, and is logged by type and code location only, since exception messages can quote
subject ids or values.
"""

import logging
import re
import time
import traceback
import uuid
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import internal_error
from app.logs import request_context

logger = logging.getLogger("app.requests")

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


def code_location(error: BaseException) -> str:
    """Where an error was raised, by file and line, innermost first: never its message."""
    frames = traceback.extract_tb(error.__traceback__)[-5:]
    return " <- ".join(f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}" for frame in reversed(frames))


class RequestSink(Protocol):
    """Told of every answered request (the metrics): by route template, never by path."""

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None: ...


UNMATCHED_ROUTE = "<unmatched>"


class RequestLogMiddleware:
    """Logs method, route template, status and duration; echoes or issues an X-Request-ID; tells ``sink``
    (when given) the same, from the same timing."""

    def __init__(self, app: ASGIApp, sink: RequestSink | None = None) -> None:
        self.app = app
        self.sink = sink

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"")
        request_id = supplied if _SAFE_REQUEST_ID.match(supplied) else uuid.uuid4().hex.encode()
        request_id_text = request_id.decode()
        scope.setdefault("state", {})["request_id"] = request_id_text  # the audit trail records it
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        with request_context(request_id_text):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as error:
                logger.error(
                    "unexpected %s at %s request_id=%s",
                    type(error).__name__,
                    code_location(error),
                    request_id_text,
                )
                if status == 0:
                    await internal_error()(scope, receive, send_with_id)
                else:
                    status = 500
            finally:
                self._finished(scope, status, time.perf_counter() - started, request_id_text)

    def _finished(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        method: str = scope["method"]
        route: str = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
        caller: str = scope["state"].get("caller", "-")  # set once authenticated: a name, never a credential
        duration_ms = round(seconds * 1000, 1)
        logger.info(
            "%s %s %d %.1fms request_id=%s caller=%s",
            method,
            route,
            status,
            duration_ms,
            request_id,
            caller,
            extra={
                "request_id": request_id,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "caller": caller,
            },
        )
        if self.sink is not None:
            self.sink.request_finished(method, route, status, seconds)
