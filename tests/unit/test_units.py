"""Unit conversion to pg/mL: exact decimal arithmetic over a closed set of UCUM codes."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.errors import InvalidInput
from app.domain.il6 import UNITS, Comparator, measure, unit_for
from tests.unit.factories import ELECSYS_IL6, reported

ACCEPTED_CODES = ("pg/mL", "ng/L", "ng/mL")


@pytest.mark.parametrize(
    ("code", "factor"),
    [
        pytest.param("pg/mL", Decimal(1), id="pg/mL-factor-1"),
        pytest.param("ng/L", Decimal(1), id="ng/L-factor-1"),
        pytest.param("ng/mL", Decimal(1000), id="ng/mL-factor-1000"),
    ],
)
def test_unit_factor_to_pg_per_ml(code: str, factor: Decimal) -> None:
    unit = unit_for(code)
    assert unit.code == code
    assert unit.pg_per_ml == factor
    assert isinstance(unit.pg_per_ml, Decimal)


def test_the_accepted_units_are_exactly_the_three_ucum_codes() -> None:
    assert set(UNITS) == set(ACCEPTED_CODES)


@pytest.mark.parametrize(
    ("value", "code", "expected_pg_per_ml"),
    [
        pytest.param("1.5", "pg/mL", "1.5", id="pg/mL-unchanged"),
        pytest.param("1.1", "pg/mL", "1.1", id="pg/mL-1.1-not-a-float"),
        pytest.param("1.5", "ng/L", "1.5", id="ng/L-equals-pg/mL"),
        pytest.param("17.85", "ng/L", "17.85", id="ng/L-cutoff"),
        pytest.param("0.0015", "ng/mL", "1.5", id="ng/mL-0.0015-is-the-LoD"),
        pytest.param("0.01785", "ng/mL", "17.85", id="ng/mL-0.01785-is-the-cutoff"),
        pytest.param("0.0014999", "ng/mL", "1.4999", id="ng/mL-just-below-LoD"),
        pytest.param("0.1", "ng/mL", "100", id="ng/mL-0.1-is-100"),
        pytest.param("0.000000000000001", "ng/mL", "0.000000000001", id="ng/mL-15-decimal-places"),
        pytest.param("5", "ng/mL", "5000", id="ng/mL-5-is-5000"),
        pytest.param("0", "ng/mL", "0", id="ng/mL-zero"),
    ],
)
def test_conversion_is_exact(value: str, code: str, expected_pg_per_ml: str) -> None:
    measurement = measure(Decimal(value), code, None, ELECSYS_IL6)
    assert isinstance(measurement.pg_per_ml, Decimal)
    assert measurement.pg_per_ml == Decimal(expected_pg_per_ml)
    assert measurement.pg_per_ml - Decimal(expected_pg_per_ml) == 0


def test_0_0015_ng_per_ml_is_exactly_1_5_pg_per_ml() -> None:
    assert measure(Decimal("0.0015"), "ng/mL", None, ELECSYS_IL6).pg_per_ml == Decimal("1.5")


def test_conversion_keeps_comparator_and_assay() -> None:
    measurement = measure(Decimal("0.0015"), "ng/mL", Comparator.LE, ELECSYS_IL6)
    assert measurement.comparator is Comparator.LE
    assert measurement.assay is ELECSYS_IL6


@pytest.mark.parametrize(
    ("value", "code", "expected_pg_per_ml"),
    [
        pytest.param(
            "1.4999999999999999999999999999999",
            "pg/mL",
            "1.4999999999999999999999999999999",
            id="31-digits-pg/mL-below-LoD",
        ),
        pytest.param(
            "0.0014999999999999999999999999999999",
            "ng/mL",
            "1.4999999999999999999999999999999",
            id="32-digits-ng/mL-below-LoD",
        ),
    ],
)
def test_conversion_does_not_round_to_the_decimal_context_precision(
    value: str, code: str, expected_pg_per_ml: str
) -> None:
    """``measure`` promises "exactly (decimal arithmetic, no rounding)": a value just below the LoD must
    not become the LoD. Multiplying by the unit factor uses the thread's decimal context (28 significant
    digits by default), which rounds 1.4999999999999999999999999999999 up to 1.500000000000000000000000000.
    """
    measurement = measure(Decimal(value), code, None, ELECSYS_IL6)
    assert measurement.pg_per_ml == Decimal(expected_pg_per_ml)
    assert measurement.pg_per_ml < ELECSYS_IL6.lod_pg_per_ml


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("mg/L", id="mg/L-unknown"),
        pytest.param("pg/ml", id="pg/ml-lowercase"),
        pytest.param("PG/ML", id="PG/ML-uppercase"),
        pytest.param("", id="empty"),
        pytest.param(" pg/mL", id="leading-space"),
        pytest.param("pg/mL ", id="trailing-space"),
        pytest.param("ug/L", id="ug/L-not-accepted"),
    ],
)
def test_unknown_unit_is_invalid_input_naming_every_accepted_code(code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        unit_for(code)
    assert caught.value.pointer == "/il6/unit"
    for accepted in ACCEPTED_CODES:
        assert accepted in caught.value.message


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("mg/L", id="mg/L"),
        pytest.param("pg/ml", id="pg/ml-lowercase"),
        pytest.param("", id="empty"),
    ],
)
def test_measure_refuses_an_unknown_unit_at_the_unit_pointer(code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        measure(Decimal("1.5"), code, Comparator.LT, ELECSYS_IL6)
    assert caught.value.pointer == "/il6/unit"
    assert caught.value.message == "Unknown unit; accepted UCUM codes: pg/mL, ng/L, ng/mL"


@pytest.mark.parametrize(
    "code", [pytest.param("mg/L", id="mg/L"), pytest.param("pg/ml", id="pg/ml-lowercase")]
)
def test_unknown_unit_message_does_not_repeat_the_submitted_code(code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        unit_for(code)
    assert code not in caught.value.message
    assert code not in str(caught.value)


@pytest.mark.parametrize("code", [pytest.param(code, id=code) for code in ACCEPTED_CODES])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("-0.1", id="negative"),
        pytest.param("-1E-30", id="tiny-negative"),
        pytest.param("-1000", id="large-negative"),
        pytest.param("NaN", id="NaN"),
        pytest.param("-NaN", id="minus-NaN"),
        pytest.param("Infinity", id="Infinity"),
        pytest.param("-Infinity", id="minus-Infinity"),
    ],
)
@pytest.mark.parametrize(
    "comparator",
    [
        pytest.param(None, id="exact"),
        pytest.param(Comparator.LT, id="lt"),
        pytest.param(Comparator.GE, id="ge"),
    ],
)
def test_negative_and_non_finite_values_are_invalid_input(
    value: str, code: str, comparator: Comparator | None
) -> None:
    with pytest.raises(InvalidInput) as caught:
        measure(Decimal(value), code, comparator, ELECSYS_IL6)
    assert caught.value.pointer == "/il6/value"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        pytest.param("sNaN", "pg/mL", id="signalling-NaN"),
        pytest.param("-sNaN", "ng/mL", id="negative-signalling-NaN"),
    ],
)
def test_unrepresentable_values_are_invalid_input_not_a_decimal_signal(value: str, code: str) -> None:
    """The domain's contract is InvalidInput for any value that is not a finite number >= 0 in pg/mL;
    a bare ``decimal.InvalidOperation`` or ``decimal.Overflow`` escaping ``measure`` breaks it."""
    with pytest.raises(InvalidInput) as caught:
        measure(Decimal(value), code, None, ELECSYS_IL6)
    assert caught.value.pointer == "/il6/value"


def test_extreme_magnitudes_convert_exactly_instead_of_overflowing() -> None:
    # Bounding magnitudes is the HTTP contract's job; the domain converts whatever is finite, exactly.
    assert measure(Decimal("9E+999999"), "ng/mL", None, ELECSYS_IL6).pg_per_ml == Decimal("9E+1000002")


@pytest.mark.parametrize("code", [pytest.param(code, id=code) for code in ACCEPTED_CODES])
def test_less_than_zero_is_invalid_input(code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        reported("<0", code)
    assert caught.value.pointer == "/il6/value"


@pytest.mark.parametrize(
    ("text", "pg_per_ml", "comparator"),
    [
        pytest.param("0", Decimal(0), None, id="exact-zero"),
        pytest.param("<=0", Decimal(0), Comparator.LE, id="at-most-zero"),
        pytest.param(">0", Decimal(0), Comparator.GT, id="above-zero"),
        pytest.param(">=0", Decimal(0), Comparator.GE, id="at-least-zero"),
        pytest.param("<0.0001", Decimal("0.0001"), Comparator.LT, id="below-a-tiny-limit"),
    ],
)
def test_zero_limits_other_than_less_than_zero_are_accepted(
    text: str, pg_per_ml: Decimal, comparator: Comparator | None
) -> None:
    measurement = reported(text)
    assert measurement.pg_per_ml == pg_per_ml
    assert measurement.comparator is comparator


SIGNIFICANT = st.integers(min_value=0, max_value=10**15 - 1)
EXPONENT = st.integers(min_value=-30, max_value=15)


@settings(database=None)
@given(coefficient=SIGNIFICANT, exponent=EXPONENT)
def test_ng_per_ml_is_a_thousand_pg_per_ml(coefficient: int, exponent: int) -> None:
    value = Decimal(f"{coefficient}E{exponent}")
    assert len(value.as_tuple().digits) <= 15
    in_ng = measure(value, "ng/mL", None, ELECSYS_IL6)
    in_pg = measure(value * 1000, "pg/mL", None, ELECSYS_IL6)
    assert in_ng.pg_per_ml == in_pg.pg_per_ml
    assert measure(value, "ng/L", None, ELECSYS_IL6).pg_per_ml == value
