"""Liveness, readiness, and the documentation behind each problem type."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from app.api.deps import Services, get_services
from app.api.problems import NOT_FOUND, NOT_READY, PROBLEM_TYPES, VALIDATION, problem_response, responses

router = APIRouter(tags=["operations"])


class Status(BaseModel):
    status: str


class ProblemTypeOut(BaseModel):
    type: str
    title: str
    status: int
    description: str


@router.get("/healthz", response_model=Status)
async def healthz() -> Status:
    """The process is alive."""
    return Status(status="ok")


@router.get("/readyz", response_model=Status, responses=responses(NOT_READY))
async def readyz(services: Annotated[Services, Depends(get_services)]) -> object:
    """The database is reachable and at the newest schema migration."""
    problem = await services.readiness.problem()
    if problem is not None:
        return problem_response(NOT_READY, detail=problem)
    return Status(status="ready")


@router.get("/problems/{slug}", response_model=ProblemTypeOut, responses=responses(NOT_FOUND, VALIDATION))
async def problem_type(slug: str) -> ProblemTypeOut:
    """Describe one problem type that the service's errors name in their 'type'."""
    problem = PROBLEM_TYPES.get(slug)
    if problem is None:
        raise HTTPException(404, "No such problem type.")
    return ProblemTypeOut(
        type=problem.uri,
        title=problem.title,
        status=problem.status,
        description=problem.description,
    )
