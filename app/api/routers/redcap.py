"""REDCap's Data Entry Trigger: score a record when its IL6 form is saved Complete, and write the result back.

REDCap posts a form-encoded notice (project_id, record, instrument, redcap_event_name, <instrument>_complete,
...) on every save, to the URL configured in the project, which carries the trigger secret as ?secret=...;
the record itself is read through the REDCap API (see app/service/redcap.py). REDCap ignores the answer, so
it says only what was done, never what was decided.
"""

import uuid
from typing import Annotated, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from app.api.problems import (
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    REQUEST_IN_PROGRESS,
    SOURCE_NOT_ACCEPTED,
    STORE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    UPSTREAM_UNAVAILABLE,
    VALIDATION,
    problem_response,
    responses,
)
from app.domain.errors import InvalidInput
from app.interop.redcap import read_trigger
from app.service.redcap import Ignored, RedcapReceiver

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 100
"""A trigger has about ten fields; a body with many more is not one."""
TRIGGER_URL_PARAMETER = "secret"
"""The query parameter of the Data Entry Trigger URL that carries IL6_REDCAP_TRIGGER_SECRET."""

TRIGGER_PATH = "/v1/redcap/data-entry-trigger"
router = APIRouter(tags=["redcap"])


class TriggerAnswer(BaseModel):
    """What was done with a trigger, and no more: not the decision, nor why a trigger was ignored."""

    outcome: Literal["decided", "ignored"] = Field(
        description="'decided': the record was read and decided on, and the decision recorded before this "
        "answer was sent. 'ignored': nothing was decided (another instrument, not Complete, or no such "
        "record in REDCap)."
    )
    assessment_id: uuid.UUID | None = Field(
        None, description="The recorded decision (GET /v1/assessments/{id}), when decided."
    )
    written_back: bool = Field(
        False,
        description="True when the decision was written into the record (IL6_REDCAP_WRITE_BACK); false "
        "when write-back is off, REDCap refused it, or the record changed after it was read (the decision "
        "stands; the save that changed it, or a new trigger, writes again).",
    )


async def get_receiver(request: Request) -> RedcapReceiver | None:
    receiver: RedcapReceiver | None = getattr(request.app.state, "redcap", None)
    return receiver


def _trigger_form(content_type: str, body: bytes) -> dict[str, str]:
    """The trigger's fields: a form-encoded UTF-8 body with each name once."""
    media_type, _, parameters = content_type.partition(";")
    charset = next(
        (
            value.strip().strip('"').lower()
            for name, _, value in (p.partition("=") for p in parameters.split(";"))
            if name.strip().lower() == "charset"
        ),
        "utf-8",
    )
    if media_type.strip().lower() != FORM_MEDIA_TYPE or charset != "utf-8":
        raise HTTPException(415, f"Send the trigger as {FORM_MEDIA_TYPE} in UTF-8.")
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeError, ValueError):
        raise InvalidInput("", "The body is not a form-encoded UTF-8 trigger.") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        raise InvalidInput("", "A field is sent more than once.")
    return form


@router.post(
    TRIGGER_PATH,
    status_code=202,
    response_model=TriggerAnswer,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "REDCap's Data Entry Trigger notice. Only project_id, record, instrument, "
            "redcap_event_name and <instrument>_complete are read; the record's data is fetched from the "
            "configured REDCap API, never taken from the notice.",
            "content": {
                FORM_MEDIA_TYPE: {
                    "schema": {
                        "type": "object",
                        "required": ["project_id", "record", "instrument"],
                        "properties": {
                            "project_id": {"type": "string", "pattern": "^[1-9][0-9]{0,9}$"},
                            "record": {"type": "string"},
                            "instrument": {"type": "string"},
                            "redcap_event_name": {
                                "type": "string",
                                "description": "Longitudinal projects only.",
                            },
                            "redcap_data_access_group": {"type": "string"},
                            "username": {"type": "string"},
                            "redcap_url": {"type": "string"},
                            "project_url": {"type": "string"},
                        },
                        "additionalProperties": {
                            "type": "string",
                            "description": "<instrument>_complete: 0 Incomplete, 1 Unverified, 2 Complete.",
                        },
                    }
                }
            },
        }
    },
    responses={
        202: {
            "description": "The trigger was acted on: decided (the decision recorded; for unchanged data "
            "saved again, the decision made the first time) or ignored.",
            "headers": {
                "Location": {
                    "description": "The decision's URL, when decided.",
                    "schema": {"type": "string"},
                }
            },
        },
        401: {
            "description": "The URL's secret is missing or wrong: nothing was read, fetched or decided.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        },
        404: {"description": "The REDCap receiver is not configured (IL6_REDCAP_API_URL unset)."},
        **responses(
            SOURCE_NOT_ACCEPTED,
            VALIDATION,
            REQUEST_IN_PROGRESS,
            PAYLOAD_TOO_LARGE,
            UNSUPPORTED_MEDIA_TYPE,
            UPSTREAM_UNAVAILABLE,
            STORE_UNAVAILABLE,
        ),
    },
)
async def data_entry_trigger(
    request: Request,
    response: Response,
    receiver: Annotated[RedcapReceiver | None, Depends(get_receiver)],
    secret: Annotated[
        str | None,
        Query(
            alias=TRIGGER_URL_PARAMETER,
            description="IL6_REDCAP_TRIGGER_SECRET, carried by the Data Entry Trigger URL configured in "
            "REDCap; missing or wrong: 401.",
        ),
    ] = None,
) -> TriggerAnswer | Response:
    """Score a REDCap record when its IL6 instrument is saved Complete: read it through the REDCap API,
    decide and record as POST /v1/assessments does, and write the decision back into the record.

    A trigger whose URL lacks the secret is 401, before anything is read. Triggers from any project but the
    configured one are refused (403). A record that fails validation is 422 with a pointer per REDCap field
    (e.g. /il6_value); REDCap unreachable or erroring is 502. Either way nothing is decided and nothing is
    written back."""
    if receiver is None:
        raise HTTPException(NOT_FOUND.status, "The REDCap receiver is not configured.")
    if len(request.query_params.getlist(TRIGGER_URL_PARAMETER)) > 1 or not receiver.authenticates(secret):
        return problem_response(
            None,
            status=401,
            title="Unauthorized",
            detail="The trigger URL's secret is missing or wrong.",
            headers={"WWW-Authenticate": 'Secret realm="REDCap Data Entry Trigger"'},
        )
    form = _trigger_form(request.headers.get("content-type", ""), await request.body())
    request_id = request.scope.get("state", {}).get("request_id")
    result = await receiver.receive(read_trigger(form), request_id)
    if isinstance(result, Ignored):
        return TriggerAnswer(outcome="ignored")
    recorded = result.outcome.recorded
    response.headers["Location"] = f"/v1/assessments/{recorded.id}"
    return TriggerAnswer(outcome="decided", assessment_id=recorded.id, written_back=result.written_back)
