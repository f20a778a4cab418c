"""Decisions answered as FHIR when the caller asks for it with Accept.

A caller that ranks ``application/fhir+json`` above ``application/json`` gets the decision as a FHIR Bundle
(``app.interop.fhir_decision``); plain JSON stays the default: for no Accept, ``*/*``, ``application/json``,
or a tie between the two (unless only FHIR is named outright, as in ``application/fhir+json, */*``).
Errors are problem+json whatever was asked for.

The Bundle is FHIR R4B unless the caller asks for R5 (``fhir_release``): ``application/fhir+json;
fhirVersion=5.0`` ranked no lower than any other ``application/fhir+json`` range. Any other fhirVersion
asked for is answered in R4B: Accept states a preference, and the answer's Content-Type names the release it
is in (``application/fhir+json; fhirVersion=4.3`` or ``...; fhirVersion=5.0``).
"""

import re
from typing import Any

from fastapi import Response

from app.api.exact_json import JSON_MEDIA_TYPE
from app.interop.fhir import FHIR_JSON_MEDIA_TYPE
from app.interop.fhir_decision import decision_bundle
from app.interop.fhir_release import R4B, R5, Release
from app.service.recorded_assessments import RecordedAssessment

_QUALITY = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")

FHIR_CONTENT: dict[str, Any] = {
    FHIR_JSON_MEDIA_TYPE: {
        "schema": {
            "title": "FhirDecisionBundle",
            "type": "object",
            "description": "With Accept: application/fhir+json. A FHIR Bundle of type collection, in R4B "
            "(in R5 with Accept: application/fhir+json; fhirVersion=5.0; the Content-Type names the "
            "release, fhirVersion=4.3 or 5.0), holding a GuidanceResponse (the classifier version as "
            "moduleCanonical, occurrenceDateTime the time recorded), the Parameters it outputs "
            "(eligibility, risk group, reason codes, IL6 in pg/mL, detectability) and a RiskAssessment "
            "(the risk group as qualitativeRisk, basis the Observation when the result came as FHIR); "
            "each carries the assessment id as identifier urn:uuid:<id>.",
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


_Range = tuple[str, float, str | None]
"""A media range of an Accept header: the range (lowercased), its quality and its fhirVersion parameter."""


def _ranges(accept: str) -> list[_Range]:
    ranges: list[_Range] = []
    for item in accept.split(","):
        media_range, *parameters = (part.strip() for part in item.split(";"))
        quality, version = 1.0, None
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            name, value = name.strip().lower(), value.strip()
            if name == "q":
                quality = float(value) if _QUALITY.fullmatch(value) else 0.0
            elif name == "fhirversion":
                version = value.strip('"')
        if media_range:
            ranges.append((media_range.lower(), quality, version))
    return ranges


def _quality(ranges: list[_Range], media_type: str) -> tuple[float, int]:
    """The quality the most specific matching range gives ``media_type`` (the highest, if several ranges
    are as specific), and that range's specificity."""
    major = media_type.partition("/")[0]
    best: tuple[int, float] | None = None
    for media_range, quality, _version in ranges:
        specificity = {media_type: 2, f"{major}/*": 1, "*/*": 0}.get(media_range)
        if specificity is not None and (best is None or (specificity, quality) > best):
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


def fhir_release(accept: str | None) -> Release:
    """The release a FHIR answer is written in: R5 when Accept gives ``application/fhir+json;
    fhirVersion=5.0`` a quality above 0 and no lower than any other ``application/fhir+json`` range's;
    otherwise R4B."""
    fhir = [
        (quality, version)
        for media_range, quality, version in _ranges(accept or "")
        if media_range == FHIR_JSON_MEDIA_TYPE and quality > 0
    ]
    r5 = [quality for quality, version in fhir if version == R5.fhir_version]
    return R5 if r5 and max(r5) >= max(quality for quality, _ in fhir) else R4B


def fhir_media_type(release: Release) -> str:
    """The Content-Type of a FHIR answer in ``release``."""
    return f"{FHIR_JSON_MEDIA_TYPE}; fhirVersion={release.fhir_version}"


def fhir_decision(
    record: RecordedAssessment, status_code: int, headers: dict[str, str], release: Release
) -> Response:
    """A recorded decision as a FHIR Bundle response in ``release``."""
    bundle = decision_bundle(
        assessment_id=record.id,
        subject_id=record.subject_id,
        recorded_at=record.recorded_at,
        decision=record.decision,
        reference=record.input.get("reference"),
        release=release,
    )
    return Response(
        bundle.model_dump_json(),
        status_code=status_code,
        headers=headers,
        media_type=fhir_media_type(release),
    )
