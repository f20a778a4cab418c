"""Dependencies: the services built at start-up, handed to routes."""

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


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_assessments(request: Request) -> AssessmentService:
    return get_services(request).assessments


def get_registry(request: Request) -> ClassifierRegistry:
    return get_services(request).registry
