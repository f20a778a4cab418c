"""Request and response bodies of /v1/assessments."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import (
    PRINTABLE_PATTERN,
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
        pattern=PRINTABLE_PATTERN,
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
