"""The specimen a result was measured in."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class SpecimenType(StrEnum):
    """Specimen kinds a laboratory may report IL6 in; only serum counts for the trial's criterion."""

    SERUM = "serum"
    PLASMA = "plasma"
    WHOLE_BLOOD = "whole-blood"
    OTHER_BODY_FLUID = "other-body-fluid"


@dataclass(frozen=True)
class Specimen:
    type: SpecimenType
    collected_at: datetime
