"""Decisions: create one, read one, list a subject's, replay one."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response

from app.api.auth import Reader, admitted
from app.api.deps import Services, caller_of, get_assessments
from app.api.direct_route import DirectRoute
from app.api.exact_json import ExactJSONRoute, require_json_if_body
from app.api.fhir import FHIR_CONTENT, fhir_decision, fhir_release, prefers_fhir
from app.api.intake import PLAIN_JSON, Intake
from app.api.intake_fhir import FhirForms, fhir_forms
from app.api.intake_sdtm import SDTM_LB
from app.api.problems import (
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    REPLAY_UNAVAILABLE,
    REQUEST_IN_PROGRESS,
    STORE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION,
    responses,
)
from app.api.schemas.assessment_json import assessment_json
from app.api.schemas.assessments import (
    AssessmentOut,
    AssessmentPage,
    ChangeOut,
    DecisionOut,
    ReplayIn,
    ReplayOut,
)
from app.api.schemas.common import IDENTIFIER_PATTERN
from app.domain.access import Scope
from app.domain.errors import InvalidInput
from app.service.assessments import AssessmentService, RawRequest
from app.settings import DEFAULT_FHIR_SUBJECT_SYSTEM

CLASSIFIER_HEADER = "Classifier-Version"
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_PATTERN = r'^(?:"[\x21\x23-\x5b\x5d-\x7e]{1,255}"|[\x21\x23-\x5b\x5d-\x7e]{1,255})$'
"""Visible ASCII without quote or backslash, 1 to 255 characters, bare or as a quoted sf-string."""
REPLAYED_HEADER = "Idempotent-Replayed"

router = APIRouter(prefix="/v1", tags=["assessments"], route_class=ExactJSONRoute)
Service = Annotated[AssessmentService, Depends(get_assessments)]


def intake(fhir: FhirForms) -> Intake:
    """The forms POST /v1/assessments accepts, FHIR read under the deployment's subject system."""
    return Intake(PLAIN_JSON, SDTM_LB, fhir.observation)


DOCUMENTED_INTAKE = intake(fhir_forms(DEFAULT_FHIR_SUBJECT_SYSTEM))
"""The forms as the OpenAPI document shows them (their schemas do not depend on the settings)."""


async def create_assessment(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="A unique key per logical request (a UUID, say), optionally quoted as the IETF "
            "draft's sf-string. A retry with the same key and body returns the first decision and "
            "records nothing; the same key with a different body is 422; while the first request is "
            "still running, 409. Keys are per client and kept at least 24 hours.",
        ),
    ] = None,
) -> Response:
    """Decide eligibility and risk group for a serum IL6 result, and record the decision before answering."""
    principal = admitted(request, Scope.ASSESS)
    services: Services = request.app.state.services
    forms = intake(request.app.state.fhir_forms)
    form = forms.form_of(request)
    body = await request.body()
    submission = forms.read(form, body)
    raw = RawRequest(body=body, media_type=form.media_type)
    key = None if idempotency_key is None else idempotency_key.strip('"')
    try:
        outcome = await services.assessments.decide(submission, raw, caller_of(request, principal), key)
    except InvalidInput as error:
        raise form.relocate(body, error) from None
    recorded = outcome.recorded
    answer = assessment_json(recorded)  # first: a record the answer's model refuses is not answered
    classifier = recorded.decision["classifier"]
    headers = {
        "Location": f"/v1/assessments/{recorded.id}",
        CLASSIFIER_HEADER: f"{classifier['name']}@{classifier['version']}",
    }
    if outcome.replayed:
        headers[REPLAYED_HEADER] = "true"
    accept = request.headers.get("accept")
    if prefers_fhir(accept):
        return fhir_decision(recorded, 201, headers, fhir_release(accept))
    return Response(answer, 201, headers, media_type="application/json")


# Routed directly (app/api/direct_route.py): the busiest route, where solving its parameters and writing its
# answer through FastAPI cost as much as deciding it. Documented as any route.
router.add_api_route(
    "/assessments",
    create_assessment,
    methods=["POST"],
    route_class_override=DirectRoute,
    status_code=201,
    response_model=AssessmentOut,
    openapi_extra={"requestBody": DOCUMENTED_INTAKE.openapi_request_body()},
    responses={
        201: {
            "description": "The decision, recorded in the audit store before this answer was sent; or, "
            "for a retry with the same Idempotency-Key, the decision that key first made. As a FHIR "
            "Bundle when Accept ranks application/fhir+json above application/json.",
            "content": FHIR_CONTENT,
            "headers": {
                "Location": {"description": "The decision's URL.", "schema": {"type": "string"}},
                CLASSIFIER_HEADER: {
                    "description": "The classifier version that decided, as name@version.",
                    "schema": {"type": "string"},
                },
                REPLAYED_HEADER: {
                    "description": "'true' when an earlier request with the same Idempotency-Key made "
                    "this decision and nothing new was recorded.",
                    "schema": {"type": "string", "enum": ["true"]},
                },
            },
        },
        **responses(
            VALIDATION,
            REQUEST_IN_PROGRESS,
            PAYLOAD_TOO_LARGE,
            UNSUPPORTED_MEDIA_TYPE,
            STORE_UNAVAILABLE,
        ),
    },
)


def _classifier_of(out: AssessmentOut) -> str:
    return f"{out.classifier.name}@{out.classifier.version}"


def _name_classifier(response: Response, out: AssessmentOut) -> None:
    response.headers[CLASSIFIER_HEADER] = _classifier_of(out)


@router.get(
    "/assessments/{assessment_id}",
    response_model=AssessmentOut,
    responses={
        200: {
            "description": "The recorded decision; as a FHIR Bundle when Accept ranks "
            "application/fhir+json above application/json.",
            "content": FHIR_CONTENT,
        },
        **responses(NOT_FOUND, VALIDATION, STORE_UNAVAILABLE),
    },
)
async def get_assessment(
    assessment_id: uuid.UUID, request: Request, response: Response, service: Service, reader: Reader
) -> AssessmentOut | Response:
    """Read a recorded decision, exactly as it was given (404 for a decision of another site)."""
    recorded = await service.get(assessment_id, reader.sites)
    if recorded is None:
        raise HTTPException(404, "No assessment with this id.")
    out = AssessmentOut.from_record(recorded)
    _name_classifier(response, out)
    accept = request.headers.get("accept")
    if prefers_fhir(accept):
        return fhir_decision(recorded, 200, dict(response.headers), fhir_release(accept))
    return out


@router.post(
    "/assessments/{assessment_id}/replay",
    response_model=ReplayOut,
    dependencies=[Depends(require_json_if_body)],
    responses=responses(
        NOT_FOUND,
        VALIDATION,
        UNSUPPORTED_MEDIA_TYPE,
        PAYLOAD_TOO_LARGE,
        REPLAY_UNAVAILABLE,
        STORE_UNAVAILABLE,
    ),
)
async def replay_assessment(
    assessment_id: uuid.UUID, service: Service, reader: Reader, body: ReplayIn | None = None
) -> ReplayOut:
    """Decide a recorded input again and compare: under its own classifier version (which must reproduce
    it), or under another version to see what would change. Records nothing."""
    replay = await service.replay(assessment_id, reader.sites, None if body is None else body.classifier)
    if replay is None:
        raise HTTPException(404, "No assessment with this id.")
    return ReplayOut(
        matches=replay.matches,
        changes=[ChangeOut(field=c.field, recorded=c.recorded, replayed=c.replayed) for c in replay.changes],
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
    reader: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> AssessmentPage:
    """List a subject's recorded decisions within the caller's sites, newest first, a page at a time."""
    page = await service.list_for_subject(subject_id, reader.sites, limit=limit, cursor=cursor)
    return AssessmentPage(
        items=[AssessmentOut.from_record(item) for item in page.items], next_cursor=page.next_cursor
    )
