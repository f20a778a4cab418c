"""Dependencies: the services built at start-up, handed to routes.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request.
"""

from dataclasses import dataclass

from fastapi import Request

from app.domain.classifiers.registry import ClassifierRegistry
from app.service.assessments import AssessmentService
from app.service.readiness import ReadinessProbe


@dataclass(frozen=True)
class Services:
    """Everything a request may use, built once by ``create_app``."""

    registry: ClassifierRegistry
    assessments: AssessmentService
    readiness: ReadinessProbe


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_assessments(request: Request) -> AssessmentService:
    services: Services = request.app.state.services
    return services.assessments


async def get_registry(request: Request) -> ClassifierRegistry:
    services: Services = request.app.state.services
    return services.registry
