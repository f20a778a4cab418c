"""Eligibility for the biomarker-enrichment stage of NCT01488318: undetectable serum IL6 -> eligible.

ClinicalTrials.gov NCT01488318, inclusion criteria as registered: "Undetectable baseline serum IL-6. NOTE:
This eligibility criterion applies only to patients enrolling to the second, biomarker-enrichment stage of
the trial." and "If IL-6 is detectable, the patient will be ineligible. If IL-6 is not detected, the
patient will be eligible for the study." The registry names no assay: "undetectable" is judged against the
limit of detection of the assay that measured the result.
"""

from dataclasses import dataclass
from enum import StrEnum

from app.domain.il6 import Comparator, IL6Measurement
from app.domain.reasons import Reason, ReasonCode
from app.domain.specimen import Specimen, SpecimenType


class EligibilityStatus(StrEnum):
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class Eligibility:
    status: EligibilityStatus
    reasons: tuple[Reason, ...]


def detectability(measurement: IL6Measurement) -> bool | None:
    """Whether the result shows IL6 above the assay's limit of detection (LoD); ``None`` if it cannot say.

    - an exact value is undetectable below the LoD and detectable at or above it;
    - ``<x`` or ``<=x`` with x at or below the LoD is undetectable (the laboratory reported "not detected");
      with x above the LoD the true value may lie on either side: unplaceable;
    - ``>x`` or ``>=x`` is detectable when every value it allows is at or above the LoD, else unplaceable.
    """
    lod = measurement.assay.lod_pg_per_ml
    match measurement.comparator:
        case None:
            return measurement.pg_per_ml >= lod
        case Comparator.LT | Comparator.LE:
            return False if measurement.pg_per_ml <= lod else None
        case Comparator.GT | Comparator.GE:
            return True if measurement.entirely_at_or_above(lod) else None


def specimen_reason(specimen: Specimen, required: SpecimenType) -> Reason | None:
    """The reason a specimen does not count for the serum criterion, or ``None`` when it does."""
    if specimen.type is required:
        return None
    return Reason(
        ReasonCode.SPECIMEN_NOT_SERUM,
        f"The criterion is defined on {required.value}; a {specimen.type.value} result cannot decide it.",
    )


def assess_eligibility(
    measurement: IL6Measurement, specimen: Specimen, required_specimen: SpecimenType
) -> Eligibility:
    """Apply the NCT01488318 enrichment criterion: undetectable -> eligible, detectable -> ineligible.

    A result the rules cannot place against the LoD, or one from a specimen other than the required one,
    is indeterminate with its reasons: never a guess.
    """
    lod_text = f"{measurement.assay.lod_pg_per_ml} pg/mL"
    reasons: list[Reason] = []
    wrong_specimen = specimen_reason(specimen, required_specimen)
    if wrong_specimen is not None:
        reasons.append(wrong_specimen)
    detectable = detectability(measurement)
    if detectable is None:
        upper_censored = measurement.comparator in (Comparator.LT, Comparator.LE)
        reasons.append(
            Reason(
                ReasonCode.IL6_CENSORED_ABOVE_LOD if upper_censored else ReasonCode.IL6_CENSORED_BELOW_LOD,
                f"The reported limit cannot be placed against the assay's limit of detection ({lod_text}): "
                "the true value may lie on either side of it.",
            )
        )
        return Eligibility(EligibilityStatus.INDETERMINATE, tuple(reasons))
    if wrong_specimen is not None:
        return Eligibility(EligibilityStatus.INDETERMINATE, tuple(reasons))
    if detectable:
        return Eligibility(
            EligibilityStatus.INELIGIBLE,
            (
                Reason(
                    ReasonCode.IL6_DETECTABLE,
                    f"Serum IL6 is detectable (at or above the assay's limit of detection, {lod_text}).",
                ),
            ),
        )
    return Eligibility(
        EligibilityStatus.ELIGIBLE,
        (
            Reason(
                ReasonCode.IL6_UNDETECTABLE,
                f"Serum IL6 is undetectable (below the assay's limit of detection, {lod_text}).",
            ),
        ),
    )
