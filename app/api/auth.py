"""Who is calling: a bearer credential (an API key, or an OIDC access token) resolved to a Principal.

Every route but the health probes, the OpenAPI document and the problem type pages depends on one of the
``requires`` dependencies below. A refused credential is counted and logged here by reason and request id,
never with the credential (a refused operation, wherever it is refused, by the Forbidden handler); the
request log names the authenticated caller.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as ASGIScope

from app.api.problems import FORBIDDEN, RATE_LIMITED, UNAUTHENTICATED, ProblemType, handled
from app.api.security_headers import route_path
from app.domain.access import Principal, Scope
from app.service.errors import Forbidden, RateLimited, Unauthenticated

logger = logging.getLogger("app.access")

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`il6_…`, from `il6 keys create` or POST /v1/keys), or an access token from the "
    "configured OAuth2/OIDC issuer.",
)

PRINCIPAL = "principal"
"""Where the middleware leaves the authenticated caller in the request's state."""

ACCESS_PROBLEMS: tuple[ProblemType, ...] = (UNAUTHENTICATED, FORBIDDEN, RATE_LIMITED)
"""What any protected route may answer before it runs."""


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


class AuthenticationMiddleware:
    """Checks the credential of every request to a protected path before anything else reads it: no body
    is read, parsed or validated, and no route is told apart from another, for an unknown caller.

    ``is_public(path)``: the paths that answer anyone (probes, the contract, problem type pages).
    """

    def __init__(self, app: ASGIApp, is_public: Callable[[str], bool]) -> None:
        self.app = app
        self.is_public = is_public

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.is_public(route_path(scope)):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            principal = await _principal_of(request)
        except Exception as refused:  # answered by the service's own handlers (401, 429, 503)
            answer = await handled(request, refused)
            if answer is None:
                raise
            await answer(scope, receive, send)
            return
        scope.setdefault("state", {})[PRINCIPAL] = principal
        await self.app(scope, receive, send)


async def _principal_of(request: Request) -> Principal:
    """The caller behind the request's bearer credential, within its rate limit."""
    access = request.app.state.access
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("missing")
        token = token.strip()
        if access.oidc is not None and token.count(".") == 2:
            principal: Principal = await access.oidc.verify(token)
        else:
            principal = await access.keys.authenticate(token)
    except Unauthenticated as refused:
        access.metrics.authentication_failed(refused.reason)
        logger.warning("authentication refused: %s request_id=%s", refused.reason, _request_id(request))
        raise
    request.scope.setdefault("state", {})["caller"] = principal.name
    try:
        access.limiter.check(principal.name)
    except RateLimited:
        access.metrics.throttled()
        logger.warning("rate limited: caller=%s request_id=%s", principal.name, _request_id(request))
        raise
    return principal


Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
"""The bearer credential, as the OpenAPI document declares it (the middleware has already checked it)."""


def admitted(request: Request, scope: Scope | None = None) -> Principal:
    """The caller the AuthenticationMiddleware admitted, if it holds ``scope`` (None: any caller)."""
    principal: Principal | None = request.scope.get("state", {}).get(PRINCIPAL)
    if principal is None:  # a protected route the middleware took for public: refuse, never guess
        raise Unauthenticated("not-checked")
    if scope is not None and not principal.allows(scope):
        raise Forbidden("missing-scope", f"This operation needs the '{scope}' scope.")
    return principal


async def authenticate(request: Request, _credentials: Credentials) -> Principal:
    """The caller the AuthenticationMiddleware admitted (the bearer parameter documents the scheme)."""
    return admitted(request)


def requires(scope: Scope | None) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers that hold ``scope`` (None: any authenticated caller).

    It reads the caller itself rather than through ``authenticate``: FastAPI solves each dependency of a
    route anew on every request, so one level fewer is less work for every protected route."""

    async def dependency(request: Request, _credentials: Credentials) -> Principal:
        return admitted(request, scope)

    dependency.__name__ = f"requires_{scope or 'any'}"
    _ADMISSION_SCOPES[dependency] = scope
    return dependency


_ADMISSION_SCOPES: dict[Callable[..., Awaitable[Principal]], Scope | None] = {}
"""Each dependency ``requires`` made, and the scope it admits callers by."""


def admission_check(dependency: Callable[..., Any]) -> Callable[[Request], Principal] | None:
    """What a dependency made by ``requires`` does, as a plain call on the request (for a route that runs
    its dependencies without FastAPI: ``DirectRoute``); None for any other dependency."""
    if dependency not in _ADMISSION_SCOPES:
        return None
    scope = _ADMISSION_SCOPES[dependency]
    return lambda request: admitted(request, scope)


def requires_every_site(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency for data that spans sites (the audit trail itself): ``scope`` and every site."""
    inner = requires(scope)

    async def dependency(principal: Annotated[Principal, Depends(inner)]) -> Principal:
        if not principal.sites.every_site:
            raise Forbidden("not-every-site", "This operation needs access to every site.")
        return principal

    dependency.__name__ = f"requires_{scope}_every_site"
    return dependency


Authenticated = Annotated[Principal, Depends(requires(None))]
Assessor = Annotated[Principal, Depends(requires(Scope.ASSESS))]
Reader = Annotated[Principal, Depends(requires(Scope.READ))]
Administrator = Annotated[Principal, Depends(requires(Scope.ADMIN))]
Auditor = Annotated[Principal, Depends(requires_every_site(Scope.READ))]
