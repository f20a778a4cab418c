"""Dependencies: the services built at start-up, handed to routes.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.api.auth import authenticate
from app.api.metrics import Metrics
from app.api.rate_limit import RateLimiter
from app.domain.access import Principal
from app.domain.classifiers.registry import ClassifierRegistry
from app.service.access import KeyService
from app.service.assessments import AssessmentService, Caller
from app.service.audit import AuditService
from app.service.classifiers import ClassifierCatalog
from app.service.impact import ClassifierReports
from app.service.monitoring import MonitoringService
from app.service.oidc import OidcVerifier
from app.service.readiness import ReadinessProbe


@dataclass(frozen=True)
class Services:
    """Everything a request may use, built once by ``create_app``."""

    catalog: ClassifierCatalog
    reports: ClassifierReports
    monitoring: MonitoringService
    assessments: AssessmentService
    audit: AuditService
    readiness: ReadinessProbe
    keys: KeyService
    batch_max_items: int


@dataclass(frozen=True)
class Access:
    """What authenticating a request needs (``app.state.access``)."""

    keys: KeyService
    oidc: OidcVerifier | None
    limiter: RateLimiter
    metrics: Metrics


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_assessments(request: Request) -> AssessmentService:
    services: Services = request.app.state.services
    return services.assessments


async def get_registry(request: Request) -> ClassifierRegistry:
    """The classifier versions as this process last read them from the store."""
    services: Services = request.app.state.services
    return services.catalog.current


async def get_catalog(request: Request) -> ClassifierCatalog:
    services: Services = request.app.state.services
    return services.catalog


async def get_reports(request: Request) -> ClassifierReports:
    services: Services = request.app.state.services
    return services.reports


async def get_monitoring(request: Request) -> MonitoringService:
    services: Services = request.app.state.services
    return services.monitoring


async def get_audit(request: Request) -> AuditService:
    services: Services = request.app.state.services
    return services.audit


async def get_keys(request: Request) -> KeyService:
    services: Services = request.app.state.services
    return services.keys


def caller_of(request: Request, principal: Principal) -> Caller:
    """Who is asking, for the audit trail: the authenticated caller, its sites, and the request's id."""
    request_id = request.scope.get("state", {}).get("request_id")
    return Caller(principal.name, request_id, principal.sites)


async def get_caller(request: Request, principal: Annotated[Principal, Depends(authenticate)]) -> Caller:
    """Who is asking, for the audit trail: the authenticated caller, its sites, and the request's id."""
    return caller_of(request, principal)


CallerDep = Annotated[Caller, Depends(get_caller)]
