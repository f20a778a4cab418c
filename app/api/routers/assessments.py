"""Decisions: create one, read one, list a subject's, replay one."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from app.api.deps import get_assessments
from app.api.exact_json import JSON_MEDIA_TYPE, ExactJSONRoute, require_json
from app.api.problems import (
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    REPLAY_UNAVAILABLE,
    STORE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION,
    responses,
)
from app.api.schemas.assessments import (
    AssessmentIn,
    AssessmentOut,
    AssessmentPage,
    DecisionOut,
    ReplayOut,
)
from app.api.schemas.common import IDENTIFIER_PATTERN
from app.service.assessments import AssessmentService, RawRequest

CLASSIFIER_HEADER = "Classifier-Version"

router = APIRouter(prefix="/v1", tags=["assessments"], route_class=ExactJSONRoute)
Service = Annotated[AssessmentService, Depends(get_assessments)]


@router.post(
    "/assessments",
    status_code=201,
    response_model=AssessmentOut,
    dependencies=[Depends(require_json)],
    responses={
        201: {
            "description": "The decision, recorded in the audit store before this answer was sent.",
            "headers": {
                "Location": {"description": "The decision's URL.", "schema": {"type": "string"}},
                CLASSIFIER_HEADER: {
                    "description": "The classifier version that decided, as name@version.",
                    "schema": {"type": "string"},
                },
            },
        },
        **responses(VALIDATION, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, STORE_UNAVAILABLE),
    },
)
async def create_assessment(
    body: AssessmentIn, request: Request, response: Response, service: Service
) -> AssessmentOut:
    """Decide eligibility and risk group for a serum IL6 result, and record the decision before answering."""
    raw = RawRequest(body=await request.body(), media_type=JSON_MEDIA_TYPE)
    recorded = await service.decide(body.to_submission(), raw)
    out = AssessmentOut.from_record(recorded)
    response.headers["Location"] = f"/v1/assessments/{out.id}"
    _name_classifier(response, out)
    return out


def _name_classifier(response: Response, out: AssessmentOut) -> None:
    response.headers[CLASSIFIER_HEADER] = f"{out.classifier.name}@{out.classifier.version}"


@router.get(
    "/assessments/{assessment_id}",
    response_model=AssessmentOut,
    responses=responses(NOT_FOUND, VALIDATION, STORE_UNAVAILABLE),
)
async def get_assessment(assessment_id: uuid.UUID, response: Response, service: Service) -> AssessmentOut:
    """Read a recorded decision, exactly as it was given."""
    recorded = await service.get(assessment_id)
    if recorded is None:
        raise HTTPException(404, "No assessment with this id.")
    out = AssessmentOut.from_record(recorded)
    _name_classifier(response, out)
    return out


@router.get(
    "/assessments/{assessment_id}/replay",
    response_model=ReplayOut,
    responses=responses(NOT_FOUND, VALIDATION, REPLAY_UNAVAILABLE, STORE_UNAVAILABLE),
)
async def replay_assessment(assessment_id: uuid.UUID, service: Service) -> ReplayOut:
    """Decide a recorded input again under its own classifier version and compare; records nothing."""
    replay = await service.replay(assessment_id)
    if replay is None:
        raise HTTPException(404, "No assessment with this id.")
    return ReplayOut(
        matches=replay.matches,
        recorded=AssessmentOut.from_record(replay.original),
        replayed=DecisionOut.model_validate(replay.replayed),
    )


@router.get(
    "/subjects/{subject_id}/assessments",
    response_model=AssessmentPage,
    responses=responses(VALIDATION, STORE_UNAVAILABLE),
)
async def list_subject_assessments(
    subject_id: Annotated[str, Path(pattern=IDENTIFIER_PATTERN)],
    service: Service,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> AssessmentPage:
    """List a subject's recorded decisions, newest first, a page at a time."""
    page = await service.list_for_subject(subject_id, limit=limit, cursor=cursor)
    return AssessmentPage(
        items=[AssessmentOut.from_record(item) for item in page.items], next_cursor=page.next_cursor
    )
