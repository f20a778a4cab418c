"""A serum IL6 result as a value object: value, unit, comparator and assay, converted exactly to pg/mL."""

from dataclasses import dataclass
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
    Overflow,
)
from enum import StrEnum

from app.domain.assays import Assay
from app.domain.errors import InvalidInput

PG_PER_ML = "pg/mL"


class Comparator(StrEnum):
    """How a reported value relates to the true concentration (FHIR Quantity.comparator)."""

    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


@dataclass(frozen=True)
class Unit:
    """A UCUM mass-concentration unit and its exact factor to pg/mL."""

    code: str
    pg_per_ml: Decimal
    source: str


_SI_PREFIXES = (
    "SI prefixes (pico = 1e-12, nano = 1e-9; litre and millilitre): 1 pg/mL = 1 ng/L, 1 ng/mL = 1000 pg/mL"
)

UNITS: dict[str, Unit] = {
    unit.code: unit
    for unit in (
        Unit("pg/mL", Decimal(1), _SI_PREFIXES),
        Unit("ng/L", Decimal(1), _SI_PREFIXES),
        Unit("ng/mL", Decimal(1000), _SI_PREFIXES),
    )
}
"""Every unit the service accepts, keyed by its UCUM code. The one place unit factors live."""


def unit_for(code: str) -> Unit:
    """Look up a UCUM unit code, refusing anything not in ``UNITS``."""
    try:
        return UNITS[code]
    except KeyError:
        accepted = ", ".join(UNITS)
        raise InvalidInput("/il6/unit", f"Unknown unit; accepted UCUM codes: {accepted}") from None


@dataclass(frozen=True)
class Bound:
    value: Decimal
    inclusive: bool


@dataclass(frozen=True)
class IL6Measurement:
    """One IL6 result normalised to pg/mL.

    ``comparator`` is ``None`` for an exact value. The set of concentrations the result allows is an
    interval: ``<x`` is [0, x), ``<=x`` is [0, x], ``>x`` is (x, inf), ``>=x`` is [x, inf), ``x`` is [x, x].
    """

    pg_per_ml: Decimal
    comparator: Comparator | None
    assay: Assay

    def __post_init__(self) -> None:
        if not self.pg_per_ml.is_finite() or self.pg_per_ml < 0:
            raise InvalidInput("/il6/value", "must be a finite number >= 0")
        if self.comparator is Comparator.LT and self.pg_per_ml == 0:
            raise InvalidInput("/il6/value", "'< 0' allows no concentration; report 0 or a limit")

    @property
    def lower(self) -> Bound:
        if self.comparator in (Comparator.LT, Comparator.LE):
            return Bound(Decimal(0), inclusive=True)
        return Bound(self.pg_per_ml, inclusive=self.comparator is not Comparator.GT)

    @property
    def upper(self) -> Bound | None:
        if self.comparator in (Comparator.GT, Comparator.GE):
            return None
        return Bound(self.pg_per_ml, inclusive=self.comparator is not Comparator.LT)

    def entirely_below(self, limit: Decimal) -> bool:
        """True when every concentration this result allows is < ``limit``."""
        upper = self.upper
        if upper is None:
            return False
        return upper.value < limit or (upper.value == limit and not upper.inclusive)

    def entirely_at_or_above(self, limit: Decimal) -> bool:
        """True when every concentration this result allows is >= ``limit``."""
        return self.lower.value >= limit


_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact, Overflow, InvalidOperation])


def measure(value: Decimal, unit_code: str, comparator: Comparator | None, assay: Assay) -> IL6Measurement:
    """Convert a reported result to pg/mL exactly: decimal arithmetic that refuses to round."""
    unit = unit_for(unit_code)
    if not value.is_finite():
        raise InvalidInput("/il6/value", "must be a finite number >= 0")
    try:
        pg_per_ml = _EXACT.multiply(value, unit.pg_per_ml)
    except (Inexact, Overflow, InvalidOperation):
        raise InvalidInput("/il6/value", "cannot be converted to pg/mL exactly") from None
    return IL6Measurement(pg_per_ml=pg_per_ml, comparator=comparator, assay=assay)
