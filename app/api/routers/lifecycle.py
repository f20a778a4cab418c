"""The classifier lifecycle: activate, retire and shadow versions (administrators), see which version was
active when (readers), and see what a candidate would change before switching to it."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import AwareDatetime

from app.api.auth import requires, requires_every_site
from app.api.deps import get_catalog, get_reports
from app.api.exact_json import ExactJSONRoute, require_json
from app.api.problems import (
    LIFECYCLE_REFUSED,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    STORE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION,
    responses,
)
from app.api.schemas.lifecycle import (
    ActiveAtOut,
    AgreementOut,
    CellOut,
    EventOut,
    HistoryOut,
    ImpactIn,
    ImpactOut,
    LifecycleChangeIn,
    LifecycleChangeOut,
    PeriodOut,
    ShadowReportOut,
)
from app.domain.access import Principal, Scope
from app.domain.classifiers.lifecycle import Event, LifecycleEvent
from app.service import impact
from app.service.classifiers import ClassifierCatalog
from app.service.impact import Agreement, ClassifierReports

router = APIRouter(prefix="/v1/classifiers", tags=["classifier lifecycle"], route_class=ExactJSONRoute)
Catalog = Annotated[ClassifierCatalog, Depends(get_catalog)]
Reports = Annotated[ClassifierReports, Depends(get_reports)]
Name = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Version = Annotated[str, Path(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]
# Changes and reports span every site: a classifier decides for all of them.
Administrator = Annotated[Principal, Depends(requires_every_site(Scope.ADMIN))]


def _event(event: Event) -> EventOut:
    return EventOut(version=event.version, event=event.event, at=event.at, by=event.by, reason=event.reason)


def _agreement(agreement: Agreement) -> AgreementOut:
    return AgreementOut(
        total=agreement.total,
        changed=agreement.changed,
        table=[CellOut(recorded=r, candidate=c, count=n) for r, c, n in impact.tables(agreement)],
    )


@router.post(
    "/{name}/{version}/events",
    status_code=201,
    response_model=LifecycleChangeOut,
    dependencies=[Depends(require_json)],
    responses=responses(
        NOT_FOUND, LIFECYCLE_REFUSED, VALIDATION, UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE, STORE_UNAVAILABLE
    ),
)
async def change_lifecycle(
    name: Name, version: Version, body: LifecycleChangeIn, catalog: Catalog, admin: Administrator
) -> LifecycleChangeOut:
    """Activate, retire, or start or stop shadowing a classifier version; recorded with who, when, why."""
    events = await catalog.change(
        name, version, LifecycleEvent(body.event.value), by=admin.name, reason=body.reason
    )
    return LifecycleChangeOut(events=[_event(event) for event in events])


@router.get(
    "/{name}/history",
    response_model=HistoryOut,
    dependencies=[Depends(requires(Scope.READ))],
    responses=responses(NOT_FOUND, VALIDATION, STORE_UNAVAILABLE),
)
async def classifier_history(
    name: Name,
    catalog: Catalog,
    at: Annotated[
        AwareDatetime | None,
        Query(description="A moment, with its UTC offset: which version was active then."),
    ] = None,
) -> HistoryOut:
    """A classifier's lifecycle: every change, when each version was active, and which one was at ``at``."""
    lifecycle = await catalog.lifecycle(name)
    if lifecycle is None:
        raise HTTPException(404, "No classifier with this name.")
    return HistoryOut(
        name=name,
        active=lifecycle.active(),
        shadow=lifecycle.shadow(),
        periods=[PeriodOut(version=p.version, since=p.since, until=p.until) for p in lifecycle.periods()],
        events=[_event(event) for event in lifecycle.events],
        active_at=None if at is None else ActiveAtOut(at=at, version=lifecycle.active_at(at)),
    )


@router.get(
    "/{name}/{version}/shadow-report",
    response_model=ShadowReportOut,
    responses=responses(NOT_FOUND, VALIDATION, STORE_UNAVAILABLE),
)
async def shadow_report(
    name: Name,
    version: Version,
    reports: Reports,
    _: Administrator,
    against: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$",
            description="The answering version to compare with; the active one when not given.",
        ),
    ] = None,
) -> ShadowReportOut:
    """How a shadow version's outputs compare with what one version answered on the same live requests."""
    report = await reports.shadow(name, version, against)
    return ShadowReportOut(
        candidate=report.candidate.definition.ref,
        digest=report.candidate.digest,
        against=report.against,
        eligibility=_agreement(report.eligibility),
        risk_group=_agreement(report.risk_group),
        undecidable=report.undecidable,
    )


@router.post(
    "/{name}/{version}/impact",
    response_model=ImpactOut,
    dependencies=[Depends(require_json)],
    responses=responses(NOT_FOUND, VALIDATION, UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE, STORE_UNAVAILABLE),
)
async def impact_analysis(
    name: Name, version: Version, body: ImpactIn, reports: Reports, _: Administrator
) -> ImpactOut:
    """Replay recorded decisions (all, or a range) under a candidate version and count what would change.
    Records nothing."""
    scope = impact.Scope(
        from_seq=body.from_seq,
        to_seq=body.to_seq,
        from_time=body.from_time,
        to_time=body.to_time,
        include_superseded=body.include_superseded,
    )
    report = await reports.impact(name, version, scope)
    return ImpactOut(
        candidate=report.candidate.definition.ref,
        digest=report.candidate.digest,
        decisions=report.decisions,
        pinned=report.pinned,
        first_seq=report.first_seq,
        last_seq=report.last_seq,
        subjects=len(report.subjects),
        subjects_changed=len(report.subjects_changed),
        eligibility=_agreement(report.eligibility),
        risk_group=_agreement(report.risk_group),
        undecidable=dict(report.undecidable),
    )
