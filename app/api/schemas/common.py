"""Field types shared by the request and response bodies."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from app.domain.decimals import BINARY64_DIGITS, significant
from app.domain.il6 import UNITS

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_SIGNIFICANT_DIGITS = BINARY64_DIGITS
MAX_DECIMAL_PLACES = 15
MAX_VALUE = Decimal("1e9")
CLOCK_SKEW = timedelta(minutes=5)

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]

PRINTABLE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
"""Printable text, tabs and line breaks allowed: a NUL cannot be stored by PostgreSQL, and other control
characters have no place in a reason a person reads."""


def _json_number(value: Any) -> Decimal:
    """Accept a JSON number only (parsed exactly as a Decimal): no strings, booleans or NaN."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise PydanticCustomError("number_type", "Input should be a JSON number")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return number


def _within_bounds(value: Decimal) -> Decimal:
    if value.is_zero():
        return Decimal(0)  # also folds -0 into 0
    if value < 0:
        raise PydanticCustomError("greater_than_equal", "Input should be greater than or equal to 0")
    if value > MAX_VALUE:
        raise PydanticCustomError("less_than_equal", "Input should be less than or equal to 1e9")
    digits, places = significant(value)
    if digits > MAX_SIGNIFICANT_DIGITS or places > MAX_DECIMAL_PLACES:
        raise PydanticCustomError(
            "decimal_precision", "Input should have at most 15 significant digits and 15 decimal places"
        )
    return value


ReportedValue = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    AfterValidator(_within_bounds),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": 1e9,
            "description": "The reported value in `unit`; exact decimal, at most 15 significant digits.",
        }
    ),
]


def _known_unit(code: str) -> str:
    if code not in UNITS:
        accepted = ", ".join(f"'{unit}'" for unit in UNITS)
        raise PydanticCustomError(
            "unit", "Input should be one of the UCUM codes {accepted}", {"accepted": accepted}
        )
    return code


UnitCode = Annotated[
    str,
    AfterValidator(_known_unit),
    WithJsonSchema({"type": "string", "enum": list(UNITS), "description": "UCUM unit code."}),
]


_DATE_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?"
RFC3339_DATE_TIME = re.compile(_DATE_TIME + r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")
"""A date and a time to the minute at least (seconds and their fraction optional) with a UTC offset: the
shape a collection time must have before it is parsed at all, so that nothing else is read as one (pydantic
would read "45612" as seconds since 1970, and a date alone as its midnight)."""
_WITHOUT_OFFSET = re.compile(_DATE_TIME)


def _timestamp_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 date-time string")
    if RFC3339_DATE_TIME.fullmatch(value):
        return value
    if _WITHOUT_OFFSET.fullmatch(value):
        raise PydanticCustomError("timezone_aware", "Input should include a UTC offset, e.g. 'Z'")
    raise PydanticCustomError(
        "datetime_format",
        "Input should be an RFC 3339 date-time with a time and a UTC offset, e.g. '2026-11-20T09:30:00Z'",
    )


def _aware_and_not_future(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError("timezone_aware", "Input should include a UTC offset, e.g. 'Z'")
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise PydanticCustomError("datetime_future", "Input should not be in the future")
    return value


CollectedAt = Annotated[datetime, BeforeValidator(_timestamp_text), AfterValidator(_aware_and_not_future)]


def _held_in_utc(value: datetime) -> datetime:
    try:
        value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise PydanticCustomError(
            "datetime_range", "Input should be a moment within the years 1 to 9999 in UTC"
        ) from None
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_held_in_utc)]
"""A moment with its UTC offset that the store can hold: in UTC too, it falls within the years 1 to 9999.
Given as sent (its offset kept); stored and compared in UTC."""

JsonNumber = Annotated[
    Decimal,
    PlainSerializer(float, return_type=float, when_used="json"),
    WithJsonSchema({"type": "number"}),
]
"""An exact decimal written as a JSON number: inputs and manifests carry at most BINARY64_DIGITS significant
digits, so nothing is lost."""
