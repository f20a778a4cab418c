"""The SDTM LB form of POST /v1/assessments: one LB record, held to every rule of the plain request.

``app.interop.sdtm`` reads the record into the plain request body; ``AssessmentIn`` then validates that body
exactly as it validates a plain request, and each error it finds is pointed back at the LB variable the
field came from.
"""

from dataclasses import replace
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.intake import Form
from app.api.schemas.assessments import AssessmentIn
from app.domain.il6 import UNITS
from app.interop.sdtm import (
    DOMAIN,
    IL6_LOINC,
    IL6_TEST_NAMES,
    IL6_TESTCD,
    INFORMATIONAL,
    LB_MEDIA_TYPE,
    NOT_DONE,
    PLAIN_POINTERS,
    SPECIMENS,
    read_lb_record,
)
from app.service.documents import Submission


def decode_sdtm_lb(document: Any) -> Submission:
    """One SDTM LB record as the submission it stands for; its LBSEQ becomes the submission's reference."""
    record = read_lb_record(document)
    try:
        assessment = AssessmentIn.model_validate(record.assessment)
    except ValidationError as error:
        raise RequestValidationError(
            [
                {**detail, "loc": ("body", *_variable(tuple(detail["loc"])))}
                for detail in error.errors(include_input=False)
            ]
        ) from None
    return replace(assessment.to_submission(), reference=record.reference)


def _variable(location: tuple[str | int, ...]) -> tuple[str, ...]:
    pointer = PLAIN_POINTERS.get(location)
    return () if pointer is None else (pointer.removeprefix("/"),)


def _text(description: str, **schema: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **schema}


_PROPERTIES: dict[str, dict[str, Any]] = {
    "STUDYID": _text(
        "Study identifier; optional, recorded as sent, not checked (not compared with IL6_STUDY_ID)."
    ),
    "DOMAIN": _text("Domain abbreviation.", enum=[DOMAIN]),
    "USUBJID": _text("Unique subject identifier: the service's subject_id (its pattern)."),
    "LBSEQ": {
        "type": "integer",
        "minimum": 1,
        "description": "Sequence number; optional, recorded as the decision's reference 'LBSEQ:<n>'.",
    },
    "LBTESTCD": _text("Test short name.", enum=[IL6_TESTCD]),
    "LBTEST": _text(
        "Test name: " + ", ".join(f"'{name}'" for name in IL6_TEST_NAMES) + ", in any letter case."
    ),
    "LBLOINC": _text("LOINC code; optional.", enum=[IL6_LOINC]),
    "LBORRES": _text(
        "Result as collected: a number as text ('12.3') or a censored result ('<1.5', '<=1.5', '>5000', "
        "'>=5000'), read exactly; the plain request's bounds and precision apply."
    ),
    "LBORRESU": _text("Unit as collected, a UCUM code.", enum=list(UNITS)),
    "LBSTRESC": _text(
        "Standardised result in LBSTRESU; optional, must agree exactly with LBORRES (a censored result "
        "keeps its sign)."
    ),
    "LBSTRESN": {
        "type": ["number", "null"],
        "description": "Standardised numeric result in LBSTRESU; optional, null for a censored result, "
        "must agree exactly with LBORRES.",
    },
    "LBSTRESU": _text(
        "Unit of LBSTRESC, LBSTRESN and LBLLOQ; required with any of them.",
        enum=list(UNITS),
    ),
    "LBLLOQ": {
        "type": ["number", "null"],
        "description": "Lower limit of quantitation in LBSTRESU; optional, a consistency check only: with a "
        "'<' or '<=' result it must equal the limit reported. The limit of detection that decides comes "
        "from the classifier version's assay.",
    },
    "LBSPEC": _text("Specimen type: only a serum result can make a subject eligible.", enum=list(SPECIMENS)),
    "LBMETHOD": _text("The assay id, as listed by GET /v1/assays (an assay the deciding version knows)."),
    "LBDTC": _text(
        "Collection date-time, ISO 8601 with a time and a UTC offset ('2026-11-20T09:30:00Z'); not in "
        "the future."
    ),
    "SITEID": _text("Site identifier; optional, the service's site_id."),
    "LBSTAT": _text(f"Only '{NOT_DONE}', which is refused: a test not done has no result to decide on."),
    "LBREASND": _text("Reason not done; refused, as the test was done or LBSTAT refuses the record."),
    **{
        name: {"type": ["string", "number", "null"], "description": "Accepted, not used."}
        for name in INFORMATIONAL
    },
}

SDTM_LB_SCHEMA: dict[str, Any] = {
    "title": "SdtmLbRecord",
    "type": "object",
    "description": "One CDISC SDTM LB record of a serum IL6 result, keyed by SDTM variable names. Null or "
    "empty text is a missing value. Variables not listed are refused.",
    "required": [
        "DOMAIN",
        "USUBJID",
        "LBTESTCD",
        "LBTEST",
        "LBORRES",
        "LBORRESU",
        "LBSPEC",
        "LBMETHOD",
        "LBDTC",
    ],
    "properties": _PROPERTIES,
    "additionalProperties": False,
}

SDTM_LB = Form(
    LB_MEDIA_TYPE,
    decode_sdtm_lb,
    SDTM_LB_SCHEMA,
    "One CDISC SDTM LB record as a JSON object keyed by SDTM variable names (see the schema).",
    pointers={"".join(f"/{part}" for part in field): variable for field, variable in PLAIN_POINTERS.items()},
)
