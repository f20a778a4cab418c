"""CDS Hooks 2.0: the discovery endpoint, and the IL6 eligibility service a CDS client calls on patient-view.

A call decides through the same ``AssessmentService.decide`` as POST /v1/assessments and is recorded the
same way: the raw body (without ``fhirAuthorization``), labelled application/cds-hooks+json (the call itself
is application/json, as CDS Hooks prescribes: the label tells it from a plain request), with the reference
"hookInstance:<uuid> Observation/<id>" (the Observation part when it has an id).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from app.api.auth import requires
from app.api.deps import CallerDep, get_assessments
from app.api.exact_json import JSON_MEDIA_TYPE, ExactJSONRoute, parse_exact_json, require_json
from app.api.intake import Intake
from app.api.intake_fhir import FhirForms, get_fhir_forms
from app.api.problems import (
    PAYLOAD_TOO_LARGE,
    STORE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION,
    problem_response,
    responses,
)
from app.domain.access import Scope
from app.domain.errors import InvalidInput
from app.interop.cds_hooks import (
    CDS_HOOKS_MEDIA_TYPE,
    DISCOVERY,
    SERVICE_ID,
    CardsResponse,
    Discovery,
    HookRequest,
    NoResult,
    PrefetchMissing,
    card_for,
    hook_instance_of,
    recorded_body,
)
from app.service.assessments import AssessmentService, RawRequest

router = APIRouter(tags=["cds-hooks"], route_class=ExactJSONRoute)
Service = Annotated[AssessmentService, Depends(get_assessments)]
Forms = Annotated[FhirForms, Depends(get_fhir_forms)]


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON Schema with its $defs inlined, to stand alone in the OpenAPI document."""
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                return inline(definitions[reference.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


@router.get(
    "/cds-services",
    response_model=Discovery,
    response_model_exclude_none=True,
    dependencies=[Depends(requires(None))],
)
async def discover_cds_services() -> Discovery:
    """List the CDS services offered here (CDS Hooks discovery)."""
    return DISCOVERY


@router.post(
    f"/cds-services/{SERVICE_ID}",
    response_model=CardsResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(requires(Scope.ASSESS)), Depends(require_json)],
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A CDS Hooks 2.0 patient-view call. prefetch.il6 holds the patient's newest IL6 "
            "Observation (or a searchset Bundle of it with its Specimen), read as POST /v1/assessments "
            "reads application/fhir+json, whose subject must reference Patient/<context.patientId>; null, "
            "or an empty searchset, when the patient has none. prefetch.patient holds that Patient, whose "
            "identifier in the deployment's subject system is the trial subject id.",
            "content": {JSON_MEDIA_TYPE: {"schema": _inlined(HookRequest.model_json_schema())}},
        }
    },
    responses={
        200: {
            "description": "One card for the decision (recorded before this answer was sent), or no card "
            "when the patient has no IL6 result."
        },
        412: {
            "description": "Precondition Failed: the call lacks the prefetched IL6 result or Patient (or "
            "carries an OperationOutcome in its place)."
        },
        **responses(VALIDATION, UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE, STORE_UNAVAILABLE),
    },
)
async def il6_eligibility_hook(
    request: Request, service: Service, caller: CallerDep, forms: Forms
) -> CardsResponse | Response:
    """Decide the patient's IL6 eligibility from the prefetched result, record it, and answer with a card."""
    body = await request.body()
    try:
        submission = Intake.read(forms.hook_call, body)
    except PrefetchMissing as missing:
        return problem_response(None, status=412, title="Precondition Failed", detail=str(missing))
    except NoResult:
        return CardsResponse(cards=[])
    raw = RawRequest(body=recorded_body(body, parse_exact_json(body)), media_type=CDS_HOOKS_MEDIA_TYPE)
    try:
        # The hookInstance names this hook call: a client retrying the call gets the same decision and
        # card, and nothing more is recorded.
        key = hook_instance_of(submission.reference)
        outcome = await service.decide(submission, raw, caller, idempotency_key=key)
    except InvalidInput as error:
        raise forms.hook_call.relocate(body, error) from None
    return CardsResponse(cards=[card_for(outcome.recorded.id, outcome.recorded.decision)])
