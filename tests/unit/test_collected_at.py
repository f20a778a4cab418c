"""A collection time is a full RFC 3339 date-time with a UTC offset, checked by its shape before it is parsed:
nothing else is read as one, in any form (pydantic alone reads "45612" as seconds since 1970, and a date as
its midnight)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from app.api.schemas.common import CollectedAt

COLLECTED_AT: TypeAdapter[datetime] = TypeAdapter(CollectedAt)


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-11-20T09:30:00Z", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
        ("2026-11-20T09:30Z", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
        ("2026-11-20T09:30:15.5+01:00", datetime(2026, 11, 20, 8, 30, 15, 500000, tzinfo=UTC)),
        ("2026-11-20T09:30:15.123456789-05:00", datetime(2026, 11, 20, 14, 30, 15, 123456, tzinfo=UTC)),
        ("2026-11-20t09:30:00z", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
    ],
)
def test_a_full_date_time_with_an_offset_is_read(text: str, instant: datetime) -> None:
    assert COLLECTED_AT.validate_python(text) == instant


def test_the_offset_is_kept() -> None:
    read = COLLECTED_AT.validate_python("2026-11-20T09:30:00-05:00")

    assert read.utcoffset() == timedelta(hours=-5)
    assert read.tzinfo == timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    "text",
    [
        "45612",  # was 1970-01-02T12:40:12Z
        "1700000000",
        "1700000000.5",
        "2026",  # was 1970-01-01T00:33:46Z
        "2026-11",
        "2026-11-20",
        "2026-11-20T09",
        "2026-11-20 09:30:00Z",
        "2026-11-20T09:30:00+0100",
        "2026-11-20T09:30:00+01",
        "2026-11-20T09:30:00.Z",
        "2026-11-20T09:30:00.1234567890Z",
        "20261120T093000Z",
        " 2026-11-20T09:30:00Z",
        "2026-11-20T09:30:00Z ",
        "2026-11-20T09:30:00Z\n",
        "\uff12\uff10\uff12\uff16-11-20T09:30:00Z",  # full-width digits
        "yesterday",
        "",
    ],
)
def test_anything_else_is_refused_by_its_shape(text: str) -> None:
    with pytest.raises(ValidationError) as refused:
        COLLECTED_AT.validate_python(text)

    [error] = refused.value.errors()
    assert error["type"] == "datetime_format"
    assert error["msg"] == (  # the same words whatever was sent: nothing of it is repeated
        "Input should be an RFC 3339 date-time with a time and a UTC offset, e.g. '2026-11-20T09:30:00Z'"
    )


@pytest.mark.parametrize("text", ["2026-11-20T09:30:00", "2026-11-20T09:30", "2026-11-20T09:30:00.5"])
def test_a_date_time_without_an_offset_is_told_so(text: str) -> None:
    with pytest.raises(ValidationError) as refused:
        COLLECTED_AT.validate_python(text)

    [error] = refused.value.errors()
    assert error["type"] == "timezone_aware"


@pytest.mark.parametrize("value", [45612, 1700000000, 1.5, True, None, ["2026-11-20T09:30:00Z"]])
def test_a_value_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(ValidationError) as refused:
        COLLECTED_AT.validate_python(value)

    assert [error["type"] for error in refused.value.errors()] == ["datetime_type"]


@pytest.mark.parametrize("text", ["2026-13-20T09:30:00Z", "2026-11-31T09:30:00Z", "2026-11-20T24:00:00Z"])
def test_a_well_shaped_date_time_that_does_not_exist_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        COLLECTED_AT.validate_python(text)


def test_the_future_is_still_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        COLLECTED_AT.validate_python("2999-01-01T00:00:00Z")

    assert [error["type"] for error in refused.value.errors()] == ["datetime_future"]
