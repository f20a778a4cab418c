"""Dependencies: the services built at start-up, handed to routes.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from app.api.schemas.common import IDENTIFIER_PATTERN
from app.domain.classifiers.registry import ClassifierRegistry
from app.service.assessments import AssessmentService, Caller
from app.service.audit import AuditService
from app.service.readiness import ReadinessProbe


@dataclass(frozen=True)
class Services:
    """Everything a request may use, built once by ``create_app``."""

    registry: ClassifierRegistry
    assessments: AssessmentService
    audit: AuditService
    readiness: ReadinessProbe
    default_client_id: str
    batch_max_items: int


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_assessments(request: Request) -> AssessmentService:
    services: Services = request.app.state.services
    return services.assessments


async def get_registry(request: Request) -> ClassifierRegistry:
    services: Services = request.app.state.services
    return services.registry


async def get_audit(request: Request) -> AuditService:
    services: Services = request.app.state.services
    return services.audit


async def get_caller(
    request: Request,
    client_id: Annotated[
        str | None,
        Header(
            alias="X-Client-ID",
            pattern=IDENTIFIER_PATTERN,
            description="The calling system, as the audit trail should name it (the configured client "
            "id when absent).",
        ),
    ] = None,
) -> Caller:
    """Who is asking, for the audit trail: the client and the request's X-Request-ID."""
    services: Services = request.app.state.services
    request_id = request.scope.get("state", {}).get("request_id")
    return Caller(client_id or services.default_client_id, request_id)


CallerDep = Annotated[Caller, Depends(get_caller)]
