"""The classifier lifecycle as administrators change it and anyone with read access sees it, and the
reports that say what a candidate version would change (counts only: no subject id, no value)."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.api.schemas.common import PRINTABLE_PATTERN, Moment
from app.domain.classifiers.lifecycle import LifecycleEvent

Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=PRINTABLE_PATTERN)]
"""Printable text, tabs and line breaks allowed."""


class RequestedEvent(StrEnum):
    """The changes a caller may ask for; ``registered`` happens only by registering a version."""

    ACTIVATED = LifecycleEvent.ACTIVATED.value
    RETIRED = LifecycleEvent.RETIRED.value
    SHADOW_STARTED = LifecycleEvent.SHADOW_STARTED.value
    SHADOW_STOPPED = LifecycleEvent.SHADOW_STOPPED.value


class LifecycleChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: RequestedEvent = Field(
        description="activated: serve this version to requests that pin none (the version active before it "
        "is retired at the same moment); retired: stop serving it unless pinned; shadow-started / "
        "shadow-stopped: decide beside the active version on live requests, stored, never answered."
    )
    reason: Reason = Field(description="Why, for the lifecycle's record (a protocol amendment, say).")


class EventOut(BaseModel):
    version: str
    event: LifecycleEvent
    at: datetime = Field(description="When, by the audit store's clock.")
    by: str = Field(description="Who: the API key's name or token subject, or the CLI's operator.")
    reason: str


class LifecycleChangeOut(BaseModel):
    events: list[EventOut] = Field(description="What was recorded, in order (one change may imply others).")


class PeriodOut(BaseModel):
    version: str
    since: datetime
    until: datetime | None = Field(description="Null while the version is still active.")


class ActiveAtOut(BaseModel):
    at: datetime
    version: str | None = Field(description="The version active at that moment; null when none was.")


class HistoryOut(BaseModel):
    name: str
    active: str | None = Field(description="The version active now.")
    shadow: str | None = Field(description="The version deciding in its shadow now, if any.")
    periods: list[PeriodOut] = Field(description="When each version was active, oldest first.")
    events: list[EventOut]
    active_at: ActiveAtOut | None = Field(None, description="Answer to ?at=: which version was active then.")


class CellOut(BaseModel):
    recorded: str = Field(description="What was answered (or recorded); 'none' for no risk group.")
    candidate: str = Field(
        description="What the candidate decides; 'none' where it gives no group or could not decide."
    )
    count: int


class AgreementOut(BaseModel):
    total: int
    changed: int
    table: list[CellOut] = Field(description="The confusion table, one cell per pair that occurred.")


class ShadowReportOut(BaseModel):
    candidate: str
    digest: str
    against: str = Field(description="The version whose answers the shadow's outputs are compared with.")
    eligibility: AgreementOut
    risk_group: AgreementOut
    undecidable: int = Field(description="Live requests the candidate could not decide.")


class ImpactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_seq: int = Field(1, ge=1, le=2**63 - 1, description="First audit sequence number to replay.")
    to_seq: int | None = Field(None, ge=1, le=2**63 - 1, description="Last one (inclusive); null: the head.")
    from_time: Moment | None = Field(None, description="Recorded at or after this moment.")
    to_time: Moment | None = Field(None, description="Recorded before this moment.")
    include_superseded: bool = Field(False, description="Also replay decisions a correction superseded.")


class ImpactOut(BaseModel):
    candidate: str
    digest: str
    decisions: int = Field(
        description="The classifier's recorded decisions replayed: those its active version made or would "
        "make, not other classifiers' nor those whose request pinned a version."
    )
    pinned: int = Field(description="Decisions left out because their request pinned a version.")
    first_seq: int | None
    last_seq: int | None
    subjects: int = Field(description="Distinct subjects (site and pseudonymous id) among them.")
    subjects_changed: int = Field(
        description="Subjects for whom at least one decision would change eligibility or risk group."
    )
    eligibility: AgreementOut
    risk_group: AgreementOut
    undecidable: dict[str, int] = Field(
        description="Results the candidate could not decide, by reason (an assay it does not define, say)."
    )
