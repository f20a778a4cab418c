"""The FHIR form of POST /v1/assessments, and the CDS Hooks call: results read through a translation.

``app.interop.fhir`` reads the FHIR document into the plain request body; ``AssessmentIn`` then validates
that body exactly as it validates a plain request, and each error it finds is pointed back at the FHIR
element the field came from. Errors found only when deciding (an assay the classifier version does not
list, say) name a plain field; ``relocate`` points them into the document that was sent.

Both forms read the trial subject id under the deployment's identifier system (IL6_FHIR_SUBJECT_SYSTEM), so
they are built from the settings: ``create_app`` keeps them on ``app.state`` (``fhir_forms``), and routes
take them with ``get_fhir_forms``.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.exact_json import JSON_MEDIA_TYPE, parse_exact_json
from app.api.intake import Form
from app.api.schemas.assessments import AssessmentIn
from app.domain.errors import InvalidInput
from app.interop.cds_hooks import NoResult, read_hook_call
from app.interop.fhir import FHIR_JSON_MEDIA_TYPE, Translation, translate
from app.interop.fhir_documents import pointer
from app.interop.fhir_release import R4B, R5, Release
from app.service.documents import Submission


def _plain_pointer(location: tuple[str | int, ...]) -> str:
    return "".join(f"/{part}" for part in location)


def submission(translation: Translation) -> Submission:
    """A translated result held to every rule of the plain request; errors located in the sent document."""
    try:
        assessment = AssessmentIn.model_validate(translation.document)
    except ValidationError as error:
        raise RequestValidationError(
            [
                {
                    **detail,
                    "loc": ("body", *translation.source_of(_plain_pointer(tuple(detail["loc"])))),
                }
                for detail in error.errors(include_input=False)
            ]
        ) from None
    return replace(assessment.to_submission(), reference=translation.reference)


FHIR_VERSIONS: Mapping[str, Release] = {"4.0": R4B, "4.3": R4B, "5.0": R5}
"""The Content-Type ``fhirVersion`` parameter values read (FHIR "Version parameter", major.minor), and the
release each is read in: 4.0 (R4) and 4.3 (R4B) as R4B, whose Observation, Patient, Specimen and Bundle read
alike; 5.0 as R5. Absent, R4B is assumed."""

R5_MEDIA_TYPE = f"{FHIR_JSON_MEDIA_TYPE}; fhirVersion={R5.fhir_version}"
"""The media type a FHIR R5 result is recorded under in the audit trail (an R4 or R4B one: plain
application/fhir+json)."""


@dataclass(frozen=True)
class TranslatedForm(Form):
    """A form read through a translation, which also knows where in its document a plain field came from."""

    translate: Callable[[Any], Translation | None] = lambda _document: None
    releases: Mapping[Release, "TranslatedForm"] | None = None
    """For a FHIR media type, the form reading each release other than this form's own (None: it is not a
    FHIR media type, or is already one release's variant)."""

    def for_parameters(self, parameters: Mapping[str, str]) -> Form:
        """The variant reading the release ``fhirVersion`` names; 415 for a version not read here."""
        version = parameters.get("fhirversion")
        if self.releases is None or version is None:
            return self
        if version not in FHIR_VERSIONS:
            raise HTTPException(
                415,
                "Only FHIR R4, R4B and R5 are read here: fhirVersion 4.0, 4.3 or 5.0, or no fhirVersion.",
            )
        return self.releases.get(FHIR_VERSIONS[version], self)

    def relocate(self, body: bytes, error: InvalidInput) -> InvalidInput:
        """An error naming a plain field, pointed at the element of the sent document it came from."""
        translation = self.translate(parse_exact_json(body))
        if translation is None:
            return error
        return InvalidInput(pointer(translation.source_of(error.pointer)), error.message)


def _decode_fhir(subject_system: str, release: Release, document: Any) -> Submission:
    return submission(translate(document, subject_system, release=release))


def _hook_result(subject_system: str, document: Any) -> Translation | None:
    return read_hook_call(document, subject_system).result


def _decode_hook(subject_system: str, document: Any) -> Submission:
    result = _hook_result(subject_system, document)
    if result is None:
        raise NoResult("The patient has no IL6 result.")
    return submission(result)


@dataclass(frozen=True)
class FhirForms:
    """The FHIR form of POST /v1/assessments and the CDS Hooks call, for one subject identifier system."""

    observation: TranslatedForm
    """A FHIR R4B IL6 Observation, alone or in a Bundle; its R5 variant where ``fhirVersion=5.0`` asks."""
    hook_call: TranslatedForm
    """A CDS Hooks call, read as the result it prefetched (``PrefetchMissing`` or ``NoResult`` if none)."""


def fhir_forms(subject_system: str) -> FhirForms:
    """The FHIR forms reading the trial subject id under ``subject_system`` (IL6_FHIR_SUBJECT_SYSTEM)."""
    r5 = TranslatedForm(
        R5_MEDIA_TYPE,
        partial(_decode_fhir, subject_system, R5),
        translate=partial(translate, subject_system=subject_system, release=R5),
    )
    observation = TranslatedForm(
        FHIR_JSON_MEDIA_TYPE,
        partial(_decode_fhir, subject_system, R4B),
        {
            "title": "FhirIL6Observation",
            "type": "object",
            "description": "A FHIR R4B Observation (LOINC 26881-3, status final/amended/corrected, "
            "valueQuantity in UCUM pg/mL, ng/L or ng/mL, method naming the assay id, specimen referencing "
            "a contained or bundled Specimen with a SNOMED CT type, effectiveDateTime with a time and a UTC "
            "offset, subject carrying the trial subject id as an identifier in the deployment's subject "
            "system, on subject.identifier or on the Patient it references), or a Bundle (collection, "
            "batch, transaction or searchset) holding exactly one such Observation plus the Patient and "
            "Specimen it references. Content-Type parameter fhirVersion, if given: 4.0 or 4.3 (read as "
            "R4B), or 5.0: the same document in FHIR R5, read by the same rules (a specimen that is a "
            "Group, pooled or not the patient's own, or a Bundle with issues, is refused) and recorded "
            "with media type 'application/fhir+json; fhirVersion=5.0'.",
            "required": ["resourceType"],
            "properties": {"resourceType": {"type": "string", "enum": ["Observation", "Bundle"]}},
        },
        "A FHIR R4B IL6 Observation, alone or in a Bundle with its Patient and Specimen (see the schema).",
        translate=partial(translate, subject_system=subject_system),
        releases={R5: r5},
    )
    hook_call = TranslatedForm(
        JSON_MEDIA_TYPE,
        partial(_decode_hook, subject_system),
        description="A CDS Hooks 2.0 patient-view call with the prefetched IL6 result and Patient.",
        translate=partial(_hook_result, subject_system),
    )
    return FhirForms(observation, hook_call)


async def get_fhir_forms(request: Request) -> FhirForms:
    """The FHIR forms ``create_app`` built from the settings."""
    forms: FhirForms = request.app.state.fhir_forms
    return forms
