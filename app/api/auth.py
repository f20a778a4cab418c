"""Who is calling: a bearer credential (an API key, or an OIDC access token) resolved to a Principal.

Every route but the health probes, the OpenAPI document and the problem type pages depends on one of the
``requires`` dependencies below. A refusal is counted and logged by reason and request id, never with the
credential; the request log names the authenticated caller.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.problems import FORBIDDEN, RATE_LIMITED, UNAUTHENTICATED, ProblemType
from app.domain.access import Principal, Scope
from app.service.errors import Forbidden, RateLimited, Unauthenticated

logger = logging.getLogger("app.access")

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`il6_…`, from `il6 keys create` or POST /v1/keys), or an access token from the "
    "configured OAuth2/OIDC issuer.",
)

ACCESS_PROBLEMS: tuple[ProblemType, ...] = (UNAUTHENTICATED, FORBIDDEN, RATE_LIMITED)
"""What any protected route may answer before it runs."""


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Principal:
    """The caller behind the request's bearer credential, within its rate limit."""
    access = request.app.state.access
    try:
        if credentials is None:
            raise Unauthenticated("missing")
        token = credentials.credentials
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


def refuse(request: Request, principal: Principal, reason: str, detail: str) -> Forbidden:
    """A Forbidden to raise, counted and logged (by reason and caller, never by what was asked)."""
    request.app.state.access.metrics.authorisation_failed(reason)
    logger.warning(
        "authorisation refused: %s caller=%s request_id=%s", reason, principal.name, _request_id(request)
    )
    return Forbidden(reason, detail)


def requires(scope: Scope | None) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers that hold ``scope`` (None: any authenticated caller)."""

    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(authenticate)]
    ) -> Principal:
        if scope is not None and not principal.allows(scope):
            raise refuse(request, principal, "missing-scope", f"This operation needs the '{scope}' scope.")
        return principal

    dependency.__name__ = f"requires_{scope or 'any'}"
    return dependency


def requires_every_site(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency for data that spans sites (the audit trail itself): ``scope`` and every site."""
    inner = requires(scope)

    async def dependency(request: Request, principal: Annotated[Principal, Depends(inner)]) -> Principal:
        if not principal.sites.every_site:
            raise refuse(request, principal, "not-every-site", "This operation needs access to every site.")
        return principal

    dependency.__name__ = f"requires_{scope}_every_site"
    return dependency


Authenticated = Annotated[Principal, Depends(requires(None))]
Assessor = Annotated[Principal, Depends(requires(Scope.ASSESS))]
Reader = Annotated[Principal, Depends(requires(Scope.READ))]
Administrator = Annotated[Principal, Depends(requires(Scope.ADMIN))]
Auditor = Annotated[Principal, Depends(requires_every_site(Scope.READ))]
