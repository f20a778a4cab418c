"""IL6 risk group against the 17.85 pg/mL cutoff: low below it, high at or above it."""

from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.domain.il6 import measure
from app.domain.reasons import ReasonCode
from app.domain.risk import RiskGroup, assess_risk
from app.domain.specimen import SpecimenType
from tests.unit.factories import ELECSYS_IL6, reported, specimen

CUTOFF = Decimal("17.85")
SERUM = SpecimenType.SERUM
PLASMA = SpecimenType.PLASMA

LOW = RiskGroup.LOW
HIGH = RiskGroup.HIGH
BELOW = ReasonCode.IL6_BELOW_CUTOFF
AT_OR_ABOVE = ReasonCode.IL6_AT_OR_ABOVE_CUTOFF
STRADDLES = ReasonCode.IL6_STRADDLES_CUTOFF
NOT_SERUM = ReasonCode.SPECIMEN_NOT_SERUM


@pytest.mark.parametrize(
    ("text", "unit", "kind", "group", "codes"),
    [
        pytest.param("17.84", "pg/mL", SERUM, LOW, [BELOW], id="exact-17.84-below"),
        pytest.param("17.85", "pg/mL", SERUM, HIGH, [AT_OR_ABOVE], id="exact-17.85-at-cutoff"),
        pytest.param("17.850", "pg/mL", SERUM, HIGH, [AT_OR_ABOVE], id="exact-17.850-at-cutoff"),
        pytest.param("17.86", "pg/mL", SERUM, HIGH, [AT_OR_ABOVE], id="exact-17.86-above"),
        pytest.param("17.849999", "pg/mL", SERUM, LOW, [BELOW], id="exact-just-below"),
        pytest.param("0", "pg/mL", SERUM, LOW, [BELOW], id="exact-0"),
        pytest.param("<17.85", "pg/mL", SERUM, LOW, [BELOW], id="lt-17.85-below"),
        pytest.param("<=17.85", "pg/mL", SERUM, None, [STRADDLES], id="le-17.85-straddles"),
        pytest.param("<=17.84", "pg/mL", SERUM, LOW, [BELOW], id="le-17.84-below"),
        pytest.param("<20", "pg/mL", SERUM, None, [STRADDLES], id="lt-20-straddles"),
        pytest.param("<1.5", "pg/mL", SERUM, LOW, [BELOW], id="lt-1.5-below"),
        pytest.param(">17.85", "pg/mL", SERUM, HIGH, [AT_OR_ABOVE], id="gt-17.85-above"),
        pytest.param(">=17.85", "pg/mL", SERUM, HIGH, [AT_OR_ABOVE], id="ge-17.85-at-or-above"),
        pytest.param(">17.8", "pg/mL", SERUM, None, [STRADDLES], id="gt-17.8-straddles"),
        pytest.param(">=1.5", "pg/mL", SERUM, None, [STRADDLES], id="ge-1.5-straddles"),
        pytest.param("0.01785", "ng/mL", SERUM, HIGH, [AT_OR_ABOVE], id="ng/mL-0.01785-is-cutoff"),
        pytest.param("0.01784", "ng/mL", SERUM, LOW, [BELOW], id="ng/mL-0.01784-below"),
        pytest.param("<0.01785", "ng/mL", SERUM, LOW, [BELOW], id="ng/mL-lt-cutoff"),
        pytest.param("17.85", "ng/L", SERUM, HIGH, [AT_OR_ABOVE], id="ng/L-17.85-is-cutoff"),
        pytest.param("1", "pg/mL", PLASMA, None, [NOT_SERUM], id="plasma-would-be-low"),
        pytest.param("100", "pg/mL", PLASMA, None, [NOT_SERUM], id="plasma-would-be-high"),
        pytest.param("<20", "pg/mL", PLASMA, None, [NOT_SERUM], id="plasma-would-straddle"),
        pytest.param("1", "pg/mL", SpecimenType.WHOLE_BLOOD, None, [NOT_SERUM], id="whole-blood"),
    ],
)
def test_assess_risk(
    text: str, unit: str, kind: SpecimenType, group: RiskGroup | None, codes: list[ReasonCode]
) -> None:
    risk = assess_risk(reported(text, unit), specimen(kind), CUTOFF, SERUM)
    assert risk.group is group
    assert [reason.code for reason in risk.reasons] == codes
    assert risk.cutoff_pg_per_ml == CUTOFF


@pytest.mark.parametrize(
    ("text", "code"),
    [
        pytest.param("1", BELOW, id="below"),
        pytest.param("20", AT_OR_ABOVE, id="at-or-above"),
        pytest.param("<20", STRADDLES, id="straddles"),
    ],
)
def test_risk_reason_messages_name_the_cutoff(text: str, code: ReasonCode) -> None:
    (reason,) = assess_risk(reported(text), specimen(), CUTOFF, SERUM).reasons
    assert reason.code is code
    assert "17.85 pg/mL" in reason.message


def test_the_cutoff_is_a_parameter_not_hard_coded() -> None:
    assert assess_risk(reported("10"), specimen(), Decimal("5"), SERUM).group is HIGH
    assert assess_risk(reported("10"), specimen(), Decimal("20"), SERUM).group is LOW


EXACT_VALUES = st.one_of(
    st.decimals(min_value=Decimal(0), max_value=Decimal(1000), places=6),
    st.decimals(min_value=Decimal("17.84"), max_value=Decimal("17.86"), places=12),
)


@settings(database=None)
@given(value=EXACT_VALUES)
@example(value=CUTOFF)
@example(value=Decimal("17.849999999999999"))
@example(value=Decimal("17.850000000000001"))
@example(value=Decimal(0))
def test_exact_values_are_low_iff_below_the_cutoff(value: Decimal) -> None:
    risk = assess_risk(measure(value, "pg/mL", None, ELECSYS_IL6), specimen(), CUTOFF, SERUM)
    assert risk.group is not None
    assert (risk.group is LOW) == (value < CUTOFF)
