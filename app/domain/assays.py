"""The IL6 assays the service knows, each with its limit of detection and where that number comes from.

"Undetectable" is relative to the assay used (NCT01488318 names neither assay nor threshold), so a result
can only be placed against the limit of detection of an assay listed here.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from app.domain.errors import InvalidInput


@dataclass(frozen=True)
class Assay:
    """A laboratory method for serum IL6; every number in pg/mL and each with its source."""

    id: str
    name: str
    manufacturer: str
    method: str
    lod_pg_per_ml: Decimal
    measuring_range_pg_per_ml: tuple[Decimal, Decimal]
    specimens: tuple[str, ...]
    source: str
    notes: str = ""


ELECSYS_IL6 = Assay(
    id="elecsys-il6",
    name="Elecsys IL-6",
    manufacturer="Roche Diagnostics",
    method="electrochemiluminescence immunoassay (ECLIA)",
    lod_pg_per_ml=Decimal("1.5"),
    measuring_range_pg_per_ml=(Decimal("1.5"), Decimal("5000")),
    specimens=("serum", "plasma"),
    source=(
        "Roche Diagnostics, product page 'Elecsys IL-6': analytical sensitivity (limit of detection) "
        "1.5 pg/mL; measuring range 1.5-5,000 pg/mL; functional sensitivity 5 pg/mL; traceable to "
        "NIBSC 89/548; serum or Li-heparin/EDTA plasma."
    ),
    notes=(
        "An independent evaluation measured the limit of detection at 2.63 pg/mL (Prieto 2010, "
        "Clin Chem Lab Med 48:835); the service uses the manufacturer's 1.5 pg/mL."
    ),
)

ASSAYS: Mapping[str, Assay] = {assay.id: assay for assay in (ELECSYS_IL6,)}
"""Every assay a result may name, keyed by id."""


def assay_for(assay_id: str) -> Assay:
    """Look up an assay by id, refusing one the service does not know."""
    try:
        return ASSAYS[assay_id]
    except KeyError:
        known = ", ".join(sorted(ASSAYS))
        raise InvalidInput("/il6/assay", f"Unknown assay; known assay ids: {known}") from None
