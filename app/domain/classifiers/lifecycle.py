"""A classifier's lifecycle, read from its events: each version's status, its shadow, and which version
was active at any time.

Versions move draft -> active -> retired. Activating a version retires the one active before it at the
same moment, so a classifier never has two active versions; a retired version may be activated again (a
rollback), and a draft may be retired unused. A shadow is a non-active version that decides beside the
active one on live requests, for comparison only: at most one per classifier.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.domain.classifiers.base import VersionStatus


class LifecycleEvent(StrEnum):
    REGISTERED = "registered"
    ACTIVATED = "activated"
    RETIRED = "retired"
    SHADOW_STARTED = "shadow-started"
    SHADOW_STOPPED = "shadow-stopped"


STATUS_AFTER: Mapping[LifecycleEvent, VersionStatus] = {
    LifecycleEvent.REGISTERED: VersionStatus.DRAFT,
    LifecycleEvent.ACTIVATED: VersionStatus.ACTIVE,
    LifecycleEvent.RETIRED: VersionStatus.RETIRED,
}
"""The events that change a version's status, and the status each leaves it in."""


class LifecycleRefused(Exception):
    """A lifecycle change that the version's current state does not allow."""


@dataclass(frozen=True)
class Event:
    """One recorded change: the version it concerns, what happened, when (the store's clock), who, why."""

    name: str
    version: str
    event: LifecycleEvent
    at: datetime
    by: str
    reason: str


@dataclass(frozen=True)
class ActivePeriod:
    """A stretch of time during which one version was the classifier's active version; ``until`` is None
    while it still is."""

    version: str
    since: datetime
    until: datetime | None

    def covers(self, moment: datetime) -> bool:
        return self.since <= moment and (self.until is None or moment < self.until)


@dataclass(frozen=True)
class Lifecycle:
    """One classifier's history, its events in the order they were recorded."""

    name: str
    events: tuple[Event, ...]

    def statuses(self) -> dict[str, VersionStatus]:
        """Each registered version's current status."""
        status: dict[str, VersionStatus] = {}
        for event in self.events:
            if event.event in STATUS_AFTER:
                status[event.version] = STATUS_AFTER[event.event]
        return status

    def active(self) -> str | None:
        return next((v for v, s in self.statuses().items() if s is VersionStatus.ACTIVE), None)

    def shadow(self) -> str | None:
        """The version now deciding in the shadow of the active one, if any."""
        current: str | None = None
        for event in self.events:
            if event.event is LifecycleEvent.SHADOW_STARTED:
                current = event.version
            elif event.event is LifecycleEvent.SHADOW_STOPPED and event.version == current:
                current = None
        return current

    def periods(self) -> list[ActivePeriod]:
        """When each version was active, oldest first. A period ends when its version is retired (which
        activating another version does at the same moment)."""
        periods: list[ActivePeriod] = []
        open_period: tuple[str, datetime] | None = None
        for event in self.events:
            if open_period is not None and event.version == open_period[0] and event.event in STATUS_AFTER:
                if event.event is LifecycleEvent.ACTIVATED:
                    continue
                periods.append(ActivePeriod(open_period[0], open_period[1], event.at))
                open_period = None
            if event.event is LifecycleEvent.ACTIVATED:
                open_period = (event.version, event.at)
        if open_period is not None:
            periods.append(ActivePeriod(open_period[0], open_period[1], None))
        return periods

    def active_at(self, moment: datetime) -> str | None:
        """The version that was active at ``moment``, or None when none was."""
        return next((p.version for p in self.periods() if p.covers(moment)), None)


def lifecycles(events: Iterable[Event]) -> dict[str, Lifecycle]:
    """Events (in recorded order) grouped into each classifier's lifecycle."""
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.name, []).append(event)
    return {name: Lifecycle(name, tuple(items)) for name, items in grouped.items()}


@dataclass(frozen=True)
class Change:
    """An event to record; ``by`` and ``reason`` are the caller's, ``at`` is the store's."""

    version: str
    event: LifecycleEvent
    reason: str


def plan_change(
    lifecycle: Lifecycle, version: str, event: LifecycleEvent, reason: str, *, default_name: str
) -> Sequence[Change]:
    """The events one requested change records, or LifecycleRefused saying why it is not allowed.

    Activating retires the version active before it, and stops a shadow of the version being activated;
    the default classifier's active version can only be replaced, never retired on its own (requests
    that pin no version need it).
    """
    status = lifecycle.statuses().get(version)
    if status is None:
        raise LifecycleRefused(f"{lifecycle.name}@{version} is not registered")
    if event is LifecycleEvent.ACTIVATED:
        if status is VersionStatus.ACTIVE:
            raise LifecycleRefused(f"{lifecycle.name}@{version} is already active")
        changes: list[Change] = []
        if lifecycle.shadow() == version:
            changes.append(Change(version, LifecycleEvent.SHADOW_STOPPED, f"activated: {reason}"))
        previous = lifecycle.active()
        if previous is not None:
            changes.append(Change(previous, LifecycleEvent.RETIRED, f"replaced by {version}: {reason}"))
        return [*changes, Change(version, event, reason)]
    if event is LifecycleEvent.RETIRED:
        if status is VersionStatus.RETIRED:
            raise LifecycleRefused(f"{lifecycle.name}@{version} is already retired")
        if status is VersionStatus.ACTIVE and lifecycle.name == default_name:
            raise LifecycleRefused(
                f"{lifecycle.name} decides requests that pin no version: activate another version of it "
                "instead of retiring its active one"
            )
        changes = []
        if lifecycle.shadow() == version:
            changes.append(Change(version, LifecycleEvent.SHADOW_STOPPED, f"retired: {reason}"))
        return [*changes, Change(version, event, reason)]
    if event is LifecycleEvent.SHADOW_STARTED:
        if status is VersionStatus.ACTIVE:
            raise LifecycleRefused(
                f"{lifecycle.name}@{version} is active: only another version can shadow it"
            )
        current = lifecycle.shadow()
        if current == version:
            raise LifecycleRefused(f"{lifecycle.name}@{version} is already the shadow")
        stopped = (
            []
            if current is None
            else [Change(current, LifecycleEvent.SHADOW_STOPPED, f"replaced by {version}")]
        )
        return [*stopped, Change(version, event, reason)]
    if event is LifecycleEvent.SHADOW_STOPPED:
        if lifecycle.shadow() != version:
            raise LifecycleRefused(f"{lifecycle.name}@{version} is not the shadow")
        return [Change(version, event, reason)]
    raise LifecycleRefused(f"a version is registered once, by registering it: not by a {event.value} event")
