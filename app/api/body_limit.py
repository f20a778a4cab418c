"""Refuse request bodies over the configured size with a 413 problem, declared or streamed (chunked)."""

from collections.abc import Mapping

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import PAYLOAD_TOO_LARGE, problem_response
from app.api.security_headers import route_path


class BodyLimitMiddleware:
    """``max_bytes`` for every path, except the paths ``per_path`` names (a batch takes more)."""

    def __init__(self, app: ASGIApp, max_bytes: int, per_path: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(route_path(scope), self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            too_large = problem_response(PAYLOAD_TOO_LARGE, detail=_detail(limit))
            await too_large(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised while the route reads the body: FastAPI re-raises HTTPException as is.
                    raise HTTPException(413, _detail(limit))
            return message

        await self.app(scope, counting_receive, send)


def _detail(limit: int) -> str:
    return f"The request body exceeds {limit} bytes."
