"""Security headers on every HTTP response, error responses included: the answers carry health data, so
nothing may cache them, sniff them, frame them or read them from another origin.

A header the application set itself is left as it is. The interactive documentation pages load their
scripts and styles from a CDN, so they go without the Content-Security-Policy (and keep the rest).
It must sit outside ``RequestLogMiddleware``, which turns an unexpected error into a 500, for that 500 to
get them too: in ``create_app``, add it after that one (the middleware added last is the outermost).
"""

from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
"""FastAPI's default paths of the interactive documentation (Swagger UI, its OAuth2 redirect, ReDoc)."""

Headers = tuple[tuple[bytes, bytes], ...]

SECURITY_HEADERS: Headers = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
)
"""Sent on every response; browsers ignore Strict-Transport-Security over plain HTTP."""

CONTENT_SECURITY_POLICY: Headers = (
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)
"""Nothing may load or frame anything: the API answers JSON only."""


class SecurityHeadersMiddleware:
    """Adds ``SECURITY_HEADERS`` and the Content-Security-Policy to each response that lacks them, except
    the Content-Security-Policy on ``exempt_csp_paths`` (paths within the application, without root_path)."""

    def __init__(self, app: ASGIApp, exempt_csp_paths: Collection[str] = DOCS_PATHS) -> None:
        self.app = app
        self.exempt_csp_paths = frozenset(exempt_csp_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = SECURITY_HEADERS
        if route_path(scope) not in self.exempt_csp_paths:
            added += CONTENT_SECURITY_POLICY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in added if name not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def route_path(scope: Scope) -> str:
    """The path within the application: behind a proxy's prefix, ``path`` starts with ``root_path``."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path) :] or "/"
    return path
