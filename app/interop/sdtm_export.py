"""Recorded decisions as rows of an SDTM-shaped LB dataset, for data management.

Each audit record (as the audit export yields it) becomes one row: the standard LB variables, written as
``app.interop.sdtm`` reads them, then columns for the decision that are not LB variables. Pure translation.
"""

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from decimal import Decimal
from typing import Any

from app.domain.decimals import plain
from app.domain.il6 import PG_PER_ML, Comparator
from app.domain.specimen import SpecimenType
from app.interop.sdtm import DOMAIN, IL6_LOINC, IL6_TEST, IL6_TESTCD, LOINC_SPECIMENS, SPECIMENS, Result

LB_COLUMNS = (
    "STUDYID",
    "DOMAIN",
    "USUBJID",
    "LBSEQ",
    "LBTESTCD",
    "LBTEST",
    "LBORRES",
    "LBORRESU",
    "LBSTRESC",
    "LBSTRESN",
    "LBSTRESU",
    "LBLLOQ",
    "LBSPEC",
    "LBLOINC",
    "LBMETHOD",
    "LBDTC",
    "SITEID",
    "ELIGSTAT",
    "IL6RISK",
    "CLASSIFIER",
    "ASSESSID",
    "AUDITSEQ",
    "RECDTC",
    "SUPERSEDES",
    "SRCREF",
)
"""The export's columns: standard LB variables, then (from SITEID on) the decision's own, which are not
LB variables; docs in the export route's description."""
_SPECIMEN_TERMS = {specimen: term for term, specimen in SPECIMENS.items()}


def lb_row(record: Mapping[str, Any], study_id: str, sequence: int) -> dict[str, str]:
    """One audit record (as the audit export gives it) as an LB row; every cell text, '' for null."""
    stored, decision = record["input"], record["decision"]
    il6 = decision["il6"]
    reported = Result(
        None if stored["il6"]["comparator"] is None else Comparator(stored["il6"]["comparator"]),
        Decimal(stored["il6"]["value"]),
    )
    standard = Result(
        None if il6["comparator"] is None else Comparator(il6["comparator"]), Decimal(il6["pg_per_ml"])
    )
    specimen = SpecimenType(stored["specimen"]["type"])
    classifier = decision["classifier"]
    return {
        "STUDYID": study_id,
        "DOMAIN": DOMAIN,
        "USUBJID": record["subject_id"],
        "LBSEQ": str(sequence),
        "LBTESTCD": IL6_TESTCD,
        "LBTEST": IL6_TEST,
        "LBORRES": reported.text(),
        "LBORRESU": stored["il6"]["unit"],
        "LBSTRESC": standard.text(),
        "LBSTRESN": "" if standard.comparator is not None else plain(standard.value),
        "LBSTRESU": PG_PER_ML,
        "LBLLOQ": plain(Decimal(il6["lod_pg_per_ml"])),
        "LBSPEC": _SPECIMEN_TERMS[specimen],
        "LBLOINC": IL6_LOINC if specimen in LOINC_SPECIMENS else "",
        "LBMETHOD": stored["il6"]["assay"],
        "LBDTC": stored["specimen"]["collected_at"],
        "SITEID": record["site_id"] or "",
        "ELIGSTAT": decision["eligibility"]["status"],
        "IL6RISK": decision["risk"]["group"] or "",
        "CLASSIFIER": f"{classifier['name']}@{classifier['version']}",
        "ASSESSID": str(record["id"]),
        "AUDITSEQ": str(record["seq"]),
        "RECDTC": str(record["recorded_at"]),
        "SUPERSEDES": record["supersedes"] or "",
        "SRCREF": stored.get("reference") or "",
    }


async def lb_rows(
    records: AsyncIterable[Mapping[str, Any]],
    study_id: str,
    *,
    from_seq: int = 1,
    site_id: str | None = None,
    visible: Callable[[str | None], bool] = lambda _site: True,
) -> AsyncIterator[dict[str, str]]:
    """LB rows of the records from ``from_seq`` on (of one site, when given), from records read from the
    chain's start: LBSEQ numbers each subject's decisions in record order over the whole chain, so a row
    keeps its LBSEQ in every export, whatever its range or site. ``visible`` says which sites' records
    the reader may see: the others are left out and not counted, so that the numbering reveals nothing of
    them (a reader limited to some sites numbers the decisions it can see)."""
    sequences: dict[str, int] = {}
    async for record in records:
        site = record["site_id"]
        if not visible(site):
            continue
        subject = record["subject_id"]
        sequences[subject] = sequences.get(subject, 0) + 1
        if record["seq"] >= from_seq and (site_id is None or site == site_id):
            yield lb_row(record, study_id, sequences[subject])
