"""Request and response bodies of /v1/assessments."""

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from app.api.schemas.common import (
    CollectedAt,
    Identifier,
    JsonNumber,
    ReportedValue,
    UnitCode,
)
from app.domain.eligibility import EligibilityStatus
from app.domain.errors import InvalidInput
from app.domain.il6 import Comparator
from app.domain.reasons import ReasonCode
from app.domain.risk import RiskGroup
from app.domain.specimen import SpecimenType
from app.service.documents import Submission
from app.service.recorded_assessments import RecordedAssessment

CLASSIFIER_PIN = r"^[a-z0-9][a-z0-9-]{0,63}(@\d+\.\d+\.\d+)?$"


class IL6In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: ReportedValue
    unit: UnitCode
    comparator: Comparator | None = Field(
        None, description="'<', '<=', '>' or '>=' for a censored result; absent for an exact value."
    )
    assay: Identifier = Field(description="An assay id from GET /v1/assays.")


class SpecimenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: SpecimenType
    collected_at: CollectedAt = Field(description="RFC 3339 date-time with a UTC offset.")


class AssessmentIn(BaseModel):
    """A subject's serum IL6 result to decide on."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subject_id": "PIT-0042",
                    "site_id": "PIT",
                    "il6": {
                        "value": 1.5,
                        "unit": "pg/mL",
                        "comparator": "<",
                        "assay": "elecsys-il6",
                    },
                    "specimen": {"type": "serum", "collected_at": "2026-11-20T09:30:00Z"},
                }
            ]
        },
    )

    subject_id: Identifier = Field(description="Pseudonymous trial subject id; never a name or MRN.")
    site_id: Identifier | None = None
    il6: IL6In
    specimen: SpecimenIn
    classifier: str | None = Field(
        None,
        pattern=CLASSIFIER_PIN,
        description="Pin a version ('il6-enrichment@1.0.0') or a name (its active version); "
        "absent: the active version of the default classifier.",
    )
    supersedes: uuid.UUID | None = Field(
        None,
        description="For a corrected result: the id of the subject's decision this one replaces. The "
        "earlier decision stays recorded, marked superseded. Requires correction_reason.",
    )
    correction_reason: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        # Printable text: a NUL cannot be stored by PostgreSQL, and control characters have no place here.
        pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$",
        description="Why the earlier result was corrected (printable text, tabs and line breaks allowed).",
    )

    def to_submission(self) -> Submission:
        if (self.supersedes is None) != (self.correction_reason is None):
            missing = "/correction_reason" if self.correction_reason is None else "/supersedes"
            raise InvalidInput(missing, "A correction names both supersedes and correction_reason.")
        return Submission(
            subject_id=self.subject_id,
            site_id=self.site_id,
            value=self.il6.value,
            unit=self.il6.unit,
            comparator=self.il6.comparator,
            assay=self.il6.assay,
            specimen_type=self.specimen.type,
            collected_at=self.specimen.collected_at,
            classifier=self.classifier,
            supersedes=self.supersedes,
            correction_reason=self.correction_reason,
        )


class ReasonOut(BaseModel):
    code: ReasonCode
    message: str


class EligibilityOut(BaseModel):
    status: EligibilityStatus
    reasons: list[ReasonOut]


class RiskOut(BaseModel):
    group: RiskGroup | None = Field(description="null when the result cannot be placed against the cutoff.")
    cutoff_pg_per_ml: JsonNumber
    reasons: list[ReasonOut]


class IL6Out(BaseModel):
    pg_per_ml: JsonNumber = Field(description="The reported value (or limit), converted exactly to pg/mL.")
    comparator: Comparator | None
    detectable: bool | None = Field(description="null when the result cannot be placed against the LoD.")
    assay: str
    lod_pg_per_ml: JsonNumber


class ClassifierRef(BaseModel):
    name: str
    version: str
    digest: str = Field(description="sha256 of the version's canonical (RFC 8785) manifest.")


class SpecimenOut(BaseModel):
    type: SpecimenType
    collected_at: datetime


class DecisionOut(BaseModel):
    """What a classifier version decided for one result."""

    eligibility: EligibilityOut
    risk: RiskOut
    il6: IL6Out
    classifier: ClassifierRef


class AuditReceipt(BaseModel):
    """The decision's place in the audit chain: keep it to prove later what was recorded."""

    seq: int = Field(description="The record's sequence number in the audit chain.")
    hash: str = Field(description="SHA-256 of the record's canonical form (see docs/audit.md).")
    prev_hash: str = Field(description="The hash of the record before it.")
    client_id: str = Field(description="The client the record names as caller.")
    request_id: str | None = Field(description="The X-Request-ID of the request that made the decision.")
    idempotency_key: str | None


class AssessmentOut(BaseModel):
    """A recorded eligibility and risk decision."""

    id: uuid.UUID
    subject_id: str
    site_id: str | None
    recorded_at: datetime = Field(description="When the decision was recorded (database clock, UTC).")
    specimen: SpecimenOut
    eligibility: EligibilityOut
    risk: RiskOut
    il6: IL6Out
    classifier: ClassifierRef
    supersedes: uuid.UUID | None = Field(description="The earlier decision this correction replaces.")
    correction_reason: str | None
    superseded_by: uuid.UUID | None = Field(
        description="The correction that replaced this decision; null while it stands."
    )
    audit: AuditReceipt

    @classmethod
    def from_record(cls, record: RecordedAssessment) -> "AssessmentOut":
        return cls.model_validate(
            {
                "id": record.id,
                "subject_id": record.subject_id,
                "site_id": record.site_id,
                "recorded_at": record.recorded_at,
                "specimen": record.input["specimen"],
                **record.decision,
                "supersedes": record.supersedes,
                "correction_reason": record.correction_reason,
                "superseded_by": record.superseded_by,
                "audit": {
                    "seq": record.seq,
                    "hash": record.hash,
                    "prev_hash": record.prev_hash,
                    "client_id": record.client_id,
                    "request_id": record.request_id,
                    "idempotency_key": record.idempotency_key,
                },
            }
        )


ASSESSMENT_JSON = TypeAdapter(AssessmentOut)
"""How an assessment is written: as FastAPI writes a route's ``response_model``."""


def assessment_json(record: RecordedAssessment) -> bytes:
    """``AssessmentOut.from_record(record)`` as JSON, byte for byte what ``ASSESSMENT_JSON`` writes.

    The busiest answers (every decision made, each item of a batch) are written from the record by orjson,
    without validating again what the service itself stored: validating and writing the model cost three
    times as much. That needs every value to be one the model keeps as it is (a known enum value, a string
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


class AssessmentPage(BaseModel):
    items: list[AssessmentOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null at the end."
    )


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classifier: str | None = Field(
        None,
        pattern=CLASSIFIER_PIN,
        description="Replay under this version (or a name's active version) to see what it would change; "
        "absent: under the version that decided, which must reproduce the decision exactly.",
    )


class ChangeOut(BaseModel):
    """One field that differs, with both values as the audit record stores them (numbers as exact
    decimal strings, e.g. "17.85")."""

    field: str = Field(description="Dotted path in the decision, e.g. 'eligibility.status'.")
    recorded: Any
    replayed: Any


class ReplayOut(BaseModel):
    """A recorded decision decided again, and what differs."""

    matches: bool = Field(description="True when the replayed decision equals the recorded one.")
    changes: list[ChangeOut] = Field(description="Every field that differs; empty when matches.")
    recorded: AssessmentOut
    replayed: DecisionOut
