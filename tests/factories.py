"""Plain functions that build test inputs: unique subject ids, valid request bodies."""

import uuid
from typing import Any

from tests.log_canary import MARKER


def subject_id(prefix: str = "T") -> str:
    """A new subject id, ``<prefix>-CANARY-<12 hex>``: the marker lets the log canary (tests/log_canary.py)
    find it wherever it is logged; the prefix still comes first (tests tell ids apart by it). At most 64
    characters for a prefix of up to 44."""
    return f"{prefix}-{MARKER}-{uuid.uuid4().hex[:12]}"


def assessment_body(
    *,
    subject: str | None = None,
    value: Any = 1.5,
    unit: str = "pg/mL",
    comparator: str | None = "<",
    assay: str = "elecsys-il6",
    specimen_type: str = "serum",
    collected_at: str = "2026-11-20T09:30:00Z",
    site_id: str | None = "PIT",
    classifier: str | None = None,
) -> dict[str, Any]:
    il6: dict[str, Any] = {"value": value, "unit": unit, "assay": assay}
    if comparator is not None:
        il6["comparator"] = comparator
    body: dict[str, Any] = {
        "subject_id": subject or subject_id(),
        "il6": il6,
        "specimen": {"type": specimen_type, "collected_at": collected_at},
    }
    if site_id is not None:
        body["site_id"] = site_id
    if classifier is not None:
        body["classifier"] = classifier
    return body
