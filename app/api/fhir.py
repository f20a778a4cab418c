"""Decisions answered as FHIR R4B when the caller asks for it with Accept.

A caller that ranks ``application/fhir+json`` above ``application/json`` gets the decision as a FHIR Bundle
(``app.interop.fhir_decision``); plain JSON stays the default: for no Accept, ``*/*``, ``application/json``,
or a tie between the two (unless only FHIR is named outright, as in ``application/fhir+json, */*``).
Errors are problem+json whatever was asked for.
"""

import re
from typing import Any

from fastapi import Response

from app.api.exact_json import JSON_MEDIA_TYPE
from app.interop.fhir import FHIR_JSON_MEDIA_TYPE
from app.interop.fhir_decision import decision_bundle
from app.service.assessments import RecordedAssessment

_QUALITY = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")

FHIR_CONTENT: dict[str, Any] = {
    FHIR_JSON_MEDIA_TYPE: {
        "schema": {
            "title": "FhirDecisionBundle",
            "type": "object",
            "description": "With Accept: application/fhir+json. A FHIR R4B Bundle (type collection) of a "
            "GuidanceResponse (the classifier version as moduleCanonical, occurrenceDateTime the time "
            "recorded), the Parameters it outputs (eligibility, risk group, reason codes, IL6 in pg/mL, "
            "detectability) and a RiskAssessment (the risk group as qualitativeRisk, basis the Observation "
            "when the result came as FHIR); each carries the assessment id as identifier urn:uuid:<id>.",
            "required": ["resourceType", "type", "entry"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Bundle"]},
                "type": {"type": "string", "enum": ["collection"]},
                "entry": {"type": "array", "items": {"type": "object"}},
            },
        }
    }
}
"""The OpenAPI content of a decision answered as FHIR, beside the plain JSON one."""


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        media_range, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                quality = float(value) if _QUALITY.fullmatch(value) else 0.0
        if media_range:
            ranges.append((media_range.lower(), quality))
    return ranges


def _quality(ranges: list[tuple[str, float]], media_type: str) -> tuple[float, int]:
    """The quality the most specific matching range gives ``media_type``, and that range's specificity."""
    major = media_type.partition("/")[0]
    best: tuple[int, float] | None = None
    for media_range, quality in ranges:
        specificity = {media_type: 2, f"{major}/*": 1, "*/*": 0}.get(media_range)
        if specificity is not None and (best is None or specificity > best[0]):
            best = (specificity, quality)
    return (0.0, -1) if best is None else (best[1], best[0])


def prefers_fhir(accept: str | None) -> bool:
    """Whether the Accept header ranks FHIR JSON above plain JSON (RFC 9110 section 12.5.1)."""
    if not accept:
        return False
    ranges = _ranges(accept)
    fhir, fhir_specificity = _quality(ranges, FHIR_JSON_MEDIA_TYPE)
    plain, plain_specificity = _quality(ranges, JSON_MEDIA_TYPE)
    if fhir <= 0:
        return False
    return fhir > plain or (fhir == plain and fhir_specificity > plain_specificity)


class FhirResponse(Response):
    media_type = FHIR_JSON_MEDIA_TYPE


def fhir_decision(record: RecordedAssessment, status_code: int, headers: dict[str, str]) -> FhirResponse:
    """A recorded decision as a FHIR Bundle response."""
    bundle = decision_bundle(
        assessment_id=record.id,
        subject_id=record.subject_id,
        recorded_at=record.recorded_at,
        decision=record.decision,
        reference=record.input.get("reference"),
    )
    return FhirResponse(bundle.model_dump_json(), status_code=status_code, headers=headers)
