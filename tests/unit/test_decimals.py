"""Digits are counted and written exactly, never through the decimal context's 28-digit rounding."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.decimals import plain, significant


@pytest.mark.parametrize(
    ("text", "digits", "places", "written"),
    [
        ("1.4999999999999999999999999999999", 32, 31, "1.4999999999999999999999999999999"),
        ("1.50", 2, 1, "1.5"),
        ("1.5E+3", 2, 0, "1500"),
        ("0.000", 1, 0, "0"),
        ("-0", 1, 0, "0"),
        ("0.0015", 2, 4, "0.0015"),
        ("1E-20", 1, 20, "0.00000000000000000001"),
        ("123456789012345", 15, 0, "123456789012345"),
    ],
)
def test_counts_and_writes_exactly(text: str, digits: int, places: int, written: str) -> None:
    assert significant(Decimal(text)) == (digits, places)
    assert plain(Decimal(text)) == written


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=0, max_value=10**12))
def test_plain_text_round_trips(value: Decimal) -> None:
    assert Decimal(plain(value)) == value


def test_refuses_what_is_not_a_number() -> None:
    with pytest.raises(ValueError, match="finite"):
        plain(Decimal("NaN"))
    with pytest.raises(ValueError, match="finite"):
        significant(Decimal("Infinity"))
