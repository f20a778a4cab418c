"""Exact decimal helpers: counting and writing digits without the decimal context's 28-digit rounding."""

from decimal import Decimal

BINARY64_DIGITS = 15
"""Significant digits any decimal can have and still survive a JSON (IEEE 754 binary64) number intact."""


def significant(value: Decimal) -> tuple[int, int]:
    """(significant digits, decimal places) of a finite value, trailing zeros aside, without rounding."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError("not a finite number")
    kept = list(digits)
    while len(kept) > 1 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    if kept == [0]:
        return 1, 0
    return len(kept), max(0, -exponent)


def plain(value: Decimal) -> str:
    """A finite value as plain decimal text, exactly, without exponent or trailing zeros: 1.50E+3 -> 1500."""
    if not value.is_finite():
        raise ValueError("not a finite number")
    if value.is_zero():
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
