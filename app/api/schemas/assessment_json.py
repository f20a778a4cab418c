"""A decision's answer written from its record: the busiest answers of the service.

``AssessmentOut.from_record`` validates a record into the answer's model, and pydantic writes it: 12.6 µs
per answer, for values the service has just written itself. ``assessment_json`` writes the same bytes from
the record with orjson in 7.8 µs (bench/RESULTS.md, 2026-12-03 night), for every decision made and every
item of a batch.
"""

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import TypeAdapter

from app.api.schemas.assessments import AssessmentOut
from app.domain.eligibility import EligibilityStatus
from app.domain.il6 import Comparator
from app.domain.reasons import ReasonCode
from app.domain.risk import RiskGroup
from app.domain.specimen import SpecimenType
from app.service.recorded_assessments import RecordedAssessment

ASSESSMENT_JSON = TypeAdapter(AssessmentOut)
"""How an assessment is written: as FastAPI writes a route's ``response_model``."""


def assessment_json(record: RecordedAssessment) -> bytes:
    """``AssessmentOut.from_record(record)`` as JSON, byte for byte what ``ASSESSMENT_JSON`` writes.

    Written from the record when every value is one the model keeps as it is (a known enum value, a string
    where a string goes, a decimal in the plain form the service writes); anything else goes through the
    model, which refuses it as it always did. tests/unit/test_assessment_json.py checks that both write the
    same bytes for generated records.
    """
    document = _answer_document(record)
    if document is not None:
        try:
            return orjson.dumps(document, option=orjson.OPT_UTC_Z)
        except orjson.JSONEncodeError:  # a string UTF-8 cannot hold: the model decides what to do with it
            pass
    return ASSESSMENT_JSON.dump_json(AssessmentOut.from_record(record))


def _values(kind: type[Any]) -> frozenset[str]:
    return frozenset(member.value for member in kind)


_STATUSES = _values(EligibilityStatus)
_GROUPS = _values(RiskGroup)
_COMPARATORS = _values(Comparator)
_CODES = _values(ReasonCode)
_SPECIMEN_TYPES = _values(SpecimenType)
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
"""A decimal as the service stores one (``decimal_text``): validated, it is ``Decimal(text)`` exactly."""


class _NotAsIs(Exception):
    """A value the model would convert or refuse: the answer is left to it."""


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _NotAsIs
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _uuid(value: Any) -> str:
    if type(value) is not uuid.UUID:
        raise _NotAsIs
    return str(value)


def _optional_uuid(value: Any) -> str | None:
    return None if value is None else _uuid(value)


def _member(value: Any, members: frozenset[str]) -> str:
    if type(value) is not str or value not in members:
        raise _NotAsIs
    return value


def _number(value: Any) -> float:
    """A JsonNumber as the model writes it: the decimal, as a float."""
    if type(value) is not str or not _DECIMAL_TEXT.fullmatch(value):
        raise _NotAsIs
    return float(Decimal(value))


def _reasons(reasons: Any) -> list[dict[str, str]]:
    if type(reasons) is not list:
        raise _NotAsIs
    return [
        {"code": _member(reason["code"], _CODES), "message": _text(reason["message"])} for reason in reasons
    ]


def _aware(moment: Any) -> datetime:
    """An aware time whose offset is in whole minutes, as the model writes it."""
    if not isinstance(moment, datetime):
        raise _NotAsIs
    offset = moment.utcoffset()
    if offset is None or offset.seconds % 60 or offset.microseconds:
        raise _NotAsIs
    return moment


def _time(value: Any) -> datetime:
    """A stored time (``isoformat``, as the input document holds it), as the model reads it."""
    moment = _aware(datetime.fromisoformat(_text(value)))
    if moment.isoformat() != value:
        raise _NotAsIs
    return moment


def _answer_document(record: RecordedAssessment) -> dict[str, Any] | None:
    """The answer's fields in the model's order, as the model would write them; None when any value is not
    one the model keeps as it is."""
    try:
        decision = record.decision
        eligibility, risk, il6 = decision["eligibility"], decision["risk"], decision["il6"]
        classifier, specimen = decision["classifier"], record.input["specimen"]
        detectable = il6["detectable"]
        if (detectable is not None and type(detectable) is not bool) or type(record.seq) is not int:
            raise _NotAsIs
        comparator, group = il6["comparator"], risk["group"]
        return {
            "id": _uuid(record.id),
            "subject_id": _text(record.subject_id),
            "site_id": _optional_text(record.site_id),
            "recorded_at": _aware(record.recorded_at),
            "specimen": {
                "type": _member(specimen["type"], _SPECIMEN_TYPES),
                "collected_at": _time(specimen["collected_at"]),
            },
            "eligibility": {
                "status": _member(eligibility["status"], _STATUSES),
                "reasons": _reasons(eligibility["reasons"]),
            },
            "risk": {
                "group": None if group is None else _member(group, _GROUPS),
                "cutoff_pg_per_ml": _number(risk["cutoff_pg_per_ml"]),
                "reasons": _reasons(risk["reasons"]),
            },
            "il6": {
                "pg_per_ml": _number(il6["pg_per_ml"]),
                "comparator": None if comparator is None else _member(comparator, _COMPARATORS),
                "detectable": detectable,
                "assay": _text(il6["assay"]),
                "lod_pg_per_ml": _number(il6["lod_pg_per_ml"]),
            },
            "classifier": {
                "name": _text(classifier["name"]),
                "version": _text(classifier["version"]),
                "digest": _text(classifier["digest"]),
            },
            "supersedes": _optional_uuid(record.supersedes),
            "correction_reason": _optional_text(record.correction_reason),
            "superseded_by": _optional_uuid(record.superseded_by),
            "audit": {
                "seq": record.seq,
                "hash": _text(record.hash),
                "prev_hash": _text(record.prev_hash),
                "client_id": _text(record.client_id),
                "request_id": _optional_text(record.request_id),
                "idempotency_key": _optional_text(record.idempotency_key),
            },
        }
    except (_NotAsIs, KeyError, TypeError, ValueError):
        return None
