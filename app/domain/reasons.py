"""Why a decision came out as it did: stable codes for systems, messages for people."""

from dataclasses import dataclass
from enum import StrEnum


class ReasonCode(StrEnum):
    IL6_UNDETECTABLE = "IL6_UNDETECTABLE"
    IL6_DETECTABLE = "IL6_DETECTABLE"
    IL6_CENSORED_ABOVE_LOD = "IL6_CENSORED_ABOVE_LOD"
    IL6_CENSORED_BELOW_LOD = "IL6_CENSORED_BELOW_LOD"
    SPECIMEN_NOT_SERUM = "SPECIMEN_NOT_SERUM"
    IL6_BELOW_CUTOFF = "IL6_BELOW_CUTOFF"
    IL6_AT_OR_ABOVE_CUTOFF = "IL6_AT_OR_ABOVE_CUTOFF"
    IL6_STRADDLES_CUTOFF = "IL6_STRADDLES_CUTOFF"


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str
