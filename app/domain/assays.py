"""IL6 assays: the laboratory methods a result may come from, each with its limit of detection.

"Undetectable" is relative to the assay used (NCT01488318 names neither assay nor threshold), so a result
can only be placed against the limit of detection of an assay its classifier version lists. Which limit a
trial uses (a manufacturer's or an independent evaluation's) is a protocol choice: assays are defined in
the classifier manifest, so a different limit is a different, separately checksummed version.
"""

from dataclasses import dataclass
from decimal import Decimal

from app.domain.sources import Source


@dataclass(frozen=True)
class Assay:
    """A laboratory method for serum IL6; every number in pg/mL and backed by its sources."""

    id: str
    name: str
    manufacturer: str
    method: str
    lod_pg_per_ml: Decimal
    measuring_range_pg_per_ml: tuple[Decimal, Decimal]
    specimens: tuple[str, ...]
    sources: tuple[Source, ...]
    notes: str = ""
