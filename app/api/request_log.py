"""One log line per request, naming the route template (never the path: paths carry subject ids) and the
authenticated caller (never its credential).

The same middleware is the last line of defence: an unexpected exception becomes a 500 problem that still
carries the request id, and is logged by type and code location only, since exception messages can quote
subject ids or values.
"""

import logging
import re
import time
import traceback
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import internal_error

logger = logging.getLogger("app.requests")

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


def code_location(error: BaseException) -> str:
    """Where an error was raised, by file and line, innermost first: never its message."""
    frames = traceback.extract_tb(error.__traceback__)[-5:]
    return " <- ".join(f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}" for frame in reversed(frames))


class RequestLogMiddleware:
    """Logs method, route template, status and duration; echoes or issues an X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"")
        request_id = supplied if _SAFE_REQUEST_ID.match(supplied) else uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()  # the audit trail records it
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            logger.error(
                "unexpected %s at %s request_id=%s",
                type(error).__name__,
                code_location(error),
                request_id.decode(),
            )
            if status == 0:
                await internal_error()(scope, receive, send_with_id)
            else:
                status = 500
        finally:
            route = getattr(scope.get("route"), "path", "<unmatched>")
            logger.info(
                "%s %s %d %.1fms request_id=%s caller=%s",
                scope["method"],
                route,
                status,
                (time.perf_counter() - started) * 1000,
                request_id.decode(),
                scope["state"].get("caller", "-"),  # set once authenticated: a name, never a credential
            )
