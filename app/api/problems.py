"""RFC 9457 problem details: every error the service returns, in one shape, never echoing input.

Each problem type has a stable URI under ``/problems/``; the service serves a short description there.
"""

import logging
from typing import Any, cast

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app.api.problem_types import (
    ALREADY_SUPERSEDED,
    APPEND_CONFLICT,
    BAD_REQUEST,
    CHAIN_BROKEN,
    FORBIDDEN,
    IDEMPOTENCY_KEY_REUSED,
    INTERNAL,
    INVALID_CHECKPOINT,
    ISSUER_UNAVAILABLE,
    KEY_NAME_TAKEN,
    KEY_REVOKED,
    LIFECYCLE_REFUSED,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    NOT_READY,
    PAYLOAD_TOO_LARGE,
    PROBLEM_TYPES,
    RATE_LIMITED,
    REPLAY_UNAVAILABLE,
    REQUEST_IN_PROGRESS,
    SOURCE_NOT_ACCEPTED,
    STORE_UNAVAILABLE,
    UNAUTHENTICATED,
    UNSUPPORTED_MEDIA_TYPE,
    UPSTREAM_UNAVAILABLE,
    VALIDATION,
    ProblemType,
)
from app.domain.classifiers.base import ClassifierDefinitionError
from app.domain.classifiers.lifecycle import LifecycleRefused
from app.domain.errors import InvalidInput
from app.interop.redcap import InvalidRecord
from app.service.access import KeyNameTaken, KeyRevoked
from app.service.assessments import ReplayUnavailable
from app.service.audit import ChainBroken
from app.service.checkpoints import InvalidCheckpoint
from app.service.classifiers import UnknownVersion
from app.service.errors import (
    AlreadySuperseded,
    AppendConflict,
    Forbidden,
    IdempotencyKeyReused,
    RateLimited,
    RequestInProgress,
    StoreUnavailable,
    Unauthenticated,
)
from app.service.oidc import IssuerUnavailable
from app.service.recorded_assessments import InvalidCursor
from app.service.redcap import SourceNotAccepted, UpstreamUnavailable

__all__ = [
    "ALREADY_SUPERSEDED",
    "APPEND_CONFLICT",
    "BAD_REQUEST",
    "CHAIN_BROKEN",
    "FORBIDDEN",
    "IDEMPOTENCY_KEY_REUSED",
    "INTERNAL",
    "INVALID_CHECKPOINT",
    "ISSUER_UNAVAILABLE",
    "KEY_NAME_TAKEN",
    "KEY_REVOKED",
    "LIFECYCLE_REFUSED",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "NOT_READY",
    "PAYLOAD_TOO_LARGE",
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPES",
    "RATE_LIMITED",
    "REPLAY_UNAVAILABLE",
    "REQUEST_IN_PROGRESS",
    "SOURCE_NOT_ACCEPTED",
    "STORE_UNAVAILABLE",
    "UNAUTHENTICATED",
    "UNSUPPORTED_MEDIA_TYPE",
    "UPSTREAM_UNAVAILABLE",
    "VALIDATION",
    "FieldError",
    "Problem",
    "ProblemResponse",
    "ProblemType",
    "handled",
    "install",
    "internal_error",
    "problem_response",
    "responses",
]

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("app.access")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    detail: str = Field(description="What is wrong with the field; never its submitted value.")
    pointer: str | None = Field(None, description="JSON Pointer (RFC 6901) into the request body.")
    parameter: str | None = Field(None, description="The query, path or header parameter at fault.")


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem_response(
    problem: ProblemType | None,
    *,
    status: int | None = None,
    title: str | None = None,
    detail: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> ProblemResponse:
    body = Problem(
        type=problem.uri if problem else "about:blank",
        title=title or (problem.title if problem else "Error"),
        status=status or (problem.status if problem else 500),
        detail=detail,
        errors=errors,
    )
    return ProblemResponse(body.model_dump(exclude_none=True), status_code=body.status, headers=headers)


def responses(*problems: ProblemType) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry a route declares so the OpenAPI document shows its problems."""
    return {problem.status: {"description": problem.title} for problem in problems}


_FIXED_MESSAGES = {
    # pydantic's own messages for these quote the offending input; ours do not.
    "extra_forbidden": "Unknown field: remove it (fields are listed in the OpenAPI document).",
    "uuid_parsing": "Input should be a valid UUID.",
    "uuid_type": "Input should be a valid UUID.",
}


def _field_error(error: dict[str, Any]) -> FieldError:
    """One field's error, pointing at it without repeating what was submitted."""
    location = [str(part) for part in error.get("loc", ())]
    kind = str(error.get("type", ""))
    message = _FIXED_MESSAGES.get(kind, str(error.get("msg", "invalid")))
    if kind == "missing" and location == ["body"]:
        return FieldError(detail="The request body is empty; send a JSON object.", pointer="")
    if kind == "json_invalid":
        reason = error.get("ctx", {}).get("error", "not valid JSON")
        return FieldError(detail=f"The body is not valid JSON: {reason}", pointer="")
    if kind == "extra_forbidden":
        location = location[:-1]  # an unknown key is the caller's text: point at its object instead
    if location and location[0] == "body":
        return FieldError(detail=message, pointer="".join(f"/{part}" for part in location[1:]))
    return FieldError(detail=message, parameter=".".join(location[1:]) or None)


def _count(errors: int) -> str:
    return "1 field is not valid." if errors == 1 else f"{errors} fields are not valid."


async def _validation(_request: Request, exc: Exception) -> ProblemResponse:
    errors = [_field_error(error) for error in cast(RequestValidationError, exc).errors()]
    return problem_response(VALIDATION, detail=_count(len(errors)), errors=errors)


async def _invalid_input(_request: Request, exc: Exception) -> ProblemResponse:
    invalid = cast(InvalidInput, exc)
    return problem_response(
        VALIDATION,
        detail=_count(1),
        errors=[FieldError(detail=invalid.message, pointer=invalid.pointer)],
    )


async def _invalid_record(_request: Request, exc: Exception) -> ProblemResponse:
    invalid = cast(InvalidRecord, exc)
    errors = [FieldError(detail=error.message, pointer=error.pointer) for error in invalid.errors]
    return problem_response(VALIDATION, detail=_count(len(errors)), errors=errors)


async def _upstream_unavailable(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(UPSTREAM_UNAVAILABLE, detail=f"{exc}. Nothing was decided.")


async def _source_not_accepted(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(SOURCE_NOT_ACCEPTED, detail=str(exc))


async def _invalid_cursor(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(
        VALIDATION,
        detail=_count(1),
        errors=[FieldError(detail=str(exc), parameter="cursor")],
    )


async def _http(_request: Request, exc: Exception) -> ProblemResponse:
    exc = cast(StarletteHTTPException, exc)
    problem = {
        400: BAD_REQUEST,
        404: NOT_FOUND,
        405: METHOD_NOT_ALLOWED,
        413: PAYLOAD_TOO_LARGE,
        415: UNSUPPORTED_MEDIA_TYPE,
    }.get(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) else None
    title = problem.title if problem else detail or "Error"
    return problem_response(
        problem,
        status=exc.status_code,
        title=title,
        detail=detail,
        headers=getattr(exc, "headers", None),
    )


async def _store_unavailable(_request: Request, exc: Exception) -> ProblemResponse:
    logger.error("audit store unavailable: %s", type(exc.__cause__ or exc).__name__)
    return problem_response(STORE_UNAVAILABLE, detail=str(exc), headers={"Retry-After": "5"})


async def _replay_unavailable(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(REPLAY_UNAVAILABLE, detail=str(exc))


async def _request_in_progress(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(REQUEST_IN_PROGRESS, detail=str(exc), headers={"Retry-After": "1"})


async def _idempotency_key_reused(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(
        IDEMPOTENCY_KEY_REUSED,
        detail=str(exc),
        errors=[FieldError(detail=str(exc), parameter="Idempotency-Key")],
    )


async def _already_superseded(_request: Request, exc: Exception) -> ProblemResponse:
    successor = cast(AlreadySuperseded, exc).successor
    return problem_response(ALREADY_SUPERSEDED, detail=f"It was superseded by assessment {successor}.")


async def _append_conflict(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(APPEND_CONFLICT, detail=str(exc), headers={"Retry-After": "1"})


async def _chain_broken(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(CHAIN_BROKEN, detail=str(exc))


async def _invalid_checkpoint(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(INVALID_CHECKPOINT, detail=str(exc))


async def _classifier_definition(_request: Request, exc: Exception) -> ProblemResponse:
    logger.error("classifier definition error: %s", exc)
    return problem_response(INTERNAL, detail="A classifier definition failed a check.")


async def _unauthenticated(_request: Request, exc: Exception) -> ProblemResponse:
    # RFC 6750 3: a bearer challenge, with invalid_token when a credential was sent (get a new one); the
    # reason stays in the log and the metrics.
    sent = cast(Unauthenticated, exc).reason != "missing"
    challenge = 'Bearer realm="il6", error="invalid_token"' if sent else 'Bearer realm="il6"'
    return problem_response(UNAUTHENTICATED, headers={"WWW-Authenticate": challenge})


async def _forbidden(request: Request, exc: Exception) -> ProblemResponse:
    """Counted and logged by reason and caller, never by what was asked: the scope checks and the site
    checks of the use cases end here alike."""
    reason = cast(Forbidden, exc).reason
    request.app.state.access.metrics.authorisation_failed(reason)
    state = request.scope.get("state", {})
    access_logger.warning(
        "authorisation refused: %s caller=%s request_id=%s",
        reason,
        state.get("caller", "-"),
        state.get("request_id", "-"),
    )
    # RFC 6750 3.1: a missing scope is insufficient_scope; a site refusal is no matter of scope.
    headers = {"WWW-Authenticate": 'Bearer realm="il6", error="insufficient_scope"'}
    return problem_response(
        FORBIDDEN, detail=str(exc), headers=headers if reason == "missing-scope" else None
    )


async def _rate_limited(_request: Request, exc: Exception) -> ProblemResponse:
    retry_after = cast(RateLimited, exc).retry_after_s
    return problem_response(RATE_LIMITED, headers={"Retry-After": str(retry_after)})


async def _key_name_taken(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(KEY_NAME_TAKEN, detail=str(exc))


async def _key_revoked(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(KEY_REVOKED, detail=str(exc))


async def _lifecycle_refused(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(LIFECYCLE_REFUSED, detail=str(exc))


async def _unknown_version(_request: Request, exc: Exception) -> ProblemResponse:
    return problem_response(NOT_FOUND, detail=str(exc))


async def _issuer_unavailable(_request: Request, exc: Exception) -> ProblemResponse:
    logger.error("OIDC issuer unavailable: %s", type(exc.__cause__ or exc).__name__)
    return problem_response(ISSUER_UNAVAILABLE, headers={"Retry-After": "5"})


async def handled(request: Request, error: Exception) -> Response | None:
    """The answer the app's own handler gives for ``error`` (outside a route: a middleware, a batch item),
    or None when no handler knows its type."""
    handlers = request.app.exception_handlers
    handler = next((handlers[kind] for kind in type(error).__mro__ if kind in handlers), None)
    if handler is None:
        return None
    answer: Response = await handler(request, error)
    return answer


CLIENT_CLOSED_REQUEST = 499
"""nginx's status for a request whose client went away before it was answered; never sent, only logged."""


async def _client_disconnected(request: Request, _: Exception) -> Response:
    """The client went away while its request was being read: nothing was decided or recorded, and nobody
    is left to answer. It is the client's doing, so it is logged and counted as such, not as a server
    error (which would page whoever watches the 5xx rate each time a caller times out)."""
    state = request.scope.get("state", {})
    logger.info("client disconnected before its request was read request_id=%s", state.get("request_id", "-"))
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def internal_error() -> ProblemResponse:
    """The answer to an unexpected error: nothing about it leaves the service."""
    return problem_response(INTERNAL)


def install(app: FastAPI) -> None:
    """Register every handler: the one place domain and framework errors become HTTP statuses."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(InvalidInput, _invalid_input)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(InvalidRecord, _invalid_record)
    app.add_exception_handler(UpstreamUnavailable, _upstream_unavailable)
    app.add_exception_handler(SourceNotAccepted, _source_not_accepted)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(ReplayUnavailable, _replay_unavailable)
    app.add_exception_handler(RequestInProgress, _request_in_progress)
    app.add_exception_handler(IdempotencyKeyReused, _idempotency_key_reused)
    app.add_exception_handler(AlreadySuperseded, _already_superseded)
    app.add_exception_handler(AppendConflict, _append_conflict)
    app.add_exception_handler(InvalidCheckpoint, _invalid_checkpoint)
    app.add_exception_handler(ChainBroken, _chain_broken)
    app.add_exception_handler(ClassifierDefinitionError, _classifier_definition)
    app.add_exception_handler(Unauthenticated, _unauthenticated)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(KeyNameTaken, _key_name_taken)
    app.add_exception_handler(KeyRevoked, _key_revoked)
    app.add_exception_handler(IssuerUnavailable, _issuer_unavailable)
    app.add_exception_handler(LifecycleRefused, _lifecycle_refused)
    app.add_exception_handler(UnknownVersion, _unknown_version)
