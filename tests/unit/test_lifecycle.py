"""A classifier's lifecycle read from its events: statuses, periods, the version active at a moment, and
which changes are allowed."""

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.classifiers.base import VersionStatus
from app.domain.classifiers.lifecycle import (
    Event,
    Lifecycle,
    LifecycleEvent,
    LifecycleRefused,
    lifecycles,
    plan_change,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
NAME = "il6-model"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def event(version: str, kind: LifecycleEvent, minute: int, name: str = NAME) -> Event:
    return Event(name, version, kind, at(minute), "tests", "why")


def history(*events: Event) -> Lifecycle:
    return Lifecycle(NAME, events)


REGISTERED, ACTIVATED, RETIRED = LifecycleEvent.REGISTERED, LifecycleEvent.ACTIVATED, LifecycleEvent.RETIRED
SHADOW_STARTED, SHADOW_STOPPED = LifecycleEvent.SHADOW_STARTED, LifecycleEvent.SHADOW_STOPPED

SWITCHED = history(
    event("1.0.0", REGISTERED, 0),
    event("1.0.0", ACTIVATED, 0),
    event("2.0.0", REGISTERED, 10),
    event("1.0.0", RETIRED, 20),
    event("2.0.0", ACTIVATED, 20),
)


def test_statuses_follow_the_last_status_event_of_each_version() -> None:
    assert SWITCHED.statuses() == {"1.0.0": VersionStatus.RETIRED, "2.0.0": VersionStatus.ACTIVE}
    assert SWITCHED.active() == "2.0.0"


def test_periods_meet_at_the_switch_without_overlap() -> None:
    first, second = SWITCHED.periods()

    assert (first.version, first.since, first.until) == ("1.0.0", at(0), at(20))
    assert (second.version, second.since, second.until) == ("2.0.0", at(20), None)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (at(-1), None),  # before anything was active
        (at(0), "1.0.0"),
        (at(19), "1.0.0"),
        (at(20), "2.0.0"),  # the switch belongs to the new version
        (at(60 * 24 * 365), "2.0.0"),
    ],
)
def test_active_at_answers_which_version_was_active(moment: datetime, expected: str | None) -> None:
    assert SWITCHED.active_at(moment) == expected


def test_a_retired_version_reactivated_opens_a_new_period() -> None:
    rolled_back = history(*SWITCHED.events, event("2.0.0", RETIRED, 30), event("1.0.0", ACTIVATED, 30))

    assert [(p.version, p.since, p.until) for p in rolled_back.periods()] == [
        ("1.0.0", at(0), at(20)),
        ("2.0.0", at(20), at(30)),
        ("1.0.0", at(30), None),
    ]
    assert rolled_back.active_at(at(25)) == "2.0.0"


def test_no_version_is_active_between_a_retirement_and_the_next_activation() -> None:
    gap = history(event("1.0.0", REGISTERED, 0), event("1.0.0", ACTIVATED, 0), event("1.0.0", RETIRED, 5))

    assert gap.active() is None
    assert gap.active_at(at(6)) is None


def test_the_shadow_is_the_last_started_and_not_stopped() -> None:
    started = history(*SWITCHED.events, event("1.0.0", SHADOW_STARTED, 30))
    assert started.shadow() == "1.0.0"
    assert history(*started.events, event("1.0.0", SHADOW_STOPPED, 31)).shadow() is None


def test_events_group_by_classifier_in_order() -> None:
    grouped = lifecycles([event("1.0.0", REGISTERED, 0), event("1.0.0", REGISTERED, 0, name="other")])

    assert set(grouped) == {NAME, "other"}
    assert grouped["other"].events[0].name == "other"


def test_activating_retires_the_active_version_in_the_same_change() -> None:
    changes = plan_change(SWITCHED, "1.0.0", ACTIVATED, "roll back", default_name="il6-enrichment")

    assert [(c.version, c.event) for c in changes] == [("2.0.0", RETIRED), ("1.0.0", ACTIVATED)]
    assert "replaced by 1.0.0" in changes[0].reason


def test_activating_the_shadow_stops_its_shadowing_first() -> None:
    shadowed = history(*SWITCHED.events, event("1.0.0", SHADOW_STARTED, 30))

    changes = plan_change(shadowed, "1.0.0", ACTIVATED, "go", default_name="x")

    assert [(c.version, c.event) for c in changes] == [
        ("1.0.0", SHADOW_STOPPED),
        ("2.0.0", RETIRED),
        ("1.0.0", ACTIVATED),
    ]


def test_starting_a_shadow_replaces_the_previous_shadow() -> None:
    three = history(*SWITCHED.events, event("3.0.0", REGISTERED, 25), event("1.0.0", SHADOW_STARTED, 30))

    changes = plan_change(three, "3.0.0", SHADOW_STARTED, "compare", default_name="x")

    assert [(c.version, c.event) for c in changes] == [("1.0.0", SHADOW_STOPPED), ("3.0.0", SHADOW_STARTED)]


@pytest.mark.parametrize(
    ("version", "kind", "default_name", "why"),
    [
        ("9.9.9", ACTIVATED, "x", "not registered"),
        ("2.0.0", ACTIVATED, "x", "already active"),
        ("1.0.0", RETIRED, "x", "already retired"),
        ("2.0.0", RETIRED, NAME, "activate another version"),
        ("2.0.0", SHADOW_STARTED, "x", "is active"),
        ("1.0.0", SHADOW_STOPPED, "x", "not the shadow"),
        ("1.0.0", REGISTERED, "x", "registered once"),
    ],
)
def test_changes_the_state_does_not_allow_are_refused(
    version: str, kind: LifecycleEvent, default_name: str, why: str
) -> None:
    with pytest.raises(LifecycleRefused, match=why):
        plan_change(SWITCHED, version, kind, "because", default_name=default_name)


def test_the_active_version_of_another_classifier_may_be_retired_leaving_none() -> None:
    changes = plan_change(SWITCHED, "2.0.0", RETIRED, "withdrawn", default_name="il6-enrichment")

    assert [(c.version, c.event) for c in changes] == [("2.0.0", RETIRED)]
