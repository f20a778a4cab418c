"""The FHIR form of POST /v1/assessments, and the CDS Hooks call: results read through a translation.

``app.interop.fhir`` reads the FHIR document into the plain request body; ``AssessmentIn`` then validates
that body exactly as it validates a plain request, and each error it finds is pointed back at the FHIR
element the field came from. Errors found only when deciding (an assay the classifier version does not
list, say) name a plain field; ``relocate`` points them into the document that was sent.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.exact_json import JSON_MEDIA_TYPE, parse_exact_json
from app.api.intake import Form
from app.api.schemas.assessments import AssessmentIn
from app.domain.errors import InvalidInput
from app.interop.cds_hooks import NoResult, read_hook_call
from app.interop.fhir import FHIR_JSON_MEDIA_TYPE, Translation, translate
from app.interop.fhir_documents import pointer
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


@dataclass(frozen=True)
class TranslatedForm(Form):
    """A form read through a translation, which also knows where in its document a plain field came from."""

    translate: Callable[[Any], Translation | None] = lambda _document: None

    def relocate(self, body: bytes, error: InvalidInput) -> InvalidInput:
        """An error naming a plain field, pointed at the element of the sent document it came from."""
        translation = self.translate(parse_exact_json(body))
        if translation is None:
            return error
        return InvalidInput(pointer(translation.source_of(error.pointer)), error.message)


def _decode_fhir(document: Any) -> Submission:
    return submission(translate(document))


FHIR_OBSERVATION = TranslatedForm(
    FHIR_JSON_MEDIA_TYPE,
    _decode_fhir,
    {
        "title": "FhirIL6Observation",
        "type": "object",
        "description": "A FHIR R4B Observation (LOINC 26881-3, status final/amended/corrected, valueQuantity "
        "in UCUM pg/mL, ng/L or ng/mL, method naming the assay id, specimen referencing a contained or "
        "bundled Specimen with a SNOMED CT type), or a Bundle (collection, batch, transaction or searchset) "
        "holding exactly one such Observation plus the Patient and Specimen it references.",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "enum": ["Observation", "Bundle"]}},
    },
    "A FHIR R4B IL6 Observation, alone or in a Bundle with its Patient and Specimen (see the schema).",
    translate=translate,
)


def _hook_result(document: Any) -> Translation | None:
    return read_hook_call(document).result


def _decode_hook(document: Any) -> Submission:
    result = _hook_result(document)
    if result is None:
        raise NoResult("The patient has no IL6 result.")
    return submission(result)


CDS_HOOK_CALL = TranslatedForm(
    JSON_MEDIA_TYPE,
    _decode_hook,
    description="A CDS Hooks 2.0 patient-view call with the prefetched IL6 result.",
    translate=_hook_result,
)
"""A CDS Hooks call, read as the result it prefetched (``PrefetchMissing`` or ``NoResult`` if it has none)."""
