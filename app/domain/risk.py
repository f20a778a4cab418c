"""IL6 risk group: low below the cutoff, high at or above it.

The cutoff is a classifier parameter. Version il6-enrichment@1.0.0 takes 17.85 pg/mL from the trial's
conference abstract (AACR, Abstract CT119): "low baseline serum IL6 levels (<17.85 pg/ml)" were associated
with prolonged stable disease (p=0.028) and better survival (p=0.009).
"""

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from app.domain.eligibility import specimen_reason
from app.domain.il6 import IL6Measurement
from app.domain.reasons import Reason, ReasonCode
from app.domain.specimen import Specimen, SpecimenType


class RiskGroup(StrEnum):
    LOW = "low"
    HIGH = "high"


@dataclass(frozen=True)
class Risk:
    group: RiskGroup | None
    cutoff_pg_per_ml: Decimal
    reasons: tuple[Reason, ...]


def assess_risk(
    measurement: IL6Measurement,
    specimen: Specimen,
    cutoff_pg_per_ml: Decimal,
    required_specimen: SpecimenType,
) -> Risk:
    """Place the result against the cutoff: ``low`` when every value it allows is below the cutoff,
    ``high`` when every value is at or above it; a censored result on both sides gets no group."""
    cutoff_text = f"{cutoff_pg_per_ml} pg/mL"
    wrong_specimen = specimen_reason(specimen, required_specimen)
    if wrong_specimen is not None:
        return Risk(None, cutoff_pg_per_ml, (wrong_specimen,))
    if measurement.entirely_below(cutoff_pg_per_ml):
        reason = Reason(ReasonCode.IL6_BELOW_CUTOFF, f"Serum IL6 is below the cutoff of {cutoff_text}.")
        return Risk(RiskGroup.LOW, cutoff_pg_per_ml, (reason,))
    if measurement.entirely_at_or_above(cutoff_pg_per_ml):
        reason = Reason(
            ReasonCode.IL6_AT_OR_ABOVE_CUTOFF,
            f"Serum IL6 is at or above the cutoff of {cutoff_text}.",
        )
        return Risk(RiskGroup.HIGH, cutoff_pg_per_ml, (reason,))
    reason = Reason(
        ReasonCode.IL6_STRADDLES_CUTOFF,
        f"The censored result allows values on both sides of the cutoff of {cutoff_text}.",
    )
    return Risk(None, cutoff_pg_per_ml, (reason,))
