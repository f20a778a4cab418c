"""CDS Hooks 2.0: the service's discovery entry, the patient-view call it answers, and the card a decision
becomes (https://cds-hooks.hl7.org/2.0/).

The service is invoked on ``patient-view``: opening a chart is when a trial coordinator or clinician asks
whether the patient qualifies, and the hook needs nothing but the patient in context. It asks the CDS client
to prefetch the patient's newest IL6 result (``PREFETCH_TEMPLATE``) with the Specimen it references: the
specimen type decides whether a result counts and is never assumed, so the template adds
``_include=Observation:specimen``, beyond the query subset the specification recommends to clients. It also
asks for the Patient (``PATIENT_TEMPLATE``): the trial's pseudonymous subject id is one of its identifiers,
as the EHR's id for the patient is not. The service never calls the client's FHIR server.

A call is answered from the prefetch only:
- the ``il6`` key absent, or an OperationOutcome in its place (the client did not or could not prefetch):
  ``PrefetchMissing``, which the specification answers with 412 Precondition Failed;
- the key null, or an empty searchset (the patient has no IL6 result): no card, nothing decided;
- otherwise the ``patient`` key must hold the Patient in context (absent, null or an OperationOutcome:
  ``PrefetchMissing``), and the Observation (or the searchset holding it) is read as a FHIR result
  (``app.interop.fhir``) that must reference that patient, with the subject id the Patient's identifier in
  the trial's subject system (``app.interop.fhir_subject``).
The decision's reference names the call and the result: "hookInstance:<uuid>", then " Observation/<id>" when
the Observation has an id; the hookInstance alone is the idempotency key, so a retried call is not decided
twice. A call nested more than 64 levels deep is refused before it is read. The client's
``fhirAuthorization`` (a bearer token) is never recorded: ``recorded_body`` drops it.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from fhir.resources.R4B.patient import Patient
from pydantic import BaseModel, ConfigDict, Field

from app.domain.errors import InvalidInput
from app.interop.fhir import IL6_LOINC, LOINC, Translation, translate
from app.interop.fhir_documents import check_depth, pointer, validate
from app.interop.fhir_subject import PatientInView

SERVICE_ID = "il6-eligibility"
HOOK = "patient-view"
PREFETCH_KEY = "il6"
PREFETCH_TEMPLATE = (
    "Observation?patient={{context.patientId}}"
    f"&code={LOINC}|{IL6_LOINC}&_sort=-date&_count=1&_include=Observation:specimen"
)
PATIENT_KEY = "patient"
PATIENT_TEMPLATE = "Patient/{{context.patientId}}"
CDS_HOOKS_MEDIA_TYPE = "application/cds-hooks+json"
"""The label a CDS Hooks call is recorded under in the audit trail. Not a registered media type: the call
arrives as application/json, as CDS Hooks prescribes, and the label tells it from a plain request."""
FHIR_ID_PATTERN = r"^[A-Za-z0-9.-]{1,64}$"
"""A FHIR logical id (R4B datatype id)."""
TRIAL = "NCT01488318"
TRIAL_URL = "https://clinicaltrials.gov/study/NCT01488318"
SUMMARY_MAX = 139
"""The specification's "<140-character summary"."""


class CdsService(BaseModel):
    """One service in the discovery document."""

    hook: str
    title: str
    description: str
    id: str
    prefetch: dict[str, str]


class Discovery(BaseModel):
    """The answer to GET /cds-services."""

    services: list[CdsService]


DISCOVERY = Discovery(
    services=[
        CdsService(
            hook=HOOK,
            title=f"Serum IL6 eligibility ({TRIAL})",
            description=f"Decides from the patient's newest serum IL6 result (LOINC {IL6_LOINC}, with its "
            f"Specimen) whether they qualify for the biomarker-enrichment stage of {TRIAL} (undetectable "
            "serum IL6) and assigns an IL6 risk group; every decision is recorded in the service's audit "
            "trail.",
            id=SERVICE_ID,
            prefetch={PREFETCH_KEY: PREFETCH_TEMPLATE, PATIENT_KEY: PATIENT_TEMPLATE},
        )
    ]
)


class PatientViewContext(BaseModel):
    """The patient-view hook's context; fields other hooks or versions add are ignored."""

    model_config = ConfigDict(extra="ignore")

    user_id: str | None = Field(None, alias="userId", description="Who is viewing; recorded as sent.")
    patient_id: str = Field(
        alias="patientId", pattern=FHIR_ID_PATTERN, description="The FHIR id of the patient in view."
    )
    encounter_id: str | None = Field(None, alias="encounterId")


class HookRequest(BaseModel):
    """A CDS Hooks 2.0 service call, as this service reads it."""

    model_config = ConfigDict(extra="forbid")

    hook: Literal["patient-view"]
    hook_instance: UUID = Field(alias="hookInstance")
    fhir_server: str | None = Field(None, alias="fhirServer")
    fhir_authorization: dict[str, Any] | None = Field(
        None, alias="fhirAuthorization", description="Never used, and never recorded."
    )
    context: PatientViewContext
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None


class PrefetchMissing(Exception):
    """The call lacks a prefetched resource the service needs, and the service does not query FHIR servers."""


class NoResult(Exception):
    """The prefetch found no IL6 result for the patient: there is nothing to decide."""


@dataclass(frozen=True)
class HookCall:
    hook_instance: UUID
    result: Translation | None
    """The prefetched result as a plain request body; None when the patient has none."""


def _no_result(prefetched: Any) -> bool:
    if prefetched is None:
        return True
    return (
        isinstance(prefetched, dict)
        and prefetched.get("resourceType") == "Bundle"
        and prefetched.get("type") == "searchset"
        and not prefetched.get("entry")
    )


def _prefetched(request: HookRequest, key: str) -> Any:
    """What the client prefetched under ``key``; ``PrefetchMissing`` when it did not or could not: the key
    absent, or an OperationOutcome in its place (which a client may send when prefetching failed)."""
    prefetch = request.prefetch or {}
    value = prefetch.get(key)
    if key not in prefetch or (isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"):
        raise PrefetchMissing(
            f"The call has no prefetched '{key}'; send the prefetch the discovery asks for."
        )
    return value


def call_reference(hook_instance: UUID, observation: str | None) -> str:
    """A hook call's decision's reference: "hookInstance:<uuid>", then " Observation/<id>" if any."""
    call = f"hookInstance:{hook_instance}"
    return call if observation is None else f"{call} {observation}"


def hook_instance_of(reference: str | None) -> str | None:
    """The "hookInstance:<uuid>" that opens a hook call's reference: the call's idempotency key."""
    return None if reference is None else reference.partition(" ")[0]


def _patient_in_view(request: HookRequest) -> PatientInView:
    """The prefetched Patient, which must be the patient in context."""
    at = ("prefetch", PATIENT_KEY)
    raw = _prefetched(request, PATIENT_KEY)
    if raw is None:
        raise PrefetchMissing(
            f"The call's prefetched '{PATIENT_KEY}' is empty: the service needs the Patient."
        )
    if not isinstance(raw, dict) or raw.get("resourceType") != "Patient":
        raise InvalidInput(
            pointer((*at, "resourceType") if isinstance(raw, dict) else at),
            f"The '{PATIENT_KEY}' prefetch must be the Patient in context.",
        )
    patient = validate(Patient, raw, at)
    if patient.id != request.context.patient_id:
        raise InvalidInput(
            pointer((*at, "id")), "The prefetched Patient is not the patient in context (context.patientId)."
        )
    return PatientInView(request.context.patient_id, patient, at)


def read_hook_call(document: Any, subject_system: str) -> HookCall:
    """Read a patient-view call: the prefetched result for the patient in context, or none.

    ``subject_system`` is the identifier system of the trial's subject ids (IL6_FHIR_SUBJECT_SYSTEM).
    """
    check_depth(document, ())
    request = HookRequest.model_validate(document)
    prefetched = _prefetched(request, PREFETCH_KEY)
    if _no_result(prefetched):
        return HookCall(request.hook_instance, None)
    translation = translate(
        prefetched,
        subject_system,
        at=("prefetch", PREFETCH_KEY),
        in_view=_patient_in_view(request),
    )
    return HookCall(
        request.hook_instance,
        replace(translation, reference=call_reference(request.hook_instance, translation.reference)),
    )


def _json(value: Any) -> str:
    """JSON text of an exactly parsed document: a Decimal is written as the number it was parsed from.

    ASCII only: a string holding what JSON allows but UTF-8 cannot encode (a lone surrogate, "\\ud800") is
    written as its escape, as it was received."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


def recorded_body(body: bytes, document: Any) -> bytes:
    """The call as the audit trail records it: as received, or, when it carries ``fhirAuthorization``, the
    same document without it (written anew, so its SHA-256 is that of what is recorded)."""
    if not (isinstance(document, dict) and "fhirAuthorization" in document):
        return body
    kept = {key: value for key, value in document.items() if key != "fhirAuthorization"}
    return _json(kept).encode("utf-8")


class Source(BaseModel):
    label: str
    url: str | None = None


class Card(BaseModel):
    """A CDS Hooks card (only the attributes this service sets)."""

    uuid: UUID = Field(description="The assessment id of the decision the card shows.")
    summary: str = Field(max_length=SUMMARY_MAX)
    detail: str = Field(description="GitHub Flavored Markdown.")
    indicator: Literal["info", "warning", "critical"]
    source: Source


class CardsResponse(BaseModel):
    """The answer to a service call."""

    cards: list[Card]


_SUMMARIES = {
    "eligible": f"Eligible for the {TRIAL} IL6 enrichment stage: serum IL6 is undetectable.",
    "ineligible": f"Not eligible for the {TRIAL} IL6 enrichment stage: serum IL6 is detectable.",
    "indeterminate": f"{TRIAL} IL6 eligibility is indeterminate: this result cannot decide it.",
}


def _il6_text(il6: Mapping[str, Any]) -> str:
    comparator = "" if il6["comparator"] is None else f"{il6['comparator']} "
    return (
        f"{comparator}{il6['pg_per_ml']} pg/mL, assay `{il6['assay']}` "
        f"(limit of detection {il6['lod_pg_per_ml']} pg/mL)"
    )


def card_for(assessment_id: UUID, decision: Mapping[str, Any]) -> Card:
    """The card for a recorded decision (its stored decision document)."""
    eligibility, risk, classifier = decision["eligibility"], decision["risk"], decision["classifier"]
    status: str = eligibility["status"]
    ref = f"{classifier['name']}@{classifier['version']}"
    group = "none" if risk["group"] is None else risk["group"]
    reasons: dict[str, str] = {}
    for reason in (*eligibility["reasons"], *risk["reasons"]):
        reasons.setdefault(reason["code"], reason["message"])
    detail = "\n".join(
        [
            f"- **Eligibility ({TRIAL}, biomarker-enrichment stage):** {status}",
            f"- **IL6 risk group:** {group} (cutoff {risk['cutoff_pg_per_ml']} pg/mL)",
            f"- **Serum IL6:** {_il6_text(decision['il6'])}",
            "",
            "**Reasons:**",
            "",
            *(f"- `{code}`: {message}" for code, message in reasons.items()),
            "",
            f"Decided by `{ref}`; recorded as assessment `{assessment_id}`.",
        ]
    )
    return Card(
        uuid=assessment_id,
        summary=_SUMMARIES[status],
        detail=detail,
        indicator="warning" if status == "indeterminate" else "info",
        source=Source(label=f"IL6 eligibility service: {TRIAL}, classifier {ref}", url=TRIAL_URL),
    )
