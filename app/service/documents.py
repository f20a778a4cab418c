"""The JSON documents a decision is stored as: the normalised input and the output, decimals kept exact.

Numbers are written as decimal strings so that what is stored is exactly what was decided, on every
backend, and so that a stored input can be decided again (replay) to the same output.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.domain.classifiers.base import Decision
from app.domain.classifiers.registry import RegisteredVersion
from app.domain.decimals import plain
from app.domain.il6 import Comparator
from app.domain.reasons import Reason
from app.domain.specimen import SpecimenType


@dataclass(frozen=True)
class Submission:
    """One IL6 result as a caller submitted it, after validation of its form."""

    subject_id: str
    site_id: str | None
    value: Decimal
    unit: str
    comparator: Comparator | None
    assay: str
    specimen_type: SpecimenType
    collected_at: datetime
    classifier: str | None = None
    supersedes: uuid.UUID | None = None
    correction_reason: str | None = None
    reference: str | None = None
    """The sender's own id for the result, when its form has one: a FHIR Observation's id, a CDS Hooks
    hookInstance, a REDCap record/event/instrument, an SDTM LBSEQ. Recorded in the input document."""


def decimal_text(value: Decimal) -> str:
    """A plain decimal string, exact, without exponent or trailing zeros: Decimal("1.50E+3") -> "1500"."""
    return plain(value)


def input_document(submission: Submission) -> dict[str, Any]:
    document = {
        "subject_id": submission.subject_id,
        "site_id": submission.site_id,
        "il6": {
            "value": decimal_text(submission.value),
            "unit": submission.unit,
            "comparator": None if submission.comparator is None else submission.comparator.value,
            "assay": submission.assay,
        },
        "specimen": {
            "type": submission.specimen_type.value,
            "collected_at": submission.collected_at.isoformat(),
        },
        "classifier": submission.classifier,
    }
    if submission.reference is not None:  # absent, not null, so plain requests' documents stay as they were
        document["reference"] = submission.reference
    return document


def submission_from_input(document: dict[str, Any]) -> Submission:
    """Rebuild the submission a stored input document was made from."""
    il6, specimen = document["il6"], document["specimen"]
    comparator = il6["comparator"]
    return Submission(
        subject_id=document["subject_id"],
        site_id=document["site_id"],
        value=Decimal(il6["value"]),
        unit=il6["unit"],
        comparator=None if comparator is None else Comparator(comparator),
        assay=il6["assay"],
        specimen_type=SpecimenType(specimen["type"]),
        collected_at=datetime.fromisoformat(specimen["collected_at"]),
        classifier=document["classifier"],
        reference=document.get("reference"),
    )


def _reasons(reasons: tuple[Reason, ...]) -> list[dict[str, str]]:
    return [{"code": reason.code.value, "message": reason.message} for reason in reasons]


def decision_document(decision: Decision, version: RegisteredVersion) -> dict[str, Any]:
    measurement = decision.measurement
    return {
        "eligibility": {
            "status": decision.eligibility.status.value,
            "reasons": _reasons(decision.eligibility.reasons),
        },
        "risk": {
            "group": None if decision.risk.group is None else decision.risk.group.value,
            "cutoff_pg_per_ml": decimal_text(decision.risk.cutoff_pg_per_ml),
            "reasons": _reasons(decision.risk.reasons),
        },
        "il6": {
            "pg_per_ml": decimal_text(measurement.pg_per_ml),
            "comparator": None if measurement.comparator is None else measurement.comparator.value,
            "detectable": decision.detectable,
            "assay": measurement.assay.id,
            "lod_pg_per_ml": decimal_text(measurement.assay.lod_pg_per_ml),
        },
        "classifier": {
            "name": version.definition.name,
            "version": version.definition.version,
            "digest": version.digest,
        },
    }
